//! One training update, the only implementation of it: the runner's loop and `dlhist bench`
//! both call [`train_step`], so the bench times exactly what training runs.

use super::optim::Optimizer;
use super::{grad_norm, step_rng};
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Metrics};

/// What an update did.
pub struct StepOut {
    /// the batch loss before the update
    pub loss: f64,
    /// global L2 norm of the gradients, before clipping
    pub grad_norm: f64,
    /// what the experiment logged with the loss (e.g. batch accuracy)
    pub metrics: Metrics,
}

/// The outcome of [`train_step`]: either the weights moved, or the loss or a gradient was not
/// finite and nothing was changed (the caller decides what to do: the runner stops the run).
pub enum Step {
    Updated(StepOut),
    /// `what` is "the loss" or "the gradient norm"
    NotFinite {
        what: &'static str,
    },
}

/// Training step number `step` at learning rate `lr`: the experiment's batch loss (with the
/// step's own seeded RNG), backprop, a NaN/inf guard, global-norm clipping to
/// `tc.clip_grad_norm` (0 = off), and the optimizer update.
pub fn train_step(
    exp: &mut dyn Experiment,
    opt: &mut Optimizer,
    tc: &TrainConfig,
    step: usize,
    lr: f64,
) -> candle_core::Result<Step> {
    let mut rng = step_rng(tc.seed, step);
    let out = exp.train_loss(step, &mut rng)?;
    let loss = out.loss.to_scalar::<f32>()? as f64;
    let mut grads = out.loss.backward()?;
    let norm = grad_norm(exp.params(), &grads)?;
    if !loss.is_finite() {
        return Ok(Step::NotFinite { what: "the loss" });
    }
    if !norm.is_finite() {
        return Ok(Step::NotFinite { what: "the gradient norm" });
    }
    if tc.clip_grad_norm > 0.0 && norm > tc.clip_grad_norm {
        let scale = tc.clip_grad_norm / norm;
        for (_, v) in exp.params().trainable() {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    opt.step(&grads, lr)?;
    Ok(Step::Updated(StepOut { loss, grad_norm: norm, metrics: out.metrics }))
}
