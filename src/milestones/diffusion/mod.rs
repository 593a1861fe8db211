//! `diffusion` (and its variants `ddpm`, `ddpm-cosine`, `diffusion-cfg`): denoising diffusion
//! probabilistic models (Ho, Jain & Abbeel 2020). Noise is added to an image in T small
//! Gaussian steps until nothing is left; a U-Net learns to predict the noise ε in
//! x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε from x_t and t (the "simple" loss ‖ε − ε̂(x_t, t)‖², a
//! reweighted variational bound), and sampling runs the process backwards from pure noise.
//! The noise schedule is Ho et al.'s linear one or Nichol & Dhariwal's (2021) cosine one
//! (`schedule.rs`); the samplers are DDPM's ancestral one and DDIM (`sampler.rs`). With
//! `model.conditional` the net also sees the digit's class, dropped to "none" for a fraction
//! of the training images, and samples are steered by classifier-free guidance (Ho & Salimans
//! 2021): ε̂ = ε̂(x, ∅) + w·(ε̂(x, c) − ε̂(x, ∅)). An EMA of the weights (`train.ema`) samples.

pub mod sampler;
pub mod schedule;

use super::generative::{self, DataCfg, FdProbe};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::batch::EpochSampler;
use crate::data::vision::Splits;
use crate::error::DlError;
use crate::experiment::{
    Experiment, Metrics, Need, SampleOpt, SampleOut, SampleRequest, SampleVariant, Split, TrainOut,
};
use crate::nn::time_unet::{time_unet, TimeUNet, TimeUNetCfg};
use crate::params::Params;
use crate::picture::{Image, Picture};
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use sampler::{Sampler, Trajectory};
use schedule::{NoiseSchedule, ScheduleKind};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// U-Net feature channels per level, finest first (28x28: 28, 14, 7)
    pub channels: Vec<usize>,
    /// groups of each group norm
    pub groups: usize,
    /// diffusion steps T
    pub timesteps: usize,
    /// linear | cosine
    pub schedule: ScheduleKind,
    /// the default sampler: ddpm | ddim | ddim:ETA
    pub sampler: String,
    /// the default number of sampling steps (respaced over the T)
    pub sample_steps: usize,
    /// condition on the class (classifier-free guidance)
    pub conditional: bool,
    /// conditional: fraction of training images shown as "no class"
    pub p_uncond: f64,
    /// conditional: the default guidance scale w (1 = plain conditional, 0 = unconditional)
    pub guidance: f64,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self {
            channels: vec![16, 32, 64],
            groups: 8,
            timesteps: 1000,
            schedule: ScheduleKind::Cosine,
            sampler: "ddpm".into(),
            sample_steps: 100,
            conditional: false,
            p_uncond: 0.1,
            guidance: 3.0,
        }
    }
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    let train =
        TrainConfig { steps: 2500, batch_size: 32, lr: 1e-3, ema: 0.995, eval_every: 500, ..Default::default() };
    Config { train, data: DataCfg::default(), model: ModelCfg::default() }
}

pub struct Diffusion {
    params: Params,
    pub net: TimeUNet,
    pub schedule: NoiseSchedule,
    data: Splits,
    batches: EpochSampler,
    cfg: Config,
    fd: Option<FdProbe>,
    device: Device,
}

/// Images sampled per batch (bounds the memory of a sampling run).
const SAMPLE_BATCH: usize = 250;

impl Diffusion {
    fn side(&self) -> usize {
        self.data.train.h
    }

    /// The noisy batch x_t, its timesteps and noise for images `x0` (n·S·S values).
    fn noised(&self, x0: &[f32], n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let d = x0.len() / n;
        let ts: Vec<usize> = (0..n).map(|_| rng.below(self.schedule.len())).collect();
        let eps: Vec<f32> = (0..x0.len()).map(|_| rng.normal() as f32).collect();
        let mut xt = Vec::with_capacity(x0.len());
        for (i, &t) in ts.iter().enumerate() {
            let ab = self.schedule.alpha_bar[t];
            let (a, b) = (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32);
            xt.extend((i * d..(i + 1) * d).map(|k| a * x0[k] + b * eps[k]));
        }
        (xt, ts.iter().map(|&t| t as f32).collect(), eps)
    }

    /// The denoising loss ‖ε − ε̂‖² (mean) on images `idx` of `set`; class labels dropped to
    /// "none" with probability p_uncond when conditional.
    fn loss(&self, split: Option<Split>, idx: &[usize], rng: &mut Rng) -> Result<Tensor> {
        let set = match split {
            None => &self.data.train,
            Some(Split::Val) => &self.data.val,
            Some(Split::Test) => &self.data.test,
        };
        let sub = set.subset(idx);
        let (n, s) = (idx.len(), self.side());
        let (xt, ts, eps) = self.noised(&sub.pixels, n, rng);
        let class = if self.cfg.model.conditional {
            let p = if split.is_none() { self.cfg.model.p_uncond } else { 0.0 };
            let ids: Vec<u32> =
                sub.labels.iter().map(|&l| if rng.uniform() < p { set.classes as u32 } else { l as u32 }).collect();
            Some(Tensor::from_vec(ids, n, &self.device)?)
        } else {
            None
        };
        let xt = Tensor::from_vec(xt, (n, 1, s, s), &self.device)?;
        let pred = self.net.forward(&xt, &ts, class.as_ref())?;
        (pred - Tensor::from_vec(eps, (n, 1, s, s), &self.device)?)?.sqr()?.mean_all()
    }

    /// `n` samples, class `classes[i % len]` each when conditional, guidance `w`.
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        n: usize,
        how: (Sampler, usize),
        classes: &[u32],
        w: f64,
        frames: usize,
        rng: &mut Rng,
        tick: &mut dyn FnMut(),
    ) -> Result<Trajectory> {
        let s = self.side();
        let mut all = Trajectory { samples: vec![], frames: vec![] };
        for start in (0..n).step_by(SAMPLE_BATCH) {
            let b = (n - start).min(SAMPLE_BATCH);
            let null = self.data.train.classes as u32;
            let cond: Vec<u32> =
                (start..start + b).map(|i| classes.get(i % classes.len().max(1)).copied().unwrap_or(null)).collect();
            let net = &self.net;
            let dev = &self.device;
            let mut denoise = |x: &Tensor, t: &[f32]| -> Result<Tensor> {
                if !self.cfg.model.conditional {
                    return net.forward(x, t, None);
                }
                // one pass over [x with its class; x with none]
                let ids: Vec<u32> = cond.iter().copied().chain(std::iter::repeat_n(null, b)).collect();
                let ids = Tensor::from_vec(ids, 2 * b, dev)?;
                let tt: Vec<f32> = t.iter().chain(t).copied().collect();
                let e = net.forward(&Tensor::cat(&[x, x], 0)?, &tt, Some(&ids))?;
                let (ec, eu) = (e.narrow(0, 0, b)?, e.narrow(0, b, b)?);
                &eu + ((ec - &eu)? * w)?
            };
            let tr = sampler::sample(&self.schedule, how.0, how.1, (b, 1, s, s), &mut denoise, rng, frames, tick, dev)?;
            all.samples.extend(tr.samples);
            if all.frames.is_empty() {
                all.frames = tr.frames; // the first batch's trajectory
            }
        }
        Ok(all)
    }

    /// The sampler and steps of a request, or the config's defaults.
    fn how(&self, req: &SampleRequest) -> anyhow::Result<(Sampler, usize)> {
        let name = req.sampler.as_deref().unwrap_or(&self.cfg.model.sampler);
        let sampler = Sampler::parse(name).map_err(DlError::Usage)?;
        Ok((sampler, req.steps.unwrap_or(self.cfg.model.sample_steps)))
    }

    /// Class ids a prompt names: digits ("7", "seven") or the dataset's class names.
    fn prompt_classes(&self, prompt: &str) -> anyhow::Result<Vec<u32>> {
        let names = class_names(&self.data.name);
        let mut ids = vec![];
        for word in prompt.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()) {
            let w = word.to_lowercase();
            let id =
                names.iter().position(|n| *n == w).or_else(|| w.parse::<usize>().ok().filter(|&d| d < names.len()));
            match id {
                Some(i) => ids.push(i as u32),
                None => {
                    return Err(DlError::Usage(format!(
                        "--prompt: unknown word `{word}`; this model draws the classes of {}: 0-{} or {}",
                        self.data.name,
                        names.len() - 1,
                        names.join(", ")
                    ))
                    .into())
                }
            }
        }
        anyhow::ensure!(!ids.is_empty(), DlError::Usage("--prompt is empty; name a class, e.g. --prompt 7".into()));
        Ok(ids)
    }
}

/// The class names of a dataset, by label.
fn class_names(dataset: &str) -> Vec<&'static str> {
    match dataset {
        "fashion" => {
            vec!["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
        }
        _ => vec!["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    }
}

const UNCONDITIONAL: &[SampleOpt] =
    &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Steps, SampleOpt::Sampler, SampleOpt::Frames];
const CONDITIONAL: &[SampleOpt] = &[
    SampleOpt::N,
    SampleOpt::Seed,
    SampleOpt::Steps,
    SampleOpt::Sampler,
    SampleOpt::Frames,
    SampleOpt::Prompt,
    SampleOpt::Guidance,
];

impl Experiment for Diffusion {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.batches.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let idx = self.batches.indices(step);
        Ok(TrainOut { loss: self.loss(None, &idx, rng)?, metrics: Metrics::new() })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        // the denoising loss on up to 1,000 held-out images, with the same t and noise each time
        let set = if split == Split::Val { &self.data.val } else { &self.data.test };
        let mut rng = Rng::derive(self.cfg.train.seed, "diffusion/eval", split as u64);
        let n = set.len().min(1000);
        let mut loss = 0.0;
        for start in (0..n).step_by(250) {
            let idx: Vec<usize> = (start..(start + 250).min(n)).collect();
            loss += self.loss(Some(split), &idx, &mut rng)?.to_scalar::<f32>()? as f64 * idx.len() as f64;
        }
        let mut m = Metrics::from([("loss".to_string(), loss / n as f64)]);
        // FD of the default sampler's images, at the end (test split) only: sampling is the
        // expensive part of a diffusion model
        if split == Split::Test && self.fd.is_some() {
            let how = self.how(&SampleRequest::default()).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let classes: Vec<u32> = (0..self.data.train.classes as u32).collect();
            let mut rng = Rng::derive(self.cfg.train.seed, "diffusion/fd", 0);
            let tr = self.generate(
                self.cfg.data.fd_samples,
                how,
                &classes,
                self.cfg.model.guidance,
                0,
                &mut rng,
                &mut || {},
            )?;
            let gen = generative::to_unit_set(&tr.samples, self.side());
            if let Some(probe) = self.fd.as_mut() {
                m.insert("fd".into(), probe.fd(&gen, &self.data, split)?);
            }
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        if self.cfg.model.conditional {
            CONDITIONAL
        } else {
            UNCONDITIONAL
        }
    }

    fn sample_variant(&self) -> Option<SampleVariant> {
        let cond: &'static [SampleOpt] = &[SampleOpt::Prompt, SampleOpt::Guidance];
        (!self.cfg.model.conditional).then_some((cond, "diffusion-cfg", "--prompt 7 --guidance 3"))
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let n = req.n_or(64);
        let how = self.how(req)?;
        let classes = match &req.prompt {
            Some(p) => self.prompt_classes(p)?,
            None => (0..self.data.train.classes as u32).collect(),
        };
        let w = req.guidance.unwrap_or(self.cfg.model.guidance);
        let frames = if req.frames { 16 } else { 0 };
        let total = n.div_ceil(SAMPLE_BATCH) * self.schedule.respace(how.1).len();
        let mut done = 0;
        let mut tick = || {
            done += 1;
            req.progress.report(done, total);
        };
        let tr = self.generate(n, how, &classes, w, frames, rng, &mut tick)?;
        let s = self.side();
        let mut text = format!(
            "{n} samples ({s}x{s}, {} sampler, {} steps, trained on {})",
            how.0,
            self.schedule.respace(how.1).len(),
            self.data.name
        );
        if self.cfg.model.conditional {
            let names = class_names(&self.data.name);
            let drawn: Vec<&str> = classes.iter().map(|&c| names[c as usize]).collect();
            text += &format!("; classes {} in turn, guidance {w}", drawn.join(" "));
        }
        text.push('\n');
        let json = serde_json::json!({"n": n, "side": s, "sampler": how.0.to_string(), "steps": how.1, "data": self.data.name});
        let mut out = SampleOut::new(text, json).with_picture("grid", Picture::Image(generative::grid(&tr.samples, s)));
        if req.frames {
            // the first batch's trajectory: an animation of its grid, and a strip of its first
            // (up to 8) samples, one per row, from noise on the left to the sample on the right
            let k = n.min(SAMPLE_BATCH);
            let grids: Vec<Image> = tr.frames.iter().map(|f| generative::grid(&f[..k * s * s], s)).collect();
            let mut cells = vec![];
            for i in 0..k.min(8) {
                for f in &tr.frames {
                    cells.extend_from_slice(&f[i * s * s..(i + 1) * s * s]);
                }
            }
            let strip = Image::grid(&generative::images(&cells, s), tr.frames.len(), 2, 0.5);
            out = out.with_picture("frames", Picture::Frames { frames: grids, delay_ms: 120 });
            out = out.with_picture("strip", Picture::Image(strip));
        }
        Ok(out)
    }

    fn needs(&self) -> Vec<Need> {
        generative::fd_need(&self.cfg.data, &self.data.name).into_iter().collect()
    }

    fn attach(&mut self, key: &str, trained: &Params) -> anyhow::Result<()> {
        generative::attach_fd(&mut self.fd, key, trained, &self.device, "diffusion")
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
    let bad = |context: &str, message: String| DlError::BadValue { context: context.into(), message };
    if m.timesteps < 2 {
        return Err(bad("model.timesteps", format!("needs at least 2 steps, got {}", m.timesteps)).into());
    }
    if m.sample_steps == 0 {
        return Err(bad("model.sample_steps", "must be at least 1".into()).into());
    }
    Sampler::parse(&m.sampler).map_err(|e| bad("model.sampler", e))?;
    if !(0.0..1.0).contains(&m.p_uncond) {
        return Err(bad("model.p_uncond", format!("must be in [0, 1), got {}", m.p_uncond)).into());
    }
    let data = generative::load(&c.data)?;
    let params = Params::new(c.train.seed);
    let ucfg = TimeUNetCfg {
        in_channels: 1,
        channels: m.channels.clone(),
        groups: m.groups,
        classes: if m.conditional { data.train.classes } else { 0 },
        cond_dim: 0,
    };
    let net = time_unet(&ucfg, params.vb(device))?;
    let batches = EpochSampler::new(c.train.seed, data.train.len(), c.train.batch_size);
    let schedule = NoiseSchedule::new(m.schedule, m.timesteps);
    Ok(Box::new(Diffusion { params, net, schedule, data, batches, cfg: c.clone(), fd: None, device: device.clone() }))
}

pub static FAMILY: Family =
    Family { id: "diffusion", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };
