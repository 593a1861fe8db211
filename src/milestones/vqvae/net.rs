//! The VQ-VAE's net: a conv encoder to a 7x7 grid, the vector quantiser, a conv decoder by
//! nearest-neighbour upsampling. Also the tokenizer API other milestones reuse.

use super::ModelCfg;
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::vq::{vector_quantizer, Quantized, VectorQuantizer};
use crate::ops::relu::relu;
use crate::ops::upsample::upsample_nearest;
use crate::params::Params;
use candle_core::{Device, Result, Tensor};

/// The encoder, quantiser and decoder. Images are (B, 1, 28, 28) grey values in [0, 1]; the
/// latent grid is 7x7.
pub struct VqVaeNet {
    enc1: Conv2d,
    enc2: Conv2d,
    enc3: Conv2d,
    pub quant: VectorQuantizer,
    dec1: Conv2d,
    dec2: Conv2d,
    dec3: Conv2d,
    pub cfg: ModelCfg,
}

/// The net of `c` in `params` (new parameters, or the existing ones of a trained run's store:
/// parameters are found by name, so building on a loaded run gives its weights).
pub fn net(c: &ModelCfg, params: &Params, device: &Device) -> Result<VqVaeNet> {
    let vb = params.vb(device);
    let [c1, c2] = c.channels;
    Ok(VqVaeNet {
        enc1: conv2d(1, c1, 4, 2, 1, vb.pp("enc1"))?,     // 28 -> 14
        enc2: conv2d(c1, c2, 4, 2, 1, vb.pp("enc2"))?,    // 14 -> 7
        enc3: conv2d(c2, c.dim, 1, 1, 0, vb.pp("enc3"))?, // to D channels
        quant: vector_quantizer(c.codes, c.dim, params, "quant", vb.pp("quant"), device)?,
        dec1: conv2d(c.dim, c2, 3, 1, 1, vb.pp("dec1"))?, // 7x7
        dec2: conv2d(c2, c1, 3, 1, 1, vb.pp("dec2"))?,    // 14x14, after upsampling
        dec3: conv2d(c1, 1, 3, 1, 1, vb.pp("dec3"))?,     // 28x28, after upsampling
        cfg: c.clone(),
    })
}

/// (B, D, h, w) maps <-> (B·h·w, D) rows, one per grid position in row-major order.
pub(super) fn to_rows(z: &Tensor) -> Result<Tensor> {
    let (b, d, h, w) = z.dims4()?;
    z.permute((0, 2, 3, 1))?.reshape((b * h * w, d))
}

fn to_maps(rows: &Tensor, b: usize, h: usize, w: usize) -> Result<Tensor> {
    let d = rows.dim(1)?;
    rows.reshape((b, h, w, d))?.permute((0, 3, 1, 2))?.contiguous()
}

impl VqVaeNet {
    /// Side of the latent grid (7 for 28x28 images).
    pub const GRID: usize = 7;

    /// Encoder outputs z_e: (B, 1, 28, 28) -> (B, D, 7, 7).
    pub fn encode_z(&self, x: &Tensor) -> Result<Tensor> {
        let h = relu(&self.enc1.forward(x)?)?;
        let h = relu(&self.enc2.forward(&h)?)?;
        self.enc3.forward(&h)
    }

    /// The decoder's logits: quantised maps (B, D, 7, 7) -> (B, 1, 28, 28).
    pub fn decode_logits(&self, z_q: &Tensor) -> Result<Tensor> {
        let h = relu(&self.dec1.forward(z_q)?)?;
        let h = relu(&self.dec2.forward(&upsample_nearest(&h, 2)?)?)?;
        self.dec3.forward(&upsample_nearest(&h, 2)?)
    }

    /// Images (B, 1, 28, 28) -> their codes (B, 7, 7) u32, each in 0..K.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.encode_z(x)?;
        let (b, _, h, w) = z.dims4()?;
        self.quant.nearest(&to_rows(&z)?)?.reshape((b, h, w))
    }

    /// Codes (B, 7, 7) u32 -> images (B, 1, 28, 28), grey values in [0, 1].
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let (b, h, w) = codes.dims3()?;
        let e = self.quant.lookup(&codes.flatten_all()?)?;
        candle_nn::ops::sigmoid(&self.decode_logits(&to_maps(&e, b, h, w)?)?)
    }

    /// The full pass with gradients: the quantiser's output (codes, losses) and the logits.
    pub fn forward(&self, x: &Tensor) -> Result<(Quantized, Tensor)> {
        let z = self.encode_z(x)?;
        let (b, _, h, w) = z.dims4()?;
        let q = self.quant.forward(&to_rows(&z)?)?;
        let logits = self.decode_logits(&to_maps(&q.z_q, b, h, w)?)?;
        Ok((q, logits))
    }
}
