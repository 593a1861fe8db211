//! `vit`: the Vision Transformer (Dosovitskiy et al. 2021): an image cut into P×P patches, each
//! patch projected to a token (`nn::patch`), a learned `[CLS]` token in front, learned position
//! embeddings added, a stack of pre-LN transformer blocks with bidirectional attention
//! (`nn::encoder`), and a linear classifier on the `[CLS]` output. It trains on the image
//! classification recipe (`classify.rs`) that `lenet` trains on, so the two compare on the same
//! data, batches and budget. Claim: with little data the ViT trails the CNN, which has the
//! locality and translation equivariance built in; with more data it closes most of the gap.

use super::classify::{ClassModel, Classifier};
use super::{from_table, mlp, to_table, Family};
use crate::config::{OptimKind, ScheduleKind, TrainConfig};
use crate::data::vision;
use crate::experiment::Experiment;
use crate::nn::encoder::{encoder, Encoder, EncoderCfg};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::nn::patch::{patch_embed, PatchEmbed};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::init::Init;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// channels of the input images
    pub in_channels: usize,
    /// side of the (square) input images
    pub image_size: usize,
    /// side of the square patches (must divide image_size)
    pub patch: usize,
    /// transformer blocks
    pub n_layer: usize,
    /// attention heads (must divide n_embd)
    pub n_head: usize,
    /// model width D
    pub n_embd: usize,
    /// the MLP's hidden width as a multiple of D
    pub mlp_ratio: usize,
    pub classes: usize,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { in_channels: 1, image_size: 28, patch: 7, n_layer: 4, n_head: 4, n_embd: 64, mlp_ratio: 2, classes: 10 }
    }
}

impl ModelCfg {
    /// Tokens per image: the patches and `[CLS]`.
    pub fn tokens(&self) -> usize {
        (self.image_size / self.patch).pow(2) + 1
    }
}

pub struct Vit {
    pub patch: PatchEmbed,
    /// the learned `[CLS]` token (1, 1, D), zeros at first as ViT's
    pub cls_token: Tensor,
    /// positions of `[CLS]` and the patches (1, N+1, D), N(0, 0.02²)
    pub pos: Tensor,
    pub enc: Encoder,
    /// D -> classes on `[CLS]`
    pub head: Linear,
}

/// Parameters: `patch.*`, `cls_token`, `pos`, `h.{i}.*`, `ln_f.*`, `head.*`.
pub fn vit(cfg: &ModelCfg, params: &Params, device: &Device) -> Result<Vit> {
    if cfg.patch == 0 || !cfg.image_size.is_multiple_of(cfg.patch) {
        candle_core::bail!("vit: patch {} does not divide the {}x{} images", cfg.patch, cfg.image_size, cfg.image_size);
    }
    let vb = params.vb(device);
    let d = cfg.n_embd;
    let ecfg = EncoderCfg { n_layer: cfg.n_layer, n_embd: d, n_head: cfg.n_head, mlp_ratio: cfg.mlp_ratio };
    Ok(Vit {
        patch: patch_embed(cfg.in_channels, cfg.patch, d, vb.pp("patch"))?,
        cls_token: vb.get_with_hints((1, 1, d), "cls_token", Init::Const(0.0))?,
        pos: vb.get_with_hints((1, cfg.tokens(), d), "pos", Init::Randn { mean: 0.0, stdev: 0.02 })?,
        enc: encoder(&ecfg, params, device)?,
        head: linear(d, cfg.classes, InitKind::Default, vb.pp("head"))?,
    })
}

impl ClassModel for Vit {
    /// (B, C, H, W) -> (B, classes)
    fn logits(&self, x: &Tensor, _train: bool, _rng: &mut Rng) -> Result<Tensor> {
        let patches = self.patch.forward(x)?; // (B, N, D)
        let (b, _, d) = patches.dims3()?;
        let cls = self.cls_token.broadcast_as((b, 1, d))?;
        let h = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.pos)?; // (B, N+1, D)
        let h = self.enc.forward(&h)?;
        self.head.forward(&h.narrow(1, 0, 1)?.squeeze(1)?)
    }
}

pub type Config = super::Config<mlp::DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 3000,
            batch_size: 64,
            optimizer: OptimKind::Adamw,
            lr: 1e-3,
            weight_decay: 0.05,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 100,
            clip_grad_norm: 1.0,
            eval_every: 500,
            ..Default::default()
        },
        data: mlp::DataCfg { dataset: "mnist".into(), train_size: 0 },
        model: ModelCfg::default(),
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let mut data = vision::load(&c.data.dataset, c.data.train_size)?;
    // as lenet: the 8x8 fallback digits are resampled to the model's image size
    let size = c.model.image_size;
    data.map_sets(|set| vision::resize(set, size));
    let params = Params::new(c.train.seed);
    let net = vit(&c.model, &params, device)?;
    Ok(Box::new(Classifier::new(net, params, data, c.train.batch_size, c.train.seed, device)))
}

pub static FAMILY: Family =
    Family { id: "vit", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;

    #[test]
    fn tokens_shapes_and_every_parameter_gets_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = ModelCfg { n_layer: 2, n_embd: 16, ..Default::default() };
        assert_eq!(cfg.tokens(), 17); // 4x4 patches of 7x7 and [CLS]
        assert_eq!(ModelCfg { patch: 4, ..Default::default() }.tokens(), 50);
        let p = Params::new(2);
        let net = vit(&cfg, &p, &dev)?;
        let mut rng = Rng::new(1);
        let x: Vec<f32> = (0..3 * 28 * 28).map(|_| rng.uniform() as f32).collect();
        let x = Tensor::from_vec(x, (3, 1, 28, 28), &dev)?;
        let logits = net.logits(&x, true, &mut rng)?;
        assert_eq!(logits.dims(), &[3, 10]);
        let loss = crate::nn::loss::cross_entropy(&logits, &Tensor::new(&[1u32, 7, 3], &dev)?)?;
        assert_every_param_gets_a_gradient(&p, &loss)?;
        assert!(vit(&ModelCfg { patch: 5, ..Default::default() }, &Params::new(1), &dev).is_err());
        Ok(())
    }
}
