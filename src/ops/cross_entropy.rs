//! Softmax + cross-entropy as one op: the mean over rows of −log softmax(logits)[target].
//!
//! Forward, per row while it sits in L1: the max, log Σ exp(x − max) and the target's logit; it
//! keeps only the per-row logsumexp (N floats) for the backward. Backward, in one pass per row:
//! ∂L/∂logits = (softmax − onehot(target)) · g / N, with softmax = exp(logits − lse) recomputed
//! (no (N, C) softmax is kept between the passes). The composed reference
//! (`candle_nn::loss::cross_entropy`) runs max, sub, exp, sum, log, sub, gather, sum, affine and
//! keeps each intermediate (N, C) tensor for its backward.

use super::cpu;
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use std::sync::OnceLock;

/// Mean softmax cross-entropy of `logits` (N, C) f32 against class indices `targets` (N,)
/// (u32 or i64), as a scalar with a fused backward.
pub fn softmax_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, _c) = logits.dims2()?;
    if targets.dims() != [n] {
        bail!("softmax_cross_entropy: targets {:?} do not match logits {:?}", targets.shape(), logits.shape());
    }
    if !super::fused_on(logits.device(), true) {
        return softmax_cross_entropy_ref(logits, targets);
    }
    let op = SoftmaxCrossEntropy {
        lse: OnceLock::new(),
        #[cfg(feature = "cuda")]
        dev_lse: OnceLock::new(),
    };
    logits.contiguous()?.apply_op2(&targets.contiguous()?, op)
}

/// The composed reference with candle's own backward.
pub fn softmax_cross_entropy_ref(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, targets)
}

struct SoftmaxCrossEntropy {
    /// log Σ_j exp(logits[i, j]) per row, saved by the forward: (N,)
    lse: OnceLock<Vec<f32>>,
    /// the same, on the GPU (kernels/cross_entropy.cu)
    #[cfg(feature = "cuda")]
    dev_lse: OnceLock<candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>>,
}

const NAME: &str = "softmax_cross_entropy";

/// The targets as row indices, each checked to be < C.
fn target_indices(s: &CpuStorage, l: &Layout, c: usize) -> Result<Vec<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("{NAME}: targets must be contiguous") };
    let t: Vec<usize> = match s {
        CpuStorage::U32(v) => v[a..b].iter().map(|&t| t as usize).collect(),
        CpuStorage::I64(v) => v[a..b].iter().map(|&t| if t < 0 { usize::MAX } else { t as usize }).collect(),
        s => bail!("{NAME}: targets must be u32 or i64, got {:?}", s.dtype()),
    };
    if let Some(bad) = t.iter().find(|&&t| t >= c) {
        bail!("{NAME}: a target ({}) is out of range for {c} classes", *bad as i64);
    }
    Ok(t)
}

/// log Σ exp(x) of one row, max-shifted.
#[inline(always)]
fn row_lse(x: &[f32]) -> f32 {
    let m = cpu::max(x);
    let mut acc = [0f32; 8];
    let mut it = x.chunks_exact(8);
    for ch in &mut it {
        for l in 0..8 {
            acc[l] += cpu::exp(ch[l] - m);
        }
    }
    let mut s = 0f32;
    for &v in it.remainder() {
        s += cpu::exp(v - m);
    }
    m + (s + cpu::sum(&acc)).ln()
}

/// Per-row lse of a chunk of rows of `x`, written to `lse`.
#[inline(always)]
fn lse_rows(x: &[f32], c: usize, lse: &mut [f32]) {
    for (r, out) in lse.iter_mut().enumerate() {
        *out = row_lse(&x[r * c..(r + 1) * c]);
    }
}
cpu::simd!(lse_rows_simd, lse_rows, (x: &[f32], c: usize, lse: &mut [f32]));

/// dx = (exp(x − lse) − onehot(t)) · scale for a chunk of rows.
#[inline(always)]
fn grad_rows(x: &[f32], lse: &[f32], t: &[usize], scale: f32, dx: &mut [f32]) {
    let c = x.len() / lse.len().max(1);
    for (r, ((dx, x), &lse)) in dx.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(lse).enumerate() {
        for (d, &v) in dx.iter_mut().zip(x) {
            *d = cpu::exp(v - lse) * scale;
        }
        dx[t[r]] -= scale;
    }
}
cpu::simd!(grad_rows_simd, grad_rows, (x: &[f32], lse: &[f32], t: &[usize], scale: f32, dx: &mut [f32]));

impl CustomOp2 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c) = l1.shape().dims2()?;
        let x = cpu::cpu_f32(s1, l1, NAME)?; // (N, C)
        let t = target_indices(s2, l2, c)?; // (N,)
        let mut lse = vec![0f32; n]; // (N,)
        cpu::for_row_chunks(&mut lse, c, |r0, lse| lse_rows_simd(&x[r0 * c..(r0 + lse.len()) * c], c, lse));
        // −log softmax[t] = lse − x[t]; summed in f64, in row order, so the mean does not depend
        // on the chunking
        let total: f64 = (0..n).map(|i| (lse[i] - x[i * c + t[i]]) as f64).sum();
        let loss = if n == 0 { f32::NAN } else { (total / n as f64) as f32 };
        if self.lse.set(lse).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (loss, lse) = super::cuda::cross_entropy_fwd((s1, l1), (s2, l2))?;
        if self.dev_lse.set(lse).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        Ok((loss, Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if let Some(lse) = self.dev_lse.get() {
            return Ok((Some(super::cuda::cross_entropy_bwd(logits, targets, grad_res, lse)?), None));
        }
        let (n, c) = logits.dims2()?;
        let Some(lse) = self.lse.get() else { bail!("{NAME}: backward before forward") };
        let g = grad_res.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let scale = g / n as f32;
        let (xs, xl) = logits.storage_and_layout();
        let x = cpu::storage_f32(&xs, xl, NAME)?;
        let (ts, tl) = targets.storage_and_layout();
        let candle_core::Storage::Cpu(ts) = &*ts else { bail!("{NAME}: only the CPU is supported") };
        let t = target_indices(ts, tl, c)?;
        let mut dx = vec![0f32; n * c]; // (N, C)
        cpu::for_row_chunks(&mut dx, c, |r0, dx| {
            let r1 = r0 + dx.len() / c;
            grad_rows_simd(&x[r0 * c..r1 * c], &lse[r0..r1], &t[r0..r1], scale, dx)
        });
        Ok((Some(Tensor::from_vec(dx, (n, c), logits.device())?), None))
    }
}

/// Fused vs reference, forward + backward, on the workloads' shapes: the MLP head (128, 10) and
/// the char models' (32·64, 65).
pub fn benches() -> Result<Vec<super::OpBench>> {
    let mut out = vec![];
    for (n, c) in [(128usize, 10usize), (32 * 64, 65)] {
        let (logits, targets) = random_inputs(n, c, 7)?;
        let logits = candle_core::Var::from_tensor(&logits)?;
        let (l1, t1) = (logits.clone(), targets.clone());
        let (l2, t2) = (logits, targets);
        out.push(super::OpBench {
            name: "softmax_cross_entropy",
            shape: format!("N={n}, C={c}"),
            fused: Box::new(move || softmax_cross_entropy(&l1, &t1)?.backward().map(|_| ())),
            reference: Box::new(move || softmax_cross_entropy_ref(&l2, &t2)?.backward().map(|_| ())),
        });
    }
    Ok(out)
}

/// Seeded logits ~ 3·N(0, 1) and uniform targets.
fn random_inputs(n: usize, c: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let mut rng = crate::rng::Rng::new(seed);
    let x: Vec<f32> = (0..n * c).map(|_| 3.0 * rng.normal() as f32).collect();
    let t: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    let dev = candle_core::Device::Cpu;
    Ok((Tensor::from_vec(x, (n, c), &dev)?, Tensor::from_vec(t, n, &dev)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::max_abs_diff;
    use candle_core::{Device, Var};

    /// Loss and ∂logits vs the composed reference. Tolerance: the loss is a mean of O(1)–O(10)
    /// terms, each lse accumulated in f32 in a different order (8 lanes vs candle's sequential
    /// sum) and with our exp (≤ 2 ulp): 1e-5 relative. A gradient entry is (p − δ)·g/N with
    /// p = exp(x − lse); lse (≤ ~30 here) carries ~1e-6 absolute rounding, so p, and the entry,
    /// carry ~1e-6 relative: 4e-6 · g/N absolute.
    fn check(n: usize, c: usize, seed: u64) -> Result<()> {
        let (x, t) = random_inputs(n, c, seed)?;
        let xv = Var::from_tensor(&x)?;
        let xr = Var::from_tensor(&x)?;
        // a non-unit upstream gradient: 2.5·L
        let fused = (softmax_cross_entropy(&xv, &t)? * 2.5)?;
        let reference = (softmax_cross_entropy_ref(&xr, &t)? * 2.5)?;
        let (lf, lr) = (fused.to_scalar::<f32>()?, reference.to_scalar::<f32>()?);
        assert!((lf - lr).abs() <= 1e-5 * lr.abs().max(1.0), "loss {lf} vs {lr} at ({n}, {c})");
        let gf = fused.backward()?;
        let gr = reference.backward()?;
        let (gf, gr) = (gf.get(&xv).expect("fused grad"), gr.get(&xr).expect("ref grad"));
        let d = max_abs_diff(gf, gr)?;
        assert!(d <= 4e-6 * 2.5 / n as f32, "dlogits differ by {d} at ({n}, {c})");
        Ok(())
    }

    #[test]
    fn matches_reference_on_workload_and_odd_shapes() -> Result<()> {
        check(128, 10, 1)?;
        check(32 * 64, 65, 2)?; // spans several rayon chunks
        check(1, 1, 3)?; // a single class: loss 0, gradient 0
        check(1, 7, 4)?;
        check(13, 17, 5)?;
        check(3, 1000, 6)
    }

    #[test]
    fn strided_logits_and_i64_targets() -> Result<()> {
        // a transposed view: the wrapper makes it contiguous before the op
        let (x, t) = random_inputs(9, 11, 8)?;
        let xt = Var::from_tensor(&x.t()?.contiguous()?)?; // (11, 9) storage
        let view = xt.t()?; // (9, 11), strided
        let t64 = t.to_dtype(DType::I64)?;
        let lf = softmax_cross_entropy(&view, &t64)?;
        let lr = softmax_cross_entropy_ref(&x, &t)?;
        assert!((lf.to_scalar::<f32>()? - lr.to_scalar::<f32>()?).abs() < 1e-5);
        let g = lf.backward()?;
        let xr = Var::from_tensor(&x)?;
        let gr = softmax_cross_entropy_ref(&xr, &t)?.backward()?;
        let d = max_abs_diff(&g.get(&xt).expect("grad").t()?, gr.get(&xr).expect("grad"))?;
        assert!(d < 4e-6 / 9.0, "{d}");
        Ok(())
    }

    #[test]
    fn large_logits_stay_finite_and_bad_targets_fail() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1000f32, 0., -1000.], [-50., 50., 0.]], &dev)?;
        let t = Tensor::new(&[0u32, 2], &dev)?;
        let l = softmax_cross_entropy(&x, &t)?.to_scalar::<f32>()?;
        assert!((l - 25.0).abs() < 1e-4, "{l}"); // (0 + 50) / 2
        assert!(softmax_cross_entropy(&x, &Tensor::new(&[0u32, 3], &dev)?).is_err());
        Ok(())
    }
}
