//! Scaled dot-product attention, flash-style (Dao et al. 2022, on the online softmax of Milakov &
//! Gimelshein 2018), causal or not: O = softmax(Q·Kᵀ·s [+ mask]) · V with s = 1/√Dh.
//! Here are the kernels of one (batch, head) and the composed reference; the ops with their
//! backward are `attention_qkv.rs` (self-attention read from the packed projection) and
//! `attention_cross.rs` (queries from one sequence, keys and values from another: Tq ≠ Tk).
//!
//! Masks: causal (key j visible to query i iff j ≤ i), and per batch row a range of visible keys
//! `lo..hi` (a key-padding mask: padded keys outside the range are never scored, so they cost
//! nothing and get exactly zero weight). A query row that sees no key at all outputs zeros.
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
//! each task), and per task two BLOCK×BLOCK score tiles: O(T) per (b, h), not O(T²).
//! tests/attention_memory.rs measures it with the counting allocator.
//!
//! The tile products are single-threaded `gemm` calls: the callers run one (b, h) per rayon task.

use super::vmath::{self, simd_kernel};
use candle_core::{Result, Tensor, D};

/// Query and key block size: a 64×64 f32 score tile is 16 KB, two of them and the Q, K, V, dO
/// rows of a block (4 × 64 × Dh floats) stay in L1/L2.
pub(super) const BLOCK: usize = 64;

/// The keys visible to one batch row: `lo..hi` (the rest is padding).
pub type KeyRange = std::ops::Range<usize>;

/// The reference: the T×T scores, a −∞ mask via `where_cond`, candle's composed softmax (which
/// has a backward) and the product with V.
pub fn attention_ref(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Result<Tensor> {
    attention_ref_keys(q, k, v, causal, None)
}

/// The reference with a key-padding mask: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh), and for
/// each batch row the range of keys it may see. Every query row must see at least one key (a
/// row of −∞ scores is NaN here).
pub fn attention_ref_keys(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    causal: bool,
    keys: Option<&[KeyRange]>,
) -> Result<Tensor> {
    let (b, _, tq, dh) = q.dims4()?;
    let tk = k.dim(2)?;
    super::flops::add(super::flops::attention(b, tq, tk, q.dim(1)? * dh));
    let s = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?; // (B, H, Tq, Tk)
    if !causal && keys.is_none() {
        return candle_nn::ops::softmax(&s, D::Minus1)?.matmul(v);
    }
    let mut visible = vec![0u8; b * tq * tk];
    for (bi, rows) in visible.chunks_exact_mut(tq * tk).enumerate() {
        let range = keys.map_or(0..tk, |k| k[bi].clone());
        for (i, row) in rows.chunks_exact_mut(tk).enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = u8::from(range.contains(&j) && (!causal || j <= i));
            }
        }
    }
    let visible = Tensor::from_vec(visible, (b, 1, tq, tk), q.device())?.broadcast_as(s.shape())?;
    let minus_inf = Tensor::new(f32::NEG_INFINITY, q.device())?.broadcast_as(s.shape())?;
    candle_nn::ops::softmax(&visible.where_cond(&s, &minus_inf)?, D::Minus1)?.matmul(v)
}

/// The key ranges of `b` batch rows over `tk` keys: `keys` checked (one per row, inside 0..tk),
/// or every key when there is no mask.
pub(super) fn check_keys(keys: Option<&[KeyRange]>, b: usize, tk: usize, op: &str) -> Result<Vec<KeyRange>> {
    let Some(keys) = keys else { return Ok(vec![0..tk; b]) };
    if keys.len() != b {
        candle_core::bail!("{op}: {} key ranges for {b} batch rows", keys.len())
    }
    if let Some(r) = keys.iter().find(|r| r.start > r.end || r.end > tk) {
        candle_core::bail!("{op}: key range {r:?} is not inside 0..{tk}")
    }
    Ok(keys.to_vec())
}

pub(super) struct FlashAttention {
    causal: bool,
    block: usize,
    /// 1/√Dh
    scale: f32,
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
        Self { causal, block, scale: 1.0 / (dh as f32).sqrt() }
    }

    /// The forward of one (b, h): every query block of `forward_block`; q and o (Tq×Dh), k and v
    /// (Tk×Dh), lse (Tq); only the keys in `keys` are visible.
    pub(super) fn forward_head(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        keys: KeyRange,
        o: &mut [f32],
        lse: &mut [f32],
    ) {
        let dh = o.len() / lse.len();
        for (qb, (o_blk, lse_blk)) in o.chunks_mut(self.block * dh).zip(lse.chunks_mut(self.block)).enumerate() {
            self.forward_block((q, k, v), keys.clone(), qb * self.block, o_blk, lse_blk);
        }
    }

    /// The forward of one block of `nr` queries starting at row `r0` of one (b, h): writes its
    /// rows of O (`o`, nr×Dh) and of L (`lse`, nr). q, k, v are that (b, h)'s (T, Dh) slices.
    /// A row that sees no key gets O = 0 and L = +∞ (so the backward's P = e^{S − L} is 0).
    fn forward_block(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        keys: KeyRange,
        r0: usize,
        o: &mut [f32],
        lse: &mut [f32],
    ) {
        let (bs, nr) = (self.block, lse.len());
        let dh = o.len() / nr;
        let mut s = vec![0f32; nr * bs]; // the score tile, then P (nr × nc, row stride bs)
        let mut m = vec![f32::NEG_INFINITY; nr]; // running max
        let mut l = vec![0f32; nr]; // running Σ e^{S − m}
        o.fill(0.0);
        // keys past the block's last query are invisible to all of its rows
        let k_end = if self.causal { keys.end.min(r0 + nr) } else { keys.end };
        for c0 in (keys.start..k_end).step_by(bs) {
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
            if l[r] == 0.0 {
                // no visible key: O stays 0
                lse[r] = f32::INFINITY;
                continue;
            }
            let inv = 1.0 / l[r];
            o[r * dh..(r + 1) * dh].iter_mut().for_each(|x| *x *= inv);
            lse[r] = m[r] + l[r].ln();
        }
    }

    /// The backward of one (b, h): q, O, dO, dq are that (b, h)'s (Tq, Dh) rows (L: Tq); k, v,
    /// dk, dv its (Tk, Dh) rows; only the keys in `keys` were visible.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_head(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        keys: KeyRange,
        (o, d_o, lse): (&[f32], &[f32], &[f32]),
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let (bs, t) = (self.block, lse.len());
        let dh = q.len() / t;
        // D_i = dO_i · O_i (Tq)
        let mut d = vec![0f32; t];
        for (i, di) in d.iter_mut().enumerate() {
            dot(&d_o[i * dh..(i + 1) * dh], &o[i * dh..(i + 1) * dh], di);
        }
        let mut p = vec![0f32; bs * bs]; // P tile (nr × nc, row stride bs)
        let mut dp = vec![0f32; bs * bs]; // dP, then dS
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        for c0 in (keys.start..keys.end).step_by(bs) {
            let nc = bs.min(keys.end - c0);
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
