//! Layer normalisation (Ba, Kiros & Hinton 2016) over the last dimension, composed of candle
//! ops that have a backward: candle-nn's `LayerNorm` and `ops::layer_norm` have none.

use super::batchnorm::BatchNorm;
use crate::params::Params;
use candle_core::{Device, ModuleT, Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

pub struct LayerNorm {
    /// γ: (C,), starts at 1
    pub weight: Tensor,
    /// β: (C,), starts at 0
    pub bias: Tensor,
    pub eps: f64,
}

/// A LayerNorm over `dim` features with the usual eps of 1e-5 (PyTorch's default).
pub fn layer_norm(dim: usize, vb: VarBuilder) -> Result<LayerNorm> {
    let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
    let bias = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
    Ok(LayerNorm { weight, bias, eps: 1e-5 })
}

impl LayerNorm {
    /// (…, C) -> (…, C)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::layernorm::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Which normalisation a model's norm slots use (the layer-norm study swaps them).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// over each token's features (Ba et al. 2016): independent of the batch
    #[default]
    Layer,
    /// over the batch (and time) per feature, running statistics at eval (Ioffe & Szegedy 2015)
    Batch,
    /// identity
    None,
}

/// A norm slot: LayerNorm, BatchNorm or nothing, on (N, C) rows.
pub enum Norm {
    Layer(LayerNorm),
    Batch(BatchNorm),
    None,
}

/// A `kind` norm over `dim` features named `name` (also `vb`'s prefix: BatchNorm's running
/// statistics are buffers `name.running_mean`/`name.running_var` beside γ and β).
pub fn norm(kind: NormKind, dim: usize, params: &Params, name: &str, device: &Device) -> Result<Norm> {
    let vb = params.vb(device).pp(name);
    Ok(match kind {
        NormKind::Layer => Norm::Layer(layer_norm(dim, vb)?),
        NormKind::Batch => Norm::Batch(BatchNorm::new(dim, params, name, vb, device)?),
        NormKind::None => Norm::None,
    })
}

impl Norm {
    /// (…, C) -> (…, C). `train` matters only to BatchNorm (batch vs running statistics), which
    /// normalises each feature over all the leading positions (N = their product).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Norm::Layer(ln) => ln.forward(x),
            Norm::Batch(bn) if x.rank() == 2 => bn.forward_t(x, train),
            Norm::Batch(bn) => {
                let c = x.dim(candle_core::D::Minus1)?;
                bn.forward_t(&x.reshape(((), c))?, train)?.reshape(x.shape())
            }
            Norm::None => Ok(x.clone()),
        }
    }
}

/// y = (x − μ) / √(σ² + ε) · γ + β, with μ and σ² (biased) over the last dimension.
/// x: (…, C), γ and β: (C,).
#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn normalises_rows_and_passes_gradients_to_gain_and_bias() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2., 3., 4.], [-1., 0., 5., 10.]], &dev)?;
        let gamma = candle_core::Var::new(&[1f32, 1., 1., 1.], &dev)?;
        let beta = candle_core::Var::new(&[0f32, 0., 0., 0.], &dev)?;
        let ln = LayerNorm { weight: gamma.as_tensor().clone(), bias: beta.as_tensor().clone(), eps: 1e-5 };
        let y = ln.forward(&x)?;
        for row in y.to_vec2::<f32>()? {
            let mean: f32 = row.iter().sum::<f32>() / 4.0;
            let var: f32 = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "{row:?}");
        }
        let w = Tensor::new(&[[1f32, -2., 3., 0.5], [0., 1., -1., 2.]], &dev)?;
        let grads = (y * w)?.sum_all()?.backward()?;
        assert!(grads.get(gamma.as_tensor()).is_some() && grads.get(beta.as_tensor()).is_some());
        Ok(())
    }
}
