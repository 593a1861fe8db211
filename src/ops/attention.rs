//! Scaled dot-product attention, flash-style (Dao et al. 2022, on the online softmax of Milakov &
//! Gimelshein 2018), causal or not: O = softmax(Q·Kᵀ·s [+ causal mask]) · V with s = 1/√Dh.
//!
//! - forward: for each block of queries, walk the keys block by block keeping, per query row, the
//!   running max m and running sum l of the exponentials; rescale the partial output by
//!   e^{m_old − m_new} when the max grows. Only O and the row logsumexp L = m + ln l are kept.
//! - backward: recompute the scores block by block from Q, K and L (P = e^{S − L}), with
//!   D_i = rowsum(dO_i ⊙ O_i):  dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − D),
//!   dQ += dS·K·s,  dK += dSᵀ·Q·s.
//! - causal: key j is visible to query i iff j ≤ i; key blocks entirely above the diagonal are
//!   skipped, so the causal op does about half the work.
//!
//! Memory: the T×T score matrix never exists. Beyond its inputs, output and gradients the op
//! keeps L (T floats per (batch, head)), the backward's D (T floats per (batch, head) at a time in
//! each task), and per task two BLOCK×BLOCK score tiles: O(T) per (b, h), not O(T²). The test
//! `extra_memory_is_linear_in_t` measures it with the counting allocator.
//!
//! Work is split over (b, h) — and in the forward also over query blocks — with rayon; the
//! tile products are single-threaded `gemm` calls inside each task.

use super::cpu;
use super::vmath::{self, simd_kernel};
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor, D};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Query and key block size: a 64×64 f32 score tile is 16 KB, two of them and the Q, K, V, dO
/// rows of a block (4 × 64 × Dh floats) stay in L1/L2.
pub(super) const BLOCK: usize = 64;

/// Flash attention. q, k, v: (B, H, T, Dh) f32 on the CPU; returns O (B, H, T, Dh). With
/// `causal`, query i attends to keys 0..=i.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Result<Tensor> {
    attention_blocked(q, k, v, causal, BLOCK)
}

/// `attention` with a chosen block size (the tests use small blocks to cross many block edges).
fn attention_blocked(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool, block: usize) -> Result<Tensor> {
    let (_, _, t, dh) = q.dims4()?;
    if k.dims() != q.dims() || v.dims() != q.dims() {
        bail!(
            "attention: q, k, v must share one (B, H, T, Dh) shape, got {:?}, {:?}, {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        )
    }
    if t == 0 || dh == 0 {
        bail!("attention: empty sequence or head (T = {t}, Dh = {dh})")
    }
    for (name, x) in [("q", q), ("k", k), ("v", v)] {
        if x.dtype() != DType::F32 || !matches!(x.device(), Device::Cpu) {
            bail!("attention: {name} must be f32 on the CPU, got {:?} on {:?}", x.dtype(), x.device())
        }
    }
    let op = FlashAttention::new(causal, block, dh);
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// The reference: the T×T scores, a −∞ mask via `where_cond`, candle's composed softmax (which
/// has a backward) and the product with V.
pub fn attention_ref(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Result<Tensor> {
    let (_, _, t, dh) = q.dims4()?;
    let s = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?; // (B, H, T, T)
    let s = if causal {
        let visible: Vec<u8> = (0..t * t).map(|ij| u8::from(ij % t <= ij / t)).collect();
        let visible = Tensor::from_vec(visible, (t, t), q.device())?.broadcast_as(s.shape())?;
        let minus_inf = Tensor::new(f32::NEG_INFINITY, q.device())?.broadcast_as(s.shape())?;
        visible.where_cond(&s, &minus_inf)?
    } else {
        s
    };
    candle_nn::ops::softmax(&s, D::Minus1)?.matmul(v)
}

pub(super) struct FlashAttention {
    causal: bool,
    block: usize,
    /// 1/√Dh
    scale: f32,
    /// the row logsumexp L (B, H, T), saved by the forward for the backward
    lse: OnceLock<Vec<f32>>,
}

/// How many keys of the block starting at key `c0` (of `nc`) query `i` may see.
#[inline]
fn visible(causal: bool, i: usize, c0: usize, nc: usize) -> usize {
    if causal {
        (i + 1).saturating_sub(c0).min(nc)
    } else {
        nc
    }
}

/// dst (m×n, row stride dst_rs) = [dst +] beta · lhs (m×k) · rhs (k×n), each with (row, column)
/// strides; single-threaded (the callers run inside rayon tasks).
///
/// # Safety
/// Every index (i, j, p) with i < m, j < n, p < k must stay inside the three buffers.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        beta,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

simd_kernel! {
    /// *out = max(row)
    fn row_max(row: &[f32], out: &mut f32) {
        let mut acc = [f32::NEG_INFINITY; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for j in 0..8 {
                acc[j] = if c[j] > acc[j] { c[j] } else { acc[j] };
            }
        }
        let mut m = f32::NEG_INFINITY;
        for &x in acc.iter().chain(chunks.remainder()) {
            m = if x > m { x } else { m };
        }
        *out = m;
    }
}

simd_kernel! {
    /// row ← e^{row − shift}; *sum = Σ row (eight partial sums, so that the loop vectorises)
    fn exp_shifted(row: &mut [f32], shift: f32, sum: &mut f32) {
        let mut acc = [0f32; 8];
        let mut chunks = row.chunks_exact_mut(8);
        for c in &mut chunks {
            for j in 0..8 {
                c[j] = vmath::exp(c[j] - shift);
                acc[j] += c[j];
            }
        }
        let mut s = 0.0;
        for x in chunks.into_remainder() {
            *x = vmath::exp(*x - shift);
            s += *x;
        }
        *sum = acc.iter().sum::<f32>() + s;
    }
}

simd_kernel! {
    /// dp ← p ⊙ (dp − d): the score gradient dS of one row
    fn softmax_grad(p: &[f32], dp: &mut [f32], d: f32) {
        for (g, &p) in dp.iter_mut().zip(p) {
            *g = p * (*g - d);
        }
    }
}

simd_kernel! {
    /// *out = a · b
    fn dot(a: &[f32], b: &[f32], out: &mut f32) {
        let mut acc = [0f32; 8];
        let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
        for (x, y) in (&mut ca).zip(&mut cb) {
            for j in 0..8 {
                acc[j] += x[j] * y[j];
            }
        }
        let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
        *out = acc.iter().sum::<f32>() + tail;
    }
}

impl FlashAttention {
    /// Attention over heads of `dh` features with query/key blocks of `block` rows.
    pub(super) fn new(causal: bool, block: usize, dh: usize) -> Self {
        Self { causal, block, scale: 1.0 / (dh as f32).sqrt(), lse: OnceLock::new() }
    }

    /// The forward of one (b, h): every query block of `forward_block`; o (T×Dh), lse (T).
    pub(super) fn forward_head(&self, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], lse: &mut [f32]) {
        let dh = o.len() / lse.len();
        for (qb, (o_blk, lse_blk)) in o.chunks_mut(self.block * dh).zip(lse.chunks_mut(self.block)).enumerate() {
            self.forward_block(q, k, v, qb * self.block, o_blk, lse_blk);
        }
    }

    /// The forward of one block of `nr` queries starting at row `r0` of one (b, h): writes its
    /// rows of O (`o`, nr×Dh) and of L (`lse`, nr). q, k, v are that (b, h)'s (T, Dh) slices.
    fn forward_block(&self, q: &[f32], k: &[f32], v: &[f32], r0: usize, o: &mut [f32], lse: &mut [f32]) {
        let (bs, nr) = (self.block, lse.len());
        let dh = o.len() / nr;
        let t = k.len() / dh;
        let mut s = vec![0f32; nr * bs]; // the score tile, then P (nr × nc, row stride bs)
        let mut m = vec![f32::NEG_INFINITY; nr]; // running max
        let mut l = vec![0f32; nr]; // running Σ e^{S − m}
        o.fill(0.0);
        // keys past the block's last query are invisible to all of its rows
        let k_end = if self.causal { r0 + nr } else { t };
        for c0 in (0..k_end).step_by(bs) {
            let nc = bs.min(k_end - c0);
            // S (nr × nc) = s · Q_i (nr × Dh) · K_jᵀ (Dh × nc)
            // SAFETY: rows r0..r0+nr of q, c0..c0+nc of k (each Dh wide), and nr rows of s.
            unsafe {
                tile_gemm(
                    (nr, nc, dh),
                    s.as_mut_ptr(),
                    bs,
                    false,
                    q[r0 * dh..].as_ptr(),
                    (dh, 1),
                    k[c0 * dh..].as_ptr(),
                    (1, dh),
                    self.scale,
                )
            };
            for r in 0..nr {
                let row = &mut s[r * bs..r * bs + nc];
                let vis = visible(self.causal, r0 + r, c0, nc);
                if vis == 0 {
                    row.fill(0.0);
                    continue;
                }
                let mut mx = 0.0;
                row_max(&row[..vis], &mut mx);
                let m_new = m[r].max(mx);
                // e^{m_old − m_new} rescales what was summed under the old max (0 at the start)
                let alpha = if m[r] == f32::NEG_INFINITY { 0.0 } else { vmath::exp(m[r] - m_new) };
                let mut sum = 0.0;
                exp_shifted(&mut row[..vis], m_new, &mut sum);
                row[vis..].fill(0.0);
                l[r] = l[r] * alpha + sum;
                m[r] = m_new;
                if alpha != 1.0 {
                    o[r * dh..(r + 1) * dh].iter_mut().for_each(|x| *x *= alpha);
                }
            }
            // O_i (nr × Dh) += P (nr × nc) · V_j (nc × Dh)
            // SAFETY: nr rows of s (stride bs), rows c0..c0+nc of v, nr rows of o.
            unsafe {
                tile_gemm(
                    (nr, dh, nc),
                    o.as_mut_ptr(),
                    dh,
                    true,
                    s.as_ptr(),
                    (bs, 1),
                    v[c0 * dh..].as_ptr(),
                    (dh, 1),
                    1.0,
                )
            };
        }
        for r in 0..nr {
            // every row sees at least key 0, so l > 0
            let inv = 1.0 / l[r];
            o[r * dh..(r + 1) * dh].iter_mut().for_each(|x| *x *= inv);
            lse[r] = m[r] + l[r].ln();
        }
    }

    /// The backward of one (b, h): all slices are that (b, h)'s (T, Dh) rows (L: T).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_head(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        (o, d_o, lse): (&[f32], &[f32], &[f32]),
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let (bs, t) = (self.block, lse.len());
        let dh = q.len() / t;
        // D_i = dO_i · O_i (T)
        let mut d = vec![0f32; t];
        for (i, di) in d.iter_mut().enumerate() {
            dot(&d_o[i * dh..(i + 1) * dh], &o[i * dh..(i + 1) * dh], di);
        }
        let mut p = vec![0f32; bs * bs]; // P tile (nr × nc, row stride bs)
        let mut dp = vec![0f32; bs * bs]; // dP, then dS
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        for c0 in (0..t).step_by(bs) {
            let nc = bs.min(t - c0);
            // causal: queries before c0 see none of these keys
            let r_start = if self.causal { c0 } else { 0 };
            for r0 in (r_start..t).step_by(bs) {
                let nr = bs.min(t - r0);
                let (qi, doi, ki, vi) = (q[r0 * dh..].as_ptr(), d_o[r0 * dh..].as_ptr(), &k[c0 * dh..], &v[c0 * dh..]);
                // SAFETY (all five products): rows r0..r0+nr of q, dO, dq; rows c0..c0+nc of k,
                // v, dk, dv (each Dh wide); nr rows of the tiles with stride bs ≥ nc.
                // S = s · Q_i K_jᵀ, then P = e^{S − L} on the visible keys, 0 on the others
                unsafe {
                    tile_gemm((nr, nc, dh), p.as_mut_ptr(), bs, false, qi, (dh, 1), ki.as_ptr(), (1, dh), self.scale)
                };
                for r in 0..nr {
                    let row = &mut p[r * bs..r * bs + nc];
                    let vis = visible(self.causal, r0 + r, c0, nc);
                    let mut unused = 0.0;
                    exp_shifted(&mut row[..vis], lse[r0 + r], &mut unused);
                    row[vis..].fill(0.0);
                }
                // dV_j (nc × Dh) += Pᵀ (nc × nr) · dO_i (nr × Dh)
                unsafe {
                    tile_gemm(
                        (nc, dh, nr),
                        dv[c0 * dh..].as_mut_ptr(),
                        dh,
                        true,
                        p.as_ptr(),
                        (1, bs),
                        doi,
                        (dh, 1),
                        1.0,
                    )
                };
                // dP (nr × nc) = dO_i (nr × Dh) · V_jᵀ (Dh × nc)
                unsafe { tile_gemm((nr, nc, dh), dp.as_mut_ptr(), bs, false, doi, (dh, 1), vi.as_ptr(), (1, dh), 1.0) };
                // dS = P ⊙ (dP − D_i)
                for r in 0..nr {
                    softmax_grad(&p[r * bs..r * bs + nc], &mut dp[r * bs..r * bs + nc], d[r0 + r]);
                }
                // dQ_i (nr × Dh) += s · dS (nr × nc) · K_j (nc × Dh)
                unsafe {
                    tile_gemm(
                        (nr, dh, nc),
                        dq[r0 * dh..].as_mut_ptr(),
                        dh,
                        true,
                        dp.as_ptr(),
                        (bs, 1),
                        ki.as_ptr(),
                        (dh, 1),
                        self.scale,
                    )
                };
                // dK_j (nc × Dh) += s · dSᵀ (nc × nr) · Q_i (nr × Dh)
                unsafe {
                    tile_gemm(
                        (nc, dh, nr),
                        dk[c0 * dh..].as_mut_ptr(),
                        dh,
                        true,
                        dp.as_ptr(),
                        (1, bs),
                        qi,
                        (dh, 1),
                        self.scale,
                    )
                };
            }
        }
    }
}

impl CustomOp3 for FlashAttention {
    fn name(&self) -> &'static str {
        "flash-attention"
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
        let (b, h, t, dh) = l1.shape().dims4()?;
        let (q, k, v) = (
            cpu::cpu_f32(s1, l1, "attention")?,
            cpu::cpu_f32(s2, l2, "attention")?,
            cpu::cpu_f32(s3, l3, "attention")?,
        );
        let bs = self.block;
        let mut o = vec![0f32; b * h * t * dh]; // (B, H, T, Dh)
        let mut lse = vec![0f32; b * h * t]; // (B, H, T)
                                             // one task per (b, h, query block)
        o.par_chunks_mut(t * dh).zip(lse.par_chunks_mut(t)).enumerate().for_each(|(bh, (o_bh, lse_bh))| {
            let head = bh * t * dh..(bh + 1) * t * dh;
            let (q, k, v) = (&q[head.clone()], &k[head.clone()], &v[head]);
            o_bh.par_chunks_mut(bs * dh)
                .zip(lse_bh.par_chunks_mut(bs))
                .enumerate()
                .for_each(|(qb, (o_blk, lse_blk))| self.forward_block(q, k, v, qb * bs, o_blk, lse_blk));
        });
        let _ = self.lse.set(lse);
        Ok((CpuStorage::F32(o), Shape::from((b, h, t, dh))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(lse) = self.lse.get() else { bail!("attention: backward before forward") };
        let (b, h, t, dh) = q.dims4()?;
        let owned = [q, k, v, res, grad_res].into_iter().map(|x| x.contiguous()).collect::<Result<Vec<_>>>()?;
        let guards: Vec<_> = owned.iter().map(|x| x.storage_and_layout()).collect();
        let mut slices = Vec::with_capacity(5);
        for (st, l) in &guards {
            match &**st {
                Storage::Cpu(s) => slices.push(cpu::cpu_f32(s, l, "attention")?),
                _ => bail!("attention: CPU only"),
            }
        }
        let [q, k, v, o, d_o] = [slices[0], slices[1], slices[2], slices[3], slices[4]];
        let n = b * h * t * dh;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        // one task per (b, h): a task accumulates dQ over all key blocks
        dq.par_chunks_mut(t * dh).zip(dk.par_chunks_mut(t * dh)).zip(dv.par_chunks_mut(t * dh)).enumerate().for_each(
            |(bh, ((dq, dk), dv))| {
                let head = bh * t * dh..(bh + 1) * t * dh;
                let inputs = (&q[head.clone()], &k[head.clone()], &v[head.clone()]);
                let saved = (&o[head.clone()], &d_o[head], &lse[bh * t..(bh + 1) * t]);
                self.backward_head(inputs, saved, dq, dk, dv);
            },
        );
        let shape = (b, h, t, dh);
        Ok((
            Some(Tensor::from_vec(dq, shape, &Device::Cpu)?),
            Some(Tensor::from_vec(dk, shape, &Device::Cpu)?),
            Some(Tensor::from_vec(dv, shape, &Device::Cpu)?),
        ))
    }
}

/// `shape`-sized tensor of N(0, 1) from our seeded RNG, as a trainable variable.
fn random_var(rng: &mut crate::engine::rng::Rng, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Ok(candle_core::Var::from_vec(v, shape, &Device::Cpu)?.as_tensor().clone())
}

/// q, k, v (variables) and the random weight r of the loss Σ O ⊙ r.
#[derive(Clone)]
struct Problem {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    r: Tensor,
}

impl Problem {
    fn new(seed: u64, shape: (usize, usize, usize, usize)) -> Result<Self> {
        let mut rng = crate::engine::rng::Rng::new(seed);
        let (q, k, v) = (random_var(&mut rng, shape)?, random_var(&mut rng, shape)?, random_var(&mut rng, shape)?);
        Ok(Self { q, k, v, r: random_var(&mut rng, shape)?.detach() })
    }

    /// Forward, loss, backward: O and the gradients of (q, k, v).
    fn run(&self, f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<(Tensor, [Tensor; 3])> {
        let o = f(&self.q, &self.k, &self.v)?;
        let grads = o.mul(&self.r)?.sum_all()?.backward()?;
        let g = |x: &Tensor| match grads.get(x) {
            Some(g) => Ok(g.clone()),
            None => bail!("attention: no gradient reached an input"),
        };
        Ok((o, [g(&self.q)?, g(&self.k)?, g(&self.v)?]))
    }
}

/// The `gpt` workload's attention: B=32, H=4, T=64, Dh=32, causal; and the same shape without
/// the mask.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let shape = (32, 4, 64, 32);
    let p = Problem::new(11, shape)?;
    let mut out = Vec::new();
    for causal in [true, false] {
        let (pf, pr) = (p.clone(), p.clone());
        out.push(super::OpBench {
            name: if causal { "attention (causal)" } else { "attention" },
            shape: format!("B={}, H={}, T={}, Dh={}", shape.0, shape.1, shape.2, shape.3),
            fused: Box::new(move || pf.run(|q, k, v| attention(q, k, v, causal)).map(|_| ())),
            reference: Box::new(move || pr.run(|q, k, v| attention_ref(q, k, v, causal)).map(|_| ())),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::rel_err;

    /// max |a − b| / max(1, max |b|)
    /// Fused (block size `block`) vs composed: O, dQ, dK, dV. Tolerance 1e-5 relative to the
    /// largest reference entry: both sum ≤ T products and ≤ Dh-long dot products in f32 in
    /// different orders (online rescaling vs one softmax; tiles vs one matmul), and the fused
    /// exp differs from libm's by ~1e-7 relative; we observe ~1e-6 at most.
    fn check(shape: (usize, usize, usize, usize), causal: bool, block: usize) -> Result<()> {
        let p = Problem::new(100 + shape.2 as u64 * 3 + shape.3 as u64, shape)?;
        let (o_f, g_f) = p.run(|q, k, v| attention_blocked(q, k, v, causal, block))?;
        let (o_r, g_r) = p.run(|q, k, v| attention_ref(q, k, v, causal))?;
        for (name, a, b) in
            [("O", &o_f, &o_r), ("dq", &g_f[0], &g_r[0]), ("dk", &g_f[1], &g_r[1]), ("dv", &g_f[2], &g_r[2])]
        {
            let e = rel_err(a, b)?;
            assert!(e < 1e-5, "{shape:?} causal={causal} block={block}: {name} off by {e}");
        }
        Ok(())
    }

    #[test]
    fn matches_reference_single_block() -> Result<()> {
        for causal in [false, true] {
            check((1, 1, 1, 32), causal, BLOCK)?; // T = 1
            check((2, 3, 37, 32), causal, BLOCK)?; // T below one block
            check((1, 2, 64, 32), causal, BLOCK)?; // T exactly one block
        }
        Ok(())
    }

    #[test]
    fn matches_reference_many_blocks() -> Result<()> {
        for causal in [false, true] {
            check((1, 2, 100, 32), causal, BLOCK)?; // T not a multiple of the block
            check((2, 1, 37, 7), causal, 8)?; // odd Dh, ragged last block, many blocks
            check((1, 1, 1, 32), causal, 8)?;
            check((1, 3, 29, 16), causal, 5)?; // block not a power of two
        }
        Ok(())
    }

    /// q, k, v as strided views (the (B, T, H, Dh) → (B, H, T, Dh) transpose of a model's
    /// projections): the wrapper makes them contiguous, and gradients still reach the variables.
    #[test]
    fn accepts_strided_inputs() -> Result<()> {
        let p = Problem::new(3, (2, 3, 19, 8))?;
        let strided = |x: &Tensor| x.transpose(1, 2)?.contiguous()?.transpose(1, 2);
        let (o_f, g_f) = p.run(|q, k, v| attention_blocked(&strided(q)?, &strided(k)?, &strided(v)?, true, 8))?;
        let (o_r, g_r) = p.run(|q, k, v| attention_ref(q, k, v, true))?;
        assert!(!strided(&p.q)?.is_contiguous());
        for (a, b) in [(&o_f, &o_r), (&g_f[0], &g_r[0]), (&g_f[1], &g_r[1]), (&g_f[2], &g_r[2])] {
            assert!(rel_err(a, b)? < 1e-5);
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_inputs() -> Result<()> {
        let p = Problem::new(1, (1, 2, 5, 4))?;
        assert!(attention(&p.q, &p.k.narrow(2, 0, 4)?, &p.v, false).is_err());
        assert!(attention(&p.q.to_dtype(DType::F64)?, &p.k, &p.v, false).is_err());
        Ok(())
    }
}
