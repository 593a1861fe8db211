//! Group normalisation (Wu & He 2018), optionally followed by SiLU, as one op: the norm and
//! activation before every convolution of a diffusion U-Net's residual blocks. For x
//! (B, C, H, W) split into G groups of C/G channels, each sample's group (C/G·H·W values,
//! contiguous in NCHW) is normalised by its own mean and variance:
//!
//!   μ, σ² over the group (biased),  rstd = 1/√(σ² + ε),  x̂ = (x − μ)·rstd,
//!   z = γ_c·x̂ + β_c,  y = z (or SiLU: y = z·σ(z)).
//!
//! Backward, with dz = dy (or dy·σ(z)·(1 + z·(1 − σ(z))) after SiLU), g = γ_c·dz and n values
//! in a group:
//!
//!   dβ_c = Σ dz,  dγ_c = Σ dz·x̂,  dx = rstd·(g − mean g − x̂·mean(g·x̂)).
//!
//! One rayon task per sample (or several samples), so per-sample partial sums of dγ and dβ
//! reduce in sample order on any thread count. The reference is the same math composed of
//! candle ops (reshape to (B, G, n), mean, var, broadcast), whose backward candle derives.

// the per-sample kernels take the geometry as arguments (their SIMD copies are generated)
#![allow(clippy::too_many_arguments)]

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Group norm of `x` (B, C, ...) in `groups` groups with gain `gamma` (C) and bias `beta` (C),
/// followed by SiLU when `silu`. f32 on the CPU.
pub fn group_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize, eps: f64, silu: bool) -> Result<Tensor> {
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`super::fused_on`)
    if !super::fused_on(x.device(), false) {
        return group_norm_ref(x, gamma, beta, groups, eps, silu);
    }
    let g = Geom::of(x, gamma, beta, groups)?;
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!("{NAME}: only f32 on the CPU is implemented, x is {:?} on {:?}", x.dtype(), x.device())
    }
    super::arg(&x.contiguous()?).apply_op3(
        &super::arg(&gamma.contiguous()?),
        &super::arg(&beta.contiguous()?),
        GroupNorm { g, eps: eps as f32, silu, stats: OnceLock::new() },
    )
}

/// The composed reference, differentiable through candle's own ops.
pub fn group_norm_ref(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    let g = Geom::of(x, gamma, beta, groups)?;
    let xs = x.reshape((g.b, groups, g.n()))?;
    let mean = xs.mean_keepdim(2)?;
    let xc = xs.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(2)?;
    let x_hat = xc.broadcast_div(&(var + eps)?.sqrt()?)?.reshape(x.shape())?;
    let mut bs = vec![1; x.rank()];
    bs[1] = g.c;
    let z = x_hat.broadcast_mul(&gamma.reshape(bs.as_slice())?)?.broadcast_add(&beta.reshape(bs.as_slice())?)?;
    if silu {
        z.silu()
    } else {
        Ok(z)
    }
}

const NAME: &str = "group_norm";

/// x viewed as (B, G, C/G, S).
#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    c: usize,
    groups: usize,
    s: usize,
}

impl Geom {
    fn of(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize) -> Result<Self> {
        if x.rank() < 2 {
            bail!("{NAME}: x must be (B, C, ...), got {:?}", x.dims())
        }
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        if groups == 0 || c % groups != 0 {
            bail!("{NAME}: {c} channels do not split into {groups} groups")
        }
        if gamma.dims() != [c] || beta.dims() != [c] {
            bail!("{NAME}: gamma {:?} and beta {:?} must be ({c},) for x {:?}", gamma.dims(), beta.dims(), x.dims())
        }
        let s = x.dims()[2..].iter().product::<usize>();
        Ok(Self { b, c, groups, s })
    }
    /// values per group
    fn n(&self) -> usize {
        self.c / self.groups * self.s
    }
    /// values per sample
    fn row(&self) -> usize {
        self.c * self.s
    }
}

struct GroupNorm {
    g: Geom,
    eps: f32,
    silu: bool,
    /// (μ, rstd) of each (sample, group), (B·G), saved by the forward for the backward: it
    /// recomputed them from x, two more passes over x (the same values: the same sums in the
    /// same order)
    stats: OnceLock<Vec<(f32, f32)>>,
}

/// (μ, rstd) of one group's values, summed in 8 lanes and f64.
#[inline(always)]
fn stats(v: &[f32], eps: f32) -> (f32, f32) {
    let n = v.len() as f64;
    let mean = (cpu::sum(v) as f64 / n) as f32;
    let mut a = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for ch in &mut it {
        for l in 0..8 {
            let d = ch[l] - mean;
            a[l] += d * d;
        }
    }
    let sq = it.remainder().iter().map(|&x| (x - mean) * (x - mean)).sum::<f32>() + cpu::sum(&a);
    let var = sq as f64 / n;
    (mean, (1.0 / (var + eps as f64).sqrt()) as f32)
}

/// One sample's forward: y = act(x·scale_c + shift_c) per group and channel; each group's
/// (μ, rstd) into `st` (G).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_sample(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    groups: usize,
    s: usize,
    eps: f32,
    silu: bool,
    y: &mut [f32],
    st: &mut [(f32, f32)],
) {
    let cg = gamma.len() / groups;
    let n = cg * s;
    for k in 0..groups {
        let (mu, rstd) = stats(&x[k * n..(k + 1) * n], eps);
        st[k] = (mu, rstd);
        for c in k * cg..(k + 1) * cg {
            let scale = gamma[c] * rstd;
            let shift = beta[c] - mu * scale;
            let (xp, yp) = (&x[c * s..(c + 1) * s], &mut y[c * s..(c + 1) * s]);
            if silu {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    let z = v * scale + shift;
                    *o = z * cpu::sigmoid(z);
                }
            } else {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = v * scale + shift;
                }
            }
        }
    }
}
cpu::simd!(forward_sample_simd, forward_sample,
    (x: &[f32], gamma: &[f32], beta: &[f32], groups: usize, s: usize, eps: f32, silu: bool, y: &mut [f32],
     st: &mut [(f32, f32)]));

/// One sample's backward, given its groups' (μ, rstd) `st` (G) from the forward: writes dx and
/// adds Σ dz (first C) and Σ dz·x̂ (last C) to `acc`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_sample(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    st: &[(f32, f32)],
    s: usize,
    silu: bool,
    dx: &mut [f32],
    acc: &mut [f32],
) {
    let c_all = gamma.len();
    let groups = st.len();
    let cg = c_all / groups;
    let n = cg * s;
    for (k, &(mu, rstd)) in st.iter().enumerate() {
        // pass 1: dz into dx; the group's Σ g and Σ g·x̂; the channel sums
        let (mut sum_g, mut sum_gx) = (0f32, 0f32);
        for c in k * cg..(k + 1) * cg {
            let (gc, bc) = (gamma[c], beta[c]);
            let (xp, dyp, dzp) = (&x[c * s..(c + 1) * s], &dy[c * s..(c + 1) * s], &mut dx[c * s..(c + 1) * s]);
            let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
            // dz and x̂ of one value
            let dz_xh = |v: f32, d: f32| {
                let xh = (v - mu) * rstd;
                let dz = if silu {
                    let z = gc * xh + bc;
                    let sg = cpu::sigmoid(z);
                    d * sg * (1.0 + z * (1.0 - sg))
                } else {
                    d
                };
                (dz, xh)
            };
            // value i adds to lane i % 8, in 8-wide chunks the compiler vectorises (an
            // enumerate with `i % 8` ran scalar: 14x the forward's time)
            let full = s / 8 * 8;
            for ((xc, dc), oc) in
                xp[..full].chunks_exact(8).zip(dyp[..full].chunks_exact(8)).zip(dzp[..full].chunks_exact_mut(8))
            {
                for l in 0..8 {
                    let (dz, xh) = dz_xh(xc[l], dc[l]);
                    oc[l] = dz;
                    a[l] += dz;
                    b[l] += dz * xh;
                }
            }
            for l in 0..s - full {
                let (dz, xh) = dz_xh(xp[full + l], dyp[full + l]);
                dzp[full + l] = dz;
                a[l] += dz;
                b[l] += dz * xh;
            }
            let (sa, sb) = (cpu::sum(&a), cpu::sum(&b));
            acc[c] += sa;
            acc[c_all + c] += sb;
            sum_g += gc * sa;
            sum_gx += gc * sb;
        }
        // pass 2: dx = rstd·(γ·dz − mean g − x̂·mean(g·x̂))
        let (mg, mgx) = (sum_g / n as f32, sum_gx / n as f32);
        for c in k * cg..(k + 1) * cg {
            let gc = gamma[c];
            let (xp, dzp) = (&x[c * s..(c + 1) * s], &mut dx[c * s..(c + 1) * s]);
            for (o, &v) in dzp.iter_mut().zip(xp) {
                let xh = (v - mu) * rstd;
                *o = rstd * (gc * *o - mg - xh * mgx);
            }
        }
    }
}
cpu::simd!(backward_sample_simd, backward_sample,
    (x: &[f32], dy: &[f32], gamma: &[f32], beta: &[f32], st: &[(f32, f32)], s: usize, silu: bool,
     dx: &mut [f32], acc: &mut [f32]));

impl CustomOp3 for GroupNorm {
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
        let x = cpu::cpu_f32(s1, l1, NAME)?;
        let gamma = cpu::cpu_f32(s2, l2, NAME)?;
        let beta = cpu::cpu_f32(s3, l3, NAME)?;
        let row = g.row();
        // zeroed by each chunk's own thread, not all by calloc on this one while the others wait
        let mut y = cpu::uninit(x.len());
        let mut stats = vec![(0f32, 0f32); g.b * g.groups]; // (B, G)
        let rpt = cpu::rows_per_task(row);
        // chunks of rpt samples: of y, of stats and of x cover the same samples (max(1): an empty
        // x, whose samples hold no values, has no chunks)
        let chunks = y.par_chunks_mut((rpt * row).max(1)).zip(stats.par_chunks_mut(rpt * g.groups));
        chunks.enumerate().for_each(|(t, (y, st))| {
            let rows = cpu::zero_init(y).chunks_exact_mut(row).zip(st.chunks_exact_mut(g.groups));
            for (i, (yr, sr)) in rows.enumerate() {
                let xr = &x[(t * rpt + i) * row..(t * rpt + i + 1) * row];
                forward_sample_simd(xr, gamma, beta, g.groups, g.s, self.eps, self.silu, yr, sr);
            }
        });
        if self.stats.set(stats).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        // SAFETY: the chunks cover y, and each was zeroed
        Ok((CpuStorage::F32(unsafe { cpu::assume_init(y) }), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.g;
        let row = g.row();
        let Some(stats) = self.stats.get() else { bail!("{NAME}: backward before forward") };
        let dy = grad_res.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = gamma.storage_and_layout();
        let (bs, bl) = beta.storage_and_layout();
        let (ds, dl) = dy.storage_and_layout();
        let xv = cpu::storage_f32(&xs, xl, NAME)?;
        let gv = cpu::storage_f32(&gs, gl, NAME)?;
        let bv = cpu::storage_f32(&bs, bl, NAME)?;
        let dyv = cpu::storage_f32(&ds, dl, NAME)?;
        // each chunk of samples returns its partial Σ dz, Σ dz·x̂ (2·C), added in chunk order (an
        // empty x is one empty chunk: zeros)
        let (dx, parts) = cpu::map_zeroed_row_chunks(xv.len(), row, |r0, dxc| {
            let mut acc = vec![0f32; 2 * g.c];
            for (i, dxr) in dxc.chunks_exact_mut(row.max(1)).enumerate() {
                let r = r0 + i;
                let (xr, dyr) = (&xv[r * row..(r + 1) * row], &dyv[r * row..(r + 1) * row]);
                let st = &stats[r * g.groups..(r + 1) * g.groups];
                backward_sample_simd(xr, dyr, gv, bv, st, g.s, self.silu, dxr, &mut acc);
            }
            acc
        });
        let sums = cpu::reduce_partials(parts);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(sums[g.c..].to_vec(), g.c, dev)?),
            Some(Tensor::from_vec(sums[..g.c].to_vec(), g.c, dev)?),
        ))
    }
}

/// Fused vs reference, forward + backward, at the diffusion U-Net's two finest levels (batch
/// 64, 28x28 with 32 channels and 14x14 with 64, 8 groups), with SiLU.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let cases: [(&'static str, [usize; 4]); 2] =
        [("group_norm+silu 28x28", [64, 32, 28, 28]), ("group_norm+silu 14x14", [64, 64, 14, 14])];
    let mut out = vec![];
    for (i, (name, dims)) in cases.into_iter().enumerate() {
        let (x, gamma, beta, w) = crate::ops::norm_inputs(&dims, 1, (2.0, 1.0), 40 + i as u64)?;
        let var = |t: &Tensor| candle_core::Var::from_tensor(t).map(|v| v.as_tensor().clone());
        let (x, gamma, beta) = (var(&x)?, var(&gamma)?, var(&beta)?);
        type Gn = fn(&Tensor, &Tensor, &Tensor, usize, f64, bool) -> Result<Tensor>;
        let run = |f: Gn| {
            let (x, gamma, beta, w) = (x.clone(), gamma.clone(), beta.clone(), w.clone());
            move || -> Result<()> { (f(&x, &gamma, &beta, 8, 1e-5, true)? * &w)?.sum_all()?.backward().map(|_| ()) }
        };
        out.push(super::OpBench {
            name,
            shape: format!("x {dims:?}, 8 groups"),
            fused: Box::new(run(group_norm)),
            reference: Box::new(run(group_norm_ref)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{max_abs, max_abs_diff};
    use candle_core::Var;

    /// y, dx, dγ, dβ vs the reference for L = Σ y ⊙ w. Tolerances relative to each tensor's
    /// largest entry: y 1e-5 (f32 group sums in another order); dx 1e-4 (it subtracts group
    /// means that nearly cancel); dγ, dβ 1e-5·√(B·S) (f32 sums over B·S terms in another order).
    fn check(dims: &[usize], groups: usize, silu: bool, seed: u64) -> Result<()> {
        let (x, gamma, beta, w) = crate::ops::norm_inputs(dims, 1, (2.0, 1.0), seed)?;
        let m = (dims[0] * dims[2..].iter().product::<usize>()) as f32;
        let vars = || -> Result<(Var, Var, Var)> {
            Ok((Var::from_tensor(&x)?, Var::from_tensor(&gamma)?, Var::from_tensor(&beta)?))
        };
        let ((xf, gf, bf), (xr, gr, br)) = (vars()?, vars()?);
        let yf = group_norm(&xf, &gf, &bf, groups, 1e-5, silu)?;
        let yr = group_norm_ref(&xr, &gr, &br, groups, 1e-5, silu)?;
        let d = max_abs_diff(&yf, &yr)?;
        assert!(d <= 1e-5 * max_abs(&yr)?.max(1.0), "y differs by {d} for {dims:?}");
        let grads_f = (yf * &w)?.sum_all()?.backward()?;
        let grads_r = (yr * &w)?.sum_all()?.backward()?;
        for (name, a, b, tol) in
            [("dx", &xf, &xr, 1e-4), ("dgamma", &gf, &gr, 1e-5 * m.sqrt()), ("dbeta", &bf, &br, 1e-5 * m.sqrt())]
        {
            let (a, b) = (grads_f.get(a).expect("fused grad"), grads_r.get(b).expect("ref grad"));
            let d = max_abs_diff(a, b)?;
            assert!(d <= tol * max_abs(b)?.max(1e-2), "{name} differs by {d} (tolerance {tol}) for {dims:?}");
        }
        Ok(())
    }

    #[test]
    fn matches_reference_with_and_without_silu() -> Result<()> {
        for silu in [false, true] {
            check(&[64, 32, 28, 28], 8, silu, 1)?; // several rayon tasks
            check(&[3, 6, 5, 7], 3, silu, 2)?; // groups of 2 channels, odd sides
            check(&[2, 4, 3, 3], 1, silu, 3)?; // one group: layer norm over (C, H, W)
            check(&[2, 4, 3, 3], 4, silu, 4)?; // a group per channel: instance norm
        }
        Ok(())
    }

    /// No samples, or samples of no values: an empty y, and gradients of zeros (both panicked
    /// before: chunks of zero length, and no partial sums to add).
    #[test]
    fn an_empty_input_gives_empty_outputs_and_zero_gradients() -> Result<()> {
        for dims in [[0, 4, 3, 3], [2, 4, 0, 3]] {
            let x = candle_core::Var::from_tensor(&Tensor::zeros(&dims, DType::F32, &candle_core::Device::Cpu)?)?;
            let gamma = candle_core::Var::from_tensor(&Tensor::ones(4, DType::F32, &candle_core::Device::Cpu)?)?;
            let beta = candle_core::Var::from_tensor(&Tensor::zeros(4, DType::F32, &candle_core::Device::Cpu)?)?;
            let y = group_norm(&x, &gamma, &beta, 2, 1e-5, true)?;
            assert_eq!(y.dims(), dims);
            let grads = y.sum_all()?.backward()?;
            let dg = grads.get(&gamma).expect("a gradient for gamma");
            assert_eq!(dg.to_vec1::<f32>()?, vec![0.0; 4], "{dims:?}");
        }
        Ok(())
    }

    #[test]
    fn rejects_groups_that_do_not_divide_the_channels() -> Result<()> {
        let (x, gamma, beta, _) = crate::ops::norm_inputs(&[2, 6, 3, 3], 1, (1.0, 0.0), 5)?;
        assert!(group_norm(&x, &gamma, &beta, 4, 1e-5, false).is_err());
        assert!(group_norm(&x, &gamma, &beta, 0, 1e-5, false).is_err());
        Ok(())
    }
}
