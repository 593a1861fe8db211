//! Batch normalisation (Ioffe & Szegedy 2015) over the channel dim of (B, C) or (B, C, H, W)
//! inputs. Train mode normalises with the batch's statistics (the fused op
//! `ops::batchnorm::batch_norm_train`, tested there against the composed reference) and
//! updates the running mean/variance (momentum 0.1, unbiased variance, as PyTorch); eval mode
//! uses the running statistics (the fused per-channel affine `ops::batchnorm_eval`) and changes
//! nothing. The running statistics are non-trainable buffers of the parameter store, so
//! checkpoints save and restore them.

use crate::params::Params;
use candle_core::{DType, Device, ModuleT, Result, Tensor, Var};
use candle_nn::VarBuilder;

pub struct BatchNorm {
    /// γ, β: (C)
    gamma: Tensor,
    beta: Tensor,
    /// running statistics: (C)
    running_mean: Var,
    running_var: Var,
    momentum: f64,
    eps: f64,
    channels: usize,
}

impl BatchNorm {
    /// `name` is the layer's path, the same as `vb`'s prefix, so buffers sit beside γ and β.
    pub fn new(channels: usize, params: &Params, name: &str, vb: VarBuilder, device: &Device) -> Result<Self> {
        let gamma = vb.get_with_hints(channels, "weight", candle_nn::init::ONE)?;
        let beta = vb.get_with_hints(channels, "bias", candle_nn::init::ZERO)?;
        let running_mean =
            params.buffer(&format!("{name}.running_mean"), Tensor::zeros(channels, DType::F32, device)?)?;
        let running_var = params.buffer(&format!("{name}.running_var"), Tensor::ones(channels, DType::F32, device)?)?;
        Ok(Self { gamma, beta, running_mean, running_var, momentum: 0.1, eps: 1e-5, channels })
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() < 2 || x.dim(1)? != self.channels {
            candle_core::bail!("batchnorm over {} channels got input {:?}", self.channels, x.dims());
        }
        if train {
            let n = x.elem_count() / self.channels;
            if n < 2 {
                candle_core::bail!(
                    "batchnorm needs more than one value per channel in training (got input {:?})",
                    x.dims()
                );
            }
            // one fused op: y and the batch's mean and biased variance (C), detached
            let (y, mean, var) = crate::ops::batchnorm::batch_norm_train(x, &self.gamma, &self.beta, self.eps)?;
            // running statistics: unbiased variance (n/(n−1)), momentum m
            let m = self.momentum;
            let unbiased = (var * (n as f64 / (n as f64 - 1.0)))?;
            let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            Ok(y)
        } else {
            // eval: a per-channel affine with the running statistics, one fused pass
            let (mean, var) = (self.running_mean.as_tensor(), self.running_var.as_tensor());
            crate::ops::batchnorm_eval::batch_norm_eval(x, mean, var, &self.gamma, &self.beta, self.eps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn input(dims: &[usize]) -> Result<Tensor> {
        let mut r = Rng::new(3);
        let n: usize = dims.iter().product();
        Tensor::from_vec((0..n).map(|_| (2.0 + 3.0 * r.normal()) as f32).collect::<Vec<_>>(), dims, &Device::Cpu)
    }

    /// Reference: PyTorch's BatchNorm2d in train mode normalises each channel to mean 0, var 1
    /// (biased), and moves running_mean by 0.1·(batch mean − running mean).
    #[test]
    fn train_mode_normalises_per_channel_and_updates_running_stats_eval_mode_changes_nothing() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let bn = BatchNorm::new(3, &p, "bn", p.vb(&dev).pp("bn"), &dev)?;
        let x = input(&[8, 3, 5, 5])?;
        let y = bn.forward_t(&x, true)?;
        let m = y.mean_keepdim(&[0usize, 2, 3][..])?.flatten_all()?.to_vec1::<f32>()?;
        let v = y.sqr()?.mean_keepdim(&[0usize, 2, 3][..])?.flatten_all()?.to_vec1::<f32>()?;
        for c in 0..3 {
            assert!(m[c].abs() < 1e-4 && (v[c] - 1.0).abs() < 1e-3, "channel {c}: mean {} var {}", m[c], v[c]);
        }
        let batch_mean = x.mean_keepdim(&[0usize, 2, 3][..])?.flatten_all()?.to_vec1::<f32>()?;
        let rm = bn.running_mean.as_tensor().to_vec1::<f32>()?;
        for c in 0..3 {
            assert!((rm[c] - 0.1 * batch_mean[c]).abs() < 1e-5);
        }
        let before: Vec<(String, Tensor)> = p.tensors();
        let _ = bn.forward_t(&x, false)?;
        for ((n, a), (_, b)) in before.iter().zip(p.tensors().iter()) {
            assert_eq!(a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?.to_vec1::<f32>()?, "eval changed {n}");
        }
        // buffers are saved with the model but are not trainable
        assert!(p.tensors().iter().any(|(n, _)| n == "bn.running_var"));
        assert!(!p.trainable().iter().any(|(n, _)| n.starts_with("bn.running")));
        Ok(())
    }

    #[test]
    fn eval_mode_uses_running_statistics_and_gradients_reach_gamma_and_beta() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let bn = BatchNorm::new(4, &p, "bn", p.vb(&dev).pp("bn"), &dev)?;
        let x = input(&[6, 4])?;
        // fresh running stats are mean 0, var 1: eval is (x − 0)/√(1 + ε)·1 + 0
        let y = bn.forward_t(&x, false)?;
        let want = (&x / (1.0f64 + 1e-5).sqrt())?;
        let diff = (y - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        let loss = bn.forward_t(&x, true)?.sqr()?.sum_all()?;
        let g = loss.backward()?;
        for (n, v) in p.trainable() {
            assert!(g.get(v.as_tensor()).is_some(), "no gradient for {n}");
        }
        Ok(())
    }
}
