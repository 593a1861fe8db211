//! The input gradient of a stride-1 convolution without dcol, on AVX-512 (`Dx`), and col2im
//! gathered in registers where the kernel does not apply (`col2im_gather`); bitwise the
//! values of dcol = wᵀ · dy through the gemm and `conv2d::col2im`.

use super::{avx512, vectors_per_tile};
use crate::ops::conv2d::Geom;
use std::mem::MaybeUninit;

/// Input channels per dx tile.
const DX_R: usize = 4;

/// The plan of one "same" stride-1 convolution's input gradient without dcol.
///
/// The path it replaces computes dcol = wᵀ · dy_b with the gemm (each entry one FMA chain
/// over C_out from 0: C_out is a single k-block) and folds dcol onto dx_b (`col2im`: each dx
/// entry is 0 plus its taps' entries in (ki, kj) order). Here each tap's chain is computed in
/// registers and added at once: dx_b's positions run flat (q = ih·W + iw, 32 or 48 per tile),
/// and tap t = (ki, kj) reads dy_b at the constant offset q + (p − ki)·W + (p − kj), masked per
/// lane where the window leaves the image (a masked lane's chain is +0, which changes no sum).
/// 4 input channels share each load of dy: per tap and output channel, V loads, 4 broadcast
/// weights, 4·V FMAs.
pub(in crate::ops) struct Dx {
    /// per tap, the offset (p − ki)·W + (p − kj)
    d: Vec<isize>,
    /// per tile and tap, the lane masks of its V vectors
    masks: Vec<u16>,
    /// zmm vectors per tile
    v: usize,
}

impl Dx {
    /// The plan, or None where dcol and col2im must run: not a "same" stride-1 convolution,
    /// C_in not a multiple of 4, a 1x1 kernel (no dcol to skip), or shapes where the gemm crate
    /// takes another road (gemv, its short kernels, C_out over one k-block).
    pub(in crate::ops) fn new(g: &Geom) -> Option<Self> {
        let (n, k, taps) = (g.n(), g.k(), g.kh * g.kw);
        let same = g.stride == 1 && g.h_out == g.h && g.w_out == g.w;
        if !avx512()
            || !same
            || !g.c_in.is_multiple_of(DX_R)
            || g.c_out <= 2
            || g.c_out > 512
            || n <= 1
            || k * n <= 256
            || taps == 1
        {
            return None;
        }
        let (p, h, w) = (g.pad as isize, g.h as isize, g.w as isize);
        let mut d = Vec::with_capacity(taps);
        let mut masks = vec![];
        let vt = vectors_per_tile(n);
        for q0 in (0..n).step_by(16 * vt) {
            for ki in 0..g.kh as isize {
                for kj in 0..g.kw as isize {
                    let mut m = vec![0u16; vt];
                    for (v, m_v) in m.iter_mut().enumerate() {
                        for l in 0..16 {
                            let q = (q0 + 16 * v + l) as isize;
                            let (ih, iw) = (q / w, q % w);
                            let (oh, ow) = (ih + p - ki, iw + p - kj);
                            if q < (n as isize) && (0..h).contains(&oh) && (0..w).contains(&ow) {
                                *m_v |= 1 << l;
                            }
                        }
                    }
                    masks.extend(m);
                    if q0 == 0 {
                        d.push((p - ki) * w + (p - kj));
                    }
                }
            }
        }
        Some(Self { d, masks, v: vt })
    }

    /// w (C_out, K) regrouped for the tiles: (C_in / 4, taps, C_out, 4).
    pub(in crate::ops) fn pack_weights(&self, g: &Geom, w: &[f32]) -> Vec<f32> {
        let (k, taps) = (g.k(), g.kh * g.kw);
        let mut wk = vec![0f32; g.c_out * k];
        for (o, row) in w.chunks(k).enumerate() {
            for (kk, &v) in row.iter().enumerate() {
                let (c, t) = (kk / taps, kk % taps);
                wk[(((c / DX_R) * taps + t) * g.c_out + o) * DX_R + c % DX_R] = v;
            }
        }
        wk
    }

    /// dx_b (C_in, N), every entry written (it may be uninitialised), from dy_b (C_out, N);
    /// `wk` from `pack_weights`.
    pub(in crate::ops) fn sample(&self, g: &Geom, wk: &[f32], dy_b: &[f32], dx_b: &mut [MaybeUninit<f32>]) {
        let (n, taps) = (g.n(), g.kh * g.kw);
        assert!(dy_b.len() >= g.c_out * n && dx_b.len() >= g.c_in * n && wk.len() >= g.c_out * g.k());
        for cb in 0..g.c_in / DX_R {
            for (ti, q0) in (0..n).step_by(16 * self.v).enumerate() {
                let masks = &self.masks[ti * taps * self.v..][..taps * self.v];
                // SAFETY: Dx::new checked the CPU has AVX-512; the loads of dy are masked to
                // its rows (a masked lane is not read), the stores to the tile's positions < N
                unsafe {
                    let (dy, w, dx) = (
                        dy_b.as_ptr().add(q0),
                        wk[cb * taps * g.c_out * DX_R..].as_ptr(),
                        dx_b.as_mut_ptr().cast::<f32>().add(cb * DX_R * n + q0),
                    );
                    match self.v {
                        3 => dx_tile::<3>(dy, n, g.c_out, &self.d, masks, w, dx, n - q0),
                        _ => dx_tile::<2>(dy, n, g.c_out, &self.d, masks, w, dx, n - q0),
                    }
                }
            }
        }
    }
}

/// 4 input channels × 16·V positions of dx: per tap in order, one FMA chain over the output
/// channels from 0, added onto the sums. `dy` is dy_b at the tile's first position (rows of
/// `n`), `w` the packed weights of the 4 channels, `dx` the first channel's first position.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn dx_tile<const V: usize>(
    dy: *const f32,
    n: usize,
    c_out: usize,
    d: &[isize],
    masks: &[u16],
    w: *const f32,
    dx: *mut f32,
    left: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; DX_R];
    for (t, (&dt, m)) in d.iter().zip(masks.chunks(V)).enumerate() {
        if m.iter().all(|&mv| mv == 0) {
            continue; // every chain +0: nothing changes
        }
        let mut chain = [[_mm512_setzero_ps(); V]; DX_R];
        let wt = w.add(t * c_out * DX_R);
        for o in 0..c_out {
            let src = dy.wrapping_offset((o * n) as isize + dt);
            let mut v = [_mm512_setzero_ps(); V];
            for (j, v_j) in v.iter_mut().enumerate() {
                *v_j = _mm512_maskz_loadu_ps(m[j], src.wrapping_add(16 * j));
            }
            let wo = wt.add(o * DX_R);
            for (r, chain_r) in chain.iter_mut().enumerate() {
                let wr = _mm512_set1_ps(*wo.add(r));
                for j in 0..V {
                    chain_r[j] = _mm512_fmadd_ps(wr, v[j], chain_r[j]);
                }
            }
        }
        for (acc_r, chain_r) in acc.iter_mut().zip(&chain) {
            for j in 0..V {
                acc_r[j] = _mm512_add_ps(acc_r[j], chain_r[j]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (j, &a) in acc_r.iter().enumerate() {
            let l = left.saturating_sub(16 * j).min(16);
            let m: __mmask16 = if l == 16 { !0 } else { ((1u32 << l) - 1) as __mmask16 };
            _mm512_mask_storeu_ps(dx.add(r * n + 16 * j), m, a);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn dx_tile<const V: usize>(
    _: *const f32,
    _: usize,
    _: usize,
    _: &[isize],
    _: &[u16],
    _: *const f32,
    _: *mut f32,
    _: usize,
) {
    unreachable!("the direct convolution runs only where the CPU has AVX-512")
}

/// col2im for stride 1 on AVX-512, where the CPU runs it (else None and the caller folds):
/// dx_b (C_in, H, W) = the adjoint of im2col of dcol (K, N), dx_b overwritten.
///
/// Gathered rather than scattered: each row of 16-lane vectors of dx_b sums its taps in
/// registers, in the order `col2im` adds them ((ki, kj) lexicographic, from 0), reading each
/// tap's row of dcol with a mask for the columns that fall outside it. Masked-off lanes add +0,
/// which changes no value (a sum that starts at +0 never becomes −0). `col2im`'s scatter
/// re-read and re-wrote each dx row once per tap, and on rows of 7–28 floats the stores stalled
/// the next tap's loads.
pub(in crate::ops) fn col2im_gather(g: &Geom, dcol: &[f32], dx_b: &mut [f32]) -> Option<()> {
    if !avx512() || g.stride != 1 {
        return None;
    }
    assert!(dcol.len() >= g.k() * g.n() && dx_b.len() >= g.x_len());
    // SAFETY: the CPU has AVX-512; the reads are masked to dcol's rows, the writes to dx_b's
    #[cfg(target_arch = "x86_64")]
    unsafe {
        col2im_gather_avx512(g, dcol.as_ptr(), dx_b.as_mut_ptr())
    };
    Some(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn col2im_gather_avx512(g: &Geom, dcol: *const f32, dx: *mut f32) {
    use std::arch::x86_64::*;
    let (n, p) = (g.n(), g.pad as isize);
    let (w, w_out, h_out) = (g.w as isize, g.w_out as isize, g.h_out as isize);
    // lanes l of the vector at column j0 that tap column kj reads from inside dcol's row:
    // 0 <= j0 + l + p - kj < W_out, and j0 + l < W
    let mask = |j0: isize, kj: isize| -> __mmask16 {
        let lo = (kj - p - j0).max(0);
        let hi = (w - j0).min(w_out + kj - p - j0).min(16);
        if hi <= lo {
            0
        } else {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
        }
    };
    for c in 0..g.c_in {
        for ih in 0..g.h as isize {
            for j0 in (0..w).step_by(16) {
                let mut acc = _mm512_setzero_ps();
                for ki in 0..g.kh as isize {
                    let oh = ih + p - ki;
                    if oh < 0 || oh >= h_out {
                        continue;
                    }
                    for kj in 0..g.kw as isize {
                        let m = mask(j0, kj);
                        let row = dcol.add(((c * g.kh + ki as usize) * g.kw + kj as usize) * n);
                        // column j0 + p - kj of output row oh (negative or past the row where masked)
                        let src = row.wrapping_offset(oh * w_out + j0 + p - kj);
                        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, src));
                    }
                }
                let out_m: __mmask16 = if w - j0 >= 16 { !0 } else { ((1u32 << (w - j0)) - 1) as __mmask16 };
                _mm512_mask_storeu_ps(dx.add((c * g.h) * g.w + (ih * w + j0) as usize), out_m, acc);
            }
        }
    }
}
