//! The LSTM op's lane layout helpers and per-unit gate kernels: the batch sits in the vector
//! lanes (16 per block), so every loop here runs over whole blocks of lanes.

use crate::ops::cpu::SimdLevel;
use crate::ops::small_gemm::LANE_BLOCK;
use crate::ops::vmath;
use std::mem::MaybeUninit;

/// A buffer that the recurrence's threads write in disjoint ranges, ordered by the step queue.
pub(super) use crate::ops::cpu::Ptr;

/// Runs `work(tid, n)` on each of the n threads of rayon's global pool (RAYON_NUM_THREADS, set
/// once by main), all at once: the step queue hands work between them, so they must run
/// concurrently, and `broadcast` gives each pool thread one call. (candle's own pool runs one
/// thread: main sets CANDLE_NUM_THREADS=1 so its spinning workers do not fight rayon's.)
pub(super) fn run_threads(work: &(dyn Fn(usize, usize) + Sync)) {
    rayon::broadcast(|ctx| work(ctx.index(), ctx.num_threads()));
}

/// `fn name(args) { body }` becomes `unsafe fn name(level, args)`, which runs `body` compiled
/// for that level's instruction set (`cpu::simd_at!`: AVX-512, 16 lanes per vector; AVX2+FMA, 8;
/// the baseline build otherwise). The body's loops over 16 lanes then vectorise to the widest
/// registers. SAFETY of a call: `level` is one the CPU runs.
macro_rules! per_level {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $name(level: SimdLevel, $($a: $t),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn body($($a: $t),*) $body
            crate::ops::cpu::simd_at!(at, body, ($($a: $t),*));
            at(level, $($a),*)
        }
    };
}

/// Asks the CPU to bring the `n` floats from `p` into L2 (a hint: no effect on any result).
#[inline(always)]
pub(super) fn prefetch_l2(p: *const f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..n).step_by(LANE_BLOCK) {
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.wrapping_add(off) as *const i8)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, n);
}

/// 16 lanes from `p`.
#[inline(always)]
pub(super) unsafe fn load16(p: *const f32) -> [f32; LANE_BLOCK] {
    std::ptr::read_unaligned(p as *const [f32; LANE_BLOCK])
}

/// 16 lanes to `p`.
#[inline(always)]
pub(super) unsafe fn store16(p: *mut f32, v: &[f32; LANE_BLOCK]) {
    std::ptr::write_unaligned(p as *mut [f32; LANE_BLOCK], *v)
}

per_level! {
    /// One step of gate math for one hidden unit on `blocks` × 16 lanes. `a` holds the unit's
    /// pre-activations a_i, a_f, a_g, a_o (bias included); writes the activations i, f, g, o to
    /// `act`, c_t, tanh(c_t) and h_t. Every pointer addresses `blocks`·16 lanes; each block's
    /// lanes are loaded into locals before any store, so the loop vectorises without overlap
    /// checks. (32 lanes at a time, for two independent exp chains, was slower: 3.8 → 4.1 ms
    /// per forward, the live values no longer fitting the registers.)
    fn gates_fwd(
        blocks: usize, a: [*const f32; 4], act: [*mut f32; 4], c_prev: *const f32, c: *mut f32,
        tanh_c: *mut f32, h: *mut f32, forget: bool,
    ) {
        for blk in 0..blocks {
            let o16 = blk * LANE_BLOCK;
            let [ai, af, ag, ao] = a.map(|p| load16(p.add(o16)));
            let cp = load16(c_prev.add(o16));
            let mut s = [[0f32; LANE_BLOCK]; 7];
            for l in 0..LANE_BLOCK {
                let i = vmath::sigmoid(ai[l]);
                let f = if forget { vmath::sigmoid(af[l]) } else { 1.0 };
                let g = vmath::tanh(ag[l]);
                let o = vmath::sigmoid(ao[l]);
                let c_t = f * cp[l] + i * g;
                let tc = vmath::tanh(c_t);
                s[0][l] = i;
                s[1][l] = f;
                s[2][l] = g;
                s[3][l] = o;
                s[4][l] = c_t;
                s[5][l] = tc;
                s[6][l] = o * tc;
            }
            for (g, p) in act.iter().enumerate() {
                store16(p.add(o16), &s[g]);
            }
            store16(c.add(o16), &s[4]);
            store16(tanh_c.add(o16), &s[5]);
            store16(h.add(o16), &s[6]);
        }
    }
}

per_level! {
    /// One step of BPTT for one hidden unit on `blocks` × 16 lanes. In: ∂L/∂h_t from the output
    /// (`dh_out`) and through the recurrence (`dh_rec`); `dc` = ∂L/∂c_t, updated in place to
    /// ∂L/∂c_{t-1}; the saved c_{t-1} and tanh(c_t). `act` holds the activations i, f, g, o and
    /// is overwritten with the pre-activations' gradients (da_f = 0 without the forget gate).
    fn gates_bwd(
        blocks: usize, dh_rec: *const f32, dh_out: *const f32, dc: *mut f32, act: [*mut f32; 4],
        c_prev: *const f32, tanh_c: *const f32, forget: bool,
    ) {
        for blk in 0..blocks {
            let o16 = blk * LANE_BLOCK;
            let [gi, gf, gg, go] = act.map(|p| load16(p.add(o16)));
            let (dr, dout, dcv) = (load16(dh_rec.add(o16)), load16(dh_out.add(o16)), load16(dc.add(o16)));
            let (cp, tcv) = (load16(c_prev.add(o16)), load16(tanh_c.add(o16)));
            let mut s = [[0f32; LANE_BLOCK]; 5];
            for l in 0..LANE_BLOCK {
                let (i, f, g, o, tc) = (gi[l], gf[l], gg[l], go[l], tcv[l]);
                let dh = dout[l] + dr[l];
                let dc_t = dcv[l] + dh * o * (1.0 - tc * tc);
                s[0][l] = dc_t * g * i * (1.0 - i);
                s[1][l] = if forget { dc_t * cp[l] * f * (1.0 - f) } else { 0.0 };
                s[2][l] = dc_t * i * (1.0 - g * g);
                s[3][l] = dh * tc * o * (1.0 - o);
                s[4][l] = if forget { dc_t * f } else { dc_t };
            }
            for (g, p) in act.iter().enumerate() {
                store16(p.add(o16), &s[g]);
            }
            store16(dc.add(o16), &s[4]);
        }
    }
}

/// Copies a (B, ·) row-major batch into lanes: `dst[j·dst_rs + b] = src[b·src_rs + j]` for
/// b < B and j < n, and zeroes the padded lanes B ≤ b < Bp.
/// SAFETY: `dst` addresses all those elements, and no other thread touches them meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn to_lanes(src: &[f32], src_rs: usize, n: usize, bsz: usize, bp: usize, dst: Ptr, dst_rs: usize) {
    for b in 0..bsz {
        for (j, v) in src[b * src_rs..][..n].iter().enumerate() {
            *dst.at(j * dst_rs + b) = *v;
        }
    }
    for j in 0..n {
        for b in bsz..bp {
            *dst.at(j * dst_rs + b) = 0.0;
        }
    }
}

/// `Ptr` to a buffer's first element.
pub(super) fn ptr_of(v: &mut [MaybeUninit<f32>]) -> Ptr {
    Ptr(v.as_mut_ptr() as *mut f32)
}

/// Zeroes the columns [from, ld) of `rows` rows of stride ld (the rows' padding after T·Bp).
/// SAFETY: `p` addresses rows × ld elements, which no other thread touches meanwhile.
pub(super) unsafe fn zero_row_tails(p: Ptr, rows: usize, from: usize, ld: usize) {
    for r in 0..rows {
        std::ptr::write_bytes(p.at(r * ld + from), 0, ld - from);
    }
}

/// The reverse of `to_lanes`: `dst[b·dst_rs + j] = src[j·src_rs + b]` for b < B and j < n, in
/// blocks of 16 rows j so that both sides touch whole cache lines.
/// SAFETY: `dst` addresses every such element, and no other thread writes them meanwhile.
pub(super) unsafe fn from_lanes(src: &[f32], src_rs: usize, n: usize, bsz: usize, dst: Ptr, dst_rs: usize) {
    for j0 in (0..n).step_by(16) {
        for b in 0..bsz {
            for j in j0..(j0 + 16).min(n) {
                *dst.at(b * dst_rs + j) = src[j * src_rs + b];
            }
        }
    }
}
