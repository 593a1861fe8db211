//! A fully connected layer y = act(x·Wᵀ + b) with a choice of initialisation. The product, the
//! bias and the activation run as one fused op with a fused backward
//! (`crate::ops::linear::linear_act`, tested there against candle's matmul + add + activation).

use super::activation::Activation;
use crate::ops::linear::{linear_act, Act};
use candle_core::{Module, Result, Tensor};
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// U(−1/√fan_in, 1/√fan_in) for weights and biases: PyTorch's nn.Linear default
    Default,
    /// N(0, 2/fan_in) weights, He et al. 2015; zero bias
    He,
    /// U(−√(6/(fan_in+fan_out)), +): Glorot & Bengio 2010; zero bias
    Glorot,
    /// N(0, 1) weights and biases: the "standard" large init under which deep sigmoid nets saturate
    Normal,
}

pub fn linear(in_dim: usize, out_dim: usize, init: InitKind, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let (w_init, b_init) = match init {
        InitKind::Default => (Init::Uniform { lo: -bound, up: bound }, Init::Uniform { lo: -bound, up: bound }),
        InitKind::He => (
            Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanIn, non_linearity: NonLinearity::ReLU },
            Init::Const(0.0),
        ),
        InitKind::Glorot => {
            let g = (6.0 / (in_dim + out_dim) as f64).sqrt();
            (Init::Uniform { lo: -g, up: g }, Init::Const(0.0))
        }
        InitKind::Normal => (Init::Randn { mean: 0.0, stdev: 1.0 }, Init::Randn { mean: 0.0, stdev: 1.0 }),
    };
    let w = vb.get_with_hints((out_dim, in_dim), "weight", w_init)?;
    let b = vb.get_with_hints(out_dim, "bias", b_init)?;
    Ok(Linear { weight: w, bias: Some(b) })
}

/// A linear layer with weights drawn from N(0, std²) and a zero bias: GPT-2's init (Radford et
/// al. 2019; nanoGPT's `_init_weights` uses std 0.02, and 0.02/√(2·layers) for the projections
/// back into the residual stream).
pub fn linear_normal(in_dim: usize, out_dim: usize, std: f64, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((out_dim, in_dim), "weight", Init::Randn { mean: 0.0, stdev: std })?;
    let b = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
    Ok(Linear { weight: w, bias: Some(b) })
}

/// W: (out, in) as PyTorch and candle-nn; b: (out,).
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// act(x·Wᵀ + b) for x: (…, in) -> (…, out). ReLU and both GELUs fuse into the op; sigmoid
    /// and tanh run after it.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let fused = match act {
            Activation::Relu => Some(Act::Relu),
            Activation::Gelu => Some(Act::GeluErf),
            Activation::GeluTanh => Some(Act::Gelu),
            Activation::Sigmoid | Activation::Tanh => None,
        };
        match fused {
            Some(a) => linear_act(x, &self.weight, self.bias.as_ref(), a),
            None => act.forward(&linear_act(x, &self.weight, self.bias.as_ref(), Act::Identity)?),
        }
    }

    /// LeakyReLU(x·Wᵀ + b) = max(z, slope·z), fused into the op, for a slope in [0, 1].
    pub fn forward_leaky_relu(&self, x: &Tensor, slope: f64) -> Result<Tensor> {
        linear_act(x, &self.weight, self.bias.as_ref(), Act::LeakyRelu(slope as f32))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear_act(x, &self.weight, self.bias.as_ref(), Act::Identity)
    }
}
