//! Dropout (Srivastava et al. 2014), inverted: in training each unit is kept with probability
//! 1 − p and scaled by 1/(1 − p), so evaluation is the identity. The mask comes from our seeded
//! RNG (candle's cannot be seeded), drawn from the step's stream, so resumed runs drop the same units.

use crate::rng::Rng;
use candle_core::{Result, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f64,
}

impl Dropout {
    pub fn new(p: f64) -> Self {
        Self { p }
    }

    /// Train mode drops; eval mode passes `x` through unchanged.
    pub fn forward(&self, x: &Tensor, train: bool, rng: &mut Rng) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        if self.p >= 1.0 {
            return x.zeros_like();
        }
        let keep = 1.0 - self.p;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.uniform() < keep { scale } else { 0.0 }).collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

/// What a layer stack passes to each sublayer: dropout with its random stream in training, or
/// nothing (evaluation, decoding). `apply` drops units of a sublayer's output (Vaswani et al.
/// 2017, §5.4: before each residual add and on the embeddings).
pub struct DropPass<'a> {
    p: f64,
    rng: Option<&'a mut Rng>,
}

impl<'a> DropPass<'a> {
    /// Evaluation: `apply` is the identity.
    pub fn eval() -> Self {
        Self { p: 0.0, rng: None }
    }

    /// Training with dropout probability `p`, masks drawn from `rng`.
    pub fn train(p: f64, rng: &'a mut Rng) -> Self {
        Self { p, rng: Some(rng) }
    }

    /// Drops units of `x` with probability p (16-bit resolution: four mask entries per 64-bit
    /// draw, since these masks are drawn for every sublayer of every step) and scales the rest
    /// by 1/(1 − p); the identity in evaluation.
    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        let Some(rng) = &mut self.rng else { return Ok(x.clone()) };
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        if self.p >= 1.0 {
            return x.zeros_like();
        }
        let keep = ((1.0 - self.p) * 65536.0).round() as u64;
        let scale = (65536.0 / keep as f64) as f32;
        let n = x.elem_count();
        let mut mask = Vec::with_capacity(n + 3);
        while mask.len() < n {
            let r = rng.next();
            for k in 0..4 {
                mask.push(if (r >> (16 * k)) & 0xffff < keep { scale } else { 0.0 });
            }
        }
        mask.truncate(n);
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn drops_about_p_of_units_keeps_the_mean_and_is_the_identity_in_eval() -> Result<()> {
        let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu)?;
        let d = Dropout::new(0.3);
        let y = d.forward(&x, true, &mut Rng::new(1))?;
        let v = y.flatten_all()?.to_vec1::<f32>()?;
        let zeros = v.iter().filter(|&&a| a == 0.0).count() as f64 / v.len() as f64;
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((zeros - 0.3).abs() < 0.02, "dropped {zeros}");
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        // the same stream gives the same mask
        assert_eq!(v, d.forward(&x, true, &mut Rng::new(1))?.flatten_all()?.to_vec1::<f32>()?);
        assert_eq!(d.forward(&x, false, &mut Rng::new(1))?.flatten_all()?.to_vec1::<f32>()?, vec![1.0; 10000]);
        Ok(())
    }

    #[test]
    fn drop_pass_drops_about_p_keeps_the_mean_and_passes_through_in_eval() -> Result<()> {
        let x = Tensor::ones((101, 99), candle_core::DType::F32, &Device::Cpu)?;
        let mut rng = Rng::new(2);
        let v: Vec<f32> = DropPass::train(0.1, &mut rng).apply(&x)?.flatten_all()?.to_vec1()?;
        let zeros = v.iter().filter(|&&a| a == 0.0).count() as f64 / v.len() as f64;
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((zeros - 0.1).abs() < 0.01 && (mean - 1.0).abs() < 0.02, "dropped {zeros}, mean {mean}");
        assert_eq!(DropPass::eval().apply(&x)?.flatten_all()?.to_vec1::<f32>()?, vec![1.0; 101 * 99]);
        Ok(())
    }
}
