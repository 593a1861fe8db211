//! 2-D convolution (cross-correlation, as PyTorch and candle) via im2col + gemm, forward and
//! both backward passes.
//!
//! Shapes: x (B, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out) -> y (B, C_out, H_out, W_out)
//! with H_out = (H + 2p - kH) / s + 1 (floor), W_out likewise. Write K = C_in·kH·kW and
//! N = H_out·W_out. Per sample, col = im2col(x_b) is (K, N) and
//!
//!   y_b  = w · col + b          (C_out, K)·(K, N), the bias pre-filled into y_b, gemm adds onto it
//!   dw  += dy_b · colᵀ          (C_out, N)·(N, K), summed over the batch
//!   db  += Σ_n dy_b             (C_out)
//!   dx_b = col2im(wᵀ · dy_b)    (K, C_out)·(C_out, N), folded back onto (C_in, H, W)
//!
//! candle's own conv2d backward computes dx with a direct conv_transpose2d loop, and computes it
//! even when x is the input image; here every pass is a gemm and dx is skipped when nothing
//! upstream needs it. The col buffer is recomputed in the backward (it is cheap next to the
//! gemms) rather than kept alive between the passes. Work is split over the batch with rayon;
//! each worker owns its col buffer and, in the backward, each fixed-size chunk of the batch its own
//! dw/db partial sums (`BWD_CHUNK`: the sums do not depend on the thread count).
//!
//! On AVX-512, stride-1 convolutions skip the copies: `conv2d_direct`'s kernels read x (padded)
//! in place for y and dw, and sum dx's taps in registers, computing bitwise what im2col + gemm
//! computes here (`forward` and `backward` take `fast: false` to run this path for the tests).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::conv2d_direct::{dy_pass, Dw, DwScratch, Dx, Fwd};
use super::cpu;
use std::mem::MaybeUninit;

/// y = conv2d(x, w) + b with square stride and zero padding, dilation 1, one group.
/// x (B, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out) -> (B, C_out, H_out, W_out). f32 on CPU.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`super::fused_on`)
    if !super::fused_on(x.device(), false) {
        return conv2d_ref(x, w, b, stride, padding);
    }
    let g = Geom::new(x, w, b, stride, padding)?;
    super::flops::add(super::flops::product(g.b * g.h_out * g.w_out, g.c_in * g.kh * g.kw, g.c_out));
    // the kernels index contiguous row-major buffers; this is a no-op for the usual inputs
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => super::arg(&x).apply_op3(&super::arg(&w), &super::arg(&b.contiguous()?), Conv2d { g }),
        None => super::arg(&x).apply_op2(&super::arg(&w), Conv2d { g }),
    }
}

/// The reference: candle's `Tensor::conv2d` (whose backward is its direct loop) plus a broadcast
/// bias add.
///
/// candle 0.11.1's conv2d backward derives conv_transpose2d's output padding, (H + 2p - kH) mod s,
/// from the height alone, so dx comes out with the wrong width (and `backward` fails) when the
/// width's remainder differs. In that case only, the reference zero-pads explicitly and crops the
/// rows and columns no window reads, which makes both remainders 0; pad and narrow have backward.
pub fn conv2d_ref(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let (hp, wp) = (h + 2 * padding, wd + 2 * padding); // the padded input
    let y = if stride == 0 || hp < kh || wp < kw || (hp - kh) % stride == (wp - kw) % stride {
        x.conv2d(w, padding, stride, 1, 1)? // (B, C_out, H_out, W_out); candle rejects bad sizes
    } else {
        let (rh, rw) = ((hp - kh) % stride, (wp - kw) % stride); // rows / columns no window reads
        let x_pad = x.pad_with_zeros(2, padding, padding)?.pad_with_zeros(3, padding, padding)?;
        x_pad.narrow(2, 0, hp - rh)?.narrow(3, 0, wp - rw)?.conv2d(w, 0, stride, 1, 1)?
    };
    let (bs, c_out, h_out, w_out) = y.dims4()?;
    let (_, c_in, _, _) = w.dims4()?;
    super::flops::add(super::flops::product(bs * h_out * w_out, c_in * kh * kw, c_out));
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// The sizes of one convolution, checked once in the public wrapper.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub(super) b: usize,
    pub(super) c_in: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c_out: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) h_out: usize,
    pub(super) w_out: usize,
}

impl Geom {
    pub(super) fn new(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, pad: usize) -> Result<Self> {
        for (name, t) in [("x", Some(x)), ("w", Some(w)), ("b", b)] {
            if let Some(t) = t {
                if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
                    bail!("conv2d: only f32 on the CPU is implemented, {name} is {:?} on {:?}", t.dtype(), t.device())
                }
            }
        }
        let (bs, c_in, h, wd) = x.dims4()?;
        let (c_out, c_in_w, kh, kw) = w.dims4()?;
        if c_in != c_in_w {
            bail!("conv2d: x has {c_in} channels but w expects {c_in_w}")
        }
        if let Some(b) = b {
            if b.dims() != [c_out] {
                bail!("conv2d: bias shape {:?}, expected [{c_out}]", b.dims())
            }
        }
        if stride == 0 || kh == 0 || kw == 0 || c_in == 0 {
            bail!(
                "conv2d: stride, kernel and channels must be positive (stride {stride}, kernel {kh}x{kw}, C_in {c_in})"
            )
        }
        if h + 2 * pad < kh || wd + 2 * pad < kw {
            bail!("conv2d: kernel {kh}x{kw} is larger than the padded input {}x{}", h + 2 * pad, wd + 2 * pad)
        }
        let (h_out, w_out) = ((h + 2 * pad - kh) / stride + 1, (wd + 2 * pad - kw) / stride + 1);
        Ok(Self { b: bs, c_in, h, w: wd, c_out, kh, kw, stride, pad, h_out, w_out })
    }

    /// rows of col: C_in·kH·kW
    pub(super) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    /// columns of col: the output positions of one sample
    pub(super) fn n(&self) -> usize {
        self.h_out * self.w_out
    }
    pub(super) fn x_len(&self) -> usize {
        self.c_in * self.h * self.w
    }
    /// Input channels per block of the backward's dx (`backward`), where it is blocked: stride 1
    /// (`col2im_padded`), and products big enough that the gemm crate runs its general kernel
    /// on every block as on the whole (N > 64; more than 256 outputs per block).
    fn dx_channel_block(&self) -> Option<usize> {
        let (n, taps) = (self.n(), self.kh * self.kw);
        if self.stride != 1 || n <= 64 || taps * n <= 256 || self.pointwise() {
            return None;
        }
        // about 128 KB of dcol per block
        Some((32 * 1024 / (taps * n)).clamp(1, self.c_in))
    }

    /// A 1x1 convolution with stride 1 and no padding, whose col is x_b itself (no copy).
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    fn y_shape(&self) -> Shape {
        Shape::from((self.b, self.c_out, self.h_out, self.w_out))
    }

    /// The output columns `o` whose input column `o·s + kj - p` lies inside 0..W, as a range
    /// lo..hi (empty when the tap only ever sees padding).
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.pad);
        let lo = if kj >= p { 0 } else { (p - kj).div_ceil(s) };
        let hi = if self.w + p <= kj { 0 } else { (self.w - 1 + p - kj) / s + 1 };
        let hi = hi.min(self.w_out);
        (lo.min(hi), hi)
    }

    /// The input row `o·s + ki - p` of output row `o`, if it is not padding.
    fn input_row(&self, oh: usize, ki: usize) -> Option<usize> {
        (oh * self.stride + ki).checked_sub(self.pad).filter(|&ih| ih < self.h)
    }

    /// Threads for one gemm when `tasks` run at once: they already fill the pool when there is a
    /// task per thread.
    fn gemm_par(&self, tasks: usize) -> Parallelism {
        let t = rayon::current_num_threads();
        if tasks >= t {
            Parallelism::None
        } else {
            Parallelism::Rayon(t)
        }
    }
}

/// col (K, N) = the receptive field of every output position of one sample x_b (C_in, H, W),
/// zeros where the window hangs over the padding.
fn im2col(g: &Geom, x_b: &[f32], col: &mut [f32]) {
    if g.stride == 1 && g.w_out == g.w {
        im2col_same(g, x_b, col)
    } else {
        im2col_rows(g, x_b, col)
    }
}

/// im2col for any geometry, an output row at a time.
fn im2col_rows(g: &Geom, x_b: &[f32], col: &mut [f32]) {
    let n = g.n();
    for c in 0..g.c_in {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * n..][..n];
                let (lo, hi) = g.valid_cols(kj);
                for oh in 0..g.h_out {
                    let dst = &mut row[oh * g.w_out..][..g.w_out];
                    let Some(ih) = g.input_row(oh, ki) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &x_b[(c * g.h + ih) * g.w..][..g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if g.stride == 1 {
                        // lo + kj >= p by construction of valid_cols
                        let iw = lo + kj - g.pad;
                        dst[lo..hi].copy_from_slice(&src[iw..iw + (hi - lo)]);
                    } else {
                        for (ow, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                            *d = src[ow * g.stride + kj - g.pad];
                        }
                    }
                }
            }
        }
    }
}

/// im2col for stride 1 and W_out = W (a "same" convolution along the rows, 2p = kW - 1: every
/// 3x3 padding-1 layer). Then tap (ki, kj)'s row of col is channel c of x_b, flattened, read
/// at a constant offset d = (ki - p)·W + (kj - p): one contiguous copy of up to N floats, after
/// which the entries that wrapped around a row's end (the columns outside `valid_cols`) and the
/// rows that read above or below the image are zeroed. The generic path's two fills and one
/// copy per output row were library calls on rows of 7–28 floats, and took a quarter of a
/// 56-layer CIFAR net's step (perf). The same values land in the same places: bitwise equal.
fn im2col_same(g: &Geom, x_b: &[f32], col: &mut [f32]) {
    let (n, hw, w_out) = (g.n(), g.h * g.w, g.w_out);
    let p = g.pad as isize;
    for c in 0..g.c_in {
        let src = &x_b[c * hw..][..hw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * n..][..n];
                let d = (ki as isize - p) * g.w as isize + (kj as isize - p);
                // row[j] = src[j + d] where 0 <= j + d < H·W
                let j0 = (-d).clamp(0, n as isize) as usize;
                let j1 = (hw as isize - d).clamp(j0 as isize, n as isize) as usize;
                row[..j0].fill(0.0);
                row[j1..].fill(0.0);
                // empty when the tap reads only padding (a 3x3 layer on a 1-row map, say)
                if j0 < j1 {
                    let s0 = (j0 as isize + d) as usize;
                    row[j0..j1].copy_from_slice(&src[s0..s0 + (j1 - j0)]);
                }
                let (lo, hi) = g.valid_cols(kj);
                for oh in 0..g.h_out {
                    let r = &mut row[oh * w_out..][..w_out];
                    if g.input_row(oh, ki).is_none() {
                        r.fill(0.0);
                        continue;
                    }
                    // one or two entries for a 3x3 kernel: plain stores, not library calls
                    let (head, tail) = r.split_at_mut(hi);
                    for v in head[..lo].iter_mut().chain(tail) {
                        *v = 0.0;
                    }
                }
            }
        }
    }
}

/// dx_b (C_in, H, W) += the columns of dcol (K, N) folded back onto the input positions they
/// were read from (the adjoint of im2col; overlapping windows accumulate).
fn col2im(g: &Geom, dcol: &[f32], dx_b: &mut [f32]) {
    let n = g.n();
    for c in 0..g.c_in {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &dcol[((c * g.kh + ki) * g.kw + kj) * n..][..n];
                let (lo, hi) = g.valid_cols(kj);
                for oh in 0..g.h_out {
                    let Some(ih) = g.input_row(oh, ki) else { continue };
                    let src = &row[oh * g.w_out..][..g.w_out];
                    let dst = &mut dx_b[(c * g.h + ih) * g.w..][..g.w];
                    if g.stride == 1 {
                        let iw = lo + kj - g.pad;
                        for (d, s) in dst[iw..iw + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (ow, s) in src.iter().enumerate().take(hi).skip(lo) {
                            dst[ow * g.stride + kj - g.pad] += s;
                        }
                    }
                }
            }
        }
    }
}

/// `col2im` for stride 1: on AVX-512 gathered (`conv2d_direct::col2im_gather`), else onto a
/// zero-padded copy of dx_b (C_in, H + 2p, W + 2p): every output row of a tap adds onto one
/// contiguous run, with no test for the padding (what lands there is dropped), then the
/// interior is copied out. Each entry of dx_b gets the additions `col2im` makes, in its order,
/// from the same 0; dx_b is overwritten (it must be zeros, as `col2im` leaves it for a fresh
/// buffer).
fn col2im_padded(g: &Geom, dcol: &[f32], dx_b: &mut [f32], buf: &mut Vec<f32>) {
    debug_assert_eq!(g.stride, 1);
    if super::conv2d_direct::col2im_gather(g, dcol, dx_b).is_some() {
        return;
    }
    let (n, wp) = (g.n(), g.w + 2 * g.pad);
    let plane = wp * (g.h + 2 * g.pad);
    buf.clear();
    buf.resize(g.c_in * plane, 0.0);
    for (c, bp) in buf.chunks_mut(plane).enumerate() {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &dcol[((c * g.kh + ki) * g.kw + kj) * n..][..n];
                for (oh, src) in row.chunks(g.w_out).enumerate() {
                    let dst = &mut bp[(oh + ki) * wp + kj..][..g.w_out];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
        }
        for ih in 0..g.h {
            dx_b[(c * g.h + ih) * g.w..][..g.w].copy_from_slice(&bp[(ih + g.pad) * wp + g.pad..][..g.w]);
        }
    }
}

/// A strided view of a buffer as a (rows, cols) matrix: element (i, j) is `data[i·rs + j·cs]`.
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// dst (m, n), row-major and contiguous, = [dst +] lhs (m, k) · rhs (k, n).
fn sgemm(dst: &mut [f32], accumulate: bool, lhs: Mat, rhs: Mat, par: Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "sgemm: inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    // the gemm crate reads through raw pointers: check every index it can touch lies in bounds
    let in_bounds = |a: &Mat| a.rows == 0 || a.cols == 0 || a.data.len() > (a.rows - 1) * a.rs + (a.cols - 1) * a.cs;
    assert!(dst.len() >= m * n && in_bounds(&lhs) && in_bounds(&rhs), "sgemm: operand out of bounds");
    // SAFETY: the bounds were checked above; dst does not alias lhs or rhs (it is &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// y (B, C_out, N) = w · im2col(x_b) + b, one sample per rayon task; through the direct kernel
/// (`conv2d_direct`, bitwise the same values) where it applies and each thread gets a sample.
/// `fast` false: im2col and the gemm for every shape (the tests' baseline for the fast paths).
pub(super) fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>, fast: bool) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let direct = Fwd::new(g).filter(|_| fast && g.b >= rayon::current_num_threads());
    if let Some(d) = direct {
        let wk = d.pack_weights(g, w);
        let mut y = cpu::uninit(g.b * g.c_out * n); // no zero fill: each sample's y_b is written in full
        y.par_chunks_mut(g.c_out * n)
            .zip(x.par_chunks(g.x_len()))
            .for_each_init(|| d.scratch(g), |s, (y_b, x_b)| d.sample(g, x_b, &wk, bias, y_b, s));
        // SAFETY: the chunks cover y, and `Fwd::sample` writes every entry of its y_b
        return unsafe { cpu::assume_init(y) };
    }
    let mut y = vec![0f32; g.b * g.c_out * n];
    let par = g.gemm_par(g.b);
    let pointwise = fast && g.pointwise();
    y.par_chunks_mut(g.c_out * n).zip(x.par_chunks(g.x_len())).for_each_init(
        || vec![0f32; if pointwise { 0 } else { k * n }],
        |col, (y_b, x_b)| {
            let col: &[f32] = if pointwise {
                x_b
            } else {
                im2col(g, x_b, col);
                col
            };
            if let Some(bias) = bias {
                for (row, &bo) in y_b.chunks_mut(n).zip(bias) {
                    row.fill(bo);
                }
            }
            let lhs = Mat { data: w, rows: g.c_out, cols: k, rs: k, cs: 1 }; // (C_out, K)
            let rhs = Mat { data: col, rows: k, cols: n, rs: n, cs: 1 }; // (K, N)
            sgemm(y_b, bias.is_some(), lhs, rhs, par);
        },
    );
    y
}

/// The gradients of x, w and b from dy (B, C_out, N); each only when asked for.
pub(super) struct Grads {
    pub(super) dx: Option<Vec<f32>>,
    pub(super) dw: Option<Vec<f32>>,
    pub(super) db: Option<Vec<f32>>,
}

/// One rayon job's scratch in `backward`.
struct Scratch {
    /// im2col of one sample, (K, N)
    col: Vec<f32>,
    /// wᵀ · dy_b, (K, N), or a block of its rows
    dcol: Vec<f32>,
    /// `col2im_padded`'s buffer
    dx_pad: Vec<f32>,
    /// the direct dw's buffers
    dw: Option<DwScratch>,
}

/// Samples per chunk of the backward, whatever the thread count: dw and db are summed per chunk,
/// then the chunks' partials in order, so a chunking that followed the pool's size (as it once
/// did) rounded differently on 1 and 2 threads. A fixed size, like `cpu::for_row_chunks`: 8
/// samples amortise a chunk's partial (C_out·K floats to zero and add) and scratch buffers; 16
/// chunks of a batch of 32 cost the U-Net workload 5% (2 threads).
const BWD_CHUNK: usize = 8;

/// `fast` false: a 1x1 convolution copies col and dcol like any other (the tests' baseline).
pub(super) fn backward(g: &Geom, x: &[f32], w: &[f32], dy: &[f32], need: [bool; 3], fast: bool) -> Grads {
    let [need_dx, need_dw, need_db] = need;
    let (k, n, c_out) = (g.k(), g.n(), g.c_out);
    let chunk = BWD_CHUNK;
    let n_chunks = g.b.div_ceil(chunk);
    // fewer chunks than threads: the gemm crate splits each product's outputs between them
    // (which does not change any sum: its blocking follows the shapes alone)
    let par = g.gemm_par(n_chunks);
    // col and dcol are scratch (every entry written before it is read): one set per rayon job,
    // not per chunk (a 1x1 convolution needs neither: col is x_b and dcol lands on dx_b directly)
    let pointwise = fast && g.pointwise();
    // dw without im2col (`conv2d_direct::Dw`, the same bits) where each thread gets a chunk
    let direct_dw = Dw::new(g).filter(|_| fast && need_dw && n_chunks >= rayon::current_num_threads());
    // and dx without dcol (`conv2d_direct::Dx`, the same bits)
    let direct_dx = Dx::new(g).filter(|_| fast && need_dx && n_chunks >= rayon::current_num_threads());
    let w_dx = direct_dx.as_ref().map(|d| d.pack_weights(g, w));
    let scratch_len = |need: bool| if need && !pointwise { k * n } else { 0 };
    let scratch = || Scratch {
        col: vec![0f32; if direct_dw.is_some() { 0 } else { scratch_len(need_dw) }],
        dcol: vec![0f32; if direct_dx.is_some() { 0 } else { scratch_len(need_dx) }],
        dx_pad: vec![],
        dw: direct_dw.as_ref().map(|d| d.scratch(g)),
    };

    // the samples of chunk `ci`, writing dx into `dx_chunk` (the chunk's slice of dx)
    let work = |sc: &mut Scratch, ci: usize, mut dx_chunk: Option<&mut [MaybeUninit<f32>]>| {
        let Scratch { col, dcol, dx_pad, dw: dw_scratch } = sc;
        let mut dw = vec![0f32; if need_dw { c_out * k } else { 0 }];
        let mut db = vec![0f32; if need_db { c_out } else { 0 }];
        for bi in ci * chunk..((ci + 1) * chunk).min(g.b) {
            let dy_b = &dy[bi * c_out * n..][..c_out * n]; // (C_out, N)
            let db_b = need_db.then_some(&mut db[..]);
            let x_b = &x[bi * g.x_len()..][..g.x_len()];
            if let (Some(d), Some(s)) = (&direct_dw, dw_scratch.as_mut()) {
                d.sample(g, x_b, dy_b, s, db_b); // db from its pass over dy_b
            } else if let Some(db) = db_b {
                if fast {
                    dy_pass(dy_b, c_out, n, None, Some(db)); // the bits of the loop below, 16 rows at once
                } else {
                    for (d, row) in db.iter_mut().zip(dy_b.chunks(n)) {
                        *d += row.iter().sum::<f32>();
                    }
                }
            }
            if direct_dw.is_none() && need_dw {
                let col: &[f32] = if pointwise {
                    x_b
                } else {
                    im2col(g, x_b, col);
                    col
                };
                let lhs = Mat { data: dy_b, rows: c_out, cols: n, rs: n, cs: 1 }; // (C_out, N)
                let rhs = Mat { data: col, rows: n, cols: k, rs: 1, cs: n }; // colᵀ (N, K)
                sgemm(&mut dw, true, lhs, rhs, par);
            }
            if let Some(dx_chunk) = dx_chunk.as_deref_mut() {
                let lhs = Mat { data: w, rows: k, cols: c_out, rs: 1, cs: k }; // wᵀ (K, C_out)
                let rhs = Mat { data: dy_b, rows: c_out, cols: n, rs: n, cs: 1 }; // (C_out, N)
                let dx_b = &mut dx_chunk[(bi - ci * chunk) * g.x_len()..][..g.x_len()];
                if let (Some(d), Some(wk)) = (&direct_dx, &w_dx) {
                    d.sample(g, wk, dy_b, dx_b); // writes all of dx_b
                } else {
                    // the other paths add onto zeros
                    let dx_b = cpu::zero_init(dx_b);
                    if pointwise {
                        // onto the zeros of dx_b: 0 + dcol, as col2im adds it (the same bits, -0 included)
                        sgemm(dx_b, true, lhs, rhs, par);
                    } else if let Some(cb) = g.dx_channel_block().filter(|_| fast) {
                        // cb input channels at a time, so that their rows of dcol are still in L2 when
                        // they are folded (the whole of dcol is 1.4 MB for the U-Net's 48-channel layer).
                        // Each dcol entry is the same sum over C_out (its one k-block), and each dx
                        // entry gets the same additions in the same order.
                        let taps = g.kh * g.kw;
                        for c0 in (0..g.c_in).step_by(cb) {
                            let c1 = (c0 + cb).min(g.c_in);
                            let rows = (c1 - c0) * taps;
                            let lhs = Mat { data: &w[c0 * taps..], rows, cols: c_out, rs: 1, cs: k }; // rows of wᵀ
                            let rhs = Mat { data: dy_b, rows: c_out, cols: n, rs: n, cs: 1 }; // (C_out, N)
                            sgemm(&mut dcol[..rows * n], false, lhs, rhs, par);
                            let gb = Geom { c_in: c1 - c0, ..*g };
                            col2im_padded(&gb, &dcol[..rows * n], &mut dx_b[c0 * g.h * g.w..c1 * g.h * g.w], dx_pad);
                        }
                    } else {
                        sgemm(dcol, false, lhs, rhs, par);
                        col2im(g, dcol, dx_b);
                    }
                }
            }
        }
        if let (Some(d), Some(s)) = (&direct_dw, dw_scratch.as_mut()) {
            d.finish(g, s, &mut dw);
        }
        (dw, db)
    };

    let (dx, partials): (_, Vec<_>) = if need_dx {
        let mut dx = cpu::uninit(g.b * g.x_len()); // zeroed (where needed) per sample by `work`
        let partials = dx
            .par_chunks_mut(chunk * g.x_len())
            .enumerate()
            .map_init(scratch, |s, (ci, d)| work(s, ci, Some(d)))
            .collect();
        // SAFETY: the chunks cover dx, and `work` writes every sample's dx_b in full
        (Some(unsafe { cpu::assume_init(dx) }), partials)
    } else {
        (None, (0..n_chunks).into_par_iter().map_init(scratch, |s, ci| work(s, ci, None)).collect())
    };
    // add up the per-chunk partial sums of dw and db
    let (mut dw, mut db) =
        (vec![0f32; if need_dw { c_out * k } else { 0 }], vec![0f32; if need_db { c_out } else { 0 }]);
    for (dw_p, db_p) in &partials {
        dw.iter_mut().zip(dw_p).for_each(|(a, v)| *a += v);
        db.iter_mut().zip(db_p).for_each(|(a, v)| *a += v);
    }
    Grads { dx, dw: need_dw.then_some(dw), db: need_db.then_some(db) }
}

/// The contiguous f32 data of a CPU storage, or a clear error.
fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("conv2d: {what} must be contiguous") };
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        _ => bail!("conv2d: {what} must be f32, got {:?}", s.dtype()),
    }
}

/// The same for a tensor (made contiguous first): runs `f` on its data while the storage is
/// read-locked.
fn with_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(cs) => f(cpu_f32(cs, l, what)?),
        _ => bail!("conv2d: {what} must be on the CPU"),
    }
}

/// The custom op; applied as an op3 with a bias and as an op2 without.
struct Conv2d {
    g: Geom,
}

impl Conv2d {
    fn bwd_all(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, dy: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let g = &self.g;
        // an input that is neither a variable nor computed from one gets no gradient (the image)
        let need = [x.track_op(), w.track_op(), b.is_some_and(|b| b.track_op())];
        let grads = with_f32(x, "x", |xs| {
            with_f32(w, "w", |ws| with_f32(dy, "dy", |dys| Ok(backward(g, xs, ws, dys, need, true))))
        })?;
        let dev = x.device();
        let dx = grads.dx.map(|v| Tensor::from_vec(v, (g.b, g.c_in, g.h, g.w), dev)).transpose()?;
        let dw = grads.dw.map(|v| Tensor::from_vec(v, (g.c_out, g.c_in, g.kh, g.kw), dev)).transpose()?;
        let db = grads.db.map(|v| Tensor::from_vec(v, g.c_out, dev)).transpose()?;
        Ok([dx, dw, db])
    }
}

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d-im2col"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (cpu_f32(sx, lx, "x")?, cpu_f32(sw, lw, "w")?, cpu_f32(sb, lb, "b")?);
        Ok((CpuStorage::F32(forward(&self.g, x, w, Some(b), true)), self.g.y_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = self.bwd_all(x, w, Some(b), dy)?;
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d-im2col"
    }

    fn cpu_fwd(&self, sx: &CpuStorage, lx: &Layout, sw: &CpuStorage, lw: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (cpu_f32(sx, lx, "x")?, cpu_f32(sw, lw, "w")?);
        Ok((CpuStorage::F32(forward(&self.g, x, w, None, true)), self.g.y_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = self.bwd_all(x, w, None, dy)?;
        Ok((dx, dw))
    }
}

/// The conv workloads, forward + backward: LeNet's two convs on 28x28 (batch 64; the
/// first one's input is the image, which needs no gradient), an AlexNet-like 3x3 stride 1
/// padding 1 layer and the U-Net's 48 → 16 channel one at 28x28.
pub fn benches() -> Result<Vec<super::OpBench>> {
    use candle_core::{Device, Var};
    let dev = Device::Cpu;
    let mut rng = crate::rng::Rng::new(7);
    let mut randn = |dims: &[usize]| {
        let v: Vec<f32> = (0..dims.iter().product()).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, dims, &dev)
    };
    // (name, x dims, x needs a gradient, C_out, kernel, stride, padding)
    let cases = [
        ("conv2d lenet c1", [64, 1, 28, 28], false, 6, 5, 1, 0),
        ("conv2d lenet c2", [64, 6, 12, 12], true, 16, 5, 1, 0),
        ("conv2d alexnet-like 3x3", [64, 32, 14, 14], true, 64, 3, 1, 1),
        // the diffusion U-Net's costliest layer (dec0.conv1: the skip concatenation in)
        ("conv2d unet 3x3 48->16", [64, 48, 28, 28], true, 16, 3, 1, 1),
    ];
    let mut out = Vec::new();
    for (name, xd, x_grad, c_out, k, s, p) in cases {
        let x0 = randn(&xd)?;
        let x = if x_grad { Var::from_tensor(&x0)?.as_tensor().clone() } else { x0 };
        let w = Var::from_tensor(&(randn(&[c_out, xd[1], k, k])? * 0.1)?)?.as_tensor().clone();
        let b = Var::from_tensor(&randn(&[c_out])?)?.as_tensor().clone();
        let y_dims = [xd[0], c_out, (xd[2] + 2 * p - k) / s + 1, (xd[3] + 2 * p - k) / s + 1];
        let r = randn(&y_dims)?;
        let run = move |f: fn(&Tensor, &Tensor, Option<&Tensor>, usize, usize) -> Result<Tensor>| {
            let (x, w, b, r) = (x.clone(), w.clone(), b.clone(), r.clone());
            move || -> Result<()> {
                let loss = (f(&x, &w, Some(&b), s, p)? * &r)?.sum_all()?;
                loss.backward().map(|_| ())
            }
        };
        out.push(super::OpBench {
            name,
            shape: format!("x {xd:?}, w [{c_out}, {}, {k}, {k}], stride {s}, padding {p}", xd[1]),
            fused: Box::new(run(conv2d)),
            reference: Box::new(run(conv2d_ref)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{randn, rel_err};
    use crate::rng::Rng;
    use candle_core::{Device, Var};

    /// Compares y and the gradients of x, w and b of loss = Σ y ⊙ r between the fused op and
    /// candle's conv2d.
    ///
    /// Tolerance 1e-4, relative to the largest entry: both sides sum the same f32 products in a
    /// different order (gemm blocking vs candle's loops). The longest sums are dw's, over B·N
    /// terms (≤ 2·20² = 800 here), whose rounding error grows like √n·eps ≈ 30·6e-8 ≈ 2e-6
    /// typically and n·eps ≈ 5e-5 at worst; an indexing bug gives errors of order 1.
    fn check(x_dims: [usize; 4], c_out: usize, k: (usize, usize), stride: usize, pad: usize, bias: bool) {
        let mut rng = Rng::new((x_dims.iter().sum::<usize>() * 31 + c_out * 7 + stride * 3 + pad) as u64);
        let x = Var::from_tensor(&randn(&mut rng, &x_dims)).unwrap();
        let w = Var::from_tensor(&randn(&mut rng, &[c_out, x_dims[1], k.0, k.1])).unwrap();
        let b = Var::from_tensor(&randn(&mut rng, &[c_out])).unwrap();
        let b = bias.then_some(b.as_tensor());
        let y = conv2d(&x, &w, b, stride, pad).unwrap();
        let y_ref = conv2d_ref(&x, &w, b, stride, pad).unwrap();
        assert_eq!(y.dims(), y_ref.dims(), "output shape");
        let tol = 1e-4;
        let e = rel_err(&y, &y_ref).unwrap();
        assert!(e < tol, "y differs by {e} for x {x_dims:?} k {k:?} s {stride} p {pad}");

        let r = randn(&mut rng, y.dims());
        let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (y_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let mut params = vec![("x", x.as_tensor()), ("w", w.as_tensor())];
        params.extend(b.map(|b| ("b", b)));
        for (name, p) in params {
            let (d, d_ref) = (g.get(p).expect("fused grad"), g_ref.get(p).expect("reference grad"));
            let e = rel_err(d, d_ref).unwrap();
            assert!(e < tol, "d{name} differs by {e} for x {x_dims:?} k {k:?} s {stride} p {pad}");
        }
    }

    #[test]
    fn matches_candle_lenet_shapes() {
        check([3, 1, 28, 28], 6, (5, 5), 1, 0, true);
        check([2, 6, 12, 12], 16, (5, 5), 1, 0, true);
    }

    #[test]
    fn matches_candle_odd_sizes_batch_one() {
        check([1, 3, 7, 9], 5, (3, 3), 1, 0, true);
        check([1, 1, 11, 5], 3, (3, 2), 1, 0, false);
        check([1, 5, 13, 13], 7, (4, 4), 1, 0, true);
    }

    #[test]
    fn matches_candle_with_padding() {
        check([2, 3, 9, 7], 4, (3, 3), 1, 1, true);
        check([3, 2, 6, 5], 5, (5, 5), 1, 2, true);
        check([1, 1, 5, 5], 2, (3, 3), 1, 2, false); // taps that only ever see padding
        check([2, 3, 1, 1], 4, (3, 3), 1, 1, true); // a 1x1 map (a U-Net's deepest level)
        check([2, 2, 1, 4], 3, (3, 3), 1, 1, true);
    }

    #[test]
    fn matches_candle_stride_two() {
        check([2, 3, 9, 9], 4, (3, 3), 2, 0, true);
        check([2, 3, 10, 8], 4, (3, 3), 2, 1, true);
        check([1, 2, 11, 13], 3, (5, 5), 2, 2, true);
        check([3, 1, 8, 7], 2, (2, 2), 2, 0, true);
        // H and W leave different remainders: the reference's explicit-padding path
        check([1, 2, 9, 8], 3, (3, 3), 2, 1, true);
    }

    /// a batch of several backward chunks and an AlexNet-like layer
    #[test]
    fn matches_candle_larger_batch() {
        check([9, 8, 10, 10], 12, (3, 3), 1, 1, true);
    }

    /// The gradients are bitwise the same on pools of 1, 2 and 3 threads: dw and db sum the
    /// batch in chunks, and the chunking must not follow the thread count (it once did, and a
    /// lenet run on 1 and 2 threads then differed). B 20 is 3 chunks; B 4 is one, whose gemms
    /// the gemm crate splits between the threads.
    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        for b in [20, 4] {
            let mut rng = Rng::new(5);
            let x = Var::from_tensor(&randn(&mut rng, &[b, 3, 9, 9])).unwrap();
            let w = Var::from_tensor(&randn(&mut rng, &[4, 3, 3, 3])).unwrap();
            let bias = Var::from_tensor(&randn(&mut rng, &[4])).unwrap();
            let r = randn(&mut rng, &[b, 4, 9, 9]);
            let grads = |threads: usize| -> Vec<Vec<f32>> {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let y = conv2d(&x, &w, Some(&bias), 1, 1).unwrap();
                    let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                    [x.as_tensor(), w.as_tensor(), bias.as_tensor()]
                        .map(|p| g.get(p).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
                        .to_vec()
                })
            };
            let one = grads(1);
            for t in [2, 3] {
                assert!(grads(t) == one, "B {b}: the gradients on {t} threads differ from those on 1");
            }
        }
    }

    /// The "same" fast path writes exactly what the row-by-row im2col writes, including the
    /// rows and columns of taps that read padding, with a kernel taller than wide (H_out < H)
    /// and a padding larger than a tap's reach. Scratch starts as NaN: every entry is written.
    #[test]
    fn same_im2col_equals_the_row_by_row_one() {
        let mut rng = Rng::new(6);
        // the last three: maps of one or two rows, where some taps read only padding
        let cases = [
            (3, 7, 9, 3, 3, 1),
            (2, 6, 5, 5, 5, 2),
            (2, 8, 6, 5, 3, 1),
            (1, 4, 3, 3, 1, 0),
            (1, 1, 1, 3, 3, 1),
            (1, 1, 4, 3, 3, 1),
            (1, 2, 2, 5, 5, 2),
        ];
        for (c_in, h, w, kh, kw, pad) in cases {
            let x = Tensor::zeros((1, c_in, h, w), candle_core::DType::F32, &Device::Cpu).unwrap();
            let wt = Tensor::zeros((2, c_in, kh, kw), candle_core::DType::F32, &Device::Cpu).unwrap();
            let g = Geom::new(&x, &wt, None, 1, pad).unwrap();
            assert_eq!(g.w_out, g.w);
            let xb: Vec<f32> = (0..c_in * h * w).map(|_| rng.normal() as f32).collect();
            let (mut fast, mut rows) = (vec![f32::NAN; g.k() * g.n()], vec![f32::NAN; g.k() * g.n()]);
            im2col_same(&g, &xb, &mut fast);
            im2col_rows(&g, &xb, &mut rows);
            assert!(
                fast.iter().zip(&rows).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{c_in} {h}x{w} k {kh}x{kw} p {pad}"
            );
        }
    }

    /// An input that is not a variable (the image) gets no gradient, and the others are unchanged.
    #[test]
    fn image_input_gets_no_gradient() {
        let mut rng = Rng::new(3);
        let x = randn(&mut rng, &[2, 1, 6, 6]);
        let w = Var::from_tensor(&randn(&mut rng, &[2, 1, 3, 3])).unwrap();
        let g = conv2d(&x, &w, None, 1, 0).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&x).is_none());
        let g_ref = conv2d_ref(&x, &w, None, 1, 0).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(rel_err(g.get(&w).unwrap(), g_ref.get(&w).unwrap()).unwrap() < 1e-5);
    }

    /// A strided (transposed) input is made contiguous by the wrapper.
    #[test]
    fn non_contiguous_input() {
        let mut rng = Rng::new(4);
        let x = randn(&mut rng, &[2, 3, 7, 5]).transpose(2, 3).unwrap(); // (2, 3, 5, 7) strided
        let w = randn(&mut rng, &[4, 3, 3, 3]);
        let e = rel_err(&conv2d(&x, &w, None, 1, 1).unwrap(), &conv2d_ref(&x, &w, None, 1, 1).unwrap()).unwrap();
        assert!(e < 1e-5);
    }

    #[test]
    fn rejects_bad_shapes() {
        let x = Tensor::zeros((1, 2, 5, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((3, 4, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(conv2d(&x, &w, None, 1, 0).is_err()); // channel mismatch
        let w = Tensor::zeros((3, 2, 7, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(conv2d(&x, &w, None, 1, 0).is_err()); // kernel larger than input
        assert!(conv2d(&x, &w, None, 0, 1).is_err()); // stride 0
        let xi = x.to_dtype(candle_core::DType::F64).unwrap();
        assert!(conv2d(&xi, &w, None, 1, 1).is_err()); // f64
    }
}
