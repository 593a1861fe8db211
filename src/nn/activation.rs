//! Activation functions, all with a backward pass (ReLU by the fused `ops::relu`, the others
//! by candle's ops).

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// 1/(1+e^-x): saturates at both ends; its derivative is at most 1/4
    Sigmoid,
    Tanh,
    /// max(0, x) (Nair & Hinton 2010; Glorot et al. 2011)
    Relu,
    /// x·Φ(x), exact erf form (Hendrycks & Gimpel 2016)
    Gelu,
    /// GELU's tanh approximation, ½x(1 + tanh(√(2/π)(x + 0.044715x³))), as in GPT-2
    #[serde(rename = "gelu_tanh")]
    GeluTanh,
}

impl Activation {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Sigmoid => candle_nn::ops::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Relu => crate::ops::relu::relu(x),
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
        }
    }
}
