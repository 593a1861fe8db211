//! 2-D max-pooling for any kernel and stride (overlapping windows included), with backward.
//!
//! x (B, C, H, W) -> y (B, C, H_out, W_out), H_out = (H - k) / s + 1 (floor, as PyTorch's
//! `ceil_mode=False`), no padding. The forward keeps, per output, the index of its maximum
//! inside the (H, W) plane (a u32); the backward scatters dy to those positions, adding where
//! overlapping windows chose the same input:
//!
//!   dx[b, c, argmax[b, c, o]] += dy[b, c, o]
//!
//! candle 0.11.1's max_pool2d cannot backprop when kernel != stride (AlexNet's 3/2), and its
//! backward for kernel == stride is scaled wrongly (see [`max_pool2d_ref`]).
//!
//! Ties: the first maximum in the window's row-major order wins, as in PyTorch, so a tied
//! window passes its whole gradient to one input. NaN propagates: the first NaN in a window is
//! its maximum (PyTorch also returns NaN there).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// y = max over each k×k window of x, windows `stride` apart, no padding.
/// x (B, C, H, W) -> (B, C, H_out, W_out). f32 on CPU.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`super::fused_on`)
    if !super::fused_on(x.device(), false) {
        return max_pool2d_ref(x, kernel, stride);
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!("max_pool2d: only f32 on the CPU is implemented, x is {:?} on {:?}", x.dtype(), x.device())
    }
    let (b, c, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 {
        bail!("max_pool2d: kernel ({kernel}) and stride ({stride}) must be positive")
    }
    if h < kernel || w < kernel {
        bail!("max_pool2d: kernel {kernel} is larger than the input {h}x{w}")
    }
    if h * w > u32::MAX as usize {
        bail!("max_pool2d: a {h}x{w} plane is too large for u32 argmax indices")
    }
    let (h_out, w_out) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let g = Geom { b, c, h, w, k: kernel, s: stride, h_out, w_out };
    super::arg(&x.contiguous()?).apply_op1(MaxPool2d { g, argmax: OnceLock::new() })
}

/// The reference: max-pooling composed of candle ops that all have a backward: the k·k strided
/// views x[:, :, ki + s·i, kj + s·j] (two `index_select`s each, backward `index_add`), stacked on
/// a last dim and reduced with `max` (backward: dy to every element equal to the max, which is
/// first-max-wins when the window has no ties).
///
/// Not candle's own `max_pool2d`, even for kernel == stride: candle 0.11.1's backward multiplies
/// dy by (number of maxima in the window) / k² instead of dividing by the number of maxima, so
/// its gradient is dy / k² for a window without ties (see the test `candle_backward_is_scaled`).
pub fn max_pool2d_ref(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 || h < kernel || w < kernel {
        bail!("max_pool2d: kernel {kernel}, stride {stride} do not fit the input {h}x{w}")
    }
    let (h_out, w_out) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let offsets = |k0: usize, n: usize| {
        let idx: Vec<u32> = (0..n).map(|i| (k0 + stride * i) as u32).collect();
        Tensor::from_vec(idx, n, x.device())
    };
    let mut views = Vec::with_capacity(kernel * kernel);
    for ki in 0..kernel {
        let rows = x.index_select(&offsets(ki, h_out)?, 2)?; // (B, C, H_out, W)
        for kj in 0..kernel {
            views.push(rows.index_select(&offsets(kj, w_out)?, 3)?); // (B, C, H_out, W_out)
        }
    }
    Tensor::stack(&views, 4)?.max(4) // (B, C, H_out, W_out, k·k) -> (B, C, H_out, W_out)
}

#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    h_out: usize,
    w_out: usize,
}

impl Geom {
    /// Planes per rayon task: about 16k input floats each, so tiny planes are not one task each.
    fn min_planes(&self) -> usize {
        ((1 << 14) / (self.h * self.w).max(1)).max(1)
    }
}

/// Where each window starts and what it covers, the same for every plane: `top_left[o]` is
/// the in-plane index of output o's top-left input, `taps` the offsets of the k·k window
/// elements from it in row-major order (ki·W + kj).
struct Windows {
    top_left: Vec<u32>,
    taps: Vec<u32>,
}

impl Windows {
    fn new(g: &Geom) -> Self {
        let top_left =
            (0..g.h_out).flat_map(|oh| (0..g.w_out).map(move |ow| (oh * g.s * g.w + ow * g.s) as u32)).collect();
        let taps = (0..g.k).flat_map(|ki| (0..g.k).map(move |kj| (ki * g.w + kj) as u32)).collect();
        Self { top_left, taps }
    }
}

/// One (H, W) plane: y_p (H_out·W_out) and the in-plane index of each window's first maximum.
///
/// Tap by tap over the whole plane: y starts as every window's top-left element, then each
/// further tap (in row-major window order, so "first maximum wins" holds) is gathered into
/// `tap` and merged into all running maxima in one branch-free loop that vectorises. The
/// obvious per-window loop mispredicted on random data and ran ~4x slower than candle's.
fn pool_plane(w: &Windows, x_p: &[f32], y_p: &mut [f32], arg_p: &mut [u32], tap: &mut Vec<f32>) {
    for ((y, a), &o) in y_p.iter_mut().zip(arg_p.iter_mut()).zip(&w.top_left) {
        (*y, *a) = (x_p[o as usize], o);
    }
    tap.resize(w.top_left.len(), 0.0);
    for &d in &w.taps[1..] {
        for (t, &o) in tap.iter_mut().zip(&w.top_left) {
            *t = x_p[(o + d) as usize];
        }
        for (((b, i), &v), &o) in y_p.iter_mut().zip(arg_p.iter_mut()).zip(tap.iter()).zip(&w.top_left) {
            // strict > keeps the first of tied maxima; the first NaN sticks
            let take = (v > *b) | (v.is_nan() & !b.is_nan());
            // a bit-mask blend, stored unconditionally: written as `if`, LLVM turns the update
            // into per-lane conditional stores, which cost more than the compare
            let m = 0u32.wrapping_sub(take as u32);
            *b = f32::from_bits((v.to_bits() & m) | (b.to_bits() & !m));
            *i = ((o + d) & m) | (*i & !m);
        }
    }
}

/// The custom op; `argmax` is filled by the forward and read by the backward (one op value per
/// call of [`max_pool2d`], so it belongs to exactly one forward).
struct MaxPool2d {
    g: Geom,
    argmax: OnceLock<Vec<u32>>,
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "max-pool2d-argmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            (CpuStorage::F32(_), None) => bail!("max_pool2d: x must be contiguous"),
            _ => bail!("max_pool2d: x must be f32, got {:?}", s.dtype()),
        };
        let (hw, ohw) = (g.h * g.w, g.h_out * g.w_out);
        let mut y = vec![0f32; g.b * g.c * ohw];
        let mut argmax = vec![0u32; g.b * g.c * ohw];
        let windows = Windows::new(g);
        y.par_chunks_mut(ohw)
            .zip(argmax.par_chunks_mut(ohw))
            .zip(x.par_chunks(hw))
            .with_min_len(g.min_planes())
            .for_each_init(Vec::new, |tap, ((y_p, arg_p), x_p)| pool_plane(&windows, x_p, y_p, arg_p, tap));
        if self.argmax.set(argmax).is_err() {
            bail!("max_pool2d: forward ran twice on one op")
        }
        Ok((CpuStorage::F32(y), Shape::from((g.b, g.c, g.h_out, g.w_out))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let g = &self.g;
        let Some(argmax) = self.argmax.get() else { bail!("max_pool2d: backward before forward") };
        let (hw, ohw) = (g.h * g.w, g.h_out * g.w_out);
        let dy = dy.contiguous()?;
        let (s, l) = dy.storage_and_layout();
        let dy_data = match (&*s, l.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => &v[a..b],
            _ => bail!("max_pool2d: dy must be contiguous f32 on the CPU"),
        };
        let mut dx = vec![0f32; g.b * g.c * hw];
        dx.par_chunks_mut(hw)
            .zip(dy_data.par_chunks(ohw))
            .zip(argmax.par_chunks(ohw))
            .with_min_len(g.min_planes())
            .for_each(|((dx_p, dy_p), arg_p)| {
                for (&d, &i) in dy_p.iter().zip(arg_p) {
                    dx_p[i as usize] += d; // overlapping windows may pick the same input
                }
            });
        Ok(Some(Tensor::from_vec(dx, (g.b, g.c, g.h, g.w), x.device())?))
    }
}

/// The pooling workloads, forward + backward: LeNet's two 2x2 pools (batch 64) and an
/// AlexNet-like overlapping 3/2 pool.
pub fn benches() -> Result<Vec<super::OpBench>> {
    use candle_core::{Device, Var};
    let mut rng = crate::rng::Rng::new(11);
    let cases = [
        ("max_pool2d lenet p1", [64, 6, 24, 24], 2, 2),
        ("max_pool2d lenet p2", [64, 16, 8, 8], 2, 2),
        ("max_pool2d alexnet-like 3/2", [64, 64, 13, 13], 3, 2),
    ];
    let mut out = Vec::new();
    for (name, xd, k, s) in cases {
        let mut randn = |dims: &[usize]| {
            let v: Vec<f32> = (0..dims.iter().product()).map(|_| rng.normal() as f32).collect();
            Tensor::from_vec(v, dims, &Device::Cpu)
        };
        let x = Var::from_tensor(&randn(&xd)?)?.as_tensor().clone();
        let r = randn(&[xd[0], xd[1], (xd[2] - k) / s + 1, (xd[3] - k) / s + 1])?;
        let run = move |f: fn(&Tensor, usize, usize) -> Result<Tensor>| {
            let (x, r) = (x.clone(), r.clone());
            move || -> Result<()> { (f(&x, k, s)? * &r)?.sum_all()?.backward().map(|_| ()) }
        };
        out.push(super::OpBench {
            name,
            shape: format!("x {xd:?}, kernel {k}, stride {s}"),
            fused: Box::new(run(max_pool2d)),
            reference: Box::new(run(max_pool2d_ref)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{max_abs_diff, randn};
    use crate::rng::Rng;
    use candle_core::{Device, Var};

    /// y and dx of loss = Σ y ⊙ r, fused vs the composed reference. y must match exactly (it is
    /// a copy of inputs). dx: tolerance 1e-5 absolute, as each entry is a sum of at most
    /// ⌈k/s⌉² ≤ 4 entries of r (|r| < ~5) added in a possibly different order, a few ulps of
    /// ~10 ≈ 1e-6; a wrong argmax gives errors of order 1.
    fn check(x_dims: [usize; 4], k: usize, s: usize) {
        let mut rng = Rng::new((x_dims.iter().product::<usize>() * 13 + k * 5 + s) as u64);
        let x = Var::from_tensor(&randn(&mut rng, &x_dims)).unwrap();
        let (y, y_ref) = (max_pool2d(&x, k, s).unwrap(), max_pool2d_ref(&x, k, s).unwrap());
        assert_eq!(max_abs_diff(&y, &y_ref).unwrap(), 0.0, "y for x {x_dims:?} k {k} s {s}");
        let r = randn(&mut rng, y.dims());
        let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (y_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let e = max_abs_diff(g.get(&x).unwrap(), g_ref.get(&x).unwrap()).unwrap();
        assert!(e < 1e-5, "dx differs by {e} for x {x_dims:?} k {k} s {s}");
    }

    #[test]
    fn matches_reference_kernel_equals_stride() {
        check([4, 6, 24, 24], 2, 2);
        check([1, 3, 9, 6], 3, 3);
        check([1, 2, 7, 7], 2, 2); // the windows do not tile: the last row and column get no gradient
    }

    #[test]
    fn matches_reference_overlapping_windows() {
        check([2, 5, 13, 13], 3, 2); // AlexNet's 3/2
        check([1, 1, 7, 9], 3, 1);
        check([3, 2, 11, 8], 4, 3);
    }

    /// windows that skip inputs (s > k), and a window as tall as the input
    #[test]
    fn matches_reference_gaps() {
        check([2, 3, 10, 9], 2, 3);
        check([1, 1, 5, 6], 5, 1);
    }

    /// The forward agrees with candle's own max-pool (kernel == stride); candle's backward
    /// does not: it returns dy / k² at each argmax. This pins that candle 0.11.1 bug, so that a
    /// candle upgrade that fixes it shows up here (and candle's op could then be the reference).
    #[test]
    fn candle_backward_is_scaled() {
        let mut rng = Rng::new(21);
        let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 8, 8])).unwrap();
        let (y, y_candle) = (max_pool2d(&x, 2, 2).unwrap(), x.max_pool2d(2).unwrap());
        assert_eq!(max_abs_diff(&y, &y_candle).unwrap(), 0.0);
        let dx = y.sum_all().unwrap().backward().unwrap().get(&x).unwrap().clone();
        let dx_candle = y_candle.sum_all().unwrap().backward().unwrap().get(&x).unwrap().clone();
        assert!(max_abs_diff(&(dx / 4.0).unwrap(), &dx_candle).unwrap() < 1e-7);
    }

    fn plane(v: &[f32], h: usize, w: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (1, 1, h, w), &Device::Cpu).unwrap()
    }

    /// A 4x4 input, kernel 2, stride 1, worked by hand: the 9 at (1, 2) is the max of four
    /// windows and collects their four gradients; the 10 at (3, 1) collects two.
    #[test]
    fn hand_checked_overlapping() {
        #[rustfmt::skip]
        let x = Var::from_tensor(&plane(&[
            1., 5., 2., 0.,
            3., 4., 9., 1.,
            8., 0., 6., 7.,
            2., 10., 3., 4.,
        ], 4, 4)).unwrap();
        let y = max_pool2d(&x, 2, 1).unwrap();
        let want_y = [5., 9., 9., 8., 9., 9., 10., 10., 7.];
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want_y);
        let dy = plane(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], 3, 3);
        let g = (y * dy).unwrap().sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        let want_dx = [
            0., 1., 0., 0.,
            0., 0., 16., 0., // 2 + 3 + 5 + 6
            4., 0., 0., 9.,
            0., 15., 0., 0., // 7 + 8
        ];
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), want_dx);
    }

    /// Ties: on a constant input each window's first (top-left) element wins and takes the
    /// whole gradient, as in PyTorch.
    #[test]
    fn ties_first_max_wins() {
        let x = Var::from_tensor(&plane(&[1.0; 16], 4, 4)).unwrap();
        let y = max_pool2d(&x, 3, 1).unwrap(); // 2x2 windows of 3x3
        let dy = plane(&[1., 2., 3., 4.], 2, 2);
        let g = (y * dy).unwrap().sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        let want_dx = [
            1., 2., 0., 0.,
            3., 4., 0., 0.,
            0., 0., 0., 0.,
            0., 0., 0., 0.,
        ];
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), want_dx);
    }

    #[test]
    fn nan_propagates() {
        let x = plane(&[1., f32::NAN, 3., 4., 5., 6., 7., 8., 9.], 3, 3);
        let y = max_pool2d(&x, 2, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(y[0].is_nan() && y[1].is_nan() && y[2] == 8.0 && y[3] == 9.0);
    }

    #[test]
    fn rejects_bad_arguments() {
        let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&x, 5, 1).is_err());
        assert!(max_pool2d(&x, 2, 0).is_err());
        assert!(max_pool2d(&x.to_dtype(DType::F64).unwrap(), 2, 2).is_err());
        assert!(max_pool2d(&x.flatten_all().unwrap(), 2, 2).is_err());
    }
}
