//! The `[train]` section every milestone's config carries, and the optimizer and schedule
//! names it takes. It lives on the ground floor so that milestones can state their defaults
//! without importing the engine that runs them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    Adamw,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    Step,
    Cosine,
}

/// The `[train]` section every milestone's config carries.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// total optimizer updates; 0 means "use `epochs`"
    pub steps: usize,
    /// passes over the training set, used when `steps` is 0
    pub epochs: usize,
    pub batch_size: usize,
    /// split each batch into this many shards of consecutive rows whose forward and backward
    /// passes run side by side, one task each on the worker threads (data parallelism inside one
    /// process), their gradients summed in shard order: the update of the whole batch up to
    /// rounding, with the same bits on any thread count. 1 = off. Only the char-LM milestones
    /// split their batches
    pub shards: usize,
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
    /// score the held-out splits in those evaluations (validation, and test at the end); false:
    /// score only what the milestone measures on its training data in eval mode (a classifier's
    /// `fit_acc`), for studies whose claim reads training metrics alone
    pub eval_heldout: bool,
    /// write ckpt/latest.safetensors every N updates (and at the end); 0 = only at the end
    pub ckpt_every: usize,
    /// write a train line to metrics.jsonl every N updates
    pub log_every: usize,
    /// seeds init, batching, dropout and sampling
    pub seed: u64,
    /// exponential moving average of the weights, kept after every step (e.g. 0.999; 0 = off);
    /// evaluation, sampling and the final weights use the average
    pub ema: f64,
    /// start from another run's weights: its run directory, or a milestone name meaning that
    /// milestone's newest finished run ("" = off). Tensors are matched by name
    pub init_from: String,
    /// parameters to freeze, by name or name prefix (e.g. ["wte", "h.0."]): not trained, no
    /// optimizer state; a run whose frozen tensors all come from `init_from` checkpoints only
    /// the rest, plus a reference to that run's weights
    pub freeze: Vec<String>,
    /// the optimizer settings of each parameter group the milestone declares
    /// (`[train.groups.NAME]`); a key left out inherits this section's
    pub groups: BTreeMap<String, GroupConfig>,
}

/// A parameter group's optimizer settings; each `None` inherits `[train]`'s value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
}

/// The `[train]` keys a group may set (the optimizer's, the schedule's and clipping).
pub const GROUP_KEYS: [&str; 13] = [
    "optimizer",
    "lr",
    "momentum",
    "beta1",
    "beta2",
    "eps",
    "weight_decay",
    "schedule",
    "warmup_steps",
    "min_lr",
    "step_size",
    "gamma",
    "clip_grad_norm",
];

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 0,
            epochs: 1,
            batch_size: 64,
            shards: 1,
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
            eval_heldout: true,
            ckpt_every: 500,
            log_every: 10,
            seed: 1234,
            ema: 0.0,
            init_from: String::new(),
            freeze: vec![],
            groups: BTreeMap::new(),
        }
    }
}

impl TrainConfig {
    /// Declares parameter groups with default settings (a milestone's defaults use this).
    pub fn with_groups(mut self, names: &[&str]) -> Self {
        for n in names {
            self.groups.entry(n.to_string()).or_default();
        }
        self
    }

    /// This section with group `name`'s settings applied over it (unknown groups change nothing).
    pub fn for_group(&self, name: &str) -> TrainConfig {
        let mut t = self.clone();
        if let Some(g) = self.groups.get(name) {
            macro_rules! take {
                ($($k:ident),*) => { $( if let Some(v) = g.$k { t.$k = v; } )* };
            }
            take!(
                optimizer,
                lr,
                momentum,
                beta1,
                beta2,
                eps,
                weight_decay,
                schedule,
                warmup_steps,
                min_lr,
                step_size,
                gamma,
                clip_grad_norm
            );
        }
        t
    }

    pub fn total_steps(&self, steps_per_epoch: usize) -> usize {
        if self.steps > 0 {
            self.steps
        } else {
            self.epochs * steps_per_epoch.max(1)
        }
    }
}
