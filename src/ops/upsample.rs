//! Nearest-neighbour upsampling by an integer factor s, with backward (the U-Net decoder's
//! "up" step):
//!
//!   y[b, c, i, j] = x[b, c, ⌊i/s⌋, ⌊j/s⌋]          x (B, C, H, W) -> y (B, C, s·H, s·W)
//!   dx[b, c, i, j] = Σ_{di, dj < s} dy[b, c, s·i + di, s·j + dj]
//!
//! One plane per task: the forward writes each input row s times, the backward sums each s×s
//! block of dy in row order. The reference is candle's `upsample_nearest2d`, whose backward is a
//! grouped convolution with an all-ones s×s kernel. That backward *overwrites* the input's
//! gradient instead of adding to it (candle 0.11.1 backprop.rs: `*sum_grad = conv_sum`), so a
//! tensor that is upsampled and also used elsewhere loses its other gradients (pinned by the test
//! `candle_backward_overwrites`); this op adds, as every other op does.

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// x (B, C, H, W) -> (B, C, s·H, s·W), each pixel repeated in an s×s block. f32 on CPU.
pub fn upsample_nearest(x: &Tensor, scale: usize) -> Result<Tensor> {
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`super::fused_on`)
    if !super::fused_on(x.device(), false) {
        return upsample_nearest_ref(x, scale);
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!("upsample_nearest: only f32 on the CPU is implemented, x is {:?} on {:?}", x.dtype(), x.device())
    }
    let (b, c, h, w) = x.dims4()?;
    if scale == 0 {
        bail!("upsample_nearest: the scale must be at least 1")
    }
    super::arg(&x.contiguous()?).apply_op1(Upsample { planes: b * c, h, w, s: scale })
}

/// The reference: candle's own op (its backward is right when x has no other consumer).
pub fn upsample_nearest_ref(x: &Tensor, scale: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(h * scale, w * scale)
}

const NAME: &str = "upsample_nearest";

struct Upsample {
    planes: usize,
    h: usize,
    w: usize,
    s: usize,
}

impl Upsample {
    /// Planes per rayon task: about 16k output floats each.
    fn min_planes(&self) -> usize {
        (cpu::GRAIN / (self.h * self.w * self.s * self.s).max(1)).max(1)
    }
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::cpu_f32(st, l, NAME)?; // (B·C, H, W)
        let (h, w, s) = (self.h, self.w, self.s);
        let (hw, ws) = (h * w, w * s);
        let mut y = vec![0f32; self.planes * hw * s * s]; // (B·C, s·H, s·W)
        y.par_chunks_mut(hw * s * s).zip(x.par_chunks(hw)).with_min_len(self.min_planes()).for_each(|(y_p, x_p)| {
            for (x_row, y_rows) in x_p.chunks_exact(w).zip(y_p.chunks_exact_mut(ws * s)) {
                let (first, rest) = y_rows.split_at_mut(ws);
                for (&v, o) in x_row.iter().zip(first.chunks_exact_mut(s)) {
                    o.fill(v);
                }
                for r in rest.chunks_exact_mut(ws) {
                    r.copy_from_slice(first);
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from(vec![l.dims()[0], l.dims()[1], h * s, w * s])))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let (h, w, s) = (self.h, self.w, self.s);
        let (hw, ws) = (h * w, w * s);
        let dy = dy.contiguous()?;
        let (st, l) = dy.storage_and_layout();
        let dyv = cpu::storage_f32(&st, l, NAME)?;
        let mut dx = vec![0f32; self.planes * hw];
        dx.par_chunks_mut(hw).zip(dyv.par_chunks(hw * s * s)).with_min_len(self.min_planes()).for_each(
            |(dx_p, dy_p)| {
                for (dx_row, dy_rows) in dx_p.chunks_exact_mut(w).zip(dy_p.chunks_exact(ws * s)) {
                    // the s output rows of this input row, each summed in blocks of s
                    for r in dy_rows.chunks_exact(ws) {
                        for (d, blk) in dx_row.iter_mut().zip(r.chunks_exact(s)) {
                            *d += blk.iter().sum::<f32>();
                        }
                    }
                }
            },
        );
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// The U-Net's two up steps (batch 16, channels 8/16/32 at 64/32/16 pixels), forward + backward.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let mut rng = crate::rng::Rng::new(12);
    let cases: [(&'static str, [usize; 4]); 2] =
        [("upsample_nearest 16->32", [16, 16, 16, 16]), ("upsample_nearest 32->64", [16, 8, 32, 32])];
    let mut out = vec![];
    for (name, d) in cases {
        let mut randn = |dims: &[usize]| {
            let v: Vec<f32> = (0..dims.iter().product()).map(|_| rng.normal() as f32).collect();
            Tensor::from_vec(v, dims, &candle_core::Device::Cpu)
        };
        let x = candle_core::Var::from_tensor(&randn(&d)?)?.as_tensor().clone();
        let r = randn(&[d[0], d[1], 2 * d[2], 2 * d[3]])?;
        let run = |f: fn(&Tensor, usize) -> Result<Tensor>| {
            let (x, r) = (x.clone(), r.clone());
            move || -> Result<()> { (f(&x, 2)? * &r)?.sum_all()?.backward().map(|_| ()) }
        };
        out.push(super::OpBench {
            name,
            shape: format!("x {d:?}, scale 2"),
            fused: Box::new(run(upsample_nearest)),
            reference: Box::new(run(upsample_nearest_ref)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{max_abs, max_abs_diff, randn};
    use crate::rng::Rng;
    use candle_core::{Device, Var};

    /// y must equal the reference exactly (copies); dx within 1e-6 of its largest entry: each
    /// entry sums s² values of dy in another order than candle's convolution (a few ulps).
    fn check(dims: [usize; 4], s: usize) -> Result<()> {
        let mut rng = Rng::new((dims.iter().product::<usize>() * 7 + s) as u64);
        let x = Var::from_tensor(&randn(&mut rng, &dims))?;
        let (y, y_ref) = (upsample_nearest(&x, s)?, upsample_nearest_ref(&x, s)?);
        assert_eq!(max_abs_diff(&y, &y_ref)?, 0.0, "y for x {dims:?}, scale {s}");
        let r = randn(&mut rng, y.dims());
        let g = (y * &r)?.sum_all()?.backward()?;
        let g_ref = (y_ref * &r)?.sum_all()?.backward()?;
        let (a, b) = (g.get(&x).expect("grad"), g_ref.get(&x).expect("grad"));
        let d = max_abs_diff(a, b)?;
        assert!(d <= 1e-6 * max_abs(b)?, "dx differs by {d} for x {dims:?}, scale {s}");
        Ok(())
    }

    #[test]
    fn matches_reference() -> Result<()> {
        check([16, 8, 32, 32], 2)?; // the U-Net's last up step: several rayon tasks
        check([1, 3, 5, 7], 2)?; // batch 1, odd sides
        check([2, 1, 3, 3], 3)?;
        check([2, 2, 4, 3], 1) // scale 1 is the identity
    }

    /// A strided input (a transposed view) is made contiguous first.
    #[test]
    fn strided_input() -> Result<()> {
        let mut rng = Rng::new(5);
        let x = randn(&mut rng, &[2, 3, 4, 5]);
        let xt = x.transpose(2, 3)?; // (2, 3, 5, 4), not contiguous
        assert_eq!(max_abs_diff(&upsample_nearest(&xt, 2)?, &upsample_nearest_ref(&xt.contiguous()?, 2)?)?, 0.0);
        Ok(())
    }

    /// Hand-checked, and the candle bug this op avoids: for L = Σ up(x) + Σ x the gradient is
    /// s² + 1 = 5 everywhere; candle's backward overwrites the "+ 1" and gives 4.
    #[test]
    fn candle_backward_overwrites() -> Result<()> {
        let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?)?;
        let y = upsample_nearest(&x, 2)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?[..8], [1., 1., 2., 2., 1., 1., 2., 2.]);
        let ours = (y.sum_all()? + x.sum_all()?)?.backward()?;
        assert_eq!(ours.get(&x).expect("grad").flatten_all()?.to_vec1::<f32>()?, [5.0; 4]);
        let theirs = (upsample_nearest_ref(&x, 2)?.sum_all()? + x.sum_all()?)?.backward()?;
        assert_eq!(theirs.get(&x).expect("grad").flatten_all()?.to_vec1::<f32>()?, [4.0; 4]);
        Ok(())
    }

    #[test]
    fn rejects_bad_arguments() {
        let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).expect("zeros");
        assert!(upsample_nearest(&x, 0).is_err());
        assert!(upsample_nearest(&x.flatten_all().expect("flat"), 2).is_err());
        assert!(upsample_nearest(&x.to_dtype(DType::F64).expect("f64"), 2).is_err());
    }
}
