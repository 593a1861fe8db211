//! CPU helpers shared by the fused ops: f32 access to storages, a strided sgemm over the `gemm`
//! crate (what candle's matmul uses), row-chunked rayon loops, and exp / sigmoid / erf written
//! with plain arithmetic and bit casts so that LLVM vectorises them (libm's expf/tanhf are scalar
//! calls, which is why candle's `gelu()` is slow here).
//!
//! The default build targets baseline x86-64 (SSE2, 4 lanes); the element-wise hot loops also
//! get AVX2 and AVX-512 copies, one chosen at run time (`simd!`, `simd_level`).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Storage};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The contiguous f32 data of `s` under `l`.
pub fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { bail!("{op}: only f32 is supported, got {:?}", s.dtype()) };
    let Some((a, b)) = l.contiguous_offsets() else { bail!("{op}: expects a contiguous input") };
    Ok(&v[a..b])
}

/// The contiguous f32 data of a tensor's storage (in `bwd`, from `t.storage_and_layout()` of a
/// tensor made contiguous first).
pub fn storage_f32<'a>(s: &'a Storage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(s) => cpu_f32(s, l, op),
        _ => bail!("{op}: only the CPU is supported"),
    }
}

/// A buffer of `n` floats that is not zeroed, for outputs written in full anyway: zeroing them
/// (calloc on reused heap memory) is a memset pass over the buffer on the calling thread while
/// the others wait (the LSTM's ~20 MB per call; ~2% of a U-Net step for the convolutions'
/// outputs). Fill it, then `assume_init`; `zero_init` turns a part of it into zeros.
pub fn uninit(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// The buffer as plain floats.
///
/// # Safety
/// Every element of `v` has been written.
pub unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    Vec::from_raw_parts(v.as_mut_ptr() as *mut f32, v.len(), v.capacity())
}

/// `s` set to zeros, as floats (by the thread about to fill it, where calloc would have zeroed
/// it all on the calling thread).
pub fn zero_init(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    s.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written, and MaybeUninit<f32> has f32's layout
    unsafe { &mut *(s as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Runs `f` on the first `n` floats of this thread's buffer `cell` (grown with zeros as needed,
/// otherwise holding whatever the last user left). For per-task scratch that a kernel fully
/// writes before it reads: no allocation and no zero fill per task. `f` must not run rayon
/// work that could start another task on this thread while the buffer is borrowed.
pub fn with_scratch<R>(
    cell: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    n: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    cell.with(|c| {
        let mut buf = c.borrow_mut();
        if buf.len() < n {
            buf.resize(n, 0.0);
        }
        f(&mut buf[..n])
    })
}

/// Elements per rayon task: below this a loop runs on the calling thread (rayon's fork costs
/// a few µs, as much as ~16k simple element updates).
pub const GRAIN: usize = 1 << 14;

/// Rows per task for rows of `row_len` elements.
pub fn rows_per_task(row_len: usize) -> usize {
    (GRAIN / row_len.max(1)).max(1)
}

/// Calls `f(first_row, chunk)` on consecutive chunks of whole rows of `out` (rows of `row_len`),
/// in parallel when there is more than one chunk. The chunking depends only on the shape, never
/// on the thread count, so per-chunk partial sums reduce in the same order on every machine.
pub fn for_row_chunks<T: Send>(out: &mut [T], row_len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let rpt = rows_per_task(row_len);
    let step = rpt * row_len.max(1);
    if out.len() <= step {
        f(0, out);
    } else {
        out.par_chunks_mut(step).enumerate().for_each(|(i, c)| f(i * rpt, c));
    }
}

/// Like `for_row_chunks`, but each chunk returns a partial result (e.g. a column sum); the
/// partials come back in row order.
pub fn map_row_chunks<T: Send, R: Send>(
    out: &mut [T],
    row_len: usize,
    f: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let rpt = rows_per_task(row_len);
    let step = rpt * row_len.max(1);
    if out.len() <= step {
        vec![f(0, out)]
    } else {
        out.par_chunks_mut(step).enumerate().map(|(i, c)| f(i * rpt, c)).collect()
    }
}

/// `map_row_chunks` over a new buffer of `len` floats, each chunk zeroed by the thread about to
/// fill it (see `uninit`): the filled buffer, and the partials in row order.
pub fn map_zeroed_row_chunks<R: Send>(
    len: usize,
    row_len: usize,
    f: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let mut out = uninit(len);
    let parts = map_row_chunks(&mut out, row_len, |r0, c| f(r0, zero_init(c)));
    // SAFETY: the chunks cover `out`, and each was zeroed
    (unsafe { assume_init(out) }, parts)
}

/// Sums equal-length partial vectors in order into the first one.
pub fn reduce_partials(mut parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut acc = parts.remove(0);
    for p in &parts {
        for (a, b) in acc.iter_mut().zip(p) {
            *a += b;
        }
    }
    acc
}

/// `lhs · rhs` as a new (m, n) row-major buffer, with `lhs(i, p) = lhs[i·lhs_rs + p·lhs_cs]` and
/// `rhs(p, j) = rhs[p·rhs_rs + j·rhs_cs]`: transposes are free, by strides. The product writes
/// every entry, so the buffer is not zero-filled first: those memsets of each product's output
/// were about 5% of a gpt training step.
pub fn sgemm_new(
    mnk: (usize, usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) -> Vec<f32> {
    sgemm_new_on(rayon::current_num_threads(), mnk, lhs, lhs_strides, rhs, rhs_strides)
}

/// Two independent products side by side, `a` and `b` each (mnk, lhs, lhs strides, rhs, rhs
/// strides) as `sgemm_new` takes them: with two threads or more, each product gets half of them
/// (on two, each runs whole on one thread), where `sgemm_new` would split each across all the
/// threads in turn. For a linear layer's backward (dx = dz·w and dw = dzᵀ·x, the same FLOPs): a
/// product of the gpt recipe's shapes (768 rows, 128–512 wide) split over two threads runs at
/// 1.5–1.9x one thread's rate, so two whole products at once finish sooner, and without the
/// split's hand-offs. Same bits either way: each entry's sum runs over k in the same order (see
/// `column_slabs`).
pub fn sgemm_pair(a: Product, b: Product) -> (Vec<f32>, Vec<f32>) {
    let threads = rayon::current_num_threads();
    let one = |(mnk, lhs, ls, rhs, rs): Product, t| sgemm_new_on(t, mnk, lhs, ls, rhs, rs);
    if threads < 2 {
        return (one(a, threads), one(b, threads));
    }
    let half = threads / 2;
    rayon::join(|| one(a, half), || one(b, threads - half))
}

/// One product's arguments for `sgemm_pair`: (m, n, k), lhs, its strides, rhs, its strides.
pub type Product<'a> = ((usize, usize, usize), &'a [f32], (usize, usize), &'a [f32], (usize, usize));

/// `sgemm_new` split across at most `threads` threads.
fn sgemm_new_on(
    threads: usize,
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) -> Vec<f32> {
    let mut dst = Vec::with_capacity(m * n);
    // SAFETY: the capacity holds m·n floats, a fresh allocation aliases neither input, and
    // sgemm_into writes all m·n of them before the length covers them
    unsafe {
        sgemm_into(threads, m, n, k, dst.spare_capacity_mut().as_mut_ptr().cast(), lhs, lhs_strides, rhs, rhs_strides);
        dst.set_len(m * n);
    }
    dst
}

/// Writes all m·n entries of `dst` (row-major) with `lhs · rhs`, split across at most `threads`
/// threads.
/// SAFETY: `dst` is valid for m·n writes and overlaps neither input.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_into(
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        std::ptr::write_bytes(dst, 0, m * n);
        return;
    }
    // the last element each operand reads must be in bounds: gemm takes raw pointers
    assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "sgemm: lhs out of bounds");
    assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "sgemm: rhs out of bounds");
    if let Some(slabs) = column_slabs(m, n, k, rhs_cs, threads) {
        // one slab of columns per thread, each a one-thread product (see `column_slabs`)
        let dst = Ptr(dst);
        use rayon::prelude::*;
        slabs.into_par_iter().for_each(|(j0, cols)| {
            // SAFETY: columns j0..j0+cols of dst (row stride n) are this task's alone; rhs's
            // columns j0.. are in bounds (checked above for all n)
            unsafe {
                let rhs = rhs.as_ptr().add(j0 * rhs_cs);
                gemm_raw(
                    m,
                    cols,
                    k,
                    dst.at(j0),
                    n,
                    lhs.as_ptr(),
                    (lhs_rs, lhs_cs),
                    rhs,
                    (rhs_rs, rhs_cs),
                    gemm::Parallelism::None,
                )
            }
        });
        return;
    }
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    gemm_raw(m, n, k, dst, n, lhs.as_ptr(), (lhs_rs, lhs_cs), rhs.as_ptr(), (rhs_rs, rhs_cs), par)
}

/// The slabs of columns (first column, width) that `sgemm_into` gives one thread each, or None
/// where it leaves the split to the gemm crate.
///
/// Why: the crate (which sees our row-major product transposed) packs all of a strided rhs on the
/// calling thread before its parallel loop when n ≤ 2·mc (up to 1024 columns here): for the
/// weights of x·wᵀ, that is the forward of every linear layer, and the other threads wait
/// meanwhile: 9.5% of a GAN step (batches of 64 and 128, weights up to 1024×784). A thread per
/// slab packs only its own columns, all at once: the GAN's step -12%. Only where the rows are no
/// more than the columns: with more rows the packing is a smaller part, and on gpt's products
/// (768-2048 rows, ≤ 512 columns) the crate's own split measured 3.5% faster than the slabs.
///
/// The values are the same bits, on the crate's general path: each entry's sum runs over k in the
/// same order, in depth blocks that depend on k alone (`gemm_common::cache::kernel_params`). So
/// neither the product nor a slab may take one of its special paths: rows and slabs at least 32
/// and 16 wide (no matrix-vector or 16×16 kernels), k > 2, and not both at most 64 (its small
/// path blocks k by 512). `column_slabs_match_the_whole_product` checks it.
fn column_slabs(m: usize, n: usize, k: usize, rhs_cs: usize, threads: usize) -> Option<Vec<(usize, usize)>> {
    // below the crate's threading threshold (48·48·256) it runs on one thread anyway
    if threads < 2 || rhs_cs == 1 || k <= 2 || m < 32 || m > n || n > 1024 || m * n * k < 48 * 48 * 256 {
        return None;
    }
    let width = n.div_ceil(threads).next_multiple_of(16);
    let mut slabs: Vec<(usize, usize)> = (0..n).step_by(width).map(|j0| (j0, width.min(n - j0))).collect();
    // a short last slab joins the one before it
    if slabs.len() > 1 && slabs[slabs.len() - 1].1 < 16 {
        let (_, tail) = slabs.pop()?;
        slabs.last_mut()?.1 += tail;
    }
    let narrowest = slabs.iter().map(|s| s.1).min()?;
    (slabs.len() > 1 && narrowest >= 16 && (m > 64 || narrowest > 64)).then_some(slabs)
}

/// A buffer that parallel tasks write in disjoint parts (the products' column slabs, the
/// attention's heads, the LSTM's threads).
#[derive(Clone, Copy)]
pub struct Ptr(pub *mut f32);
// SAFETY: each user writes disjoint parts from its tasks (said where it writes).
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The address `off` values in (a method, so that closures capture the whole `Ptr`).
    ///
    /// # Safety
    /// `off` lies inside the buffer.
    pub unsafe fn at(self, off: usize) -> *mut f32 {
        self.0.add(off)
    }
}

/// dst (m, n; row stride `dst_rs`) = lhs · rhs through the gemm crate.
/// SAFETY: as `sgemm_into`, with the operands' extents checked by the caller.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    // read_dst = false, so dst = 1·(lhs·rhs) without reading dst
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        par,
    )
}

/// The widest vector instructions this CPU runs, detected once (std caches the checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    /// AVX-512 (F, BW, DQ, VL) with FMA: 16 f32 lanes
    Avx512,
    /// AVX2 with FMA: 8 lanes
    Avx2,
    /// the crate's baseline target (SSE2 on x86-64): 4 lanes
    Base,
}

impl SimdLevel {
    /// Every level this CPU runs, widest first (the tests run them all; DLHIST_SIMD does not
    /// apply here).
    pub fn supported() -> Vec<SimdLevel> {
        let mut v = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
                v.push(SimdLevel::Avx512);
            }
            if avx2 {
                v.push(SimdLevel::Avx2);
            }
        }
        v.push(SimdLevel::Base);
        v
    }
}

/// The widest of `SimdLevel::supported`, unless `DLHIST_SIMD=avx2` or `=base` caps it (to time or
/// test the narrower copies on a machine that has AVX-512); read once per process.
pub fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("DLHIST_SIMD").unwrap_or_default();
        let allowed = |l: &SimdLevel| match cap.as_str() {
            "base" => *l == SimdLevel::Base,
            "avx2" => *l != SimdLevel::Avx512,
            _ => true,
        };
        SimdLevel::supported().into_iter().find(allowed).unwrap_or(SimdLevel::Base)
    })
}

/// `simd_at!(name, kernel, (args...))` defines `unsafe fn name(level: SimdLevel, args...)`, which
/// runs the `#[inline(always)]` `kernel` compiled for `level`: AVX-512 (F/BW/DQ/VL) with FMA,
/// AVX2 with FMA, or the baseline build. LLVM vectorises the same Rust loop for each, so the
/// copies compute the same IEEE operations in the same order (f32 `mul_add` is an FMA in all
/// three) and give bitwise the same results.
/// SAFETY of a call: `level` is one this CPU runs (`SimdLevel::supported`).
macro_rules! simd_at {
    ($(#[$m:meta])* $vis:vis $name:ident, $kernel:path, ($($arg:ident : $ty:ty),*)) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name(level: $crate::ops::cpu::SimdLevel, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                match level {
                    $crate::ops::cpu::SimdLevel::Avx512 => return avx512($($arg),*),
                    $crate::ops::cpu::SimdLevel::Avx2 => return avx2($($arg),*),
                    $crate::ops::cpu::SimdLevel::Base => {}
                }
            }
            let _ = level;
            $kernel($($arg),*)
        }
    };
}
pub(crate) use simd_at;

/// Runs an `#[inline(always)]` element-wise kernel through the widest copy the CPU runs
/// (`simd_level`, by `simd_at!`). `simd!(name, kernel, (args...))` defines a private
/// `fn name(args...)` in the calling module.
macro_rules! simd {
    ($(#[$m:meta])* $name:ident, $kernel:path, ($($arg:ident : $ty:ty),*)) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            $crate::ops::cpu::simd_at!(at, $kernel, ($($arg: $ty),*));
            // SAFETY: simd_level is a level this CPU runs
            unsafe { at($crate::ops::cpu::simd_level(), $($arg),*) }
        }
    };
}
pub(crate) use simd;

/// e^x for f32, vectorisable: x = n·ln2 + r with |r| ≤ ln2/2, e^r by Cephes' degree-7 expf
/// polynomial, 2^n by writing the exponent bits. Relative error ≤ 2 ulp on [-87, 88]; inputs are
/// clamped to that range (e^-87 ≈ 1.6e-38 stands for 0, e^88 ≈ 1.7e38 for overflow) and NaN
/// stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // adding 1.5·2^23 rounds to an integer held in the low mantissa bits (valid for |v| < 2^22)
    const MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    e_r * f32::from_bits(((ni + 127) << 23) as u32)
}

/// 1 / (1 + e^-x).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// erf(x) by Abramowitz & Stegun 7.1.26: 1 − (a1·t + … + a5·t⁵)·e^(−x²), t = 1/(1 + p·|x|),
/// odd in x. Absolute error ≤ 6e-7: the formula's 1.5e-7 plus f32 rounding of 1 − (≈ 1) near
/// x = 0 (a few ulp of 1). Returns (erf(x), e^(−x²))
/// because GELU's derivative needs the Gaussian too.
#[inline(always)]
pub fn erf_and_gauss(x: f32) -> (f32, f32) {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_7;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let gauss = exp(-a * a);
    let e = 1.0 - p * t * gauss;
    (e.copysign(x), gauss)
}

/// Σ v, in 8 lanes so the loop vectorises (order differs from a sequential sum by f32 rounding).
#[inline(always)]
pub fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s: f32 = it.remainder().iter().sum();
    for a in acc {
        s += a;
    }
    s
}

/// The 16x16 transpose of rows r (r[i] lane j = entry (i, j)): out[j] lane i = entry (i, j).
/// Three rounds: 2x2 blocks of floats within 128-bit lanes (unpack), 4x4 (shuffle_ps), then
/// the 4x4 grid of 128-bit lanes (two shuffle_f32x4). Used by the convolution's dy pass and
/// the short-sequence attention.
///
/// # Safety
/// The CPU runs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    let z = _mm512_setzero_ps();
    let (mut u, mut v, mut out) = ([z; 16], [z; 16], [z; 16]);
    for q in 0..4 {
        // rows 4q..4q + 4: lane L of u[4q + c] = column 4L + c of those rows
        let b = 4 * q;
        let (t0, t1) = (_mm512_unpacklo_ps(r[b], r[b + 1]), _mm512_unpackhi_ps(r[b], r[b + 1]));
        let (t2, t3) = (_mm512_unpacklo_ps(r[b + 2], r[b + 3]), _mm512_unpackhi_ps(r[b + 2], r[b + 3]));
        u[b] = _mm512_shuffle_ps::<0x44>(t0, t2);
        u[b + 1] = _mm512_shuffle_ps::<0xEE>(t0, t2);
        u[b + 2] = _mm512_shuffle_ps::<0x44>(t1, t3);
        u[b + 3] = _mm512_shuffle_ps::<0xEE>(t1, t3);
    }
    for c in 0..4 {
        v[c] = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        v[4 + c] = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
        v[8 + c] = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        v[12 + c] = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
    }
    for c in 0..4 {
        out[c] = _mm512_shuffle_f32x4::<0x88>(v[c], v[8 + c]);
        out[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v[c], v[8 + c]);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(v[4 + c], v[12 + c]);
        out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v[4 + c], v[12 + c]);
    }
    out
}

/// max v (−∞ for an empty slice); a NaN among v is skipped here, callers let it propagate
/// through their arithmetic.
#[inline(always)]
pub fn max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in it.remainder().iter().chain(acc.iter()) {
        m = if x > m { x } else { m };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::erf64;

    /// Stated bounds: exp within 2 ulp (relative 2.4e-7) of f64's on [-87, 88]; erf within
    /// 6e-7 absolute (measured 5.9e-7, near x = 0 where 1 − p·t·e^(−x²) cancels).
    #[test]
    fn exp_and_erf_meet_their_stated_error() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        let n = 200_000;
        for i in 0..=n {
            let x = -87.0 + 175.0 * i as f64 / n as f64;
            let got = exp(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst_exp = worst_exp.max(((got - want) / want).abs());
            let x = -6.0 + 12.0 * i as f64 / n as f64;
            let xf = x as f32;
            let (e, g) = erf_and_gauss(xf);
            let want = erf64(xf as f64);
            worst_erf = worst_erf.max((e as f64 - want).abs());
            assert!(((g as f64) - (-(xf as f64) * xf as f64).exp()).abs() < 1e-6);
        }
        assert!(worst_exp < 2.4e-7, "exp rel err {worst_exp:e}");
        assert!(worst_erf < 6e-7, "erf abs err {worst_erf:e}");
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e4) < 2e-38 && exp(-1e4) > 0.0);
    }

    /// The column slabs give the gemm crate's whole product bit for bit: x·wᵀ shapes of the GAN
    /// and the mlp, odd widths (a short last slab), depths over 512 (several depth blocks); values
    /// over nine magnitudes, so that any change of summation order shows. (A last slab of one
    /// column, which the crate runs as a matrix-vector product, made this test fail.)
    #[test]
    fn column_slabs_match_the_whole_product() {
        let shapes =
            [(64, 1024, 512), (128, 256, 784), (128, 512, 784), (96, 97, 600), (100, 1000, 1100), (40, 300, 4000)];
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for (m, n, k) in shapes {
                let slabs = column_slabs(m, n, k, k, threads).expect("a shape that takes the slab path");
                assert_eq!(slabs.iter().map(|s| s.1).sum::<usize>(), n);
                let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) * 10f32.powi((i % 9) as i32 - 4);
                let x: Vec<f32> = (0..m * k).map(val).collect(); // (m, k)
                let w: Vec<f32> = (0..n * k).map(|i| val(i + 17)).collect(); // (n, k): rhs = wᵀ
                let split = pool.install(|| sgemm_new((m, n, k), &x, (k, 1), &w, (1, k)));
                let mut whole = vec![0f32; m * n];
                let par = gemm::Parallelism::Rayon(threads);
                // SAFETY: whole holds m·n floats, the operands are in bounds
                unsafe { gemm_raw(m, n, k, whole.as_mut_ptr(), n, x.as_ptr(), (k, 1), w.as_ptr(), (1, k), par) };
                let same = split.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{m}x{n}x{k} on {threads} threads: the slabs differ from the whole product");
            }
        }
        // where a slab would take a special path, the crate splits the product itself
        assert!(column_slabs(16, 512, 512, 512, 2).is_none()); // rows too few
        assert!(column_slabs(64, 100, 512, 512, 2).is_none()); // slabs of ≤ 64 beside ≤ 64 rows
        assert!(column_slabs(768, 384, 128, 128, 2).is_none()); // more rows than columns
        assert!(column_slabs(128, 512, 784, 1, 2).is_none()); // a contiguous rhs: no serial packing
    }

    #[test]
    fn a_pair_of_products_side_by_side_has_the_bits_of_each_split_alone() {
        // a gpt-recipe linear's backward (768 tokens, 128 -> 512) and odd shapes, on 2 to 5 threads
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) * 10f32.powi((i % 9) as i32 - 4);
        for (n, k, m) in [(768, 128, 512), (768, 512, 128), (97, 33, 65)] {
            let dz: Vec<f32> = (0..n * m).map(val).collect(); // (N, M)
            let w: Vec<f32> = (0..m * k).map(|i| val(i + 5)).collect(); // (M, K)
            let x: Vec<f32> = (0..n * k).map(|i| val(i + 11)).collect(); // (N, K)
            let dx_of: Product = ((n, k, m), &dz, (m, 1), &w, (k, 1));
            let dw_of: Product = ((m, k, n), &dz, (1, m), &x, (k, 1));
            for threads in [2, 3, 4, 5] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (dx, dw) = pool.install(|| sgemm_pair(dx_of, dw_of));
                let alone = |(mnk, l, ls, r, rs): Product| pool.install(|| sgemm_new(mnk, l, ls, r, rs));
                for (got, want, what) in [(dx, alone(dx_of), "dx"), (dw, alone(dw_of), "dw")] {
                    let same =
                        got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{what} of {n}x{k}x{m} on {threads} threads differs from the product alone");
                }
            }
        }
    }

    #[test]
    fn sum_and_max_match_sequential() {
        let v: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        assert_eq!(sum(&v), v.iter().sum::<f32>());
        assert_eq!(max(&v), 50.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }
}
