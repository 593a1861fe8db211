//! Batch norm in eval mode as one op: y = ((x − μ) / σ) · γ + β per channel, with the running
//! mean μ and σ = √(running var + ε) (constants: eval mode changes no statistic).
//!
//! The composed form (the reference) is four broadcast ops, each a pass over x and a fresh
//! tensor of x's size; an evaluation batch of 1,000 images through the 56-layer CIFAR net made
//! 4 × 25 MB of new tensors per layer, and their page faults were 14% of its evaluation's CPU
//! samples (perf). Here one pass computes the same four f32 operations in the same order per
//! element, so the output is bitwise the reference's (tested), and the runs' eval metrics do not
//! move. Backward (rarely needed: eval output is seldom differentiated) is composed.
//!
//! Shapes: x (B, C) or (B, C, H, W, …), γ β μ σ (C) -> y like x.

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The fused op's and the reference's signature: (x, mean, var, γ, β, ε) -> y.
type BnEvalFn = fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, f64) -> Result<Tensor>;

/// (1, C, 1, …): the shape that broadcasts a (C) vector against x.
fn channel_shape(x: &Tensor, c: usize) -> Vec<usize> {
    let mut bs = vec![1; x.rank()];
    bs[1] = c;
    bs
}

/// Eval-mode batch norm of x (B, C, …) with running statistics `mean`, `var` (C), ε and the
/// affine γ, β (C).
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    if !super::fused_on(x.device(), false) {
        return batch_norm_eval_ref(x, mean, var, gamma, beta, eps);
    }
    if x.dtype() != DType::F32 || !matches!(x.device(), Device::Cpu) || x.rank() < 2 {
        bail!(
            "batch_norm_eval: x must be f32 on the CPU with a channel dim, got {:?} {:?} on {:?}",
            x.dtype(),
            x.dims(),
            x.device()
        )
    }
    let c = x.dim(1)?;
    for (name, t) in [("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta)] {
        if t.dims() != [c] {
            bail!("batch_norm_eval: {name} has shape {:?}, expected [{c}]", t.dims())
        }
    }
    if x.elem_count() == 0 {
        return batch_norm_eval_ref(x, mean, var, gamma, beta, eps);
    }
    // σ exactly as the reference computes it: (var·1 + ε) in f32, then √
    let sigma = (var + eps)?.sqrt()?.to_vec1::<f32>()?;
    let mean = mean.to_vec1::<f32>()?;
    let plane = x.elem_count() / (x.dim(0)? * c).max(1);
    super::arg(&x.contiguous()?).apply_op3(
        &super::arg(&gamma.contiguous()?),
        &super::arg(&beta.contiguous()?),
        BnEval { mean, sigma, plane },
    )
}

/// The reference: the composed per-channel affine with broadcasts, (1, C) or (1, C, 1, …).
pub fn batch_norm_eval_ref(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let bs = channel_shape(x, x.dim(1)?);
    let (mean, var) = (mean.reshape(bs.as_slice())?, var.reshape(bs.as_slice())?);
    let x_hat = x.broadcast_sub(&mean)?.broadcast_div(&(var + eps)?.sqrt()?)?;
    x_hat.broadcast_mul(&gamma.reshape(bs.as_slice())?)?.broadcast_add(&beta.reshape(bs.as_slice())?)
}

/// The reference's four ops, each rounded to f32, in its order (no fused multiply-add).
#[inline(always)]
fn affine(x: f32, m: f32, s: f32, g: f32, b: f32) -> f32 {
    ((x - m) / s) * g + b
}

#[inline(always)]
fn plane_fwd(x: &[f32], y: &mut [f32], m: f32, s: f32, g: f32, b: f32) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = affine(x, m, s, g, b);
    }
}
cpu::simd!(plane_fwd_simd, plane_fwd, (x: &[f32], y: &mut [f32], m: f32, s: f32, g: f32, b: f32));

/// (B, C) inputs: a row of C channels at a time (a plane per element would be a call each).
#[inline(always)]
fn row_fwd(x: &[f32], y: &mut [f32], m: &[f32], s: &[f32], g: &[f32], b: &[f32]) {
    for (((((y, &x), &m), &s), &g), &b) in y.iter_mut().zip(x).zip(m).zip(s).zip(g).zip(b) {
        *y = affine(x, m, s, g, b);
    }
}
cpu::simd!(row_fwd_simd, row_fwd, (x: &[f32], y: &mut [f32], m: &[f32], s: &[f32], g: &[f32], b: &[f32]));

struct BnEval {
    mean: Vec<f32>,
    sigma: Vec<f32>,
    /// elements per (sample, channel) plane: H·W·…, 1 for (B, C)
    plane: usize,
}

impl CustomOp3 for BnEval {
    fn name(&self) -> &'static str {
        "batch-norm-eval"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let (x, g, b) = (cpu::cpu_f32(sx, lx, "x")?, cpu::cpu_f32(sg, lg, "gamma")?, cpu::cpu_f32(sb, lb, "beta")?);
        let (c, p) = (self.mean.len(), self.plane);
        let mut y = vec![0f32; x.len()];
        if p == 1 {
            let rows = (CHUNK / c).max(1);
            y.par_chunks_mut(c)
                .zip(x.par_chunks(c))
                .with_min_len(rows)
                .for_each(|(y, x)| row_fwd_simd(x, y, &self.mean, &self.sigma, g, b));
            return Ok((CpuStorage::F32(y), lx.shape().clone()));
        }
        y.par_chunks_mut(p).zip(x.par_chunks(p)).enumerate().with_min_len((CHUNK / p).max(1)).for_each(
            |(i, (y, x))| {
                let ch = i % c;
                plane_fwd_simd(x, y, self.mean[ch], self.sigma[ch], g[ch], b[ch])
            },
        );
        Ok((CpuStorage::F32(y), lx.shape().clone()))
    }

    /// dx = dy·γ/σ, dγ = Σ dy·x̂, dβ = Σ dy (sums over every dim but the channel's)
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = self.mean.len();
        let bs = channel_shape(x, c);
        let mean = Tensor::from_slice(&self.mean, bs.as_slice(), x.device())?;
        let sigma = Tensor::from_slice(&self.sigma, bs.as_slice(), x.device())?;
        let x_hat = x.broadcast_sub(&mean)?.broadcast_div(&sigma)?;
        let others: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        let per_channel = |t: Tensor| t.sum_keepdim(others.as_slice())?.reshape(c);
        let dgamma = per_channel((dy * &x_hat)?)?;
        let dbeta = per_channel(dy.clone())?;
        let dx = dy.broadcast_mul(&gamma.reshape(bs.as_slice())?.broadcast_div(&sigma)?)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The 56-layer CIFAR net's first stage in an evaluation batch, (256, 8, 28, 28): forward only,
/// as evaluation runs it.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let mut rng = crate::rng::Rng::new(21);
    let mut randn = |dims: &[usize]| {
        let v: Vec<f32> = (0..dims.iter().product()).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, dims, &Device::Cpu)
    };
    let x = randn(&[256, 8, 28, 28])?;
    let (mean, var) = (randn(&[8])?, (randn(&[8])?.sqr()? + 0.5)?);
    let g = candle_core::Var::from_tensor(&randn(&[8])?)?.as_tensor().clone();
    let b = candle_core::Var::from_tensor(&randn(&[8])?)?.as_tensor().clone();
    let run = move |f: BnEvalFn| {
        let (x, mean, var, g, b) = (x.clone(), mean.clone(), var.clone(), g.clone(), b.clone());
        move || f(&x, &mean, &var, &g, &b, 1e-5).map(|_| ())
    };
    Ok(vec![super::OpBench {
        name: "batch norm, eval mode (forward)",
        shape: "x [256, 8, 28, 28]".into(),
        fused: Box::new(run(batch_norm_eval)),
        reference: Box::new(run(batch_norm_eval_ref)),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{randn, rel_err};
    use crate::rng::Rng;
    use candle_core::Var;

    fn problem(rng: &mut Rng, dims: &[usize]) -> (Var, Tensor, Tensor, Var, Var) {
        let c = dims[1];
        let x = Var::from_tensor(&randn(rng, dims)).unwrap();
        let mean = randn(rng, &[c]);
        let var = (randn(rng, &[c]).sqr().unwrap() + 0.1).unwrap();
        let gamma = Var::from_tensor(&randn(rng, &[c])).unwrap();
        let beta = Var::from_tensor(&randn(rng, &[c])).unwrap();
        (x, mean, var, gamma, beta)
    }

    /// The output is bitwise the composed reference's (the same f32 ops in the same order), for
    /// 4-d, 2-d, 3-d and 5-d inputs and an empty batch.
    #[test]
    fn forward_is_bitwise_the_reference() {
        let mut rng = Rng::new(11);
        for dims in [vec![3, 5, 7, 6], vec![9, 4], vec![2, 3, 10], vec![0, 4, 3, 3], vec![2, 3, 2, 2, 2]] {
            let (x, mean, var, g, b) = problem(&mut rng, &dims);
            let out = |f: BnEvalFn| {
                f(&x, &mean, &var, &g, &b, 1e-5).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            };
            let (y, r) = (out(batch_norm_eval), out(batch_norm_eval_ref));
            assert!(y.iter().zip(&r).all(|(a, b)| a.to_bits() == b.to_bits()), "{dims:?}");
        }
    }

    /// Gradients of loss = Σ y ⊙ r for x, γ and β against the reference's, within 1e-5 relative
    /// to the largest entry (sums of up to 3·7·6 = 126 products in a different order).
    #[test]
    fn gradients_match_the_reference() {
        let mut rng = Rng::new(12);
        let (x, mean, var, g, b) = problem(&mut rng, &[3, 5, 7, 6]);
        let r = randn(&mut rng, &[3, 5, 7, 6]);
        let grads = |f: BnEvalFn| {
            let y = f(&x, &mean, &var, &g, &b, 1e-5).unwrap();
            let gs = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [x.as_tensor(), g.as_tensor(), b.as_tensor()].map(|t| gs.get(t).unwrap().clone())
        };
        for ((d, d_ref), name) in
            grads(batch_norm_eval).iter().zip(grads(batch_norm_eval_ref).iter()).zip(["x", "γ", "β"])
        {
            let e = rel_err(d, d_ref).unwrap();
            assert!(e < 1e-5, "d{name} differs by {e}");
        }
    }

    #[test]
    fn rejects_mismatched_statistics() {
        let mut rng = Rng::new(13);
        let (x, mean, var, g, b) = problem(&mut rng, &[2, 3, 4, 4]);
        let short = randn(&mut rng, &[2]);
        assert!(batch_norm_eval(&x, &short, &var, &g, &b, 1e-5).is_err());
        assert!(batch_norm_eval(&x, &mean, &var, &g, &short, 1e-5).is_err());
    }
}
