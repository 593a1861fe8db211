//! The U-Net of a diffusion model (Ho, Jain & Abbeel 2020, after the PixelCNN++ / Wide-ResNet
//! U-Net): it maps a noisy image x_t and its noise level t to a prediction of the noise, so it
//! is conditioned on t everywhere. t enters as a sinusoidal embedding (the Transformer's
//! positional code) through a two-layer MLP; every residual block adds a learned projection of
//! it to its feature maps. Blocks are GroupNorm → SiLU → 3x3 conv, twice, with a residual
//! connection; the encoder halves the side with stride-2 convolutions, the decoder doubles it
//! with nearest-neighbour upsampling followed by a 3x3 convolution (candle's bilinear
//! upsampling has no backward; this is the "resize-convolution" of Odena et al. 2016) and
//! concatenates the encoder's maps of each resolution, as `nn::unet` does for segmentation.
//! With `classes > 0` a class embedding (one extra row: "no class", for classifier-free
//! guidance) is added to the time embedding.

use super::conv::{conv2d, Conv2d};
use super::embedding::{embedding, Embedding};
use super::groupnorm::{group_norm, GroupNorm};
use super::linear::{linear, InitKind, Linear};
use crate::ops::upsample::upsample_nearest;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// The shape of a time-conditioned U-Net.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeUNetCfg {
    /// channels of the images (in and out)
    pub in_channels: usize,
    /// feature channels per level, finest first; each level below the first halves the side
    pub channels: Vec<usize>,
    /// groups of every group norm (must divide every level's channels)
    pub groups: usize,
    /// classes of a class-conditional net (0: unconditional); class id `classes` means "none"
    pub classes: usize,
    /// width of a conditioning vector (e.g. a CLIP image embedding) projected into the time
    /// embedding (0: none); a zero vector means "none" for classifier-free guidance
    pub cond_dim: usize,
}

impl TimeUNetCfg {
    /// Width of the time embedding: 4 × the first level's channels (as Ho et al.).
    pub fn time_dim(&self) -> usize {
        4 * self.channels[0]
    }

    /// Multiply-add FLOPs (2 per multiply-add) of the convolutions of one forward pass of
    /// `batch` images of side `side` (the MLPs and norms are negligible and not counted).
    pub fn forward_flops(&self, batch: usize, side: usize) -> f64 {
        let ch = &self.channels;
        let conv = |cin: usize, cout: usize, k: usize, s: usize| 2.0 * (cin * cout * k * k * s * s) as f64;
        let block = |cin: usize, cout: usize, s: usize| {
            conv(cin, cout, 3, s) + conv(cout, cout, 3, s) + if cin != cout { conv(cin, cout, 1, s) } else { 0.0 }
        };
        let side_at = |l: usize| side >> l;
        let mut f = conv(self.in_channels, ch[0], 3, side);
        for l in 0..ch.len() {
            let cin = if l == 0 { ch[0] } else { ch[l - 1] };
            f += block(cin, ch[l], side_at(l));
            if l + 1 < ch.len() {
                f += conv(ch[l], ch[l], 3, side_at(l + 1)); // down: stride 2, output side
            }
        }
        let last = ch.len() - 1;
        f += block(ch[last], ch[last], side_at(last)); // mid
        for l in (0..last).rev() {
            f += conv(ch[l + 1], ch[l + 1], 3, side_at(l)); // up: after the 2x copy
            f += block(ch[l + 1] + ch[l], ch[l], side_at(l));
        }
        f += conv(ch[0], self.in_channels, 3, side);
        batch as f64 * f
    }
}

/// The sinusoidal embedding of (B,) timesteps: (B, dim) rows [sin(t·ω_k) | cos(t·ω_k)] with
/// ω_k = 10000^(−k/(dim/2)), k < dim/2 (Vaswani et al. 2017; Ho et al. 2020). Data, not a
/// parameter: computed here, with no gradient.
pub fn timestep_embedding(t: &[f32], dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let mut v = Vec::with_capacity(t.len() * dim);
    for &tt in t {
        let freqs = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp());
        let args: Vec<f64> = freqs.map(|w| tt as f64 * w).collect();
        v.extend(args.iter().map(|a| a.sin() as f32));
        v.extend(args.iter().map(|a| a.cos() as f32));
        v.extend(std::iter::repeat_n(0f32, dim - 2 * half));
    }
    Tensor::from_vec(v, (t.len(), dim), device)
}

/// GroupNorm → SiLU → conv 3x3, twice, with the time embedding's projection added between;
/// a 1x1 conv on the shortcut when the channels change. Parameters: `norm1.*`, `conv1.*`,
/// `temb.*`, `norm2.*`, `conv2.*`, [`skip.*`].
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    temb: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl ResBlock {
    pub fn new(c_in: usize, c_out: usize, t_dim: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: group_norm(c_in, groups, vb.pp("norm1"))?,
            conv1: conv2d(c_in, c_out, 3, 1, 1, vb.pp("conv1"))?,
            temb: linear(t_dim, c_out, InitKind::Default, vb.pp("temb"))?,
            norm2: group_norm(c_out, groups, vb.pp("norm2"))?,
            conv2: conv2d(c_out, c_out, 3, 1, 1, vb.pp("conv2"))?,
            skip: if c_in != c_out { Some(conv2d(c_in, c_out, 1, 1, 0, vb.pp("skip"))?) } else { None },
        })
    }

    /// x (B, C_in, H, W), `emb` = SiLU(time embedding) (B, T) -> (B, C_out, H, W)
    pub fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        let (b, c) = (h.dim(0)?, h.dim(1)?);
        let h = h.broadcast_add(&self.temb.forward(emb)?.reshape((b, c, 1, 1))?)?;
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        match &self.skip {
            Some(s) => s.forward(x)? + h,
            None => x + h,
        }
    }
}

/// Parameters: `time.fc1.*`, `time.fc2.*`, [`class.*`], [`cond.*`], `stem.*`, `enc{l}.*`, `down{l}.*`,
/// `mid.*`, `up{l}.*`, `dec{l}.*`, `out_norm.*`, `out.*`.
pub struct TimeUNet {
    pub cfg: TimeUNetCfg,
    fc1: Linear,
    fc2: Linear,
    class: Option<Embedding>,
    cond: Option<Linear>,
    stem: Conv2d,
    enc: Vec<ResBlock>,
    down: Vec<Conv2d>,
    mid: ResBlock,
    up: Vec<Conv2d>,
    dec: Vec<ResBlock>,
    out_norm: GroupNorm,
    out: Conv2d,
}

pub fn time_unet(cfg: &TimeUNetCfg, vb: VarBuilder) -> Result<TimeUNet> {
    let ch = &cfg.channels;
    if ch.is_empty() || ch.contains(&0) || cfg.groups == 0 || ch.iter().any(|c| c % cfg.groups != 0) {
        candle_core::bail!(
            "time U-Net: model.channels {ch:?} must be positive and each divisible by model.groups = {}",
            cfg.groups
        );
    }
    let td = cfg.time_dim();
    let (mut enc, mut down, mut up, mut dec) = (vec![], vec![], vec![], vec![]);
    for l in 0..ch.len() {
        let cin = if l == 0 { ch[0] } else { ch[l - 1] };
        enc.push(ResBlock::new(cin, ch[l], td, cfg.groups, vb.pp(format!("enc{l}")))?);
        if l + 1 < ch.len() {
            down.push(conv2d(ch[l], ch[l], 3, 2, 1, vb.pp(format!("down{l}")))?);
            up.push(conv2d(ch[l + 1], ch[l + 1], 3, 1, 1, vb.pp(format!("up{l}")))?);
            dec.push(ResBlock::new(ch[l + 1] + ch[l], ch[l], td, cfg.groups, vb.pp(format!("dec{l}")))?);
        }
    }
    let last = ch[ch.len() - 1];
    Ok(TimeUNet {
        fc1: linear(ch[0], td, InitKind::Default, vb.pp("time.fc1"))?,
        fc2: linear(td, td, InitKind::Default, vb.pp("time.fc2"))?,
        class: if cfg.classes > 0 { Some(embedding(cfg.classes + 1, td, 1.0, vb.pp("class"))?) } else { None },
        cond: if cfg.cond_dim > 0 { Some(linear(cfg.cond_dim, td, InitKind::Default, vb.pp("cond"))?) } else { None },
        stem: conv2d(cfg.in_channels, ch[0], 3, 1, 1, vb.pp("stem"))?,
        mid: ResBlock::new(last, last, td, cfg.groups, vb.pp("mid"))?,
        out_norm: group_norm(ch[0], cfg.groups, vb.pp("out_norm"))?,
        out: conv2d(ch[0], cfg.in_channels, 3, 1, 1, vb.pp("out"))?,
        cfg: cfg.clone(),
        enc,
        down,
        up,
        dec,
    })
}

impl TimeUNet {
    /// The predicted noise ε̂(x_t, t[, class]): x (B, C, S, S), `t` (B,) timesteps (as numbers;
    /// any scale), `class` (B,) u32 ids where `classes > 0` (id `classes` = none). S must divide
    /// by 2^(levels − 1) or the decoder's sides would not match the encoder's.
    pub fn forward(&self, x: &Tensor, t: &[f32], class: Option<&Tensor>) -> Result<Tensor> {
        self.forward_cond(x, t, class, None)
    }

    /// [`Self::forward`] with a conditioning vector `cond` (B, cond_dim) where `cond_dim > 0`,
    /// projected and added to the time embedding as the class embedding is.
    pub fn forward_cond(&self, x: &Tensor, t: &[f32], class: Option<&Tensor>, cond: Option<&Tensor>) -> Result<Tensor> {
        let levels = self.cfg.channels.len();
        let side = x.dim(3)?;
        if side % (1 << (levels - 1)) != 0 || x.dim(2)? != side {
            candle_core::bail!(
                "time U-Net: a {levels}-level net needs square images whose side divides by {}",
                1 << (levels - 1)
            );
        }
        let temb = timestep_embedding(t, self.cfg.channels[0], x.device())?;
        let mut emb = self.fc2.forward(&self.fc1.forward(&temb)?.silu()?)?;
        if let (Some(e), Some(c)) = (&self.class, class) {
            emb = (emb + e.forward(c)?)?;
        }
        if let (Some(p), Some(c)) = (&self.cond, cond) {
            emb = (emb + p.forward(c)?)?;
        }
        let emb = emb.silu()?;
        let mut h = self.stem.forward(x)?;
        let mut skips = vec![];
        for l in 0..levels {
            h = self.enc[l].forward(&h, &emb)?;
            if l + 1 < levels {
                skips.push(h.clone());
                h = self.down[l].forward(&h)?;
            }
        }
        h = self.mid.forward(&h, &emb)?;
        for l in (0..levels - 1).rev() {
            h = self.up[l].forward(&upsample_nearest(&h, 2)?)?;
            h = self.dec[l].forward(&Tensor::cat(&[&h, &skips[l]], 1)?, &emb)?;
        }
        self.out.forward(&self.out_norm.forward_silu(&h)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;
    use crate::rng::Rng;

    #[test]
    fn shapes_names_and_every_parameter_gets_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        for classes in [0, 10] {
            let cfg = TimeUNetCfg { in_channels: 1, channels: vec![8, 16, 16], groups: 4, classes, cond_dim: 0 };
            let p = Params::new(3);
            let net = time_unet(&cfg, p.vb(&dev))?;
            let mut rng = Rng::new(1);
            let x: Vec<f32> = (0..3 * 12 * 12).map(|_| rng.normal() as f32).collect();
            let x = Tensor::from_vec(x, (3, 1, 12, 12), &dev)?;
            let c = Tensor::new(&[1u32, 10, 4], &dev)?;
            let y = net.forward(&x, &[5.0, 500.0, 999.0], (classes > 0).then_some(&c))?;
            assert_eq!(y.dims(), &[3, 1, 12, 12]);
            let names: Vec<String> = p.trainable().into_iter().map(|(n, _)| n).collect();
            for n in [
                "time.fc1.weight",
                "stem.weight",
                "enc1.skip.weight",
                "down0.weight",
                "mid.temb.weight",
                "up1.weight",
                "dec0.conv1.weight",
                "out.bias",
            ] {
                assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
            }
            assert_eq!(names.contains(&"class.weight".to_string()), classes > 0);
            let target: Vec<f32> = (0..3 * 12 * 12).map(|_| rng.normal() as f32).collect();
            let target = Tensor::from_vec(target, (3, 1, 12, 12), &dev)?;
            assert_every_param_gets_a_gradient(&p, &(y - target)?.sqr()?.mean_all()?)?;
            assert!(net.forward(&x.narrow(2, 0, 10)?.narrow(3, 0, 10)?, &[1.0; 3], None).is_err(), "side 10");
        }
        Ok(())
    }

    /// The embedding of t = 0 is [0…0 | 1…1]; rows are unit-free sinusoids with the first
    /// frequency 1: sin(t), cos(t).
    #[test]
    fn sinusoidal_embedding() -> Result<()> {
        let e = timestep_embedding(&[0.0, 2.0], 8, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(e[0], [0., 0., 0., 0., 1., 1., 1., 1.]);
        assert!((e[1][0] - 2f32.sin()).abs() < 1e-6 && (e[1][4] - 2f32.cos()).abs() < 1e-6);
        assert!((e[1][1] - (2.0 * 10000f64.powf(-0.25)).sin() as f32).abs() < 1e-6);
        Ok(())
    }

    /// 8x8, channels 16/32: the conv FLOPs of one image, counted by hand per layer.
    #[test]
    fn flop_count() {
        let cfg = TimeUNetCfg { in_channels: 1, channels: vec![16, 32], groups: 8, classes: 0, cond_dim: 0 };
        let c = |i: usize, o: usize, k: usize, s: usize| 2.0 * (i * o * k * k * s * s) as f64;
        let want = c(1, 16, 3, 8)                                  // stem
            + c(16, 16, 3, 8) * 2.0                                 // enc0
            + c(16, 16, 3, 4)                                       // down0
            + c(16, 32, 3, 4) + c(32, 32, 3, 4) + c(16, 32, 1, 4)   // enc1
            + c(32, 32, 3, 4) * 2.0                                 // mid
            + c(32, 32, 3, 8)                                       // up0
            + c(48, 16, 3, 8) + c(16, 16, 3, 8) + c(48, 16, 1, 8)   // dec0
            + c(16, 1, 3, 8); // out
        assert_eq!(cfg.forward_flops(2, 8), 2.0 * want);
    }
}
