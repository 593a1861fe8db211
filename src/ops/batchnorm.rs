//! Batch normalisation in training mode (Ioffe & Szegedy 2015) as one op. For x (B, C, *S), S
//! the spatial dims (H, W) of an image batch or none for (B, C), each channel c is normalised
//! over its n = B·|S| values:
//!
//!   μ_c = mean x,  σ²_c = mean (x − μ_c)² (biased),  rstd_c = 1/√(σ²_c + ε),
//!   y = γ_c · (x − μ_c) · rstd_c + β_c.
//!
//! Forward: three passes over x (Σ x, Σ (x − μ)², then y). Each (b, c) plane of |S| values is
//! summed in 8 f32 lanes and the plane sums go into f64 per-channel accumulators, so the
//! channel sums over up to B·H·W = 37k values (LeNet's first map) lose nothing to f32
//! accumulation. μ and σ² are returned beside y (without gradient) for the running statistics.
//!
//! Backward, one pass for the sums and one for dx, with x̂ = (x − μ)·rstd recomputed:
//!
//!   dβ_c = Σ dy,  dγ_c = Σ dy·x̂,  dx = γ_c·rstd_c · (dy − dβ_c/n − x̂·dγ_c/n).
//!
//! Work is split over chunks of whole batch rows (C·|S| values each) whose size depends only on
//! the shape, so per-chunk partial sums reduce in the same order on any thread count.
//! The reference is the composed layer this op replaced (mean, sub, sqr, mean, add, sqrt, div,
//! mul, add over broadcast (1, C, 1, 1) statistics; candle reduces over dims 0, 2, 3 slowly).

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Training-mode batch norm of `x` (B, C, ...) with gain `gamma` (C) and bias `beta` (C).
/// Returns (y, μ, σ²): y of x's shape, the batch mean and biased variance (C), detached.
/// Errors when a channel has fewer than 2 values (batch 1 of (B, C) input), as PyTorch does.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`super::fused_on`)
    if !super::fused_on(x.device(), false) {
        return batch_norm_train_ref(x, gamma, beta, eps);
    }
    let g = Geom::of(x, gamma, beta)?;
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!("batch_norm: only f32 on the CPU is implemented, x is {:?} on {:?}", x.dtype(), x.device())
    }
    let stats = Arc::new(OnceLock::new());
    let op = BatchNorm { g, eps, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let Some(st) = stats.get() else { bail!("{NAME}: the forward kept no statistics") };
    let dev = x.device();
    Ok((y, Tensor::from_vec(st.mean.clone(), g.c, dev)?, Tensor::from_vec(st.var.clone(), g.c, dev)?))
}

/// The composed reference, differentiable through candle's own ops (the former layer code).
pub fn batch_norm_train_ref(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let g = Geom::of(x, gamma, beta)?;
    let mut bs = vec![1; x.rank()]; // (1, C, 1, 1) or (1, C)
    bs[1] = g.c;
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect(); // every dim but C
    let mean = x.mean_keepdim(dims.as_slice())?;
    let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(dims.as_slice())?;
    let x_hat = x.broadcast_sub(&mean)?.broadcast_div(&(&var + eps)?.sqrt()?)?;
    let y = x_hat.broadcast_mul(&gamma.reshape(bs.as_slice())?)?.broadcast_add(&beta.reshape(bs.as_slice())?)?;
    Ok((y, mean.detach().flatten_all()?, var.detach().flatten_all()?))
}

const NAME: &str = "batch_norm";

/// x viewed as (B, C, S) with S = the product of the dims after C.
#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    c: usize,
    s: usize,
}

impl Geom {
    fn of(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Self> {
        if x.rank() < 2 {
            bail!("{NAME}: x must be (B, C) or (B, C, H, W), got {:?}", x.dims())
        }
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        let s = x.dims()[2..].iter().product::<usize>();
        if gamma.dims() != [c] || beta.dims() != [c] {
            bail!("{NAME}: gamma {:?} and beta {:?} must be ({c},) for x {:?}", gamma.dims(), beta.dims(), x.dims())
        }
        if b * s < 2 {
            bail!("{NAME}: training needs more than one value per channel (got input {:?}); use a batch ≥ 2", x.dims())
        }
        Ok(Self { b, c, s })
    }
    fn n(&self) -> usize {
        self.b * self.s
    }
    fn row(&self) -> usize {
        self.c * self.s
    }
}

/// Per channel, saved by the forward for the backward and the caller.
struct Stats {
    mean: Vec<f32>,
    var: Vec<f32>,
    rstd: Vec<f32>,
}

struct BatchNorm {
    g: Geom,
    eps: f64,
    /// shared with [`batch_norm_train`], which returns μ and σ²
    stats: Arc<OnceLock<Stats>>,
}

/// `f(rows)` on consecutive chunks of batch rows, in parallel when there is more than one
/// chunk; each returns k·C partial f64 sums, added up in chunk order.
fn channel_sums(g: &Geom, k: usize, f: impl Fn(std::ops::Range<usize>) -> Vec<f64> + Sync) -> Vec<f64> {
    let rpt = cpu::rows_per_task(g.row());
    let chunks: Vec<_> = (0..g.b).step_by(rpt).map(|r0| r0..(r0 + rpt).min(g.b)).collect();
    let parts: Vec<Vec<f64>> =
        if chunks.len() == 1 { vec![f(0..g.b)] } else { chunks.into_par_iter().map(&f).collect() };
    let mut acc = vec![0f64; k * g.c];
    for p in parts {
        acc.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    acc
}

/// Adds Σ x and, with `mean`, Σ (x − μ)² of each plane (S values) of whole rows `x` to `acc` (C).
#[inline(always)]
fn plane_sums(x: &[f32], s: usize, mean: Option<&[f32]>, acc: &mut [f64]) {
    let c = acc.len();
    if s == 1 {
        // (B, C): a plane is one value; straight per-channel adds vectorise across channels
        for row in x.chunks_exact(c) {
            for j in 0..c {
                let v = match mean {
                    None => row[j],
                    Some(mu) => (row[j] - mu[j]) * (row[j] - mu[j]),
                };
                acc[j] += v as f64;
            }
        }
        return;
    }
    // planes cycle through the channels: (0..c).cycle() instead of a division per plane
    for (p, j) in x.chunks_exact(s).zip((0..c).cycle()) {
        acc[j] += match mean {
            None => cpu::sum(p),
            Some(mu) => sq_dev(p, mu[j]),
        } as f64;
    }
}
cpu::simd!(plane_sums_simd, plane_sums, (x: &[f32], s: usize, mean: Option<&[f32]>, acc: &mut [f64]));

/// Σ (v − μ)², in 8 lanes.
#[inline(always)]
fn sq_dev(p: &[f32], mu: f32) -> f32 {
    let mut a = [0f32; 8];
    let mut it = p.chunks_exact(8);
    for ch in &mut it {
        for l in 0..8 {
            a[l] += (ch[l] - mu) * (ch[l] - mu);
        }
    }
    it.remainder().iter().map(|&v| (v - mu) * (v - mu)).sum::<f32>() + cpu::sum(&a)
}

/// y = (x − μ)·(γ·rstd) + β over whole rows; `scale` = γ·rstd (C).
#[inline(always)]
fn normalise(x: &[f32], s: usize, mean: &[f32], scale: &[f32], beta: &[f32], y: &mut [f32]) {
    let c = mean.len();
    for ((p, q), j) in x.chunks_exact(s).zip(y.chunks_exact_mut(s)).zip((0..c).cycle()) {
        let (mu, sc, b) = (mean[j], scale[j], beta[j]);
        for (v, o) in p.iter().zip(q) {
            *o = (v - mu) * sc + b;
        }
    }
}
cpu::simd!(normalise_simd, normalise,
    (x: &[f32], s: usize, mean: &[f32], scale: &[f32], beta: &[f32], y: &mut [f32]));

/// Adds Σ dy (first C) and Σ dy·(x − μ) (last C) per plane to `acc` (2·C).
#[inline(always)]
fn grad_sums(x: &[f32], dy: &[f32], s: usize, mean: &[f32], acc: &mut [f64]) {
    let c = mean.len();
    if s == 1 {
        for (row, drow) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
            for j in 0..c {
                acc[j] += drow[j] as f64;
                acc[c + j] += (drow[j] * (row[j] - mean[j])) as f64;
            }
        }
        return;
    }
    for ((p, d), j) in x.chunks_exact(s).zip(dy.chunks_exact(s)).zip((0..c).cycle()) {
        let mu = mean[j];
        let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
        let (mut pc, mut dc) = (p.chunks_exact(8), d.chunks_exact(8));
        for (pv, dv) in (&mut pc).zip(&mut dc) {
            for l in 0..8 {
                a[l] += dv[l];
                b[l] += dv[l] * (pv[l] - mu);
            }
        }
        let (mut ta, mut tb) = (cpu::sum(&a), cpu::sum(&b));
        for (v, g) in pc.remainder().iter().zip(dc.remainder()) {
            ta += g;
            tb += g * (v - mu);
        }
        acc[j] += ta as f64;
        acc[c + j] += tb as f64;
    }
}
cpu::simd!(grad_sums_simd, grad_sums, (x: &[f32], dy: &[f32], s: usize, mean: &[f32], acc: &mut [f64]));

/// dx = k·(dy − a − (x − μ)·r) over whole rows, with per-channel k = γ·rstd, a = dβ/n and
/// r = rstd·dγ/n (so that (x − μ)·r = x̂·dγ/n).
#[inline(always)]
fn grad_x(x: &[f32], dy: &[f32], s: usize, mean: &[f32], coef: &[[f32; 3]], dx: &mut [f32]) {
    let c = mean.len();
    let planes = x.chunks_exact(s).zip(dy.chunks_exact(s)).zip(dx.chunks_exact_mut(s));
    for (((p, d), o), j) in planes.zip((0..c).cycle()) {
        let (mu, [kc, a, r]) = (mean[j], coef[j]);
        for ((v, g), o) in p.iter().zip(d).zip(o) {
            *o = kc * (g - a - (v - mu) * r);
        }
    }
}
cpu::simd!(grad_x_simd, grad_x,
    (x: &[f32], dy: &[f32], s: usize, mean: &[f32], coef: &[[f32; 3]], dx: &mut [f32]));

impl CustomOp3 for BatchNorm {
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
        let g = self.g;
        let x = cpu::cpu_f32(s1, l1, NAME)?; // (B, C, S)
        let gamma = cpu::cpu_f32(s2, l2, NAME)?; // (C)
        let beta = cpu::cpu_f32(s3, l3, NAME)?; // (C)
        let (row, n) = (g.row(), g.n() as f64);
        let rows = |r: &std::ops::Range<usize>| &x[r.start * row..r.end * row];
        let sums = channel_sums(&g, 1, |r| {
            let mut acc = vec![0f64; g.c];
            plane_sums_simd(rows(&r), g.s, None, &mut acc);
            acc
        });
        let mean: Vec<f32> = sums.iter().map(|&v| (v / n) as f32).collect();
        let sq = channel_sums(&g, 1, |r| {
            let mut acc = vec![0f64; g.c];
            plane_sums_simd(rows(&r), g.s, Some(&mean), &mut acc);
            acc
        });
        let var: Vec<f32> = sq.iter().map(|&v| (v / n) as f32).collect();
        let rstd: Vec<f32> = var.iter().map(|&v| (1.0 / (v as f64 + self.eps).sqrt()) as f32).collect();
        let scale: Vec<f32> = gamma.iter().zip(&rstd).map(|(a, b)| a * b).collect();
        let mut y = vec![0f32; x.len()];
        cpu::for_row_chunks(&mut y, row, |r0, y| {
            normalise_simd(&x[r0 * row..r0 * row + y.len()], g.s, &mean, &scale, beta, y)
        });
        if self.stats.set(Stats { mean, var, rstd }).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(st) = self.stats.get() else { bail!("{NAME}: backward before forward") };
        let g = self.g;
        let (row, n) = (g.row(), g.n() as f64);
        let dy = grad_res.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = gamma.storage_and_layout();
        let (ds, dl) = dy.storage_and_layout();
        let xv = cpu::storage_f32(&xs, xl, NAME)?;
        let gv = cpu::storage_f32(&gs, gl, NAME)?;
        let dyv = cpu::storage_f32(&ds, dl, NAME)?;
        // Σ dy and Σ dy·(x − μ) per channel
        let sums = channel_sums(&g, 2, |r| {
            let mut acc = vec![0f64; 2 * g.c];
            let (lo, hi) = (r.start * row, r.end * row);
            grad_sums_simd(&xv[lo..hi], &dyv[lo..hi], g.s, &st.mean, &mut acc);
            acc
        });
        let dbeta: Vec<f32> = sums[..g.c].iter().map(|&v| v as f32).collect();
        let dgamma: Vec<f32> = sums[g.c..].iter().zip(&st.rstd).map(|(&v, &r)| (v * r as f64) as f32).collect();
        let coef: Vec<[f32; 3]> = (0..g.c)
            .map(|c| {
                let r = st.rstd[c] as f64;
                [gv[c] * st.rstd[c], (sums[c] / n) as f32, (r * r * sums[g.c + c] / n) as f32]
            })
            .collect();
        let mut dx = vec![0f32; xv.len()];
        cpu::for_row_chunks(&mut dx, row, |r0, dx| {
            let (lo, hi) = (r0 * row, r0 * row + dx.len());
            grad_x_simd(&xv[lo..hi], &dyv[lo..hi], g.s, &st.mean, &coef, dx)
        });
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dgamma, g.c, dev)?),
            Some(Tensor::from_vec(dbeta, g.c, dev)?),
        ))
    }
}

/// Fused vs reference, forward + backward, on LeNet's two batch-normalised maps (batch 64),
/// a U-Net level (batch 16, 8 channels, 64x64) and a (B, C) input.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let cases: [(&'static str, &[usize]); 4] = [
        ("batch_norm lenet bn1", &[64, 6, 24, 24]),
        ("batch_norm lenet bn2", &[64, 16, 8, 8]),
        ("batch_norm unet level", &[16, 8, 64, 64]),
        ("batch_norm (B, C)", &[128, 256]),
    ];
    let mut out = vec![];
    for (i, (name, dims)) in cases.into_iter().enumerate() {
        let (x, gamma, beta, w) = crate::ops::norm_inputs(dims, 1, (3.0, 2.0), 30 + i as u64)?;
        // as variables, so that the backward computes every input's gradient
        let var = |t: &Tensor| candle_core::Var::from_tensor(t).map(|v| v.as_tensor().clone());
        let (x, gamma, beta) = (var(&x)?, var(&gamma)?, var(&beta)?);
        type Bn = fn(&Tensor, &Tensor, &Tensor, f64) -> Result<(Tensor, Tensor, Tensor)>;
        let run = |f: Bn| {
            let (x, gamma, beta, w) = (x.clone(), gamma.clone(), beta.clone(), w.clone());
            move || -> Result<()> { (f(&x, &gamma, &beta, 1e-5)?.0 * &w)?.sum_all()?.backward().map(|_| ()) }
        };
        out.push(super::OpBench {
            name,
            shape: format!("x {dims:?}"),
            fused: Box::new(run(batch_norm_train)),
            reference: Box::new(run(batch_norm_train_ref)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{max_abs, max_abs_diff};
    use candle_core::{Device, Var};

    /// y, μ, σ², dx, dγ, dβ vs the composed reference for L = Σ y ⊙ w. Tolerances, relative to
    /// each tensor's largest entry: y, μ, σ² 1e-5, because the reference sums each channel's n
    /// values in f32 (error ~√n·6e-8 for random rounding: ~1e-5 at LeNet's n = 36,864; measured
    /// 6e-6 for σ² there) while the op adds f32 plane sums in f64; dx 2e-5 of its terms' scale
    /// max|γ·rstd·dy| (it subtracts two channel means that nearly cancel; measured 2e-6);
    /// dγ, dβ 2e-6·√n, an f32 sum over n terms in another order (measured ≤ 7e-6 at n = 36,864).
    fn check(dims: &[usize], seed: u64) -> Result<()> {
        let (x, gamma, beta, w) = crate::ops::norm_inputs(dims, 1, (3.0, 2.0), seed)?;
        let n = (x.elem_count() / gamma.elem_count()) as f32;
        let vars = || -> Result<(Var, Var, Var)> {
            Ok((Var::from_tensor(&x)?, Var::from_tensor(&gamma)?, Var::from_tensor(&beta)?))
        };
        let ((xf, gf, bf), (xr, gr, br)) = (vars()?, vars()?);
        let (yf, mf, vf) = batch_norm_train(&xf, &gf, &bf, 1e-5)?;
        let (yr, mr, vr) = batch_norm_train_ref(&xr, &gr, &br, 1e-5)?;
        for (name, a, b) in [("y", &yf, &yr), ("mean", &mf, &mr), ("var", &vf, &vr)] {
            let d = max_abs_diff(a, b)?;
            assert!(d <= 1e-5 * max_abs(b)?, "{name} differs by {d} for {dims:?}");
        }
        // dx's terms are γ·rstd·dy: their size, not dx's, sets its rounding error (at n = 2,
        // x̂ = ±1 whatever x is, and dx cancels to 0 exactly)
        let term = max_abs(&(&gamma / (vr + 1e-5)?.sqrt()?)?)? * max_abs(&w)?;
        let grads_f = (yf * &w)?.sum_all()?.backward()?;
        let grads_r = (yr * &w)?.sum_all()?.backward()?;
        for (name, a, b, tol, floor) in [
            ("dx", &xf, &xr, 2e-5, term),
            ("dgamma", &gf, &gr, 2e-6 * n.sqrt(), 1e-3),
            ("dbeta", &bf, &br, 2e-6 * n.sqrt(), 1e-3),
        ] {
            let (a, b) = (grads_f.get(a).expect("fused grad"), grads_r.get(b).expect("ref grad"));
            let d = max_abs_diff(a, b)?;
            assert!(d <= tol * max_abs(b)?.max(floor), "{name} differs by {d} (tolerance {tol}) for {dims:?}");
        }
        Ok(())
    }

    #[test]
    fn matches_reference_4d_and_2d_odd_sizes_and_batch_1() -> Result<()> {
        check(&[64, 6, 24, 24], 1)?; // LeNet's first map: several rayon chunks
        check(&[16, 8, 32, 32], 2)?; // a U-Net level
        check(&[3, 5, 7, 9], 3)?; // planes not a multiple of 8
        check(&[1, 4, 5, 3], 4)?; // batch 1 of images: 15 values a channel
        check(&[13, 33], 5)?; // (B, C)
        check(&[2, 3], 6)?; // the smallest (B, C) batch
        check(&[300, 7], 7)?; // (B, C) over several chunks
        check(&[5, 1, 3, 3], 8) // one channel
    }

    #[test]
    fn strided_input_is_made_contiguous() -> Result<()> {
        // x (B, C) as the transpose of a stored (C, B) matrix
        let (x, gamma, beta, w) = crate::ops::norm_inputs(&[9, 12], 1, (3.0, 2.0), 9)?;
        let store = Var::from_tensor(&x.t()?.contiguous()?)?; // (12, 9)
        let (y, _, _) = batch_norm_train(&store.t()?, &gamma, &beta, 1e-5)?;
        let xr = Var::from_tensor(&x)?;
        let (yr, _, _) = batch_norm_train_ref(&xr, &gamma, &beta, 1e-5)?;
        assert!(max_abs_diff(&y, &yr)? < 1e-5 * max_abs(&yr)?);
        let g = (y * &w)?.sum_all()?.backward()?;
        let gr = (yr * &w)?.sum_all()?.backward()?;
        let d = max_abs_diff(&g.get(&store).expect("grad").t()?, gr.get(&xr).expect("grad"))?;
        assert!(d < 2e-5 * max_abs(gr.get(&xr).expect("grad"))?, "{d}");
        Ok(())
    }

    /// One value per channel has no batch statistics: batch 1 of (B, C) input is an error (as
    /// PyTorch's "Expected more than 1 value per channel when training"), for a 1x1 image too.
    #[test]
    fn one_value_per_channel_is_an_error() -> Result<()> {
        for dims in [&[1usize, 4][..], &[1, 4, 1, 1]] {
            let (x, gamma, beta, _) = crate::ops::norm_inputs(dims, 1, (3.0, 2.0), 10)?;
            assert!(batch_norm_train(&x, &gamma, &beta, 1e-5).is_err(), "{dims:?}");
            assert!(batch_norm_train_ref(&x, &gamma, &beta, 1e-5).is_err(), "{dims:?}");
        }
        let (x, gamma, beta, _) = crate::ops::norm_inputs(&[4, 3], 1, (3.0, 2.0), 11)?;
        assert!(batch_norm_train(&x, &gamma.narrow(0, 0, 2)?, &beta, 1e-5).is_err());
        assert!(batch_norm_train(&x.flatten_all()?, &gamma, &beta, 1e-5).is_err());
        Ok(())
    }

    /// Hand-checked: one channel holding 1, 2, 3, 4 has μ = 2.5, σ² = 1.25, x̂ = (x − 2.5)/√1.25.
    #[test]
    fn hand_checked_statistics() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32], [2.], [3.], [4.]], &dev)?; // (4, 1)
        let (gamma, beta) = (Tensor::new(&[2f32], &dev)?, Tensor::new(&[0.5f32], &dev)?);
        let (y, m, v) = batch_norm_train(&x, &gamma, &beta, 0.0)?;
        assert_eq!(m.to_vec1::<f32>()?, [2.5]);
        assert_eq!(v.to_vec1::<f32>()?, [1.25]);
        let want = [-1.5f32, -0.5, 0.5, 1.5].map(|d| 2.0 * d / 1.25f32.sqrt() + 0.5);
        for (a, b) in y.flatten_all()?.to_vec1::<f32>()?.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }
}
