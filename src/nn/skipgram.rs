//! The skip-gram's scores as one op (Mikolov et al. 2013b): for centers c (B,) and context ids
//! (B, K) — per row the true context and the noise words —
//!
//!   s[b, j] = v'_{ids[b, j]} · v_{c[b]}          v = w_in (V, D), v' = w_out (V, D)
//!
//! read straight from the two tables; the backward scatters into them:
//!
//!   dv_{c[b]} += Σ_j ds[b, j] · v'_{ids[b, j]}        dv'_{ids[b, j]} += ds[b, j] · v_{c[b]}
//!
//! The composed reference (`skipgram_scores_ref`: two embedding gathers, a broadcast product
//! and a sum) materialises the (B, K, D) gathered rows and their product, and its backward
//! three more tensors of that size; this op keeps none. Rows of each gradient are split into
//! contiguous blocks of about equal work, one per thread; every thread scans all pairs and adds
//! only into its rows, so each row sums in pair order whatever the thread count (deterministic).
//! [`sgns_loss`] is the negative-sampling loss on these scores.

use crate::ops::cpu;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const NAME: &str = "skipgram_scores";

/// s (B, K) for centers (B,) and ids (B, K), both u32, from w_in and w_out (V, D) f32 on the CPU.
pub fn skipgram_scores(w_in: &Tensor, w_out: &Tensor, centers: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (v, d) = w_in.dims2()?;
    let (b, k) = ids.dims2()?;
    if w_out.dims() != [v, d] || centers.dims() != [b] {
        bail!(
            "{NAME}: tables {:?} and {:?}, centers {:?}, ids {:?}",
            w_in.shape(),
            w_out.shape(),
            centers.shape(),
            ids.shape()
        )
    }
    crate::ops::flops::add(crate::ops::flops::product(b, d, k)); // a D-long dot product per score
                                                                 // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`ops::fused_on`)
    if !crate::ops::fused_on(w_in.device(), false) {
        return skipgram_scores_ref(w_in, w_out, centers, ids);
    }
    if [w_in, w_out].iter().any(|t| t.dtype() != DType::F32 || !t.device().is_cpu()) {
        bail!("{NAME}: only f32 tables on the CPU are implemented")
    }
    let centers = centers.to_vec1::<u32>()?;
    let ids = ids.flatten_all()?.to_vec1::<u32>()?;
    if let Some(bad) = centers.iter().chain(&ids).find(|&&i| i as usize >= v) {
        bail!("{NAME}: id {bad} is out of range for a vocabulary of {v}")
    }
    w_in.contiguous()?.apply_op2(&w_out.contiguous()?, SkipGramScores { centers, ids, k, v, d })
}

/// Skip-gram negative-sampling loss (Mikolov et al. 2013b, eq. 4), mean over pairs. centers
/// (B,), ids (B, 1 + k) = [o, n_1..n_k] per row. −log σ(x) = softplus(−x), so each term is
/// softplus(sign · s) with sign −1 for o and +1 for the noise words.
pub fn sgns_loss(w_in: &Tensor, w_out: &Tensor, centers: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let k1 = ids.dim(1)?;
    let s = skipgram_scores(w_in, w_out, centers, ids)?; // (B, 1 + k): v'_j · v_c
    let sign: Vec<f32> = (0..k1).map(|j| if j == 0 { -1.0 } else { 1.0 }).collect();
    let x = s.broadcast_mul(&Tensor::from_vec(sign, (1, k1), s.device())?)?;
    // softplus(x) = relu(x) + ln(1 + e^−|x|), finite for any x
    let sp = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    sp.sum(1)?.mean(0)
}

/// The composed reference: gathers (B, D) and (B, K, D), multiplies, sums over D.
pub fn skipgram_scores_ref(w_in: &Tensor, w_out: &Tensor, centers: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let vc = crate::ops::embedding::embedding(centers, w_in)?.unsqueeze(1)?; // (B, 1, D)
    let u = crate::ops::embedding::embedding(ids, w_out)?; // (B, K, D)
    u.broadcast_mul(&vc)?.sum(2)
}

struct SkipGramScores {
    centers: Vec<u32>,
    /// (B, K) row-major
    ids: Vec<u32>,
    k: usize,
    v: usize,
    d: usize,
}

/// x · y with 8 partial sums, so that LLVM vectorises it.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn axpy(dst: &mut [f32], a: f32, x: &[f32]) {
    dst.iter_mut().zip(x).for_each(|(d, x)| *d += a * x);
}

/// Boundaries 0 = r_0 < r_1 < … = v of at most `parts` row blocks holding about equal `work`.
fn blocks(work: &[usize], parts: usize) -> Vec<usize> {
    let total: usize = work.iter().sum();
    let mut bounds = vec![0];
    let mut acc = 0;
    for (r, w) in work.iter().enumerate() {
        acc += w;
        if total > 0 && bounds.len() < parts && acc * parts >= total * bounds.len() && r + 1 < work.len() {
            bounds.push(r + 1);
        }
    }
    bounds.push(work.len());
    bounds
}

/// A zero (V, D) gradient where `add(row, dst)` is called for every row in its block; blocks
/// run in parallel, split by `work` per row.
fn scatter(v: usize, d: usize, work: &[usize], add: impl Fn(usize, usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut g = vec![0f32; v * d];
    let total: usize = work.iter().sum();
    let parts = if total * d < cpu::GRAIN { 1 } else { rayon::current_num_threads() };
    let bounds = blocks(work, parts);
    let mut slices = vec![];
    let mut rest = g.as_mut_slice();
    for w in bounds.windows(2) {
        let (head, tail) = rest.split_at_mut((w[1] - w[0]) * d);
        slices.push((w[0], w[1], head));
        rest = tail;
    }
    slices.into_par_iter().for_each(|(lo, hi, dst)| add(lo, hi, dst));
    g
}

impl CustomOp2 for SkipGramScores {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (w_in, w_out) = (cpu::cpu_f32(s1, l1, NAME)?, cpu::cpu_f32(s2, l2, NAME)?);
        let (k, d) = (self.k, self.d);
        let mut s = vec![0f32; self.centers.len() * k]; // (B, K)
        cpu::for_row_chunks(&mut s, k, |b0, s| {
            for (i, row) in s.chunks_exact_mut(k).enumerate() {
                let b = b0 + i;
                let vc = &w_in[self.centers[b] as usize * d..][..d];
                for (j, out) in row.iter_mut().enumerate() {
                    *out = dot(&w_out[self.ids[b * k + j] as usize * d..][..d], vc);
                }
            }
        });
        Ok((CpuStorage::F32(s), Shape::from((self.centers.len(), k))))
    }

    fn bwd(&self, w_in: &Tensor, w_out: &Tensor, _s: &Tensor, ds: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (v, d, k) = (self.v, self.d, self.k);
        let ds = ds.contiguous()?;
        let (dss, dsl) = ds.storage_and_layout();
        let ds = cpu::storage_f32(&dss, dsl, NAME)?;
        let (si, li) = w_in.storage_and_layout();
        let (so, lo) = w_out.storage_and_layout();
        let (win, wout) = (cpu::storage_f32(&si, li, NAME)?, cpu::storage_f32(&so, lo, NAME)?);
        let mut work_in = vec![0usize; v];
        self.centers.iter().for_each(|&c| work_in[c as usize] += k);
        let mut work_out = vec![0usize; v];
        self.ids.iter().for_each(|&o| work_out[o as usize] += 1);
        let dw_in = w_in.track_op().then(|| {
            scatter(v, d, &work_in, |lo, hi, dst| {
                for (b, &c) in self.centers.iter().enumerate() {
                    let c = c as usize;
                    if (lo..hi).contains(&c) {
                        let row = &mut dst[(c - lo) * d..][..d];
                        for j in 0..k {
                            axpy(row, ds[b * k + j], &wout[self.ids[b * k + j] as usize * d..][..d]);
                        }
                    }
                }
            })
        });
        let dw_out = w_out.track_op().then(|| {
            scatter(v, d, &work_out, |lo, hi, dst| {
                for (i, &o) in self.ids.iter().enumerate() {
                    let o = o as usize;
                    if (lo..hi).contains(&o) {
                        axpy(&mut dst[(o - lo) * d..][..d], ds[i], &win[self.centers[i / k] as usize * d..][..d]);
                    }
                }
            })
        });
        let dev = w_in.device();
        Ok((
            dw_in.map(|g| Tensor::from_vec(g, (v, d), dev)).transpose()?,
            dw_out.map(|g| Tensor::from_vec(g, (v, d), dev)).transpose()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{Device, Var};

    /// Scores and both table gradients of loss = Σ s ⊙ r, fused vs reference. The scores are
    /// dot products of D terms summed in another order: 1e-5 relative to the largest. The
    /// gradients add the same terms per row in the same (pair) order as the reference's
    /// index-add of products: 1e-5 relative to the largest entry, while a wrong row is of order 1.
    fn check(b: usize, k: usize, v: usize, d: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let dev = Device::Cpu;
        let mut table = || {
            let x: Vec<f32> = (0..v * d).map(|_| rng.normal() as f32).collect();
            Var::from_tensor(&Tensor::from_vec(x, (v, d), &dev).unwrap()).unwrap()
        };
        let (w_in, w_out) = (table(), table());
        let c: Vec<u32> = (0..b).map(|_| rng.below(v) as u32).collect();
        let ids: Vec<u32> = (0..b * k).map(|_| rng.below(v) as u32).collect();
        let (c, ids) = (Tensor::from_vec(c, b, &dev).unwrap(), Tensor::from_vec(ids, (b, k), &dev).unwrap());
        let r: Vec<f32> = (0..b * k).map(|_| rng.normal() as f32).collect();
        let r = Tensor::from_vec(r, (b, k), &dev).unwrap();
        let s = skipgram_scores(&w_in, &w_out, &c, &ids).unwrap();
        let s_ref = skipgram_scores_ref(&w_in, &w_out, &c, &ids).unwrap();
        let rel = |a: &Tensor, b: &Tensor| {
            let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
            (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
        };
        assert!(rel(&s, &s_ref) < 1e-5, "scores differ for B {b}, K {k}, V {v}, D {d}");
        let g = (s * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (s_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, t) in [("w_in", &w_in), ("w_out", &w_out)] {
            let err = rel(g.get(t).unwrap(), g_ref.get(t).unwrap());
            assert!(err < 1e-5, "d{name} differs by {err} for B {b}, K {k}, V {v}, D {d}");
        }
    }

    #[test]
    fn matches_the_composed_reference() {
        check(4096, 6, 1000, 100, 1); // the milestone's shape at a small vocabulary: parallel blocks
        check(3, 2, 5, 7, 2); // odd sizes, one block, repeated ids
        check(64, 1, 2, 9, 3); // two words: every row is hit many times
    }

    /// Scores 0 give (1 + k)·ln 2 per pair; v_c = (1, 0), v'_o = (2, 0), v'_n = (−1, 0) give
    /// scores 2 and −1: softplus(−2) + softplus(−1) = 0.1269 + 0.3133.
    #[test]
    fn sgns_loss_by_hand() {
        let dev = Device::Cpu;
        let w = Tensor::from_vec(vec![1f32, 0., 2., 0., -1., 0.], (3, 2), &dev).unwrap();
        let (c, ids) = (Tensor::new(&[0u32], &dev).unwrap(), Tensor::new(&[[1u32, 2]], &dev).unwrap());
        let l = sgns_loss(&w, &w, &c, &ids).unwrap().to_scalar::<f32>().unwrap();
        let sp = |x: f64| (1.0 + x.exp()).ln();
        assert!((l as f64 - sp(-2.0) - sp(-1.0)).abs() < 1e-6, "{l}");
        let zero = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
        let l0 = sgns_loss(&zero, &zero, &c, &ids).unwrap().to_scalar::<f32>().unwrap();
        assert!((l0 as f64 - 2.0 * 2f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn blocks_split_work_evenly_and_cover_all_rows() {
        assert_eq!(blocks(&[1, 1, 1, 1], 2), [0, 2, 4]);
        assert_eq!(blocks(&[10, 0, 0, 0, 10], 2), [0, 1, 5]);
        assert_eq!(blocks(&[5, 5], 1), [0, 2]);
        assert_eq!(blocks(&[0, 0, 0], 4), [0, 3]); // no work: one block
    }
}
