//! The forward pass of a stride-1 convolution without im2col, on AVX-512, giving bitwise the
//! values of the im2col + gemm path it replaces (`conv2d::forward`).
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

use super::conv2d::Geom;

/// Output channels per tile (C_out must be a multiple).
const R: usize = 8;
/// The most zmm vectors of outputs per tile.
const V_MAX: usize = 3;

/// zmm vectors per tile for `n` positions: 3, unless tiles of 3 compute over 16 more past the
/// end than tiles of 2 (a 7x7 map, 63 padded positions: 96 on tiles of 3, 64 on tiles of 2).
fn vectors_per_tile(n: usize) -> usize {
    let over = |v: usize| n.div_ceil(16 * v) * 16 * v - n;
    if over(3) <= over(2) + 16 {
        3
    } else {
        2
    }
}

/// The k-blocking of the gemm crate (0.19) for f32 on AVX-512 (MR 64, NR 6), for a product of
/// m × n outputs and depth k, after its transposition (m = positions, n = output channels).
pub(super) fn gemm_kc(m: usize, n: usize, k: usize) -> usize {
    if m <= 64 && n <= 64 {
        k.min(512)
    } else {
        gemm_common::cache::kernel_params(m, n, k, 64, 6, std::mem::size_of::<f32>()).kc
    }
}

/// Whether the direct kernels run here: the CPU has AVX-512 and DLHIST_SIMD does not cap it.
fn avx512() -> bool {
    super::cpu::simd_level() == super::cpu::SimdLevel::Avx512
}

/// The plan of one convolution's direct forward.
pub(super) struct Fwd {
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
    pub(super) fn new(g: &Geom) -> Option<Self> {
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
    pub(super) fn pack_weights(&self, g: &Geom, w: &[f32]) -> Vec<f32> {
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
    pub(super) fn scratch(&self, g: &Geom) -> (Vec<f32>, Vec<f32>) {
        // the last tile's loads reach past the last plane by up to a tile (≤ 48) + kW floats
        (vec![0f32; g.c_in * self.plane + 16 * V_MAX + g.kw], vec![0f32; g.c_out * self.q])
    }

    /// y_b (C_out, N) for one sample x_b (C_in, H, W); `wk` from `pack_weights`.
    pub(super) fn sample(
        &self,
        g: &Geom,
        x_b: &[f32],
        wk: &[f32],
        bias: Option<&[f32]>,
        y_b: &mut [f32],
        s: &mut (Vec<f32>, Vec<f32>),
    ) {
        let (xpad, ypad) = s;
        // the interior; the border (and the tail) stay the zeros `scratch` wrote
        for c in 0..g.c_in {
            for ih in 0..g.h {
                let dst = (c * self.plane) + (ih + g.pad) * self.wp + g.pad;
                xpad[dst..dst + g.w].copy_from_slice(&x_b[(c * g.h + ih) * g.w..][..g.w]);
            }
        }
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
        for o in 0..g.c_out {
            for oh in 0..g.h_out {
                y_b[(o * g.h_out + oh) * g.w_out..][..g.w_out]
                    .copy_from_slice(&ypad[o * self.q + oh * self.wp..][..g.w_out]);
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

/// col2im for stride 1 on AVX-512, where the CPU runs it (else None and the caller folds):
/// dx_b (C_in, H, W) = the adjoint of im2col of dcol (K, N), dx_b overwritten.
///
/// Gathered rather than scattered: each row of 16-lane vectors of dx_b sums its taps in
/// registers, in the order `col2im` adds them ((ki, kj) lexicographic, from 0), reading each
/// tap's row of dcol with a mask for the columns that fall outside it. Masked-off lanes add +0,
/// which changes no value (a sum that starts at +0 never becomes −0). `col2im`'s scatter
/// re-read and re-wrote each dx row once per tap, and on rows of 7–28 floats the stores stalled
/// the next tap's loads.
pub(super) fn col2im_gather(g: &Geom, dcol: &[f32], dx_b: &mut [f32]) -> Option<()> {
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

/// Input channels per dx tile.
const DX_R: usize = 4;

/// The plan of one "same" stride-1 convolution's input gradient without dcol.
///
/// The path it replaces computes dcol = wᵀ · dy_b with the gemm (each entry one FMA chain
/// over C_out from 0: C_out is a single k-block) and folds dcol onto dx_b (`col2im`: each dx
/// entry is 0 plus its taps' entries in (ki, kj) order). Here each tap's chain is computed in
/// registers and added at once: dx_b's positions run flat (q = ih·W + iw, 32 or 48 per tile), and tap
/// t = (ki, kj) reads dy_b at the constant offset q + (p − ki)·W + (p − kj), masked per lane
/// where the window leaves the image (a masked lane's chain is +0, which changes no sum).
/// 4 input channels share each load of dy: per tap and output channel, V loads, 4 broadcast
/// weights, 4·V FMAs.
pub(super) struct Dx {
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
    pub(super) fn new(g: &Geom) -> Option<Self> {
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
    pub(super) fn pack_weights(&self, g: &Geom, w: &[f32]) -> Vec<f32> {
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

    /// dx_b (C_in, N), overwritten, from dy_b (C_out, N); `wk` from `pack_weights`.
    pub(super) fn sample(&self, g: &Geom, wk: &[f32], dy_b: &[f32], dx_b: &mut [f32]) {
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
                        dx_b.as_mut_ptr().add(cb * DX_R * n + q0),
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

/// The plan of one 3x3 stride-1 convolution's weight gradient without im2col.
///
/// The gemm it replaces, dw (C_out, K) += dy_b (C_out, N) · colᵀ (N, K) per sample, runs for
/// each (o, k) one FMA chain over the outputs n in order, in the gemm crate's blocks of n
/// (`gemm_kc` of m = K, n = C_out, depth N), each block's chain added onto dw. Here the same
/// chains: 16 output channels are the lanes (dy_b transposed to (N, C_out), one load per n),
/// and col[k, n] is read where im2col would have copied it from, x_pad at
/// c·plane + ki·Wp + kj + q(n), one broadcast per tap. A tile is 9 taps of one or two input channels × 16 or 32
/// output channels: 18 accumulators, 18 FMAs per n.
pub(super) struct Dw {
    wp: usize,
    plane: usize,
    /// q(n) = oh·Wp + ow of each output n
    qn: Vec<usize>,
    /// the gemm crate's blocks of n
    nblocks: Vec<(usize, usize)>,
}

/// One worker's scratch for `Dw`.
pub(super) struct DwScratch {
    xpad: Vec<f32>,
    /// dy_b transposed, (N, C_out)
    dyt: Vec<f32>,
    /// the chunk's dw transposed, (K, C_out)
    dwt: Vec<f32>,
}

impl Dw {
    /// The plan, or None where im2col + gemm must run: other kernels or strides, C_out not a
    /// multiple of 16, or shapes where the gemm crate takes another road.
    pub(super) fn new(g: &Geom) -> Option<Self> {
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

    pub(super) fn scratch(&self, g: &Geom) -> DwScratch {
        DwScratch {
            xpad: vec![0f32; g.c_in * self.plane],
            dyt: vec![0f32; g.n() * g.c_out],
            dwt: vec![0f32; g.k() * g.c_out],
        }
    }

    /// The scratch's dw += this sample's chains.
    pub(super) fn sample(&self, g: &Geom, x_b: &[f32], dy_b: &[f32], s: &mut DwScratch) {
        let (n, c_out) = (g.n(), g.c_out);
        for c in 0..g.c_in {
            for ih in 0..g.h {
                let dst = c * self.plane + (ih + g.pad) * self.wp + g.pad;
                s.xpad[dst..dst + g.w].copy_from_slice(&x_b[(c * g.h + ih) * g.w..][..g.w]);
            }
        }
        for (o, row) in dy_b.chunks(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                s.dyt[j * c_out + o] = v;
            }
        }
        let mut o0 = 0;
        while o0 < c_out {
            let wide = c_out - o0 >= 32;
            let mut c = 0;
            while c < g.c_in {
                let two = !wide && c + 1 < g.c_in;
                for &(n0, n1) in &self.nblocks {
                    let (x, dy, dw) =
                        (&s.xpad[c * self.plane..], &s.dyt[n0 * c_out + o0..], &mut s.dwt[c * 9 * c_out + o0..]);
                    let qn = &self.qn[n0..n1];
                    // SAFETY: Dw::new checked the CPU has AVX-512; every read is inside x_pad's
                    // planes c (and c + 1) and dy's rows n0..n1, every write inside dw's rows of
                    // those channels' taps (lanes o0..o0 + 16·VO of C_out)
                    unsafe {
                        match (wide, two) {
                            (true, _) => dw_tile::<2, 1>(
                                x.as_ptr(),
                                self.plane,
                                self.wp,
                                qn,
                                dy.as_ptr(),
                                c_out,
                                dw.as_mut_ptr(),
                            ),
                            (false, true) => dw_tile::<1, 2>(
                                x.as_ptr(),
                                self.plane,
                                self.wp,
                                qn,
                                dy.as_ptr(),
                                c_out,
                                dw.as_mut_ptr(),
                            ),
                            (false, false) => dw_tile::<1, 1>(
                                x.as_ptr(),
                                self.plane,
                                self.wp,
                                qn,
                                dy.as_ptr(),
                                c_out,
                                dw.as_mut_ptr(),
                            ),
                        }
                    }
                }
                c += if two { 2 } else { 1 };
            }
            o0 += if wide { 32 } else { 16 };
        }
    }

    /// dw (C_out, K) = the scratch's sums, which start again from 0.
    pub(super) fn finish(&self, g: &Geom, s: &mut DwScratch, dw: &mut [f32]) {
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

#[cfg(test)]
mod tests {
    use super::super::conv2d::{backward, forward, Geom};
    use super::*;
    use candle_core::{DType, Device, Tensor};

    /// Both tile widths run in the test below: the U-Net's 7x7 maps take tiles of 2 vectors
    /// (forward: 7·9 = 63 padded positions; dx: 49), the 14x14 and 28x28 ones tiles of 3.
    #[test]
    fn tile_widths_follow_the_map() {
        assert_eq!([63, 49, 14 * 16, 196, 28 * 30, 784].map(vectors_per_tile), [2, 2, 3, 3, 3, 3]);
    }

    /// The fast paths (this kernel, and the 1x1 convolutions that skip the col copies) against
    /// im2col + gemm for every shape: the same bits, forward and all three gradients. The
    /// shapes are the diffusion U-Net's (the 14 px 64 → 64 and 96 → 32 layers have K > 512,
    /// which the gemm crate cuts into two blocks of 288 and 432; the 7 px ones cut at 512, its
    /// rule for small products), LeNet's 5x5, odd sizes and paddings, and a stem of one channel.
    #[test]
    fn the_fast_paths_give_the_bits_of_im2col_and_gemm() {
        // (C_in, H, W, C_out, kH, kW, padding, direct forward expected where the CPU has AVX-512)
        let cases = [
            (1, 28, 28, 16, 3, 3, 1, true),
            (16, 28, 28, 16, 3, 3, 1, true),
            (48, 28, 28, 16, 3, 3, 1, true),
            (16, 14, 14, 32, 3, 3, 1, true),
            (64, 14, 14, 64, 3, 3, 1, true),
            (96, 14, 14, 32, 3, 3, 1, true),
            (32, 7, 7, 64, 3, 3, 1, true),
            (64, 7, 7, 64, 3, 3, 1, true),
            (6, 12, 12, 16, 5, 5, 0, true),
            (3, 9, 7, 8, 3, 3, 2, true),
            (5, 6, 11, 24, 3, 2, 1, true),
            (48, 28, 28, 16, 1, 1, 0, true),
            (96, 14, 14, 32, 1, 1, 0, true),
            (16, 28, 28, 1, 3, 3, 1, false),
            (16, 4, 4, 16, 3, 3, 1, false),
        ];
        // one thread: the direct kernels run for a batch of 3 (with more threads than chunks the
        // gemm's own threading takes over)
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut rng = crate::rng::Rng::new(11);
        for (c_in, h, w, c_out, kh, kw, pad, direct) in cases {
            let b = 3;
            let x = Tensor::zeros((b, c_in, h, w), DType::F32, &Device::Cpu).unwrap();
            let wt = Tensor::zeros((c_out, c_in, kh, kw), DType::F32, &Device::Cpu).unwrap();
            let g = Geom::new(&x, &wt, None, 1, pad).unwrap();
            let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
            let (xs, ws, bs, dy) = (randn(b * g.x_len()), randn(c_out * g.k()), randn(c_out), randn(b * c_out * g.n()));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let what = format!("{c_in}x{h}x{w} -> {c_out}, {kh}x{kw} p {pad}");
            assert_eq!(Fwd::new(&g).is_some(), direct && avx512(), "{what}: which forward");
            let dw_direct = (kh, kw) == (3, 3) && c_out % 16 == 0 && c_in * 9 * c_out > 256;
            assert_eq!(Dw::new(&g).is_some(), dw_direct && avx512(), "{what}: which dw");
            let dx_direct =
                2 * pad + 1 == kh && kh == kw && c_in % 4 == 0 && c_out > 2 && c_in * kh * kw * h * w > 256 && kh > 1;
            assert_eq!(Dx::new(&g).is_some(), dx_direct && avx512(), "{what}: which dx");
            pool.install(|| {
                for bias in [Some(&bs[..]), None] {
                    let (fast, base) = (forward(&g, &xs, &ws, bias, true), forward(&g, &xs, &ws, bias, false));
                    assert!(bits(&fast) == bits(&base), "{what}, bias {}: y differs", bias.is_some());
                }
                let (fast, base) =
                    (backward(&g, &xs, &ws, &dy, [true; 3], true), backward(&g, &xs, &ws, &dy, [true; 3], false));
                for (name, f, b) in [("dx", &fast.dx, &base.dx), ("dw", &fast.dw, &base.dw), ("db", &fast.db, &base.db)]
                {
                    assert!(bits(f.as_ref().unwrap()) == bits(b.as_ref().unwrap()), "{what}: {name} differs");
                }
            });
        }
    }
}
