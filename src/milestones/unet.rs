//! `unet`: U-Net (Ronneberger, Fischer & Brox 2015), an encoder–decoder for per-pixel
//! classification whose decoder concatenates, at each resolution, the encoder's feature maps
//! of that resolution ("skip connections"). The encoder's pooled features say *what* is there
//! but have lost *where*; the skips hand the decoder the fine positions back. `unet-noskip` is
//! the same network without the concatenations. Claim: skips give a higher mean IoU on the
//! digit-segmentation canvases (src/data/canvas.rs). The net is in `nn::unet`, the recipe in
//! `segment.rs`, the claim check in src/claims/segment.rs.

use super::segment::{self, SegModel, Segmenter};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::experiment::Experiment;
use crate::nn::unet::{unet, UNet, UNetCfg};
use crate::params::Params;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// feature channels per level, finest first; each level below the first halves the side
    pub channels: Vec<usize>,
    /// concatenate the encoder's maps into the decoder (U-Net); false = plain encoder–decoder
    pub skip: bool,
    /// batch normalisation after each 3x3 convolution
    pub batchnorm: bool,
    /// weight of a digit pixel in the loss relative to a background pixel (1 = plain mean)
    pub digit_weight: f64,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { channels: vec![8, 16, 32], skip: true, batchnorm: true, digit_weight: 8.0 }
    }
}

impl ModelCfg {
    /// The net's shape: grey canvases in, the rest from this config.
    pub fn net(&self) -> UNetCfg {
        UNetCfg { in_channels: 1, channels: self.channels.clone(), skip: self.skip, batchnorm: self.batchnorm }
    }
}

impl SegModel for UNet {
    fn logits(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        UNet::logits(self, x, train)
    }
}

pub type Config = super::Config<segment::DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig { steps: 600, batch_size: 16, lr: 3e-3, eval_every: 200, ..Default::default() },
        data: segment::DataCfg::default(),
        model: ModelCfg::default(),
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let params = Params::new(c.train.seed);
    let net = unet(&c.model.net(), crate::data::canvas::CLASSES, &params, device)?;
    Ok(Box::new(Segmenter::new(net, params, &c.data, c.model.digit_weight, c.train.batch_size, c.train.seed, device)?))
}

pub static FAMILY: Family =
    Family { id: "unet", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };
