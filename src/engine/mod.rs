//! The one training loop that serves every milestone, and what it needs: optimizers,
//! schedules, checkpoints, metrics, progress, the seeded RNG. The engine never knows which
//! milestone it runs: a milestone is an [`Experiment`].

pub mod bench;
pub mod checkpoint;
pub mod optim;
pub mod params;
pub mod progress;
pub mod rng;
pub mod runner;
pub mod schedule;
pub mod step;

use crate::engine::optim::{OptimHp, OptimKind};
use crate::engine::schedule::{Schedule, ScheduleKind};
use candle_core::Tensor;
use params::Params;
use rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Named scalar metrics, e.g. `{"val_loss": 0.31, "val_acc": 0.91}`.
pub type Metrics = BTreeMap<String, f64>;

/// The `[train]` section every milestone's config carries.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// total optimizer updates; 0 means "use `epochs`"
    pub steps: usize,
    /// passes over the training set, used when `steps` is 0
    pub epochs: usize,
    pub batch_size: usize,
    /// sgd | momentum | nesterov | adam | adamw
    pub optimizer: OptimKind,
    pub lr: f64,
    /// momentum coefficient for momentum/nesterov
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// explicit, never implied: L2 for sgd/momentum/adam, decoupled for adamw; matrices only
    pub weight_decay: f64,
    /// constant | step | cosine (warmup applies to all)
    pub schedule: ScheduleKind,
    pub warmup_steps: usize,
    /// floor of the cosine schedule
    pub min_lr: f64,
    /// step schedule: multiply lr by `gamma` every `step_size` updates
    pub step_size: usize,
    pub gamma: f64,
    /// clip the global gradient norm to this value; 0 = off
    pub clip_grad_norm: f64,
    /// evaluate on the validation split every N updates (and at the end); 0 = only at the end
    pub eval_every: usize,
    /// write ckpt/latest.safetensors every N updates (and at the end); 0 = only at the end
    pub ckpt_every: usize,
    /// write a train line to metrics.jsonl every N updates
    pub log_every: usize,
    /// seeds init, batching, dropout and sampling
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 0,
            epochs: 1,
            batch_size: 64,
            optimizer: OptimKind::Adam,
            lr: 1e-3,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            schedule: ScheduleKind::Constant,
            warmup_steps: 0,
            min_lr: 0.0,
            step_size: 1000,
            gamma: 0.1,
            clip_grad_norm: 0.0,
            eval_every: 0,
            ckpt_every: 500,
            log_every: 10,
            seed: 1234,
        }
    }
}

impl TrainConfig {
    pub fn total_steps(&self, steps_per_epoch: usize) -> usize {
        if self.steps > 0 {
            self.steps
        } else {
            self.epochs * steps_per_epoch.max(1)
        }
    }

    pub fn optim_hp(&self) -> OptimHp {
        OptimHp {
            kind: self.optimizer,
            momentum: self.momentum,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    pub fn schedule(&self, total_steps: usize) -> Schedule {
        Schedule {
            kind: self.schedule,
            lr: self.lr,
            total_steps,
            warmup_steps: self.warmup_steps,
            min_lr: self.min_lr,
            step_size: self.step_size,
            gamma: self.gamma,
        }
    }
}

/// The loss of one training batch, plus anything the milestone wants logged with it.
pub struct TrainOut {
    pub loss: Tensor,
    pub metrics: Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Val,
    Test,
}

/// What `dlhist sample` asked for.
#[derive(Clone, Debug, Default)]
pub struct SampleRequest {
    /// how many samples; 0 = the milestone's own default (`n_or`)
    pub n: usize,
    pub prompt: Option<String>,
    pub temperature: f64,
    /// where to write a picture, for milestones whose samples are images (a PNG path)
    pub image: Option<std::path::PathBuf>,
}

impl SampleRequest {
    /// `n`, or the milestone's `default` when the user gave none.
    pub fn n_or(&self, default: usize) -> usize {
        if self.n == 0 {
            default
        } else {
            self.n
        }
    }
}

/// What a milestone's sampler produced: text for the terminal and the same as JSON.
pub struct SampleOut {
    pub text: String,
    pub json: serde_json::Value,
}

/// A milestone's model, data and recipe, as the engine sees it.
pub trait Experiment {
    fn params(&self) -> &Params;
    /// Batches in one pass over the training set (sets the length of an epoch).
    fn steps_per_epoch(&self) -> usize;
    /// The loss of training batch number `step`. `rng` is the step's own stream (batching,
    /// dropout), derived from the seed and the step, so a resumed run sees the same batches.
    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> candle_core::Result<TrainOut>;
    /// Metrics on a held-out split; names are prefixed by the caller (`val_`, `test_`).
    fn evaluate(&mut self, split: Split) -> candle_core::Result<Metrics>;
    /// Samples, predictions or generations, where the milestone has something to show.
    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let _ = (req, rng);
        anyhow::bail!("this milestone has nothing to sample; try `dlhist eval` for its metrics")
    }
    /// Which dataset is in use, e.g. "mnist" or "digits8".
    fn data_name(&self) -> String;
    /// A one-line notice about the data (e.g. a fallback to the built-in set).
    fn data_notice(&self) -> Option<String> {
        None
    }
}

/// Global L2 norm of all gradients, as f64.
pub fn grad_norm(params: &Params, grads: &candle_core::backprop::GradStore) -> candle_core::Result<f64> {
    let mut total = 0f64;
    for (_, v) in params.trainable() {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    Ok(total.sqrt())
}

/// Seeded RNG of training step `step`.
pub fn step_rng(seed: u64, step: usize) -> Rng {
    Rng::derive(seed, "step", step as u64)
}

/// Math threads in use: RAYON_NUM_THREADS, which main sets once at start (`--threads` or the
/// physical cores).
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}
