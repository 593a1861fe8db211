//! `vq-vae`: the vector-quantised variational autoencoder (van den Oord, Vinyals &
//! Kavukcuoglu 2017). A conv encoder maps a 28x28 image to a 7x7 grid of D-dimensional vectors;
//! each is replaced by its nearest entry of a codebook of K vectors (src/nn/vq.rs), so an image
//! becomes 49 discrete codes; a conv decoder (nearest-neighbour upsampling and 3x3 convolutions)
//! maps the codes' vectors back to the image. Training: the reconstruction loss (Bernoulli
//! cross-entropy against the grey values) through the straight-through estimator, plus the
//! codebook loss and β times the commitment loss. `vq-vae` initialises the codebook by k-means
//! on the first batch's encoder outputs and resets codes that went unused to encoder outputs;
//! `vq-vae-plain` is the 2017 recipe without either.
//!
//! The trained net is a tokenizer other milestones reuse (DALL·E's image tokens):
//! [`VqVaeNet::encode`] maps images to codes, [`VqVaeNet::decode`] codes to images, and
//! [`net`] built on a trained run's parameters gives that run's weights.

use super::vae::{load_images, to_images};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::batch::EpochSampler;
use crate::data::vision::Splits;
use crate::data::ImageSet;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::nn::latent::bernoulli_nll;
use crate::nn::vq::usage_and_perplexity;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

mod net;
mod sample;

use net::to_rows;
pub use net::{net, VqVaeNet};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// mnist | fashion | digits8 (resized to 28x28; mnist/fashion fall back to it when not fetched)
    pub dataset: String,
    /// keep only this many training images; 0 = all
    pub train_size: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// channels of the encoder's two stride-2 convolutions (the decoder mirrors them)
    pub channels: [usize; 2],
    /// dimensions D of each latent vector and code
    pub dim: usize,
    /// codebook size K
    pub codes: usize,
    /// weight β of the commitment loss
    pub beta: f64,
    /// set the codebook by k-means on the first training batch's encoder outputs
    pub kmeans_init: bool,
    /// every N updates, move each code that no encoder output chose since the last reset onto a
    /// random encoder output of the batch; 0 = never
    pub reset_every: usize,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { channels: [32, 64], dim: 16, codes: 128, beta: 0.25, kmeans_init: true, reset_every: 100 }
    }
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig { steps: 2000, batch_size: 64, lr: 1e-3, eval_every: 500, ..Default::default() },
        data: DataCfg { dataset: "mnist".into(), train_size: 0 },
        model: ModelCfg::default(),
    }
}

/// Lloyd iterations of the k-means initialisation.
const KMEANS_ITERS: usize = 10;
const EVAL_BATCH: usize = 500;

pub struct VqVae {
    pub net: VqVaeNet,
    params: Params,
    data: Splits,
    sampler: EpochSampler,
    device: Device,
}

/// (B, 1, H, W) grey images of `idx` of `set`.
pub fn image_batch(set: &ImageSet, idx: &[usize], device: &Device) -> Result<Tensor> {
    let pixels: Vec<f32> = idx.iter().flat_map(|&i| set.image(i).to_vec()).collect();
    Tensor::from_vec(pixels, (idx.len(), 1, set.h, set.w), device)
}

impl VqVae {
    fn set(&self, split: Split) -> &ImageSet {
        match split {
            Split::Val => &self.data.val,
            Split::Test => &self.data.test,
        }
    }

    /// The losses of one batch: (total, reconstruction cross-entropy, MSE of the sigmoid
    /// against x), and the codes.
    fn losses(&self, x: &Tensor) -> Result<(Tensor, Tensor, f64, Tensor)> {
        let (q, logits) = self.net.forward(x)?;
        // the Bernoulli cross-entropy against the grey values, per pixel
        let rec = (bernoulli_nll(&logits.flatten_from(1)?, &x.flatten_from(1)?)?.sum_all()? / x.elem_count() as f64)?;
        let mse = (candle_nn::ops::sigmoid(&logits)? - x)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
        let total = ((&rec + q.codebook_loss)? + (q.commit_loss * self.net.cfg.beta)?)?;
        Ok((total, rec, mse, q.codes))
    }

    /// The first `n` images of `split` reconstructed through their codes (grey values in [0, 1],
    /// the split's labels): what a Fréchet distance of the reconstructions against the real
    /// images of the split scores (the VQ-VAE alone has no prior to sample from).
    pub fn reconstructed_set(&self, split: Split, n: usize) -> Result<ImageSet> {
        let set = self.set(split);
        let idx: Vec<usize> = (0..n.min(set.len())).collect();
        let mut pixels = Vec::with_capacity(idx.len() * set.dim());
        for chunk in idx.chunks(EVAL_BATCH) {
            let x = image_batch(set, chunk, &self.device)?;
            pixels.extend(self.net.decode(&self.net.encode(&x)?)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(ImageSet { pixels, labels: set.labels[..idx.len()].to_vec(), h: set.h, w: set.w, classes: set.classes })
    }

    /// The real images of `split`, grey values in [0, 1].
    pub fn real_set(&self, split: Split) -> &ImageSet {
        self.set(split)
    }

    pub fn test_set(&self) -> &ImageSet {
        &self.data.test
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn data_name_str(&self) -> &str {
        &self.data.name
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    Ok(Box::new(VqVae::new(c, device)?))
}

impl VqVae {
    pub fn new(c: &Config, device: &Device) -> anyhow::Result<Self> {
        let m = &c.model;
        if m.channels.contains(&0) || m.dim == 0 || m.codes < 2 || m.beta.is_nan() || m.beta < 0.0 {
            return Err(DlError::BadValue {
                context: "model".into(),
                message: format!("channels and dim need at least 1, codes at least 2, beta ≥ 0; got {m:?}"),
            }
            .into());
        }
        let data = load_images(&c.data.dataset, c.data.train_size)?;
        let params = Params::new(c.train.seed);
        let net = net(m, &params, device)?;
        let sampler = EpochSampler::new(c.train.seed, data.train.len(), c.train.batch_size);
        Ok(VqVae { net, params, data, sampler, device: device.clone() })
    }
}

impl Experiment for VqVae {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let idx = self.sampler.indices(step);
        let x = image_batch(&self.data.train, &idx, &self.device)?;
        let (q, cfg) = (&self.net.quant, &self.net.cfg);
        let mut metrics = Metrics::new();
        let reset_now = cfg.reset_every > 0 && step > 0 && step.is_multiple_of(cfg.reset_every);
        if (cfg.kmeans_init && !q.is_ready()?) || reset_now {
            let z = to_rows(&self.net.encode_z(&x)?)?.detach();
            if cfg.kmeans_init && !q.is_ready()? {
                q.kmeans_init(&z, KMEANS_ITERS, rng)?;
            }
            if reset_now {
                metrics.insert("codes_reset".to_string(), q.reset_dead(&z, 1.0, rng)? as f64);
            }
        }
        let (loss, rec, mse, codes) = self.losses(&x)?;
        self.net.quant.record_usage(&codes)?;
        let (used, ppl) = usage_and_perplexity(&codes.to_vec1::<u32>()?, self.net.cfg.codes);
        metrics.extend([
            ("rec".to_string(), rec.to_scalar::<f32>()? as f64),
            ("mse".to_string(), mse),
            ("used_frac".to_string(), used),
            ("perplexity".to_string(), ppl),
        ]);
        Ok(TrainOut { loss, metrics })
    }

    /// `loss` (as in training), `rec` (cross-entropy per pixel), `mse` (per pixel, of the
    /// reconstruction's grey values), and over all the split's codes: `used_frac` (the fraction
    /// of the K codes chosen at least once) and `perplexity` (exp of the codes' entropy).
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = self.set(split);
        let n = set.len();
        let (mut loss, mut rec, mut mse) = (0.0, 0.0, 0.0);
        let mut codes = Vec::with_capacity(n * VqVaeNet::GRID * VqVaeNet::GRID);
        for start in (0..n).step_by(EVAL_BATCH) {
            let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
            let x = image_batch(set, &idx, &self.device)?;
            let (l, r, e, c) = self.losses(&x)?;
            let w = idx.len() as f64;
            loss += l.to_scalar::<f32>()? as f64 * w;
            rec += r.to_scalar::<f32>()? as f64 * w;
            mse += e * w;
            codes.extend(c.to_vec1::<u32>()?);
        }
        let (used, ppl) = usage_and_perplexity(&codes, self.net.cfg.codes);
        let n = n as f64;
        Ok(Metrics::from([
            ("loss".to_string(), loss / n),
            ("rec".to_string(), rec / n),
            ("mse".to_string(), mse / n),
            ("used_frac".to_string(), used),
            ("perplexity".to_string(), ppl),
        ]))
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        sample::sample(self, req, rng)
    }

    fn data_name(&self) -> String {
        self.data.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.data.notice.clone()
    }
}

pub static FAMILY: Family =
    Family { id: "vq-vae", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests;
