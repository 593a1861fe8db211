//! U-Net (Ronneberger, Fischer & Brox 2015), an encoder–decoder for per-pixel classification
//! whose decoder concatenates, at each resolution, the encoder's feature maps of that resolution
//! (the skip connections); without them (`skip: false`) it is a plain encoder–decoder. Built of
//! our conv, batch-norm, max-pool and nearest-upsampling ops.

use super::batchnorm::BatchNorm;
use super::conv::{conv2d, max_pool2d, Conv2d};
use crate::params::Params;
use candle_core::{Device, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// The shape of a U-Net.
#[derive(Clone, Debug)]
pub struct UNetCfg {
    /// maps of the input image (1 for grey)
    pub in_channels: usize,
    /// feature channels per level, finest first; each level below the first halves the side
    pub channels: Vec<usize>,
    /// concatenate the encoder's maps into the decoder (U-Net); false = plain encoder–decoder
    pub skip: bool,
    /// batch normalisation after each 3x3 convolution
    pub batchnorm: bool,
}

/// conv 3x3 (padding 1) → [BN] → ReLU, twice: the unit of every level.
pub struct ConvBlock {
    conv: [Conv2d; 2],
    bn: Option<[BatchNorm; 2]>,
}

impl ConvBlock {
    fn new(c_in: usize, c_out: usize, bn: bool, params: &Params, name: &str, device: &Device) -> Result<Self> {
        let vb = params.vb(device).pp(name);
        let conv = [conv2d(c_in, c_out, 3, 1, 1, vb.pp("conv1"))?, conv2d(c_out, c_out, 3, 1, 1, vb.pp("conv2"))?];
        let bn = if bn {
            let norm = |k: &str| BatchNorm::new(c_out, params, &format!("{name}.{k}"), vb.pp(k), device);
            Some([norm("bn1")?, norm("bn2")?])
        } else {
            None
        };
        Ok(Self { conv, bn })
    }

    /// (B, C_in, H, W) -> (B, C_out, H, W)
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for k in 0..2 {
            h = self.conv[k].forward(&h)?;
            if let Some(bn) = &self.bn {
                h = bn[k].forward_t(&h, train)?;
            }
            h = h.relu()?;
        }
        Ok(h)
    }
}

/// Levels 0..L: `enc[l]` at side S/2^l with `channels[l]` maps; the deepest is the bottleneck.
/// Decoder level l < L−1: `up[l]` (1x1 conv channels[l+1] → channels[l], then nearest 2x
/// upsampling: the paper's "up-convolution that halves the channels", as a 1x1 conv before the
/// copy, which is the same map at a quarter of the cost), then [concat enc[l]'s maps] and `dec[l]`.
/// Parameters: `enc{l}.*`, `up{l}.*`, `dec{l}.*`, `head.*` (1x1 conv to the classes).
pub struct UNet {
    enc: Vec<ConvBlock>,
    up: Vec<Conv2d>,
    dec: Vec<ConvBlock>,
    head: Conv2d,
    skip: bool,
}

/// A U-Net from `cfg.in_channels` input maps to `classes` output maps (logits per pixel).
pub fn unet(cfg: &UNetCfg, classes: usize, params: &Params, device: &Device) -> Result<UNet> {
    let ch = &cfg.channels;
    if ch.len() < 2 || ch.contains(&0) {
        candle_core::bail!("unet: model.channels needs at least 2 positive levels, got {ch:?}");
    }
    let vb: VarBuilder = params.vb(device);
    let mut enc = vec![];
    for (l, &c) in ch.iter().enumerate() {
        let c_in = if l == 0 { cfg.in_channels } else { ch[l - 1] };
        enc.push(ConvBlock::new(c_in, c, cfg.batchnorm, params, &format!("enc{l}"), device)?);
    }
    let (mut up, mut dec) = (vec![], vec![]);
    for l in 0..ch.len() - 1 {
        up.push(conv2d(ch[l + 1], ch[l], 1, 1, 0, vb.pp(format!("up{l}")))?);
        let c_in = if cfg.skip { 2 * ch[l] } else { ch[l] };
        dec.push(ConvBlock::new(c_in, ch[l], cfg.batchnorm, params, &format!("dec{l}"), device)?);
    }
    let head = conv2d(ch[0], classes, 1, 1, 0, vb.pp("head"))?;
    Ok(UNet { enc, up, dec, head, skip: cfg.skip })
}

impl UNet {
    /// (B, C_in, S, S) -> (B, classes, S, S) logits; S must be divisible by 2^(L−1).
    pub fn logits(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let levels = self.enc.len();
        let side = x.dim(3)?;
        if side % (1 << (levels - 1)) != 0 || x.dim(2)? != side {
            candle_core::bail!(
                "unet: a {levels}-level net needs square inputs whose side divides by {}",
                1 << (levels - 1)
            );
        }
        // encoder: e_l at side S/2^l
        let mut e: Vec<Tensor> = Vec::with_capacity(levels);
        for (l, block) in self.enc.iter().enumerate() {
            let input = if l == 0 { x.clone() } else { max_pool2d(&e[l - 1], 2, 2)? };
            e.push(block.forward_t(&input, train)?);
        }
        // decoder: from the bottleneck up, h at side S/2^l with channels[l] maps
        let mut h = e[levels - 1].clone();
        for l in (0..levels - 1).rev() {
            let u = crate::ops::upsample::upsample_nearest(&self.up[l].forward(&h)?, 2)?; // (B, C_l, S/2^l, ·)
            let input = if self.skip { Tensor::cat(&[&e[l], &u], 1)? } else { u }; // (B, 2·C_l or C_l, ·, ·)
            h = self.dec[l].forward_t(&input, train)?;
        }
        self.head.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::rng::Rng;

    #[test]
    fn shapes_and_every_parameter_gets_a_gradient_with_and_without_skips() -> Result<()> {
        let dev = Device::Cpu;
        for skip in [true, false] {
            let cfg = UNetCfg { in_channels: 1, channels: vec![4, 6, 8], skip, batchnorm: true };
            let p = Params::new(3);
            let net = unet(&cfg, 11, &p, &dev)?;
            let mut rng = Rng::new(1);
            let x: Vec<f32> = (0..2 * 16 * 16).map(|_| rng.uniform() as f32).collect();
            let x = Tensor::from_vec(x, (2, 1, 16, 16), &dev)?;
            let z = net.logits(&x, true)?;
            assert_eq!(z.dims(), &[2, 11, 16, 16]);
            // the decoder's first conv sees 2·C_l maps with skips, C_l without
            let dec0 = p.trainable().into_iter().find(|(n, _)| n == "dec0.conv1.weight").expect("dec0").1;
            assert_eq!(dec0.dims(), &[4, if skip { 8 } else { 4 }, 3, 3]);
            let y: Vec<u32> = (0..2 * 16 * 16).map(|_| rng.below(11) as u32).collect();
            let y = Tensor::from_vec(y, 2 * 16 * 16, &dev)?;
            let z = z.permute((0, 2, 3, 1))?.reshape((2 * 16 * 16, 11))?;
            assert_every_param_gets_a_gradient(&p, &crate::nn::loss::cross_entropy(&z, &y)?)?;
            assert!(net.logits(&x.narrow(2, 0, 14)?.narrow(3, 0, 14)?, false).is_err(), "a side not divisible by 4");
        }
        Ok(())
    }
}
