//! The forward pass of a stride-1 convolution without im2col, on AVX-512, giving bitwise the
//! values of the im2col + gemm path it replaces (`conv2d::forward`; the rules in `conv2d_direct`'s note).
//!
//! Why bitwise: every calibrated run of a conv milestone (lenet … diffusion) must replay to the
//! bits its `info` quotes, so the faster path may not reorder a single sum. The gemm crate,
//! given y_b (C_out, N) = w (C_out, K) · col (K, N) with y_b row-major, transposes the problem
//! (m = N, n = C_out) and, for each output, runs ONE fused multiply-add chain over k from 0,
//! in blocks of `kc` (`gemm_kc`); each block's chain is then added onto y (y = bias + chain,
//! or y = chain when there is no bias, then y = y + chain for each further block). Here the
//! same chains run in the same order, reading the input straight from a zero-padded copy of
//! x_b instead of from col:
//!
//! Pad x_b to (C_in, H + 2p, Wp = W + 2p). Number the outputs by q = oh·Wp + ow (padded rows:
//! the last 2p columns of each row are junk, computed and dropped). Tap k = (c, ki, kj) of
//! output q reads x_pad at q + c·plane + ki·Wp + kj, a constant offset: a tile of 16·V
//! consecutive q is V unaligned loads per k, shared by R output channels (R broadcast weights,
//! R·V FMAs; V of 2 or 3 by `vectors_per_tile`). The junk columns cost 2p/Wp of the work (7% at
//! 28 px, 22% at 7 px) against im2col's copy of K·N floats per sample and the gemm's packing of it.
//!
//! The shapes where the gemm crate takes another road (gemv for N or C_out of 1, its short
//! kernels for k ≤ 2 or tiny outputs) keep the im2col path: `Fwd::new` says None.

use super::{avx512, gemm_kc, vectors_per_tile};
use crate::ops::conv2d::Geom;
use std::mem::MaybeUninit;

/// Output channels per tile (C_out must be a multiple).
const R: usize = 8;
/// The most zmm vectors of outputs per tile.
const V_MAX: usize = 3;

/// The plan of one convolution's direct forward.
pub(in crate::ops) struct Fwd {
    /// padded input width W + 2p and plane (H + 2p)·(W + 2p)
    wp: usize,
    plane: usize,
    /// outputs per channel in padded-row numbering, H_out·Wp rounded up to whole tiles
    q: usize,
    /// per tap k = (c, ki, kj): its read offset c·plane + ki·Wp + kj
    off: Vec<usize>,
    /// the gemm crate's blocks of k
    kblocks: Vec<(usize, usize)>,
    /// zmm vectors per tile (`vectors_per_tile`)
    v: usize,
}

impl Fwd {
    /// The plan, or None where the im2col path must run (see the module's note).
    pub(in crate::ops) fn new(g: &Geom) -> Option<Self> {
        let (n, k) = (g.n(), g.k());
        if !avx512() || g.stride != 1 || !g.c_out.is_multiple_of(R) || n < 2 || n * g.c_out <= 256 || k <= 2 {
            return None;
        }
        let (wp, hp) = (g.w + 2 * g.pad, g.h + 2 * g.pad);
        let plane = wp * hp;
        let mut off = Vec::with_capacity(k);
        for c in 0..g.c_in {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    off.push(c * plane + ki * wp + kj);
                }
            }
        }
        let kc = gemm_kc(n, g.c_out, k);
        let kblocks = (0..k).step_by(kc).map(|k0| (k0, (k0 + kc).min(k))).collect();
        let v = vectors_per_tile(g.h_out * wp);
        Some(Self { wp, plane, q: (g.h_out * wp).div_ceil(16 * v) * 16 * v, off, kblocks, v })
    }

    /// w (C_out, K) regrouped as (C_out / R, K, R): a tile's R weights of one tap contiguous.
    pub(in crate::ops) fn pack_weights(&self, g: &Geom, w: &[f32]) -> Vec<f32> {
        let k = g.k();
        let mut wk = vec![0f32; g.c_out * k];
        for (o, row) in w.chunks(k).enumerate() {
            let (ob, r) = (o / R, o % R);
            for (kk, &v) in row.iter().enumerate() {
                wk[(ob * k + kk) * R + r] = v;
            }
        }
        wk
    }

    /// Scratch for one worker: the padded input and the padded-row output.
    pub(in crate::ops) fn scratch(&self, g: &Geom) -> (Vec<f32>, Vec<f32>) {
        // the last tile's loads reach past the last plane by up to a tile (≤ 48) + kW floats
        (vec![0f32; g.c_in * self.plane + 16 * V_MAX + g.kw], vec![0f32; g.c_out * self.q])
    }

    /// y_b (C_out, N) for one sample x_b (C_in, H, W), every entry written (y_b may be
    /// uninitialised); `wk` from `pack_weights`.
    pub(in crate::ops) fn sample(
        &self,
        g: &Geom,
        x_b: &[f32],
        wk: &[f32],
        bias: Option<&[f32]>,
        y_b: &mut [MaybeUninit<f32>],
        s: &mut (Vec<f32>, Vec<f32>),
    ) {
        let (xpad, ypad) = s;
        // the interior; the border (and the tail) stay the zeros `scratch` wrote
        super::pad_into(g, x_b, self.wp, self.plane, xpad);
        let k = g.k();
        for ob in 0..g.c_out / R {
            let w_ob = &wk[ob * k * R..][..k * R];
            let y_ob = &mut ypad[ob * R * self.q..][..R * self.q];
            for q0 in (0..self.q).step_by(16 * self.v) {
                for (bi, &(k0, k1)) in self.kblocks.iter().enumerate() {
                    let init = match (bi, bias) {
                        (0, Some(b)) => Init::Bias(&b[ob * R..][..R]),
                        (0, None) => Init::Zero,
                        _ => Init::Add,
                    };
                    // SAFETY: Fwd::new checked the CPU has AVX-512; the loads stay inside xpad
                    // (`scratch` sized it for the last tile), the stores inside y_ob (q is whole tiles)
                    unsafe {
                        let (x, w, y) = (xpad[q0..].as_ptr(), w_ob[k0 * R..].as_ptr(), y_ob[q0..].as_mut_ptr());
                        let off = &self.off[k0..k1];
                        match self.v {
                            3 => tile::<3>(x, off, w, init, y, self.q),
                            _ => tile::<2>(x, off, w, init, y, self.q),
                        }
                    };
                }
            }
        }
        // drop the junk columns
        assert!(y_b.len() >= g.c_out * g.n());
        for o in 0..g.c_out {
            for oh in 0..g.h_out {
                let dst = &mut y_b[(o * g.h_out + oh) * g.w_out..][..g.w_out];
                for (d, &v) in dst.iter_mut().zip(&ypad[o * self.q + oh * self.wp..][..g.w_out]) {
                    d.write(v);
                }
            }
        }
    }
}

/// How a tile's chains land on its outputs.
#[derive(Clone, Copy)]
enum Init<'a> {
    /// the first k-block with a bias: y = b + chain
    Bias(&'a [f32]),
    /// the first k-block without one: y = chain
    Zero,
    /// a later k-block: y = y + chain
    Add,
}

/// R output channels × 16·V outputs: for each, one FMA chain over the taps `off` (in order) from
/// 0, then `init`. `x` is the padded input at the tile's first output, `w` the packed weights at
/// the block's first tap, `y` the tile's first output in channel-major rows of `y_rs`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const V: usize>(x: *const f32, off: &[usize], w: *const f32, init: Init, y: *mut f32, y_rs: usize) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for (i, &o) in off.iter().enumerate() {
        let xs = x.add(o);
        let mut xv = [_mm512_setzero_ps(); V];
        for (v, xv_v) in xv.iter_mut().enumerate() {
            *xv_v = _mm512_loadu_ps(xs.add(16 * v));
        }
        let wi = w.add(i * R);
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let wr = _mm512_set1_ps(*wi.add(r));
            for v in 0..V {
                acc_r[v] = _mm512_fmadd_ps(wr, xv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &a) in acc_r.iter().enumerate() {
            let yp = y.add(r * y_rs + 16 * v);
            let out = match init {
                Init::Bias(b) => _mm512_add_ps(_mm512_set1_ps(b[r]), a),
                Init::Zero => a,
                Init::Add => _mm512_add_ps(_mm512_loadu_ps(yp), a),
            };
            _mm512_storeu_ps(yp, out);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile<const V: usize>(_: *const f32, _: &[usize], _: *const f32, _: Init, _: *mut f32, _: usize) {
    unreachable!("the direct convolution runs only where the CPU has AVX-512")
}
