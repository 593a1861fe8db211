//! The one training loop that serves every milestone, and what it needs: optimizers,
//! schedules, checkpoints, metrics, progress, the seeded RNG. The engine never knows which
//! milestone it runs: a milestone is an [`Experiment`].

pub mod bench;
pub mod checkpoint;
pub mod optim;
pub mod progress;
pub mod runner;
pub mod schedule;
pub mod step;

use crate::params::Params;
use crate::rng::Rng;

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
