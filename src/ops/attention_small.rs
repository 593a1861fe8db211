//! Attention kernels of one (batch, head) for short sequences (T ≤ 64, Dh ≤ 128): the whole
//! T×T score matrix of a head is 16 KB at most, so the forward keeps P = softmax(S) for the
//! backward instead of recomputing it, and every product is a row of sums Σ_j a_j · B_j of
//! 16-float vectors written for the vector unit, with no call into the gemm crate: at the gpt
//! recipe's shapes (T 64, Dh 32) the flash kernels' 64×64×32 tile products spent more time
//! packing and dispatching than multiplying. With `causal`, row i stops at key i in every
//! product (the flash kernels compute the whole diagonal tile and mask it).
//!
//! Layout: q, k, v, o, dO and the gradients are (T, DP) with DP = Dh rounded up to 16 and the
//! pad zero; P, dS and the transposed kᵀ, vᵀ have rows of TP = T rounded up to 16.
//!   forward:  S_i = s · q_i·Kᵀ (visible keys),  P_i = softmax(S_i),  o_i = Σ_j P_ij v_j
//!   backward: D_i = dO_i · o_i,  dS_i = P_i ⊙ (dO_i·Vᵀ − D_i),  dq_i = s Σ_j dS_ij k_j,
//!             dk_j = s Σ_i dS_ij q_i,  dv_j = Σ_i P_ij dO_i
//! Each output is one sum in a fixed order: the results do not depend on the thread count.

// the kernels take their operands as separate slices, and the SIMD copies repeat the signatures
#![allow(clippy::too_many_arguments)]

use super::cpu;

/// The longest sequence and the widest head this path takes (`attention_qkv` uses the flash
/// kernels beyond).
pub(super) const MAX_T: usize = 64;
pub(super) const MAX_DH: usize = 128;
/// f32 lanes of one vector block.
const L: usize = 16;

/// n rounded up to a multiple of 16.
pub(super) fn pad(n: usize) -> usize {
    n.div_ceil(L) * L
}

/// For R output rows r: out[r·out_rs..][..16·N] = (itself if `acc` else 0) + scale ·
/// Σ_{j ∈ js} a[r·a_rs + j·a_s] · b[j·b_rs..][..16·N]. The R·N accumulators are independent
/// chains, so the FMAs overlap (one row of two vectors alone waits on the FMA latency). The
/// AVX-512 copy is written with intrinsics: LLVM's vectoriser left the portable loop scalar
/// inside the larger backward kernel.
#[inline(always)]
fn combo<const R: usize, const N: usize>(
    js: std::ops::Range<usize>,
    (a, a_rs, a_s): (&[f32], usize, usize),
    (b, b_rs): (&[f32], usize),
    (out, out_rs): (&mut [f32], usize),
    acc: bool,
    scale: f32,
) {
    if js.is_empty() {
        return combo_portable::<R, N>(js, (a, a_rs, a_s), (b, b_rs), (out, out_rs), acc, scale);
    }
    // the last element each operand reads, checked once for the unchecked loads below
    let last = js.end - 1;
    assert!((R - 1) * a_rs + last * a_s < a.len(), "combo: a out of bounds");
    assert!(last * b_rs + N * L <= b.len(), "combo: b out of bounds");
    assert!((R - 1) * out_rs + N * L <= out.len(), "combo: out out of bounds");
    #[cfg(target_arch = "x86_64")]
    if cpu::simd_level() == cpu::SimdLevel::Avx512 {
        // SAFETY: the CPU runs AVX-512 (simd_level); the bounds are checked above
        return unsafe { combo_avx512::<R, N>(js, (a, a_rs, a_s), (b, b_rs), (out, out_rs), acc, scale) };
    }
    combo_portable::<R, N>(js, (a, a_rs, a_s), (b, b_rs), (out, out_rs), acc, scale)
}

#[inline(always)]
fn combo_portable<const R: usize, const N: usize>(
    js: std::ops::Range<usize>,
    (a, a_rs, a_s): (&[f32], usize, usize),
    (b, b_rs): (&[f32], usize),
    (out, out_rs): (&mut [f32], usize),
    acc: bool,
    scale: f32,
) {
    let mut sum = [[[0f32; L]; N]; R];
    for j in js {
        let row = &b[j * b_rs..j * b_rs + N * L];
        let c: [f32; R] = std::array::from_fn(|r| a[r * a_rs + j * a_s]);
        for (n, bv) in row.chunks_exact(L).enumerate() {
            for r in 0..R {
                for l in 0..L {
                    sum[r][n][l] = c[r].mul_add(bv[l], sum[r][n][l]);
                }
            }
        }
    }
    for (r, sr) in sum.iter().enumerate() {
        let o = &mut out[r * out_rs..r * out_rs + N * L];
        for (oc, s) in o.chunks_exact_mut(L).zip(sr) {
            for l in 0..L {
                oc[l] = if acc { scale.mul_add(s[l], oc[l]) } else { scale * s[l] };
            }
        }
    }
}

/// `combo_portable` in AVX-512 intrinsics: the same FMAs in the same order, so the same bits.
/// SAFETY: the CPU runs AVX-512F; js is not empty and every index the portable version would
/// read or write is in bounds (`combo` checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn combo_avx512<const R: usize, const N: usize>(
    js: std::ops::Range<usize>,
    (a, a_rs, a_s): (&[f32], usize, usize),
    (b, b_rs): (&[f32], usize),
    (out, out_rs): (&mut [f32], usize),
    acc: bool,
    scale: f32,
) {
    #![allow(clippy::needless_range_loop)]
    use std::arch::x86_64::*;
    let mut sum = [[_mm512_setzero_ps(); N]; R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for j in js {
        let row = bp.add(j * b_rs);
        let c: [__m512; R] = std::array::from_fn(|r| _mm512_set1_ps(*ap.add(r * a_rs + j * a_s)));
        for n in 0..N {
            let bv = _mm512_loadu_ps(row.add(n * L));
            for r in 0..R {
                sum[r][n] = _mm512_fmadd_ps(c[r], bv, sum[r][n]);
            }
        }
    }
    let sc = _mm512_set1_ps(scale);
    let op = out.as_mut_ptr();
    for (r, sr) in sum.iter().enumerate() {
        for (n, &s) in sr.iter().enumerate() {
            let o = op.add(r * out_rs + n * L);
            let v = if acc { _mm512_fmadd_ps(sc, s, _mm512_loadu_ps(o)) } else { _mm512_mul_ps(sc, s) };
            _mm512_storeu_ps(o, v);
        }
    }
}

/// `combo` for `rows` (≤ 4) output rows over the first `width` (a multiple of 16, ≤ 128)
/// floats: four rows at a time up to 64 floats, two beyond, one for the last rows.
#[inline(always)]
fn combo_w(
    rows: usize,
    width: usize,
    js: std::ops::Range<usize>,
    (a, a_rs, a_s): (&[f32], usize, usize),
    b: (&[f32], usize),
    (out, out_rs): (&mut [f32], usize),
    acc: bool,
    scale: f32,
) {
    // (no recursion: a recursive function cannot be inlined into the caller's AVX-512 copy)
    macro_rules! go {
        ($r:literal, $r0:expr, $($n:literal)*) => {{
            let (a, out) = (&a[$r0 * a_rs..], &mut out[$r0 * out_rs..]);
            match width / L {
                $($n => combo::<$r, $n>(js.clone(), (a, a_rs, a_s), b, (out, out_rs), acc, scale),)*
                _ => {}
            }
        }};
    }
    if rows == 4 && width <= 4 * L {
        go!(4, 0, 1 2 3 4)
    } else {
        if rows >= 2 {
            go!(2, 0, 1 2 3 4 5 6 7 8)
        }
        if rows == 4 {
            go!(2, 2, 1 2 3 4 5 6 7 8)
        }
        if rows == 1 || rows == 3 {
            go!(1, rows - 1, 1 2 3 4 5 6 7 8)
        }
    }
}

/// dst (DP × TP) = srcᵀ for src (T × DP), zero past column T.
#[inline(always)]
fn transpose(src: &[f32], t: usize, dp: usize, dst: &mut [f32], tp: usize) {
    assert!(src.len() >= t * dp && dst.len() >= dp * tp && dp.is_multiple_of(L) && t <= tp);
    // On AVX-512 whole blocks of 16 rows go through 16x16 register transposes: one float per
    // load and store was a sixth of the backward (perf, the gpt recipe's shapes).
    let mut t16 = 0;
    #[cfg(target_arch = "x86_64")]
    if cpu::simd_level() == cpu::SimdLevel::Avx512 {
        t16 = t / L * L;
        // SAFETY: AVX-512 runs here; rows < t16 ≤ t of src and columns < t16 of dst's DP rows
        // are in bounds (asserted above)
        unsafe { transpose_blocks(src, t16, dp, dst, tp) };
    }
    // the rest row by row of dst: contiguous stores, strided loads (strided stores were 3x slower)
    for (p, row) in dst.chunks_exact_mut(tp).take(dp).enumerate() {
        for (j, x) in row[..t].iter_mut().enumerate().skip(t16) {
            *x = src[j * dp + p];
        }
        row[t..].fill(0.0);
    }
}

/// dst[p·tp + j] = src[j·dp + p] for j < t16 (a multiple of 16) and p < dp (a multiple of 16).
/// SAFETY: the CPU runs AVX-512F; src holds t16·dp floats and dst dp·tp.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_blocks(src: &[f32], t16: usize, dp: usize, dst: &mut [f32], tp: usize) {
    use std::arch::x86_64::*;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    for j0 in (0..t16).step_by(L) {
        for p0 in (0..dp).step_by(L) {
            let r: [__m512; L] = std::array::from_fn(|i| _mm512_loadu_ps(s.add((j0 + i) * dp + p0)));
            for (pp, &v) in cpu::transpose16(r).iter().enumerate() {
                _mm512_storeu_ps(d.add((p0 + pp) * tp + j0), v);
            }
        }
    }
}

/// Keys row `i` sees: 0..=i when causal, else all T.
#[inline(always)]
fn seen(causal: bool, i: usize, t: usize) -> usize {
    if causal {
        i + 1
    } else {
        t
    }
}

/// The forward of one (b, h): o (T × DP) and P (T × TP, zero past each row's visible keys)
/// from q, k, v (T × DP each). `kt` is scratch of DP × TP floats (any contents).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward(
    causal: bool,
    scale: f32,
    (t, dp): (usize, usize),
    q: &[f32],
    k: &[f32],
    v: &[f32],
    kt: &mut [f32],
    o: &mut [f32],
    p: &mut [f32],
) {
    let tp = pad(t);
    transpose(k, t, dp, kt, tp);
    for i0 in (0..t).step_by(4) {
        let r = 4.min(t - i0);
        // the block's last row sees the most keys; the others' extra scores are masked below
        let n = seen(causal, i0 + r - 1, t);
        combo_w(r, pad(n), 0..dp, (&q[i0 * dp..], dp, 1), (kt, tp), (&mut p[i0 * tp..], tp), false, scale);
        for i in i0..i0 + r {
            softmax_row(&mut p[i * tp..(i + 1) * tp], seen(causal, i, t));
        }
        combo_w(r, dp, 0..n, (&p[i0 * tp..], tp, 1), (v, dp), (&mut o[i0 * dp..], dp), false, 1.0);
    }
}

/// row[..n] ← softmax(row[..n]); row[n..] ← 0. `row` reaches at least to n rounded up to 16.
#[inline(always)]
fn softmax_row(row: &mut [f32], n: usize) {
    let m = cpu::max(&row[..n]);
    let (mut sums, mut sum) = ([0f32; L], 0f32);
    let full = n / L * L;
    for c in row[..full].chunks_exact_mut(L) {
        for l in 0..L {
            c[l] = cpu::exp(c[l] - m);
            sums[l] += c[l];
        }
    }
    if full < n {
        // The last n − full entries: e^x on the whole block of 16 in the vector unit (a causal
        // row's tail of up to 15 scalar exps was a hot spot of the forward in perf), summed one
        // by one as before. The entries past n are overwritten with zeros below.
        let tail = &mut row[full..full + L];
        for x in tail.iter_mut() {
            *x = cpu::exp(*x - m);
        }
        for &x in &tail[..n - full] {
            sum += x;
        }
    }
    let inv = 1.0 / (sum + sums.iter().sum::<f32>());
    row[..n].iter_mut().for_each(|x| *x *= inv);
    row[n..].fill(0.0);
}
cpu::simd!(forward_simd, forward,
    (causal: bool, scale: f32, dims: (usize, usize), q: &[f32], k: &[f32], v: &[f32], kt: &mut [f32], o: &mut [f32], p: &mut [f32]));

/// The backward of one (b, h): dq, dk, dv (T × DP each, overwritten) from q, k, v, o, dO
/// (T × DP) and the forward's P (T × TP). `vt` (DP × TP) and `ds` (T × TP) are scratch (any
/// contents).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward(
    causal: bool,
    scale: f32,
    (t, dp): (usize, usize),
    (q, k, v): (&[f32], &[f32], &[f32]),
    (o, d_o, p): (&[f32], &[f32], &[f32]),
    (vt, ds): (&mut [f32], &mut [f32]),
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let tp = pad(t);
    transpose(v, t, dp, vt, tp);
    for i0 in (0..t).step_by(4) {
        let r = 4.min(t - i0);
        let n = seen(causal, i0 + r - 1, t);
        // dP = dO · Vᵀ, then dS = P ⊙ (dP − D) on each row's visible keys
        combo_w(r, pad(n), 0..dp, (&d_o[i0 * dp..], dp, 1), (vt, tp), (&mut ds[i0 * tp..], tp), false, 1.0);
        // D_i = dO_i · o_i, each an in-order sum as `iter().sum()` folds it, the rows' chains
        // side by side (one row's alone waits on the add latency at every term)
        let mut d = [std::iter::empty::<f32>().sum::<f32>(); 4];
        for x in 0..dp {
            for (rr, d) in d.iter_mut().enumerate().take(r) {
                let at = (i0 + rr) * dp + x;
                *d += d_o[at] * o[at];
            }
        }
        for (i, &d) in (i0..i0 + r).zip(&d) {
            let ni = seen(causal, i, t);
            let (row, pi) = (&mut ds[i * tp..(i + 1) * tp], &p[i * tp..(i + 1) * tp]);
            // bounded slices, so that the loop vectorises (indexing by j kept it scalar)
            for (x, &pj) in row[..ni].iter_mut().zip(&pi[..ni]) {
                *x = pj * (*x - d);
            }
            row[ni..].fill(0.0);
        }
        combo_w(r, dp, 0..n, (&ds[i0 * tp..], tp, 1), (k, dp), (&mut dq[i0 * dp..], dp), false, scale);
    }
    for j0 in (0..t).step_by(4) {
        let r = 4.min(t - j0);
        // query rows that see key j0 (and, causal, the block's later keys: P and dS are 0 where unseen)
        let rows = if causal { j0..t } else { 0..t };
        combo_w(r, dp, rows.clone(), (&p[j0..], 1, tp), (d_o, dp), (&mut dv[j0 * dp..], dp), false, 1.0);
        combo_w(r, dp, rows, (&ds[j0..], 1, tp), (q, dp), (&mut dk[j0 * dp..], dp), false, scale);
    }
}
cpu::simd!(backward_simd, backward,
    (causal: bool, scale: f32, dims: (usize, usize), qkv: (&[f32], &[f32], &[f32]), ods: (&[f32], &[f32], &[f32]),
     scratch: (&mut [f32], &mut [f32]), grads: (&mut [f32], &mut [f32], &mut [f32])));

/// Attention over heads of `dh` features, for T ≤ `MAX_T` and Dh ≤ `MAX_DH`.
pub(super) struct SmallAttention {
    pub causal: bool,
    /// 1/√Dh
    pub scale: f32,
    /// Dh rounded up to 16: the row stride of q, k, v, o and the gradients
    pub dp: usize,
}

impl SmallAttention {
    pub(super) fn new(causal: bool, dh: usize) -> Self {
        Self { causal, scale: 1.0 / (dh as f32).sqrt(), dp: pad(dh) }
    }

    /// Floats of P per (b, h) for sequences of `t`.
    pub(super) fn p_len(t: usize) -> usize {
        t * pad(t)
    }

    /// o (T × DP) and p (T × TP) of one (b, h) from its q, k, v (T × DP, zero pad).
    pub(super) fn forward_head(&self, t: usize, (q, k, v): (&[f32], &[f32], &[f32]), o: &mut [f32], p: &mut [f32]) {
        cpu::with_scratch(&KT, self.dp * pad(t), |kt| {
            forward_simd(self.causal, self.scale, (t, self.dp), q, k, v, kt, o, p)
        });
    }

    /// dq, dk, dv (T × DP) of one (b, h) from its q, k, v, o, dO (T × DP) and P.
    pub(super) fn backward_head(
        &self,
        t: usize,
        qkv: (&[f32], &[f32], &[f32]),
        (o, d_o, p): (&[f32], &[f32], &[f32]),
        grads: (&mut [f32], &mut [f32], &mut [f32]),
    ) {
        let tp = pad(t);
        cpu::with_scratch(&KT, self.dp * tp + t * tp, |buf| {
            let (vt, ds) = buf.split_at_mut(self.dp * tp);
            backward_simd(self.causal, self.scale, (t, self.dp), qkv, (o, d_o, p), (vt, ds), grads)
        });
    }
}

thread_local! {
    /// Each thread's kᵀ (forward) or vᵀ and dS (backward) of its current (b, h), kept between
    /// tasks: allocating and zeroing them per head cost more than the transposes.
    static KT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
