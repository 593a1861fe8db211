//! The one training loop that serves every milestone, and what it needs: optimizers,
//! schedules, checkpoints, metrics, progress, the seeded RNG. The engine never knows which
//! milestone it runs: a milestone is an [`Experiment`].

pub mod bench;
pub mod checkpoint;
pub mod ema;
pub mod init;
pub mod optim;
pub mod progress;
pub mod runner;
pub mod runs;
pub mod schedule;
pub mod step;

use crate::rng::Rng;

/// The dlhist version, recorded in every run's summary.json and checkpoints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this binary was built from (build.rs), `-dirty` when its sources differed from
/// it, or "unknown" outside a git checkout.
pub fn git_commit() -> &'static str {
    option_env!("DLHIST_GIT_COMMIT").unwrap_or("unknown")
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

#[cfg(test)]
mod step_tests;
#[cfg(test)]
mod tests;
