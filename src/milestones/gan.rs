//! `gan`: generative adversarial nets (Goodfellow et al. 2014). A generator G maps noise z to
//! images; a discriminator D tells real images from G's. They train in turn, two parameter
//! groups updated in one step: D on real (label 1) and generated (label 0) images, then G to
//! make D call its images real, with the "non-saturating" loss −log D(G(z)) the paper proposes
//! in place of log(1 − D(G(z))), whose gradient vanishes while D easily wins early on.
//!
//! The shapes are the MLP GAN of the PyTorch and Keras tutorials (the paper's own MNIST nets
//! were MLPs with maxout units): G 100 → 256 → 512 → 1024 → 784, LeakyReLU 0.2, tanh out;
//! D 784 → 1024 → 512 → 256 → 1, LeakyReLU 0.2 and dropout 0.3; Adam lr 2e-4, β1 0.5 (Radford
//! et al. 2015's settings). A GAN has no likelihood to validate on: its validation "loss" is
//! the Fréchet distance of its samples (`generative.rs`).

use super::generative::{self, DataCfg, FdProbe};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::batch::EpochSampler;
use crate::data::vision::Splits;
use crate::experiment::{
    Experiment, Group, Metrics, Need, SampleOpt, SampleOut, SampleRequest, Split, TrainOut, Updater,
};
use crate::nn::dropout::Dropout;
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::picture::Picture;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// dimensions of the noise z ~ N(0, I)
    pub latent: usize,
    /// the generator's hidden widths
    pub g_hidden: Vec<usize>,
    /// the discriminator's hidden widths
    pub d_hidden: Vec<usize>,
    /// LeakyReLU's slope for x < 0, in [0, 1]
    pub slope: f64,
    /// dropout after each of the discriminator's hidden layers (training only)
    pub dropout: f64,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { latent: 100, g_hidden: vec![256, 512, 1024], d_hidden: vec![1024, 512, 256], slope: 0.2, dropout: 0.3 }
    }
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    let train =
        TrainConfig { steps: 3000, batch_size: 64, lr: 2e-4, beta1: 0.5, eval_every: 500, ..Default::default() };
    Config {
        train: train.with_groups(&["discriminator", "generator"]),
        data: DataCfg::default(),
        model: ModelCfg::default(),
    }
}

/// Linear layers with LeakyReLU between; `tanh` on the generator's output.
struct Net {
    layers: Vec<Linear>,
    slope: f64,
    dropout: Option<Dropout>,
}

impl Net {
    fn new(dims: &[usize], slope: f64, dropout: Option<f64>, vb: candle_nn::VarBuilder) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| linear(d[0], d[1], InitKind::Default, vb.pp(format!("fc{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, slope, dropout: dropout.map(Dropout::new) })
    }

    /// The last layer's output, before any squashing; `rng` draws dropout masks in training.
    fn forward(&self, x: &Tensor, rng: Option<&mut Rng>) -> Result<Tensor> {
        let mut rng = rng;
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            if i < last {
                h = l.forward_leaky_relu(&h, self.slope)?; // one fused op, as PyTorch's leaky_relu at 0
                if let (Some(d), Some(r)) = (&self.dropout, rng.as_deref_mut()) {
                    h = d.forward(&h, true, r)?;
                }
            } else {
                h = l.forward(&h)?;
            }
        }
        Ok(h)
    }
}

pub struct Gan {
    params: Params,
    g: Net,
    d: Net,
    data: Splits,
    sampler: EpochSampler,
    cfg: Config,
    fd: Option<FdProbe>,
    device: Device,
}

/// −mean log σ(±z) = mean softplus(∓z), computed stably as max(∓z, 0) + log(1 + e^(−|z|)).
fn softplus_mean(z: &Tensor, sign: f64) -> Result<Tensor> {
    let m = (z * -sign)?;
    (m.relu()? + ((m.abs()? * -1.0)?.exp()? + 1.0)?.log()?)?.mean_all()
}

impl Gan {
    fn noise(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let z: Vec<f32> = (0..n * self.cfg.model.latent).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(z, (n, self.cfg.model.latent), &self.device)
    }

    /// `n` generated images, n·S·S values in [−1, 1].
    fn generate(&self, n: usize, rng: &mut Rng) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(n * self.data.train.dim());
        for start in (0..n).step_by(500) {
            let z = self.noise((n - start).min(500), rng)?;
            out.extend(self.g.forward(&z, None)?.tanh()?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// The FD of `fd_samples` generated images against the real images of `split`, from the
    /// same noise at every evaluation of a split, so the curve follows G alone.
    fn fd_on(&mut self, split: Split) -> Result<f64> {
        let mut rng = Rng::derive(self.cfg.train.seed, "gan/eval", split as u64);
        let pixels = self.generate(self.cfg.data.fd_samples, &mut rng)?;
        let set = generative::to_unit_set(&pixels, self.data.train.h);
        self.fd.as_mut().expect("evaluate checks the probe").fd(&set, &self.data, split)
    }
}

impl Experiment for Gan {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn groups(&self) -> Vec<Group> {
        vec![
            Group { name: "discriminator", prefixes: vec!["discriminator.".into()] },
            Group { name: "generator", prefixes: vec!["generator.".into()] },
        ]
    }

    fn train_step(&mut self, step: usize, rng: &mut Rng, up: &mut dyn Updater) -> Result<()> {
        let idx = self.sampler.indices(step);
        let b = idx.len();
        let real = Tensor::from_vec(self.data.train.subset(&idx).pixels, (b, self.data.train.dim()), &self.device)?;
        let fake = self.g.forward(&self.noise(b, rng)?, None)?.tanh()?;
        // D: real images → 1, generated → 0 (G's output detached: this update moves only D), as
        // one batch of 2b: D has no batch statistics, so the losses are those of two passes, but
        // each weight is read once and gets one gradient (not two to add)
        let d_both = self.d.forward(&Tensor::cat(&[&real, &fake.detach()], 0)?, Some(rng))?; // (2b, 1)
        let (d_real, d_fake) = (d_both.narrow(0, 0, b)?, d_both.narrow(0, b, b)?);
        let loss_d = (softplus_mean(&d_real, 1.0)? + softplus_mean(&d_fake, -1.0)?)?;
        let acc = |z: &Tensor, real: bool| -> Result<f64> {
            let hit = if real { z.ge(0f32)? } else { z.lt(0f32)? };
            Ok(hit.to_dtype(candle_core::DType::F32)?.mean_all()?.to_scalar::<f32>()? as f64)
        };
        let d_acc = (acc(&d_real, true)? + acc(&d_fake, false)?) / 2.0;
        up.update("discriminator", TrainOut { loss: loss_d, metrics: Metrics::from([("d_acc".into(), d_acc)]) })?;
        // G: the non-saturating loss −log D(G(z)) through the just-updated D
        let loss_g = softplus_mean(&self.d.forward(&fake, Some(rng))?, 1.0)?;
        up.update("generator", TrainOut { loss: loss_g, metrics: Metrics::new() })?;
        Ok(())
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        // one loss that reaches every parameter (for gradient checks): D's loss plus G's
        let idx = self.sampler.indices(step);
        let b = idx.len();
        let real = Tensor::from_vec(self.data.train.subset(&idx).pixels, (b, self.data.train.dim()), &self.device)?;
        let fake = self.g.forward(&self.noise(b, rng)?, None)?.tanh()?;
        let loss_d = (softplus_mean(&self.d.forward(&real, Some(rng))?, 1.0)?
            + softplus_mean(&self.d.forward(&fake, Some(rng))?, -1.0)?)?;
        let loss_g = softplus_mean(&self.d.forward(&fake, Some(rng))?, 1.0)?;
        Ok(TrainOut { loss: (loss_d + loss_g)?, metrics: Metrics::new() })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        if self.fd.is_none() {
            return Ok(Metrics::new());
        }
        let fd = self.fd_on(split)?;
        let mut m = Metrics::from([("fd".to_string(), fd), ("loss".to_string(), fd)]);
        if split == Split::Val {
            // the test FD at every evaluation too (`fd_test` in metrics.jsonl), with the test
            // evaluation's noise, so the last equals the run's final test FD: `diffusion`'s claim
            // compares at the evaluation where the GAN's training time reaches diffusion's. It is
            // only reported: nothing chooses or stops by it.
            m.insert("fd_test".to_string(), self.fd_on(Split::Test)?);
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let n = req.n_or(64);
        let pixels = self.generate(n, rng)?;
        let side = self.data.train.h;
        let text = format!("{n} samples of the generator ({side}x{side}, trained on {})\n", self.data.name);
        Ok(SampleOut::new(text, serde_json::json!({"n": n, "side": side, "data": self.data.name}))
            .with_picture("grid", Picture::Image(generative::grid(&pixels, side))))
    }

    fn needs(&self) -> Vec<Need> {
        generative::fd_need(&self.cfg.data, &self.data.name).into_iter().collect()
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        generative::attach_fd(&mut self.fd, key, trained, &self.device, "gan")
    }

    fn data_name(&self) -> String {
        self.data.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.data.notice.clone()
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let m = &c.model;
    if m.latent == 0 || m.g_hidden.contains(&0) || m.d_hidden.contains(&0) {
        return Err(crate::error::DlError::BadValue {
            context: "model".into(),
            message: "model.latent and every hidden width must be positive".into(),
        }
        .into());
    }
    if !(0.0..=1.0).contains(&m.slope) {
        return Err(crate::error::DlError::BadValue {
            context: "model.slope".into(),
            message: format!("LeakyReLU's slope must be in [0, 1] (0 is ReLU; the preset's 0.2), got {}", m.slope),
        }
        .into());
    }
    Ok(Box::new(assemble(c, generative::load(&c.data)?, device)?))
}

/// The GAN of config `c` over `data` (pixels in [−1, 1]).
fn assemble(c: &Config, data: Splits, device: &Device) -> Result<Gan> {
    let m = &c.model;
    let params = Params::new(c.train.seed);
    let vb = params.vb(device);
    let dim = data.train.dim();
    let g_dims: Vec<usize> = [m.latent].iter().chain(&m.g_hidden).chain([&dim]).copied().collect();
    let d_dims: Vec<usize> = [dim].iter().chain(&m.d_hidden).chain([&1]).copied().collect();
    let g = Net::new(&g_dims, m.slope, None, vb.pp("generator"))?;
    let d = Net::new(&d_dims, m.slope, (m.dropout > 0.0).then_some(m.dropout), vb.pp("discriminator"))?;
    let sampler = EpochSampler::new(c.train.seed, data.train.len(), c.train.batch_size);
    Ok(Gan { params, g, d, data, sampler, cfg: c.clone(), fd: None, device: device.clone() })
}

/// `dlhist bench gan`: the preset's GAN and its own training step (a D update, then a G update)
/// on one batch of seeded uniform 28x28 images in [−1, 1] (the sampler permutes the same batch
/// each step), and the step's FLOPs: 3 × the forward products, G on b images and D on 3b (real
/// and generated for D's update, generated again for G's), 2 FLOPs per multiply-add.
pub fn synthetic(seed: u64, device: &Device) -> Result<(Box<dyn Experiment>, f64)> {
    let c = defaults();
    let (b, side) = (c.train.batch_size, 28);
    let mut rng = Rng::derive(seed, "bench/gan", 0);
    let pixels: Vec<f32> = (0..b * side * side).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect();
    let set = crate::data::ImageSet { pixels, labels: vec![0; b], h: side, w: side, classes: 10 };
    let data = Splits { train: set.clone(), val: set.clone(), test: set, name: "synthetic".into(), notice: None };
    let m = &c.model;
    let macs = |dims: Vec<usize>| -> usize { dims.windows(2).map(|d| d[0] * d[1]).sum() };
    let g: usize = macs([m.latent].iter().chain(&m.g_hidden).chain([&(side * side)]).copied().collect());
    let d: usize = macs([side * side].iter().chain(&m.d_hidden).chain([&1]).copied().collect());
    let flops = 3.0 * 2.0 * (b * (g + 3 * d)) as f64;
    Ok((Box::new(assemble(&c, data, device)?), flops))
}

pub static FAMILY: Family =
    Family { id: "gan", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };
