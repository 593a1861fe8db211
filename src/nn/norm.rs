//! Layer normalisation (Ba, Kiros & Hinton 2016) over the last dimension, composed of candle
//! ops that have a backward: candle-nn's `LayerNorm` and `ops::layer_norm` have none (DESIGN §7).

use candle_core::{Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

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
