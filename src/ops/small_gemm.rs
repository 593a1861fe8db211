//! A small-gemm tile for recurrences with the batch as the vector dimension, and the queue that
//! hands a recurrence's steps to the threads.
//!
//! The tile: C (8 × L) = P (8 × K) · Z (K × L) (+ a per-row initial value, e.g. a bias), where
//! P is packed ONCE per call (k-major: the 8 row weights of one k are contiguous, so each is one
//! broadcast load), Z's rows are L ≤ 32 contiguous batch lanes anywhere in memory (row stride
//! `z_rs`), and L is 16 or 32. The LSTM uses it for W·[x_t; h_{t−1}] (forward: 8 rows = 2 hidden
//! units × the 4 gates) and W_hhᵀ·dA_t (backward: 8 hidden units). Per k it loads one row of Z
//! (2 zmm) and 8 weights, for 16 FMAs: the weights stream through once per step. A tile can
//! also continue from its output's sums (`from_out`), so a caller can run k in blocks and keep
//! a block of Z in L1 across many tiles. (The previous tile, 4 batch rows × 64 columns with the
//! batch rows broadcast, streamed each thread's half of W from L2 once per 4 batch rows: 8
//! times per step at B = 32.)
//!
//! Versions, chosen at run time (`cpu::SimdLevel`): AVX-512 (16 zmm accumulators for 32 lanes), AVX2+FMA
//! (8 rows × 16 lanes in 16 ymm, run once per 16 lanes) and portable Rust (the same loop on
//! arrays). Each output is one sum over k in order (with FMA where the CPU has it): only the
//! f32 summation order differs from a blocked gemm.

use super::cpu::SimdLevel;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Rows of a tile (of P and C).
pub const R: usize = 8;
/// Lanes come in blocks of this many: the batch is padded to a multiple of it.
pub const LANE_BLOCK: usize = 16;
/// The most lanes one tile call takes, and the row stride of its output.
pub const MAX_LANES: usize = 32;

/// The tile kernel: for r < 8 and l < `lanes` (16 or 32),
/// `out[r·MAX_LANES + l] = s + Σ_{kk<k} p[kk·8 + r] · z[kk·z_rs + l]`, where the start s is
/// `out`'s own value when `from_out` (a later block of k), else `init[r]` (0 if `init` is null).
/// Lanes at or past `lanes` of `out` are not touched.
#[allow(clippy::too_many_arguments)]
pub type TileFn = unsafe fn(
    k: usize,
    p: *const f32,
    z: *const f32,
    z_rs: usize,
    lanes: usize,
    init: *const f32,
    from_out: bool,
    out: *mut f32,
);

/// The tile kernel of `level` (which the CPU must run, `SimdLevel::supported`); the recurrences
/// take `cpu::simd_level()`, so DLHIST_SIMD caps the tiles with the element-wise kernels.
pub fn tile(level: SimdLevel) -> TileFn {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => tile_avx512,
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => tile_avx2,
        _ => tile_portable,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx512(
    k: usize,
    p: *const f32,
    z: *const f32,
    z_rs: usize,
    lanes: usize,
    init: *const f32,
    from_out: bool,
    out: *mut f32,
) {
    if lanes == 2 * LANE_BLOCK {
        tile_avx512_n::<2>(k, p, z, z_rs, init, from_out, out)
    } else {
        tile_avx512_n::<1>(k, p, z, z_rs, init, from_out, out)
    }
}

/// NV zmm (16 lanes each) per row: 8·NV accumulators, NV loads of Z and 8 broadcasts per k.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_avx512_n<const NV: usize>(
    k: usize,
    p: *const f32,
    z: *const f32,
    z_rs: usize,
    init: *const f32,
    from_out: bool,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    if from_out {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            for (v, a) in acc_r.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(out.add(r * MAX_LANES + v * 16));
            }
        }
    } else if !init.is_null() {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            *acc_r = [_mm512_set1_ps(*init.add(r)); NV];
        }
    }
    for kk in 0..k {
        let zk = z.add(kk * z_rs);
        let mut zv = [_mm512_setzero_ps(); NV];
        for (v, zv_v) in zv.iter_mut().enumerate() {
            *zv_v = _mm512_loadu_ps(zk.add(v * 16));
        }
        let pk = p.add(kk * R);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let w = _mm512_set1_ps(*pk.add(r));
            for v in 0..NV {
                acc_r[v] = _mm512_fmadd_ps(w, zv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, x) in acc_r.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * MAX_LANES + v * 16), *x);
        }
    }
}

/// 8 rows × 16 lanes in 16 ymm accumulators, once per block of 16 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2(
    k: usize,
    p: *const f32,
    z: *const f32,
    z_rs: usize,
    lanes: usize,
    init: *const f32,
    from_out: bool,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    for l0 in (0..lanes).step_by(LANE_BLOCK) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if from_out {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let o = out.add(r * MAX_LANES + l0);
                *acc_r = [_mm256_loadu_ps(o), _mm256_loadu_ps(o.add(8))];
            }
        } else if !init.is_null() {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                *acc_r = [_mm256_set1_ps(*init.add(r)); 2];
            }
        }
        for kk in 0..k {
            let zk = z.add(kk * z_rs + l0);
            let zv = [_mm256_loadu_ps(zk), _mm256_loadu_ps(zk.add(8))];
            let pk = p.add(kk * R);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let w = _mm256_set1_ps(*pk.add(r));
                acc_r[0] = _mm256_fmadd_ps(w, zv[0], acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(w, zv[1], acc_r[1]);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(r * MAX_LANES + l0), acc_r[0]);
            _mm256_storeu_ps(out.add(r * MAX_LANES + l0 + 8), acc_r[1]);
        }
    }
}

/// The portable version: the same loop on arrays of 16 lanes (LLVM vectorises it for the
/// baseline target; no FMA, which would be a libm call there).
#[allow(clippy::too_many_arguments)]
unsafe fn tile_portable(
    k: usize,
    p: *const f32,
    z: *const f32,
    z_rs: usize,
    lanes: usize,
    init: *const f32,
    from_out: bool,
    out: *mut f32,
) {
    for l0 in (0..lanes).step_by(LANE_BLOCK) {
        let mut acc = [[0f32; LANE_BLOCK]; R];
        if from_out {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                std::ptr::copy_nonoverlapping(out.add(r * MAX_LANES + l0), acc_r.as_mut_ptr(), LANE_BLOCK);
            }
        } else if !init.is_null() {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                *acc_r = [*init.add(r); LANE_BLOCK];
            }
        }
        for kk in 0..k {
            let zk = &*(z.add(kk * z_rs + l0) as *const [f32; LANE_BLOCK]);
            let pk = &*(p.add(kk * R) as *const [f32; R]);
            for (acc_r, w) in acc.iter_mut().zip(pk) {
                for (a, zz) in acc_r.iter_mut().zip(zk) {
                    *a += w * zz;
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            std::ptr::copy_nonoverlapping(acc_r.as_ptr(), out.add(r * MAX_LANES + l0), LANE_BLOCK);
        }
    }
}

/// Work items of a recurrence, step after step: `steps` steps of `chunks` independent items
/// each, where an item of step s may start only when every item of step s − 1 is done.
///
/// Every thread walks all steps; at each it first claims the chunks of its own share (thread
/// `tid` of `n`: chunks [tid·chunks/n, (tid+1)·chunks/n)), then any chunk still unclaimed. So
/// on an idle machine each thread keeps the same chunks at every step (and the weights of
/// those chunks stay in its core's L2), while a thread that the OS deschedules (2 cores shared
/// with other work) holds up at most the one item it took: the others claim the rest of its
/// share. Correctness does not depend on who runs what.
pub struct StepQueue {
    steps: usize,
    chunks: usize,
    claimed: Vec<AtomicBool>,
    done: AtomicUsize,
}

impl StepQueue {
    pub fn new(steps: usize, chunks: usize) -> Self {
        let claimed = (0..steps * chunks).map(|_| AtomicBool::new(false)).collect();
        Self { steps, chunks, claimed, done: AtomicUsize::new(0) }
    }

    /// Runs `item(step, chunk)` for the items this thread claims, until every step is handed
    /// out; call it on each of `n` threads with its own `tid`. Writes made by an item are
    /// visible to the items of later steps (Release on completion, Acquire before starting).
    pub fn run(&self, tid: usize, n: usize, mut item: impl FnMut(usize, usize)) {
        let n = n.max(1);
        let (own0, own1) = (tid * self.chunks / n, ((tid + 1) * self.chunks / n).min(self.chunks));
        for step in 0..self.steps {
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
            // own share first, then the following chunks (the next thread's share), wrapping
            for c in (own0..own1).chain(own1..self.chunks).chain(0..own0) {
                if !self.claimed[step * self.chunks + c].swap(true, Ordering::Relaxed) {
                    item(step, c);
                    self.done.fetch_add(1, Ordering::Release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU runs against a plain f64 product, for 16 and 32 lanes, with and
    /// without an initial value, k in one block or two, and a row stride of Z wider than the
    /// lanes. Tolerance 1e-5
    /// relative: K = 37 f32 terms of size ≤ a few.
    #[test]
    fn tiles_match_a_plain_product() {
        let (k, z_rs) = (37, 41);
        let mut rng = crate::rng::Rng::new(3);
        let z: Vec<f32> = (0..k * z_rs).map(|_| rng.normal() as f32).collect();
        let p: Vec<f32> = (0..k * R).map(|_| rng.normal() as f32).collect();
        let init: Vec<f32> = (0..R).map(|_| rng.normal() as f32).collect();
        for level in SimdLevel::supported() {
            let tile = tile(level);
            for lanes in [16, 32] {
                for (with_init, split) in [(false, false), (true, false), (true, true)] {
                    let mut out = vec![f32::NAN; R * MAX_LANES];
                    let ip = if with_init { init.as_ptr() } else { std::ptr::null() };
                    // SAFETY: p holds k × 8 values, z k rows of z_rs ≥ 32, out 8 × 32
                    unsafe {
                        if split {
                            // k in two blocks, the second continuing from the first's sums
                            let k1 = 20;
                            tile(k1, p.as_ptr(), z.as_ptr(), z_rs, lanes, ip, false, out.as_mut_ptr());
                            let (p2, z2) = (p.as_ptr().add(k1 * R), z.as_ptr().add(k1 * z_rs));
                            tile(k - k1, p2, z2, z_rs, lanes, std::ptr::null(), true, out.as_mut_ptr());
                        } else {
                            tile(k, p.as_ptr(), z.as_ptr(), z_rs, lanes, ip, false, out.as_mut_ptr())
                        }
                    };
                    for r in 0..R {
                        for l in 0..MAX_LANES {
                            let got = out[r * MAX_LANES + l];
                            if l >= lanes {
                                assert!(got.is_nan(), "{level:?}: lane {l} written");
                                continue;
                            }
                            let mut want: f64 = (0..k).map(|kk| p[kk * R + r] as f64 * z[kk * z_rs + l] as f64).sum();
                            if with_init {
                                want += init[r] as f64;
                            }
                            assert!((got as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "{level:?} {r} {l}");
                        }
                    }
                }
            }
        }
    }

    /// Every item runs exactly once, and only after all items of the previous step, whatever
    /// the number of threads (here 3 threads for 5 chunks, and more threads than chunks).
    #[test]
    fn queue_runs_each_item_once_in_step_order() {
        for (n, chunks) in [(3, 5), (4, 2), (1, 3)] {
            let steps = 50;
            let q = StepQueue::new(steps, chunks);
            let count: Vec<AtomicUsize> = (0..steps * chunks).map(|_| AtomicUsize::new(0)).collect();
            let finished = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for tid in 0..n {
                    let (q, count, finished) = (&q, &count, &finished);
                    s.spawn(move || {
                        q.run(tid, n, |step, c| {
                            assert!(finished.load(Ordering::SeqCst) >= step * chunks, "step {step} started early");
                            count[step * chunks + c].fetch_add(1, Ordering::SeqCst);
                            finished.fetch_add(1, Ordering::SeqCst);
                        })
                    });
                }
            });
            assert!(count.iter().all(|c| c.load(Ordering::SeqCst) == 1));
        }
    }
}
