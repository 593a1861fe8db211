//! A low-rank adapter beside a frozen linear layer (LoRA; Hu et al. 2021): y = W·x + b +
//! (α/r)·B·(A·x) with A: (r, in) small and random, B: (out, r) zero at the start (so the
//! adapted layer starts as the base layer). Only A and B train; `merge` folds the adapter into
//! the weight, W + (α/r)·B·A, for a model with no extra products at inference. Both products run
//! through the fused linear op (`ops::linear`), which has its backward.

use super::linear::Linear;
use crate::ops::linear::{linear_act, Act};
use candle_core::{Module, Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

#[derive(Clone, Debug)]
pub struct Lora {
    /// (r, in)
    pub a: Tensor,
    /// (out, r)
    pub b: Tensor,
    /// α / r
    pub scale: f64,
}

/// Parameters `{vb}.a` (r, in) ~ N(0, 1/in) and `{vb}.b` (out, r) ~ N(0, b_std²): zero as in the
/// paper when `b_std` is 0 (the smoke presets set it above 0 so that a gradient check at step 0
/// reaches A too: with B = 0, A's gradient is exactly zero until B moves).
pub fn lora(in_dim: usize, out_dim: usize, rank: usize, alpha: f64, b_std: f64, vb: VarBuilder) -> Result<Lora> {
    if rank == 0 {
        candle_core::bail!("lora: rank must be at least 1");
    }
    let a = vb.get_with_hints((rank, in_dim), "a", Init::Randn { mean: 0.0, stdev: 1.0 / (in_dim as f64).sqrt() })?;
    let b_init = if b_std > 0.0 { Init::Randn { mean: 0.0, stdev: b_std } } else { Init::Const(0.0) };
    let b = vb.get_with_hints((out_dim, rank), "b", b_init)?;
    Ok(Lora { a, b, scale: alpha / rank as f64 })
}

impl Lora {
    /// The adapter's own term (α/r)·B·(A·x) for x: (…, in) -> (…, out).
    pub fn delta(&self, x: &Tensor) -> Result<Tensor> {
        let h = linear_act(x, &self.a, None, Act::Identity)?; // (…, r)
        linear_act(&h, &self.b, None, Act::Identity)? * self.scale
    }

    /// The base layer plus the adapter, unmerged: W·x + b + (α/r)·B·(A·x).
    pub fn forward(&self, base: &Linear, x: &Tensor) -> Result<Tensor> {
        base.forward(x)? + self.delta(x)?
    }

    /// The base layer with the adapter folded in: weight W + (α/r)·B·A, the same bias.
    pub fn merge(&self, base: &Linear) -> Result<Linear> {
        let w = (&base.weight + (self.b.matmul(&self.a)? * self.scale)?)?;
        Ok(Linear { weight: w, bias: base.bias.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::linear::{linear, InitKind};
    use crate::params::Params;
    use candle_core::Device;

    /// Reference: the LoRA paper's h = W₀x + ΔWx with ΔW = (α/r)·BA: unmerged and merged
    /// agree (1e-5 relative), and with B = 0 the adapter changes nothing (bit for bit).
    #[test]
    fn merged_and_unmerged_agree_and_zero_b_is_the_base_layer() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(3);
        let vb = p.vb(&dev);
        let base = linear(12, 9, InitKind::Default, vb.pp("base"))?;
        let ad = lora(12, 9, 4, 8.0, 0.3, vb.pp("ad"))?;
        let x = Tensor::from_vec((0..5 * 12).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect(), (5, 12), &dev)?;
        let un = ad.forward(&base, &x)?;
        let me = ad.merge(&base)?.forward(&x)?;
        let err = (&un - &me)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let big = un.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err / big < 1e-5, "merged vs unmerged: {err} of {big}");
        assert!(ad.delta(&x)?.abs()?.max_all()?.to_scalar::<f32>()? > 1e-3, "the adapter does something");
        let zero = lora(12, 9, 4, 8.0, 0.0, vb.pp("zero"))?;
        assert_eq!(zero.forward(&base, &x)?.to_vec2::<f32>()?, base.forward(&x)?.to_vec2::<f32>()?);
        Ok(())
    }
}
