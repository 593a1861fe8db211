//! `vae`: the variational autoencoder (Kingma & Welling 2014, "Auto-encoding variational
//! Bayes"; Rezende, Mohamed & Wierstra 2014). An encoder MLP maps an image x to a Gaussian
//! q(z|x) = N(μ(x), diag σ²(x)) over a small latent space; a decoder MLP maps a latent z to the
//! probabilities of a Bernoulli over the pixels. Both are trained together by maximising the
//! evidence lower bound (ELBO) on log p(x):
//!
//!   log p(x) ≥ E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I)),
//!
//! the expectation estimated with one reparameterised sample z = μ + σ·ε (so its gradient
//! flows into μ and σ), the KL in closed form (src/nn/latent.rs). New images are decodings of
//! z ~ N(0, I). The loss is −ELBO in nats per image. Data: MNIST binarised dynamically (each
//! training image's pixels drawn anew as Bernoulli(grey value) every time it is seen); the
//! validation and test images binarised once, by a fixed draw shared by every run. The claim
//! check is in src/claims/autoencoders.rs.

use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::batch::EpochSampler;
use crate::data::vision::{self, Splits};
use crate::data::ImageSet;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, Need, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::milestones::generative::{self, fd_need_spec, FdProbe};
use crate::nn::activation::Activation;
use crate::params::Params;
use crate::picture::Image;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

mod model;
mod sample;

pub use model::VaeModel;

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// mnist | fashion | digits8 (resized to 28x28; mnist/fashion fall back to it when not fetched)
    pub dataset: String,
    /// keep only this many training images; 0 = all
    pub train_size: usize,
    /// the feature net of the test FD of the samples: MILESTONE[:KEY=VALUE…], trained on demand
    /// and cached like any run ("" = no FD)
    #[serde(default = "default_fd_net")]
    pub fd_net: String,
    /// samples (and real test images) the FD compares
    #[serde(default = "default_fd_samples")]
    pub fd_samples: usize,
}

fn default_fd_net() -> String {
    "lenet".into()
}

fn default_fd_samples() -> usize {
    1000
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// the encoder's hidden widths; the decoder mirrors them
    pub hidden: Vec<usize>,
    /// dimensions of the latent z
    pub latent: usize,
    /// relu | tanh | sigmoid | gelu | gelu_tanh
    pub act: Activation,
    /// K of the importance-weighted bound on the test split (Burda et al. 2016); 0 = off
    pub iw_samples: usize,
    /// test images scored by the importance-weighted bound (the first ones of the test split)
    pub iw_images: usize,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig { steps: 10_000, batch_size: 128, lr: 1e-3, eval_every: 2000, ..Default::default() },
        data: DataCfg {
            dataset: "mnist".into(),
            train_size: 0,
            fd_net: default_fd_net(),
            fd_samples: default_fd_samples(),
        },
        model: ModelCfg { hidden: vec![512, 256], latent: 32, act: Activation::Relu, iw_samples: 100, iw_images: 1000 },
    }
}

/// The images of an autoencoder milestone: MNIST-like 28x28 (digits8 resized to it).
pub fn load_images(dataset: &str, train_size: usize) -> std::result::Result<Splits, DlError> {
    let mut s = vision::load(dataset, train_size)?;
    if s.train.h != 28 {
        s.map_sets(|set| vision::resize(set, 28));
    }
    Ok(s)
}

/// One draw of x ~ Bernoulli(grey value) per pixel.
pub fn binarize(grey: &[f32], rng: &mut Rng) -> Vec<f32> {
    grey.iter().map(|&p| if (rng.uniform() as f32) < p { 1.0 } else { 0.0 }).collect()
}

/// The fixed binarisation of the validation and test images: a seed of its own, the same for
/// every run and seed, so every run is scored on the same bits.
const EVAL_BITS: u64 = 0x0b17_5eed;
/// The fixed noise ε of the evaluation's one-sample bound.
const EVAL_NOISE: u64 = 0x0e95_11c0;
const EVAL_BATCH: usize = 1000;

pub struct Vae {
    pub model: VaeModel,
    params: Params,
    data: Splits,
    /// the fixed binarisations of the validation and test images
    val_bits: Vec<f32>,
    test_bits: Vec<f32>,
    sampler: EpochSampler,
    cfg: ModelCfg,
    data_cfg: DataCfg,
    seed: u64,
    /// the FD's feature net, once attached (`needs`)
    fd: Option<FdProbe>,
    device: Device,
}

/// Normal draws as an (n, l) tensor.
pub fn normal(n: usize, l: usize, rng: &mut Rng, device: &Device) -> Result<Tensor> {
    Tensor::from_vec((0..n * l).map(|_| rng.normal() as f32).collect::<Vec<_>>(), (n, l), device)
}

/// Rows of pixels (n·h·w values) as n grey images.
pub fn to_images(rows: &[f32], h: usize, w: usize) -> Vec<Image> {
    rows.chunks(h * w).map(|r| Image::gray(w, h, r.to_vec())).collect()
}

impl Vae {
    fn bits(&self, split: Split) -> (&ImageSet, &[f32]) {
        match split {
            Split::Val => (&self.data.val, &self.val_bits),
            Split::Test => (&self.data.test, &self.test_bits),
        }
    }

    /// `n` images decoded from z ~ N(0, I): pixel probabilities in [0, 1].
    pub fn generate(&self, n: usize, rng: &mut Rng) -> Result<Vec<Image>> {
        let set = self.generate_set(n, rng)?;
        Ok(to_images(&set.pixels, set.h, set.w))
    }

    /// The same as an image set (28x28, values in [0, 1], labels 0): what a Fréchet distance of
    /// the VAE's samples against the real images of a split scores.
    pub fn generate_set(&self, n: usize, rng: &mut Rng) -> Result<ImageSet> {
        let z = normal(n, self.model.latent, rng, &self.device)?;
        let pixels = self.model.decode(&z)?.flatten_all()?.to_vec1::<f32>()?;
        let (h, w) = (self.data.test.h, self.data.test.w);
        Ok(ImageSet { pixels, labels: vec![0; n], h, w, classes: self.data.test.classes })
    }

    /// The real images of `split`, grey values in [0, 1] (not binarised).
    pub fn real_set(&self, split: Split) -> &ImageSet {
        self.bits(split).0
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    if c.model.latent == 0 || c.model.hidden.contains(&0) {
        return Err(DlError::BadValue {
            context: "model".into(),
            message: format!("latent and every hidden width need at least one unit, got {:?}", c.model),
        }
        .into());
    }
    let data = load_images(&c.data.dataset, c.data.train_size)?;
    let params = Params::new(c.train.seed);
    let model = VaeModel::new(&c.model, data.train.dim(), &params, device)?;
    let val_bits = binarize(&data.val.pixels, &mut Rng::derive(EVAL_BITS, "val", 0));
    let test_bits = binarize(&data.test.pixels, &mut Rng::derive(EVAL_BITS, "test", 0));
    let sampler = EpochSampler::new(c.train.seed, data.train.len(), c.train.batch_size);
    Ok(Box::new(Vae {
        model,
        params,
        data,
        val_bits,
        test_bits,
        sampler,
        cfg: c.model.clone(),
        data_cfg: c.data.clone(),
        seed: c.train.seed,
        fd: None,
        device: device.clone(),
    }))
}

impl Experiment for Vae {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let idx = self.sampler.indices(step);
        let sub = self.data.train.subset(&idx);
        let x = Tensor::from_vec(binarize(&sub.pixels, rng), (idx.len(), sub.dim()), &self.device)?;
        let eps = normal(idx.len(), self.model.latent, rng, &self.device)?;
        let (rec, kl, _) = self.model.neg_elbo(&x, &eps)?;
        let (rec, kl) = (rec.mean_all()?, kl.mean_all()?);
        let metrics = Metrics::from([
            ("rec".to_string(), rec.to_scalar::<f32>()? as f64),
            ("kl".to_string(), kl.to_scalar::<f32>()? as f64),
        ]);
        Ok(TrainOut { loss: (rec + kl)?, metrics })
    }

    /// `loss`: the one-sample −ELBO in nats per image (fixed noise), with its terms `rec`
    /// (−log p(x|z)) and `kl`; `active_units`: latent dimensions whose posterior mean varies
    /// across the images (Cov_x E_q[z_u] > 0.01, Burda et al. 2016); on the test split also
    /// `nll_iw`, the importance-weighted bound with `model.iw_samples` samples.
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let (set, bits) = self.bits(split);
        let (n, p, l) = (set.len(), self.model.pixels, self.model.latent);
        let mut rng = Rng::derive(EVAL_NOISE, "eval", split as u64);
        let (mut rec, mut kl) = (0.0, 0.0);
        let (mut s1, mut s2) = (vec![0f64; l], vec![0f64; l]);
        for start in (0..n).step_by(EVAL_BATCH) {
            let b = EVAL_BATCH.min(n - start);
            let x = Tensor::from_vec(bits[start * p..(start + b) * p].to_vec(), (b, p), &self.device)?;
            let (r, k, mu) = self.model.neg_elbo(&x, &normal(b, l, &mut rng, &self.device)?)?;
            rec += r.sum_all()?.to_scalar::<f32>()? as f64;
            kl += k.sum_all()?.to_scalar::<f32>()? as f64;
            for row in mu.to_vec2::<f32>()? {
                for (u, &m) in row.iter().enumerate() {
                    s1[u] += m as f64;
                    s2[u] += (m as f64).powi(2);
                }
            }
        }
        let active = (0..l).filter(|&u| s2[u] / n as f64 - (s1[u] / n as f64).powi(2) > 0.01).count();
        let (rec, kl) = (rec / n as f64, kl / n as f64);
        let mut m = Metrics::from([
            ("loss".to_string(), rec + kl),
            ("rec".to_string(), rec),
            ("kl".to_string(), kl),
            ("active_units".to_string(), active as f64),
        ]);
        if split == Split::Test && self.cfg.iw_samples > 0 {
            let (k, imgs) = (self.cfg.iw_samples, self.cfg.iw_images.clamp(1, n));
            let mut rng = Rng::derive(EVAL_NOISE, "iw", 0);
            m.insert("nll_iw".to_string(), self.model.iw_bound(&self.test_bits, imgs, k, &mut rng, &self.device)?);
        }
        // FD of decoded samples (pixel probabilities, as the sample grids show them) against the
        // first `fd_samples` real test images: at the end only, like diffusion's
        if split == Split::Test && self.fd.is_some() {
            let n = self.data_cfg.fd_samples.min(self.data.test.len());
            let generated = self.generate_set(n, &mut Rng::derive(self.seed, "vae/fd", 0))?;
            let real = self.data.test.subset(&(0..n).collect::<Vec<_>>());
            if let Some(probe) = self.fd.as_mut() {
                m.insert("fd".to_string(), probe.fd_unit(&generated, &real, split)?);
            }
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Interpolate]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        sample::sample(self, req, rng)
    }

    fn needs(&self) -> Vec<Need> {
        fd_need_spec(&self.data_cfg.fd_net, &self.data.name).into_iter().collect()
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        generative::attach_fd(&mut self.fd, key, trained, &self.device, "vae")
    }

    fn data_name(&self) -> String {
        self.data.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.data.notice.clone()
    }
}

impl Vae {
    pub fn test_set(&self) -> &ImageSet {
        &self.data.test
    }
    pub fn test_bits(&self) -> &[f32] {
        &self.test_bits
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn data_name_str(&self) -> &str {
        &self.data.name
    }
}

/// μ of q(z|x) for binary images `bits` (n·P values) -> (n, L).
pub fn posterior_means(m: &VaeModel, bits: &[f32], device: &Device) -> Result<Tensor> {
    let n = bits.len() / m.pixels;
    m.encode(&Tensor::from_vec(bits.to_vec(), (n, m.pixels), device)?).map(|(mu, _)| mu)
}

pub static FAMILY: Family =
    Family { id: "vae", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

/// Pixel rows (any shape, n·h·w values) as n grey images.
pub(super) fn pictures_of(probs: &Tensor, h: usize, w: usize) -> Result<Vec<Image>> {
    Ok(to_images(&probs.flatten_all()?.to_vec1::<f32>()?, h, w))
}

#[cfg(test)]
mod tests;
