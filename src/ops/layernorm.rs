//! Layer normalisation over the last dimension (Ba, Kiros & Hinton 2016) as one op:
//! y = γ ⊙ (x − μ) · rstd + β, with μ and rstd = 1/√(σ² + ε) per row.
//!
//! Forward: per row, μ, then σ² = mean((x − μ)²) (two passes over a row that sits in L1), then
//! y; it keeps μ and rstd (2 floats a row) for the backward. Backward, one pass per row with
//! x̂ = (x − μ)·rstd and dŷ = dy ⊙ γ recomputed:
//!   dx = rstd · (dŷ − mean(dŷ) − x̂ · mean(dŷ ⊙ x̂)),  dγ = Σ_rows dy ⊙ x̂,  dβ = Σ_rows dy.
//! `candle_nn::ops::layer_norm` has no backward, so the reference is composed from
//! mean, sub, sqr, add, sqrt, div, mul and add, each keeping an (R, C) intermediate.

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// Layer norm of `x` (..., C) with gain `gamma` (C) and bias `beta` (C), all f32.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let c = x.dim(D::Minus1)?;
    if c == 0 {
        bail!("layer_norm: the normalised dimension of x {:?} is empty", x.shape());
    }
    if gamma.dims() != [c] || beta.dims() != [c] {
        bail!("layer_norm: gamma {:?} and beta {:?} must be ({c},) for x {:?}", gamma.shape(), beta.shape(), x.shape());
    }
    if !super::fused_on(x.device(), true) {
        return layer_norm_ref(x, gamma, beta, eps);
    }
    let op = LayerNorm {
        eps: eps as f32,
        stats: OnceLock::new(),
        #[cfg(feature = "cuda")]
        dev_stats: OnceLock::new(),
    };
    super::arg(&x.contiguous()?).apply_op3(&super::arg(&gamma.contiguous()?), &super::arg(&beta.contiguous()?), op)
}

/// The composed reference, differentiable through candle's own ops.
pub fn layer_norm_ref(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let mu = x.mean_keepdim(D::Minus1)?; // (..., 1)
    let xc = x.broadcast_sub(&mu)?; // (..., C)
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
    let xhat = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xhat.broadcast_mul(gamma)?.broadcast_add(beta)
}

struct LayerNorm {
    eps: f32,
    /// (μ, rstd) per row, saved by the forward: (R,)
    stats: OnceLock<Vec<(f32, f32)>>,
    /// the same, on the GPU (kernels/layernorm.cu)
    #[cfg(feature = "cuda")]
    dev_stats: OnceLock<super::cuda::LnSaved>,
}

const NAME: &str = "layer_norm";

/// y rows and (μ, rstd) for a chunk of rows.
#[inline(always)]
fn forward_rows(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [MaybeUninit<f32>],
    stats: &mut [(f32, f32)],
) {
    let c = gamma.len();
    for ((x, y), st) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)).zip(stats) {
        let mu = cpu::sum(x) / c as f32;
        let mut acc = [0f32; 8];
        let mut it = x.chunks_exact(8);
        for ch in &mut it {
            for l in 0..8 {
                let d = ch[l] - mu;
                acc[l] += d * d;
            }
        }
        let tail: f32 = it.remainder().iter().map(|&v| (v - mu) * (v - mu)).sum();
        let var = (cpu::sum(&acc) + tail) / c as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for j in 0..c {
            y[j] = MaybeUninit::new((x[j] - mu) * rstd * gamma[j] + beta[j]);
        }
        *st = (mu, rstd);
    }
}
cpu::simd!(forward_rows_simd, forward_rows,
    (x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [MaybeUninit<f32>], stats: &mut [(f32, f32)]));

/// dx rows for a chunk of rows, accumulating dγ and dβ of the chunk into `dg_db` (2·C).
#[inline(always)]
fn backward_rows(x: &[f32], dy: &[f32], gamma: &[f32], stats: &[(f32, f32)], dx: &mut [f32], dg_db: &mut [f32]) {
    let c = gamma.len();
    let (dg, db) = dg_db.split_at_mut(c);
    let rows = x.chunks_exact(c).zip(dy.chunks_exact(c)).zip(dx.chunks_exact_mut(c)).zip(stats);
    for (((x, dy), dx), &(mu, rstd)) in rows {
        // mean(dŷ) and mean(dŷ ⊙ x̂) in 8 lanes; dγ, dβ on the way
        let (mut a8, mut b8) = ([0f32; 8], [0f32; 8]);
        let c8 = c / 8 * 8;
        for j0 in (0..c8).step_by(8) {
            for l in 0..8 {
                let j = j0 + l;
                let xh = (x[j] - mu) * rstd;
                let dyh = dy[j] * gamma[j];
                a8[l] += dyh;
                b8[l] += dyh * xh;
                dg[j] += dy[j] * xh;
                db[j] += dy[j];
            }
        }
        let (mut a, mut b) = (0f32, 0f32);
        for j in c8..c {
            let xh = (x[j] - mu) * rstd;
            let dyh = dy[j] * gamma[j];
            a += dyh;
            b += dyh * xh;
            dg[j] += dy[j] * xh;
            db[j] += dy[j];
        }
        let a = (a + cpu::sum(&a8)) / c as f32;
        let b = (b + cpu::sum(&b8)) / c as f32;
        for j in 0..c {
            let xh = (x[j] - mu) * rstd;
            dx[j] = rstd * (dy[j] * gamma[j] - a - xh * b);
        }
    }
}
cpu::simd!(backward_rows_simd, backward_rows,
    (x: &[f32], dy: &[f32], gamma: &[f32], stats: &[(f32, f32)], dx: &mut [f32], dg_db: &mut [f32]));

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::cpu_f32(s1, l1, NAME)?; // (R, C) flattened
        let gamma = cpu::cpu_f32(s2, l2, NAME)?; // (C,)
        let beta = cpu::cpu_f32(s3, l3, NAME)?; // (C,)
        let c = gamma.len();
        let rows = x.len() / c; // c ≥ 1, checked by the wrapper
        let mut y = cpu::uninit(x.len()); // written row by row by the thread that fills it, no zero fill first
        let mut stats = vec![(0f32, 0f32); rows];
        let rpt = cpu::rows_per_task(c);
        if rows <= rpt {
            forward_rows_simd(x, gamma, beta, self.eps, &mut y, &mut stats);
        } else {
            use rayon::prelude::*;
            // chunks of x, y and stats cover the same rows
            y.par_chunks_mut(rpt * c)
                .zip(stats.par_chunks_mut(rpt))
                .zip(x.par_chunks(rpt * c))
                .for_each(|((y, st), x)| forward_rows_simd(x, gamma, beta, self.eps, y, st));
        }
        // SAFETY: forward_rows wrote every row of every chunk
        let y = unsafe { cpu::assume_init(y) };
        if self.stats.set(stats).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (y, saved) = super::cuda::layer_norm_fwd((s1, l1), (s2, l2), (s3, l3), self.eps)?;
        if self.dev_stats.set(saved).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if let Some(saved) = self.dev_stats.get() {
            let (dx, dg, db) = super::cuda::layer_norm_bwd(x, gamma, grad_res, saved)?;
            return Ok((Some(dx), Some(dg), Some(db)));
        }
        let Some(stats) = self.stats.get() else { bail!("{NAME}: backward before forward") };
        let c = gamma.elem_count();
        let dy = grad_res.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = gamma.storage_and_layout();
        let (ds, dl) = dy.storage_and_layout();
        let xv = cpu::storage_f32(&xs, xl, NAME)?;
        let gv = cpu::storage_f32(&gs, gl, NAME)?;
        let dyv = cpu::storage_f32(&ds, dl, NAME)?;
        // dx, and per-chunk partial (dγ, dβ), summed in chunk order
        let (dx, parts) = cpu::map_zeroed_row_chunks(xv.len(), c, |r0, dx| {
            let (lo, hi) = (r0 * c, r0 * c + dx.len());
            let mut acc = vec![0f32; 2 * c];
            backward_rows_simd(&xv[lo..hi], &dyv[lo..hi], gv, &stats[r0..hi / c], dx, &mut acc);
            acc
        });
        let dg_db = cpu::reduce_partials(parts);
        let dev = x.device();
        let dx = Tensor::from_vec(dx, x.shape(), dev)?;
        let dg = Tensor::from_vec(dg_db[..c].to_vec(), c, dev)?;
        let db = Tensor::from_vec(dg_db[c..].to_vec(), c, dev)?;
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// Fused vs reference, forward + backward, on the GPT's shape: (32·64, 128).
pub fn benches() -> Result<Vec<super::OpBench>> {
    let (r, c) = (32 * 64, 128);
    let (x, gamma, beta, w) = crate::ops::norm_inputs(&[r, c], 1, (2.0, 0.5), 11)?;
    let (x, gamma, beta) = (
        candle_core::Var::from_tensor(&x)?,
        candle_core::Var::from_tensor(&gamma)?,
        candle_core::Var::from_tensor(&beta)?,
    );
    let (x2, g2, b2, w2) = (x.clone(), gamma.clone(), beta.clone(), w.clone());
    Ok(vec![super::OpBench {
        name: "layer_norm",
        shape: format!("R={r}, C={c}"),
        fused: Box::new(move || (layer_norm(&x, &gamma, &beta, 1e-5)? * &w)?.sum_all()?.backward().map(|_| ())),
        reference: Box::new(move || (layer_norm_ref(&x2, &g2, &b2, 1e-5)? * &w2)?.sum_all()?.backward().map(|_| ())),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{max_abs, max_abs_diff};
    use candle_core::Var;

    /// y, dx, dγ, dβ vs the composed reference for L = Σ y ⊙ w. Tolerances, relative to each
    /// tensor's largest entry: y 2e-6 (x̂ is O(1..4), μ and σ² summed in a different order);
    /// dx 2e-5 (it subtracts two means of C products, which cancel); dγ, dβ 1e-5 · √R (sums over
    /// R rows in chunked order vs candle's, error grows like √R ulps).
    fn check(dims: &[usize], seed: u64) -> Result<()> {
        let (x, gamma, beta, w) = crate::ops::norm_inputs(dims, dims.len() - 1, (2.0, 0.5), seed)?;
        let rows = x.elem_count() / gamma.elem_count();
        let vars = |_: ()| -> Result<(Var, Var, Var)> {
            Ok((Var::from_tensor(&x)?, Var::from_tensor(&gamma)?, Var::from_tensor(&beta)?))
        };
        let (xf, gf, bf) = vars(())?;
        let (xr, gr, br) = vars(())?;
        let yf = layer_norm(&xf, &gf, &bf, 1e-5)?;
        let yr = layer_norm_ref(&xr, &gr, &br, 1e-5)?;
        let d = max_abs_diff(&yf, &yr)?;
        assert!(d <= 2e-6 * max_abs(&yr)?, "y differs by {d} for {dims:?}");
        let grads_f = (yf * &w)?.sum_all()?.backward()?;
        let grads_r = (yr * &w)?.sum_all()?.backward()?;
        let sqrt_r = (rows as f32).sqrt();
        for (name, vf, vr, tol) in
            [("dx", &xf, &xr, 2e-5), ("dgamma", &gf, &gr, 1e-5 * sqrt_r), ("dbeta", &bf, &br, 1e-5 * sqrt_r)]
        {
            let (a, b) = (grads_f.get(vf).expect("fused grad"), grads_r.get(vr).expect("ref grad"));
            let d = max_abs_diff(a, b)?;
            assert!(d <= tol * max_abs(b)?.max(1e-3), "{name} differs by {d} for {dims:?}");
        }
        Ok(())
    }

    #[test]
    fn matches_reference_on_workload_and_odd_shapes() -> Result<()> {
        check(&[32 * 64, 128], 1)?; // the GPT's shape: several rayon chunks
        check(&[4, 16, 128], 2)?; // leading batch dims
        check(&[1, 1, 7], 3)?; // one row, C not a multiple of 8
        check(&[13, 33], 4)?;
        check(&[3, 1], 5) // C = 1: x̂ = 0, y = β
    }

    #[test]
    fn strided_input_is_made_contiguous() -> Result<()> {
        // x as the transpose of a stored (C, R) matrix
        let (x, gamma, beta, w) = crate::ops::norm_inputs(&[9, 12], 1, (2.0, 0.5), 6)?;
        let store = Var::from_tensor(&x.t()?.contiguous()?)?; // (12, 9)
        let y = layer_norm(&store.t()?, &gamma, &beta, 1e-5)?;
        let xr = Var::from_tensor(&x)?;
        let yr = layer_norm_ref(&xr, &gamma, &beta, 1e-5)?;
        assert!(max_abs_diff(&y, &yr)? < 1e-5);
        let g = (y * &w)?.sum_all()?.backward()?;
        let gr = (yr * &w)?.sum_all()?.backward()?;
        let d = max_abs_diff(&g.get(&store).expect("grad").t()?, gr.get(&xr).expect("grad"))?;
        assert!(d < 2e-5 * max_abs(gr.get(&xr).expect("grad"))?, "{d}");
        Ok(())
    }
}
