//! The weight gradient of a 3x3 stride-1 convolution without im2col, on AVX-512; bitwise the
//! values of dw += dy · colᵀ through the gemm.

use super::{avx512, gemm_kc};
use crate::ops::conv2d::Geom;

/// The plan of one 3x3 stride-1 convolution's weight gradient without im2col.
///
/// The gemm it replaces, dw (C_out, K) += dy_b (C_out, N) · colᵀ (N, K) per sample, runs for
/// each (o, k) one FMA chain over the outputs n in order, in the gemm crate's blocks of n
/// (`gemm_kc` of m = K, n = C_out, depth N), each block's chain added onto dw. Here the same
/// chains: 16 output channels are the lanes (dy_b transposed to (N, C_out), one load per n),
/// and col[k, n] is read where im2col would have copied it from, x_pad at
/// c·plane + ki·Wp + kj + q(n), one broadcast per tap. A tile is 9 taps of one or two input channels × 16 or 32
/// output channels: 18 accumulators, 18 FMAs per n.
pub(in crate::ops) struct Dw {
    wp: usize,
    plane: usize,
    /// q(n) = oh·Wp + ow of each output n
    qn: Vec<usize>,
    /// the gemm crate's blocks of n
    nblocks: Vec<(usize, usize)>,
}

/// One worker's scratch for `Dw`.
pub(in crate::ops) struct DwScratch {
    xpad: Vec<f32>,
    /// dy_b transposed, (N, C_out)
    dyt: Vec<f32>,
    /// the chunk's dw transposed, (K, C_out)
    dwt: Vec<f32>,
}

impl Dw {
    /// The plan, or None where im2col + gemm must run: other kernels or strides, C_out not a
    /// multiple of 16, or shapes where the gemm crate takes another road.
    pub(in crate::ops) fn new(g: &Geom) -> Option<Self> {
        let (n, k) = (g.n(), g.k());
        if !avx512()
            || g.stride != 1
            || (g.kh, g.kw) != (3, 3)
            || !g.c_out.is_multiple_of(16)
            || n <= 2
            || k * g.c_out <= 256
        {
            return None;
        }
        let (wp, hp) = (g.w + 2 * g.pad, g.h + 2 * g.pad);
        let qn = (0..n).map(|j| (j / g.w_out) * wp + j % g.w_out).collect();
        let kc = gemm_kc(k, g.c_out, n);
        let nblocks = (0..n).step_by(kc).map(|n0| (n0, (n0 + kc).min(n))).collect();
        Some(Self { wp, plane: wp * hp, qn, nblocks })
    }

    pub(in crate::ops) fn scratch(&self, g: &Geom) -> DwScratch {
        DwScratch {
            xpad: vec![0f32; g.c_in * self.plane],
            dyt: vec![0f32; g.n() * g.c_out],
            dwt: vec![0f32; g.k() * g.c_out],
        }
    }

    /// The scratch's dw += this sample's chains, and db += its rows' sums where given (from the
    /// same pass over dy_b that transposes it, `dy_pass`).
    pub(in crate::ops) fn sample(
        &self,
        g: &Geom,
        x_b: &[f32],
        dy_b: &[f32],
        s: &mut DwScratch,
        db: Option<&mut [f32]>,
    ) {
        let (n, c_out) = (g.n(), g.c_out);
        super::pad_into(g, x_b, self.wp, self.plane, &mut s.xpad);
        super::dy_pass(dy_b, c_out, n, Some(&mut s.dyt), db);
        let mut o0 = 0;
        while o0 < c_out {
            let wide = c_out - o0 >= 32;
            let mut c = 0;
            while c < g.c_in {
                let two = !wide && c + 1 < g.c_in;
                let tile = match (wide, two) {
                    (true, _) => dw_tile::<2, 1>,
                    (false, true) => dw_tile::<1, 2>,
                    (false, false) => dw_tile::<1, 1>,
                };
                for &(n0, n1) in &self.nblocks {
                    let (x, dy, dw) =
                        (&s.xpad[c * self.plane..], &s.dyt[n0 * c_out + o0..], &mut s.dwt[c * 9 * c_out + o0..]);
                    let qn = &self.qn[n0..n1];
                    // SAFETY: Dw::new checked the CPU has AVX-512; every read is inside x_pad's
                    // planes c (and c + 1) and dy's rows n0..n1, every write inside dw's rows of
                    // those channels' taps (lanes o0..o0 + 16·VO of C_out)
                    unsafe { tile(x.as_ptr(), self.plane, self.wp, qn, dy.as_ptr(), c_out, dw.as_mut_ptr()) }
                }
                c += if two { 2 } else { 1 };
            }
            o0 += if wide { 32 } else { 16 };
        }
    }

    /// dw (C_out, K) = the scratch's sums, which start again from 0.
    pub(in crate::ops) fn finish(&self, g: &Geom, s: &mut DwScratch, dw: &mut [f32]) {
        let (k, c_out) = (g.k(), g.c_out);
        for (kk, row) in s.dwt.chunks_mut(c_out).enumerate() {
            for (o, v) in row.iter_mut().enumerate() {
                dw[o * k + kk] = *v;
                *v = 0.0;
            }
        }
    }
}

/// 16·VO output channels × the 9 taps of CB input channels: one FMA chain over the outputs
/// `qn` each, from 0, then added onto dw. `x` is x_pad at the first channel's plane, `dy` the
/// transposed dy at the block's first output and the tile's first channel, `dw` the transposed
/// dw at the first channel's first tap and the tile's first output channel (rows of C_out).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dw_tile<const VO: usize, const CB: usize>(
    x: *const f32,
    plane: usize,
    wp: usize,
    qn: &[usize],
    dy: *const f32,
    c_out: usize,
    dw: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[[_mm512_setzero_ps(); VO]; 9]; CB];
    for (i, &q) in qn.iter().enumerate() {
        let d = dy.add(i * c_out);
        let mut dv = [_mm512_setzero_ps(); VO];
        for (v, dv_v) in dv.iter_mut().enumerate() {
            *dv_v = _mm512_loadu_ps(d.add(16 * v));
        }
        for (cb, acc_c) in acc.iter_mut().enumerate() {
            let xq = x.add(cb * plane + q);
            for ki in 0..3 {
                for kj in 0..3 {
                    let xb = _mm512_set1_ps(*xq.add(ki * wp + kj));
                    for v in 0..VO {
                        acc_c[ki * 3 + kj][v] = _mm512_fmadd_ps(xb, dv[v], acc_c[ki * 3 + kj][v]);
                    }
                }
            }
        }
    }
    for (cb, acc_c) in acc.iter().enumerate() {
        for (t, acc_t) in acc_c.iter().enumerate() {
            for (v, &a) in acc_t.iter().enumerate() {
                let p = dw.add((cb * 9 + t) * c_out + 16 * v);
                _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a));
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dw_tile<const VO: usize, const CB: usize>(
    _: *const f32,
    _: usize,
    _: usize,
    _: &[usize],
    _: *const f32,
    _: usize,
    _: *mut f32,
) {
    unreachable!("the direct convolution runs only where the CPU has AVX-512")
}
