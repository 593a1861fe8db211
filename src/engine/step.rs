//! One training step, the only implementation of it: the runner's loop and `dlhist bench` both
//! call [`train_step`], so the bench times exactly what training runs.
//!
//! A step is one or more updates. The milestone makes them through [`Updater::update`], each
//! on a named parameter group with its own optimizer, schedule and clipping ([`Groups`]); a
//! milestone that declares no groups makes one update of every parameter, exactly as before
//! groups existed (same operations in the same order, so the same bits).

use super::ema::Ema;
use super::optim::{OptimHp, Optimizer};
use super::schedule::Schedule;
use super::step_rng;
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Metrics, TrainOut, Updater, ALL};
use crate::params::matches;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use tracing::debug_span;

/// One parameter group: its parameters (trainable, sorted by name), its `[train]` settings
/// with the group's overrides applied, its schedule and its optimizer.
pub struct Group {
    pub name: String,
    pub tc: TrainConfig,
    pub sched: Schedule,
    pub opt: Optimizer,
    vars: Vec<(String, Var)>,
}

/// The parameter groups of a run, in the order the milestone declares them.
pub struct Groups(pub Vec<Group>);

impl Groups {
    /// The groups `exp` declares (or the one group [`ALL`]), each with the settings of
    /// `[train.groups.NAME]` over `tc`, for a run of `total` updates. Every trainable parameter
    /// must fall in exactly one group, and the config's groups must be the ones declared.
    pub fn new(exp: &dyn Experiment, tc: &TrainConfig, total: usize) -> anyhow::Result<Self> {
        let trainable = exp.params().trainable();
        let declared = exp.groups();
        if declared.is_empty() {
            if let Some(g) = tc.groups.keys().next() {
                anyhow::bail!("[train.groups.{g}]: this milestone has one parameter group and takes no group settings");
            }
            let opt = Optimizer::over(trainable.clone(), OptimHp::of(tc));
            let sched = Schedule::of(tc, total);
            return Ok(Self(vec![Group { name: ALL.into(), tc: tc.clone(), sched, opt, vars: trainable }]));
        }
        let names: Vec<&str> = declared.iter().map(|g| g.name).collect();
        if let Some(g) = tc.groups.keys().find(|g| !names.contains(&g.as_str())) {
            anyhow::bail!(
                "[train.groups.{g}]: no such parameter group; this milestone's groups are {}",
                names.join(", ")
            );
        }
        let mut groups = vec![];
        for g in &declared {
            let vars: Vec<(String, Var)> =
                trainable.iter().filter(|(n, _)| g.prefixes.iter().any(|p| matches(n, p))).cloned().collect();
            let gtc = tc.for_group(g.name);
            let opt = Optimizer::over(vars.clone(), OptimHp::of(&gtc));
            let sched = Schedule::of(&gtc, total);
            groups.push(Group { name: g.name.into(), tc: gtc, sched, opt, vars });
        }
        for (n, _) in &trainable {
            let owners: Vec<&str> =
                groups.iter().filter(|g| g.vars.iter().any(|(m, _)| m == n)).map(|g| g.name.as_str()).collect();
            if owners.len() != 1 {
                anyhow::bail!(
                    "parameter `{n}` belongs to {} parameter groups ({owners:?}); it needs exactly one",
                    owners.len()
                );
            }
        }
        Ok(Self(groups))
    }

    pub fn get(&self, name: &str) -> Option<&Group> {
        self.0.iter().find(|g| g.name == name)
    }

    /// The single group of a milestone without declared groups.
    pub fn is_single(&self) -> bool {
        self.0.len() == 1 && self.0[0].name == ALL
    }

    /// Every group's optimizer state, as named tensors (parameter names are unique across groups).
    pub fn state(&self) -> candle_core::Result<Vec<(String, candle_core::Tensor)>> {
        let mut out = vec![];
        for g in &self.0 {
            out.extend(g.opt.state()?);
        }
        Ok(out)
    }

    /// Checkpoint metadata key of group `name`'s update count.
    pub fn t_key(&self, name: &str) -> String {
        if self.is_single() {
            "dlhist.optim_t".into()
        } else {
            format!("dlhist.optim_t.{name}")
        }
    }
}

/// What one update did.
#[derive(Clone, Debug)]
pub struct UpdateOut {
    pub group: String,
    /// the batch loss before the update
    pub loss: f64,
    /// global L2 norm of the group's gradients, before clipping
    pub grad_norm: f64,
    pub lr: f64,
}

/// What a step did: its updates in order, and what the milestone logged with them.
pub struct StepOut {
    pub updates: Vec<UpdateOut>,
    pub metrics: Metrics,
    /// the matmul and conv FLOPs of the step's forward passes (`ops::flops`; backward and the
    /// optimizer not counted): the step's training FLOPs are 3× this, as `dlhist bench` counts
    pub forward_flops: u64,
}

impl StepOut {
    /// The step's loss: its one update's, or the sum over its updates.
    pub fn loss(&self) -> f64 {
        self.updates.iter().map(|u| u.loss).sum()
    }
}

/// The outcome of [`train_step`]: either the weights moved, or a loss or gradient was not
/// finite and the update that saw it changed nothing (the runner then stops the run).
pub enum Step {
    Updated(StepOut),
    /// `what` is "the loss" or "the gradient norm", with the group when there are several
    NotFinite {
        what: String,
    },
}

/// The [`Updater`] the engine hands a milestone for one step.
struct StepCtx<'a> {
    groups: &'a mut Groups,
    step: usize,
    updates: Vec<UpdateOut>,
    metrics: Metrics,
    not_finite: Option<String>,
}

/// Global L2 norm of the gradients of `vars`, as f64 (each gradient's Σg² in f32, as candle's
/// `sqr().sum_all()` gives it, in one pass).
fn grad_norm(vars: &[(String, Var)], grads: &GradStore) -> candle_core::Result<f64> {
    let mut total = 0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += crate::ops::sum_squares::sum_squares(g)? as f64;
        }
    }
    Ok(total.sqrt())
}

impl Updater for StepCtx<'_> {
    fn update(&mut self, group: &str, out: TrainOut) -> candle_core::Result<f64> {
        // backward and the optimizer are not forward FLOPs
        crate::ops::flops::paused(|| {
            let g = self.group_index(group)?;
            let _span = debug_span!("update", group).entered();
            let loss = out.loss.to_scalar::<f32>()? as f64;
            let grads = {
                let _s = debug_span!("backward").entered();
                out.loss.backward()?
            };
            self.apply(g, loss, grads, None, out.metrics)
        })
    }

    fn update_sharded(
        &mut self,
        group: &str,
        n: usize,
        shard: &(dyn Fn(usize) -> candle_core::Result<TrainOut> + Sync),
    ) -> candle_core::Result<f64> {
        let g = self.group_index(group)?;
        let _span = debug_span!("update", group).entered();
        let (loss, grads, norm, metrics, flops) = run_shards(n, shard, &self.groups.0[g].vars)?;
        // the shards' forward passes ran on the worker threads, outside this thread's count
        crate::ops::flops::add(flops);
        crate::ops::flops::paused(|| self.apply(g, loss, grads, Some(norm), metrics))
    }
}

/// The `n` shards' forward and backward passes, one task each on the worker threads (one after
/// the other off the CPU): the sum of their losses, of their gradients of `vars` (in shard
/// order), the global norm of that sum (as `grad_norm` gives it), the mean of their metrics,
/// and their forward FLOPs.
fn run_shards(
    n: usize,
    shard: &(dyn Fn(usize) -> candle_core::Result<TrainOut> + Sync),
    vars: &[(String, Var)],
) -> candle_core::Result<(f64, GradStore, f64, Metrics, u64)> {
    use rayon::prelude::*;
    let one = |i: usize| {
        // only the forward pass counts, and on this task's own counter
        crate::ops::flops::paused(|| {
            let (out, flops) = crate::ops::flops::measure(|| {
                let _s = debug_span!("forward", shard = i).entered();
                shard(i)
            });
            let out = out?;
            let loss = out.loss.to_scalar::<f32>()? as f64;
            let grads = {
                let _s = debug_span!("backward", shard = i).entered();
                out.loss.backward()?
            };
            Ok((loss, grads, out.metrics, flops))
        })
    };
    // side by side on the CPU; a GPU takes its work from one thread, so there one after the other
    let on_cpu = vars.iter().all(|(_, v)| v.device().is_cpu());
    let parts = if on_cpu {
        (0..n).into_par_iter().map(one).collect::<candle_core::Result<Vec<_>>>()?
    } else {
        (0..n).map(one).collect::<candle_core::Result<Vec<_>>>()?
    };
    let _s = debug_span!("sum shards").entered();
    let Some(((loss, _, metrics, flops), rest)) = parts.split_first() else {
        candle_core::bail!("a sharded update needs at least one shard")
    };
    let (mut loss, mut metrics, mut flops) = (*loss, metrics.clone(), *flops);
    for (l, _, m, f) in rest {
        (loss, flops) = (loss + l, flops + f);
        for (k, v) in m {
            *metrics.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    metrics.values_mut().for_each(|v| *v /= n as f64);
    // per parameter, one task each on the CPU: the shards' gradients summed in shard order, and
    // the sum's Σg² while it is still in cache (the norm's pass over the gradients, folded in)
    let sum_one = |v: &Var| -> candle_core::Result<Option<(f32, Tensor)>> {
        let mut sum: Option<Tensor> = None;
        for (_, g, _, _) in &parts {
            if let Some(b) = g.get(v.as_tensor()) {
                sum = Some(match sum {
                    Some(a) => (a + b)?,
                    None => b.clone(),
                });
            }
        }
        sum.map(|s| Ok((crate::ops::sum_squares::sum_squares(&s)?, s))).transpose()
    };
    let sums: Vec<Option<(f32, Tensor)>> = if on_cpu {
        vars.par_iter().map(|(_, v)| sum_one(v)).collect::<candle_core::Result<_>>()?
    } else {
        vars.iter().map(|(_, v)| sum_one(v)).collect::<candle_core::Result<_>>()?
    };
    let mut grads = parts.into_iter().next().map(|p| p.1).expect("at least one shard, checked above");
    let mut total = 0f64;
    for ((_, v), sum) in vars.iter().zip(sums) {
        if let Some((sq, s)) = sum {
            total += sq as f64;
            grads.insert(v.as_tensor(), s);
        }
    }
    Ok((loss, grads, total.sqrt(), metrics, flops))
}

impl StepCtx<'_> {
    /// The index of group `group`, or an error naming the groups.
    fn group_index(&self, group: &str) -> candle_core::Result<usize> {
        match self.groups.0.iter().position(|g| g.name == group) {
            Some(i) => Ok(i),
            None => {
                let names: Vec<&str> = self.groups.0.iter().map(|g| g.name.as_str()).collect();
                candle_core::bail!("update of unknown parameter group `{group}` (the groups are {names:?})")
            }
        }
    }

    /// Group `gi`'s update from the batch loss and its gradients (with their global norm when
    /// the caller has it): the NaN guards, clipping, the optimizer at the scheduled learning rate.
    fn apply(
        &mut self,
        gi: usize,
        loss: f64,
        grads: GradStore,
        norm: Option<f64>,
        metrics: Metrics,
    ) -> candle_core::Result<f64> {
        let single = self.groups.is_single();
        let g = &mut self.groups.0[gi];
        let group = g.name.clone();
        let norm = match norm {
            Some(norm) => norm,
            None => {
                let _s = debug_span!("grad norm").entered();
                grad_norm(&g.vars, &grads)?
            }
        };
        let of = if single { String::new() } else { format!(" of group {group}") };
        if !loss.is_finite() {
            self.not_finite = Some(format!("the loss{of}"));
            candle_core::bail!("the loss{of} is not finite");
        }
        if !norm.is_finite() {
            self.not_finite = Some(format!("the gradient norm{of}"));
            candle_core::bail!("the gradient norm{of} is not finite");
        }
        // clipping scales every gradient by clip/norm; the optimizer applies the scale in its
        // own pass over each parameter
        let clip = g.tc.clip_grad_norm;
        let scale = (clip > 0.0 && norm > clip).then(|| clip / norm);
        let lr = g.sched.lr(self.step);
        {
            let _s = debug_span!("optimizer").entered();
            g.opt.step(&grads, lr, scale)?;
        }
        self.metrics.extend(metrics);
        self.updates.push(UpdateOut { group, loss, grad_norm: norm, lr });
        Ok(loss)
    }
}

/// Training step number `step`: the experiment's updates (with the step's own seeded RNG),
/// each guarded against NaN/inf, clipped and applied by its group's optimizer at the group's
/// scheduled learning rate; then the EMA of the weights, if kept.
pub fn train_step(
    exp: &mut dyn Experiment,
    groups: &mut Groups,
    ema: Option<&mut Ema>,
    tc: &TrainConfig,
    step: usize,
) -> anyhow::Result<Step> {
    let mut rng = step_rng(tc.seed, step);
    let mut ctx = StepCtx { groups, step, updates: vec![], metrics: Metrics::new(), not_finite: None };
    let (result, forward_flops) = {
        let _span = debug_span!("step", step).entered();
        crate::ops::flops::measure(|| exp.train_step(step, &mut rng, &mut ctx))
    };
    if let Some(what) = ctx.not_finite {
        return Ok(Step::NotFinite { what });
    }
    result?;
    if ctx.updates.is_empty() {
        anyhow::bail!("training step {step} made no update");
    }
    if let Some(ema) = ema {
        let _span = debug_span!("ema").entered();
        ema.update()?;
    }
    Ok(Step::Updated(StepOut { updates: ctx.updates, metrics: ctx.metrics, forward_flops }))
}
