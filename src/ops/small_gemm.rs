//! A small-gemm microkernel for recurrences: C (MR × 64) = A (MR × K) · P (K × 64), where P is a
//! panel packed ONCE (k-major, 64 columns per k) and A's rows are anywhere in memory. The LSTM
//! uses it for h_{t-1}·W_hhᵀ (forward) and dA_t·W_hh (backward), where one (32 × 256)·(256 × 1024)
//! product per step is too small for a general gemm's packing and threading to pay off.
//!
//! Versions, chosen at run time: AVX-512 (16 zmm accumulators), AVX2+FMA and baseline x86-64
//! (the same loop, vectorised by LLVM). Each output is one sum over k in order, with FMA where
//! the CPU has it: only the f32 summation order differs from a blocked gemm.
//! Also here: the queue that hands a recurrence's steps to the threads.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows of A per tile.
pub const MR: usize = 4;
/// Columns of a packed panel (4 zmm, 8 ymm).
pub const NR: usize = 64;

/// Packs the columns [c0, c0 + 64) of a K × N matrix given by `at(k, c)` into `panel` (K × 64,
/// k-major); columns at or past `n` are zero.
pub fn pack_panel(panel: &mut [f32], k: usize, col: impl Fn(usize) -> Option<usize>, at: impl Fn(usize, usize) -> f32) {
    for (kk, row) in panel.chunks_exact_mut(NR).take(k).enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = col(c).map_or(0.0, |cc| at(kk, cc));
        }
    }
}

/// The tile kernel: C (rows × 64, row stride `c_rs`) = Σ_k A[r][k] · P[k][·] for r < `rows` ≤ MR.
/// Row r of A starts at `a + r·a_rs`.
pub type TileFn = unsafe fn(k: usize, a: *const f32, a_rs: usize, rows: usize, p: *const f32, c: *mut f32, c_rs: usize);

/// The fastest tile kernel this CPU runs (checked once).
pub fn tile_fn() -> TileFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return tile_avx512;
        }
        if super::vmath::has_avx2_fma() {
            return tile_avx2;
        }
    }
    tile_base
}

/// Row pointers of a tile; missing rows repeat the last valid one (computed, never stored).
#[inline(always)]
unsafe fn rows_of(a: *const f32, a_rs: usize, rows: usize) -> [*const f32; MR] {
    let mut r = [a; MR];
    for (i, p) in r.iter_mut().enumerate() {
        *p = a.add(i.min(rows - 1) * a_rs);
    }
    r
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(k: usize, a: *const f32, a_rs: usize, rows: usize, p: *const f32, c: *mut f32, c_rs: usize) {
    use std::arch::x86_64::*;
    let a = rows_of(a, a_rs, rows);
    let mut acc = [[_mm512_setzero_ps(); 4]; MR];
    for kk in 0..k {
        let pk = p.add(kk * NR);
        let w = [
            _mm512_loadu_ps(pk),
            _mm512_loadu_ps(pk.add(16)),
            _mm512_loadu_ps(pk.add(32)),
            _mm512_loadu_ps(pk.add(48)),
        ];
        for r in 0..MR {
            let ar = _mm512_set1_ps(*a[r].add(kk));
            for v in 0..4 {
                acc[r][v] = _mm512_fmadd_ps(ar, w[v], acc[r][v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (v, x) in acc_r.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * c_rs + v * 16), *x);
        }
    }
}

/// The portable body: MR × 64 accumulators in arrays, which LLVM keeps in vector registers.
#[inline(always)]
unsafe fn tile_body<const FMA: bool>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    rows: usize,
    p: *const f32,
    c: *mut f32,
    c_rs: usize,
) {
    let a = rows_of(a, a_rs, rows);
    let mut acc = [[0f32; NR]; MR];
    for kk in 0..k {
        let pk = &*(p.add(kk * NR) as *const [f32; NR]);
        for r in 0..MR {
            let ar = *a[r].add(kk);
            for (x, w) in acc[r].iter_mut().zip(pk) {
                *x = if FMA { ar.mul_add(*w, *x) } else { ar * w + *x };
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        std::ptr::copy_nonoverlapping(acc_r.as_ptr(), c.add(r * c_rs), NR);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(k: usize, a: *const f32, a_rs: usize, rows: usize, p: *const f32, c: *mut f32, c_rs: usize) {
    tile_body::<true>(k, a, a_rs, rows, p, c, c_rs)
}

unsafe fn tile_base(k: usize, a: *const f32, a_rs: usize, rows: usize, p: *const f32, c: *mut f32, c_rs: usize) {
    tile_body::<false>(k, a, a_rs, rows, p, c, c_rs)
}

/// Work items of a recurrence, step after step: `steps` steps of `chunks` independent items
/// each, where an item of step s may start only when every item of step s − 1 is done. The
/// threads take items from one counter, so a thread that the OS deschedules (2 cores shared with
/// other work) holds up at most the one item it took, and the others do the rest; a fixed split
/// of each step between the threads would wait for it at every step.
pub struct StepQueue {
    chunks: usize,
    total: usize,
    next: AtomicUsize,
    done: AtomicUsize,
}

impl StepQueue {
    pub fn new(steps: usize, chunks: usize) -> Self {
        Self { chunks, total: steps * chunks, next: AtomicUsize::new(0), done: AtomicUsize::new(0) }
    }

    /// Runs `item(step, chunk)` for items taken from the queue until it is empty; call it on
    /// every thread. Writes made by an item are visible to the items of later steps
    /// (Release on completion, Acquire before starting).
    pub fn run(&self, mut item: impl FnMut(usize, usize)) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.total {
                return;
            }
            let (step, chunk) = (i / self.chunks, i % self.chunks);
            let need = step * self.chunks;
            let mut spins = 0u32;
            while self.done.load(Ordering::Acquire) < need {
                if spins < 2_000 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            item(step, chunk);
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel version against a plain f64 product, with a partial tile (3 rows) and a
    /// strided A. Tolerance 1e-5 relative: K = 37 f32 terms of size ≤ 1.
    #[test]
    fn tiles_match_a_plain_product() {
        let (k, a_rs) = (37, 41);
        let mut rng = crate::engine::rng::Rng::new(3);
        let a: Vec<f32> = (0..MR * a_rs).map(|_| rng.normal() as f32).collect();
        let p: Vec<f32> = (0..k * NR).map(|_| rng.normal() as f32).collect();
        let mut kernels: Vec<TileFn> = vec![tile_base, tile_fn()];
        #[cfg(target_arch = "x86_64")]
        if super::super::vmath::has_avx2_fma() {
            kernels.push(tile_avx2);
        }
        for f in kernels {
            for rows in [1, 3, MR] {
                let mut c = vec![f32::NAN; MR * 70];
                unsafe { f(k, a.as_ptr(), a_rs, rows, p.as_ptr(), c.as_mut_ptr(), 70) };
                for r in 0..MR {
                    for j in 0..NR {
                        let want: f64 = (0..k).map(|kk| a[r * a_rs + kk] as f64 * p[kk * NR + j] as f64).sum();
                        let got = c[r * 70 + j];
                        if r < rows {
                            assert!((got as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "{r} {j}");
                        } else {
                            assert!(got.is_nan(), "row {r} written");
                        }
                    }
                }
            }
        }
    }
}
