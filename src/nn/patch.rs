//! ViT's patch embedding (Dosovitskiy et al. 2021, eq. 1): cut an image into P×P patches, flatten
//! each (channel, row, column order) and project it linearly to the model width. The same map as
//! a convolution with kernel P and stride P (how ViT implementations write it; tested against
//! that below), run as a reshape of the pixels and our fused linear: the reshape is applied to
//! the input images, which need no gradient, so only the projection is in the backward pass.

use super::linear::{linear, InitKind, Linear};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

pub struct PatchEmbed {
    /// C·P·P -> D, PyTorch's default init (a P×P convolution's: fan_in = C·P·P)
    pub proj: Linear,
    pub patch: usize,
}

/// Patches of `patch`×`patch` pixels of `channels`-channel images, projected to `dim`.
/// Parameters: `{vb}.weight` (D, C·P·P), `{vb}.bias` (D,).
pub fn patch_embed(channels: usize, patch: usize, dim: usize, vb: VarBuilder) -> Result<PatchEmbed> {
    Ok(PatchEmbed { proj: linear(channels * patch * patch, dim, InitKind::Default, vb)?, patch })
}

/// (B, C, H, W) -> (B, N, C·P·P), N = (H/P)·(W/P) patches in row-major order, each flattened in
/// (channel, row, column) order: the order of a convolution kernel's (C, P, P).
pub fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if p == 0 || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
        candle_core::bail!("patchify: {h}x{w} images do not divide into {p}x{p} patches");
    }
    let (gh, gw) = (h / p, w / p);
    x.reshape((b, c, gh, p, gw, p))?
        .permute([0, 2, 4, 1, 3, 5])? // (B, gh, gw, C, P, P)
        .contiguous()?
        .reshape((b, gh * gw, c * p * p))
}

impl PatchEmbed {
    /// (B, C, H, W) -> (B, N, D)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj.forward(&patchify(x, self.patch)?)
    }

    /// Patches the image grid holds: (H/P)·(W/P).
    pub fn count(&self, h: usize, w: usize) -> usize {
        (h / self.patch) * (w / self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;
    use crate::rng::Rng;
    use candle_core::Device;

    /// The shapes, and the same numbers as candle's conv2d (kernel P, stride P) with the
    /// projection's weight as its kernel, flattened to (B, N, D): to f32 rounding (1e-5
    /// relative to the largest entry; the sums run in another order).
    #[test]
    fn patch_embedding_is_a_strided_convolution() -> Result<()> {
        let dev = Device::Cpu;
        for (c, h, w, p, d) in [(1, 28, 28, 7, 16), (1, 28, 28, 4, 8), (3, 8, 12, 4, 5), (2, 6, 6, 1, 3)] {
            let params = Params::new(3);
            let pe = patch_embed(c, p, d, params.vb(&dev).pp("patch"))?;
            let mut rng = Rng::new(4);
            let x = Tensor::from_vec(
                (0..2 * c * h * w).map(|_| rng.normal() as f32).collect::<Vec<_>>(),
                (2, c, h, w),
                &dev,
            )?;
            assert_eq!(patchify(&x, p)?.dims(), &[2, (h / p) * (w / p), c * p * p]);
            let y = pe.forward(&x)?;
            assert_eq!(y.dims(), &[2, pe.count(h, w), d]);
            let k = pe.proj.weight.reshape((d, c, p, p))?;
            let conv =
                x.conv2d(&k, 0, p, 1, 1)?.broadcast_add(&pe.proj.bias.as_ref().unwrap().reshape((1, d, 1, 1))?)?;
            let want = conv.flatten_from(2)?.transpose(1, 2)?; // (B, D, gh·gw) -> (B, N, D)
            let err = (&y - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            let scale = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
            assert!(err / scale < 1e-5, "C={c} {h}x{w} P={p}: off by {err}");
        }
        // the first patch of a 1-channel image is its top-left P×P square, row by row
        let x = Tensor::arange(0f32, 16., &dev)?.reshape((1, 1, 4, 4))?;
        assert_eq!(patchify(&x, 2)?.get(0)?.get(0)?.to_vec1::<f32>()?, [0., 1., 4., 5.]);
        assert!(patchify(&x, 3).is_err());
        Ok(())
    }
}
