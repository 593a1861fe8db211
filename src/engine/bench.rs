//! Timing for `dlhist bench`: training steps of an [`Experiment`] through the one shared
//! training step, and fused ops against their references (time and peak memory). Everything
//! reports the median of several trials; the first calls of anything (allocations, page
//! faults, the optimizer's lazily created moments) go into an untimed warm-up.

use super::step::{train_step, Groups, Step};
use crate::config::TrainConfig;
use crate::experiment::Experiment;
use crate::ops::OpBench;
use std::time::{Duration, Instant};

/// Warm-up: at least this many calls, and at least `WARMUP_TIME`.
const WARMUP_CALLS: usize = 2;
const WARMUP_TIME: Duration = Duration::from_millis(300);
/// A trial runs about this long when the caller does not fix its number of calls.
const TRIAL_TIME: Duration = Duration::from_secs(1);
const OP_TRIAL_TIME: Duration = Duration::from_millis(200);

/// Milliseconds per call in each trial.
#[derive(Clone, Debug)]
pub struct Timing {
    pub trial_ms: Vec<f64>,
    /// calls (steps) per trial
    pub calls: usize,
}

impl Timing {
    pub fn median(&self) -> f64 {
        median(&self.trial_ms)
    }
    pub fn min(&self) -> f64 {
        self.trial_ms.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn max(&self) -> f64 {
        self.trial_ms.iter().copied().fold(0.0, f64::max)
    }
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Warms `f` up and returns how many calls make a trial of about `target` (or `fixed`, if given).
fn calibrate(
    f: &mut dyn FnMut() -> anyhow::Result<()>,
    fixed: Option<usize>,
    target: Duration,
) -> anyhow::Result<usize> {
    let start = Instant::now();
    let mut calls = 0;
    let mut last = Duration::ZERO;
    while calls < WARMUP_CALLS || start.elapsed() < WARMUP_TIME {
        let t = Instant::now();
        f()?;
        last = t.elapsed();
        calls += 1;
    }
    Ok(fixed.unwrap_or_else(|| (target.as_secs_f64() / last.as_secs_f64().max(1e-9)).ceil().clamp(1.0, 1e6) as usize))
}

/// Milliseconds per call over `calls` calls of `f`.
fn trial(f: &mut dyn FnMut() -> anyhow::Result<()>, calls: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    for _ in 0..calls {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / calls as f64)
}

/// Times training steps of `exp` under `tc` (its optimizer, lr and clipping): a warm-up, then
/// `trials` trials of `steps` steps each (default: about 1 s worth).
pub fn time_training(
    exp: &mut dyn Experiment,
    tc: &TrainConfig,
    trials: usize,
    steps: Option<usize>,
) -> anyhow::Result<Timing> {
    let mut groups = Groups::new(exp, tc, usize::MAX)?;
    let mut step = 0;
    let mut run = || -> anyhow::Result<()> {
        match train_step(exp, &mut groups, None, tc, step)? {
            Step::Updated(_) => {}
            Step::NotFinite { what } => anyhow::bail!("{what} became non-finite at step {step}"),
        }
        step += 1;
        Ok(())
    };
    let calls = calibrate(&mut run, steps, TRIAL_TIME)?;
    let trial_ms = (0..trials).map(|_| trial(&mut run, calls)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Timing { trial_ms, calls })
}

/// Fused vs reference: time per call (forward + backward) and the peak extra memory of a call.
pub struct OpTiming {
    pub fused: Timing,
    pub reference: Timing,
    /// highest live heap above what was live before the call, in bytes
    pub fused_peak_bytes: usize,
    pub reference_peak_bytes: usize,
}

/// Peak bytes allocated on top of the live heap during one call of `f`.
fn peak_extra(f: &dyn Fn() -> candle_core::Result<()>) -> candle_core::Result<usize> {
    let before = crate::alloc::live_bytes();
    crate::alloc::reset_peak();
    f()?;
    Ok(crate::alloc::peak_bytes().saturating_sub(before))
}

/// Times one op bench: a warm-up of each side, then `trials` trials, the fused and the reference
/// side alternating so that drift in the machine's load hits both alike. `calls` fixes the calls
/// per trial (default: about 0.2 s worth of the slower side).
pub fn time_op(b: &OpBench, trials: usize, calls: Option<usize>) -> anyhow::Result<OpTiming> {
    let mut fused = || -> anyhow::Result<()> { Ok((b.fused)()?) };
    let mut reference = || -> anyhow::Result<()> { Ok((b.reference)()?) };
    let nf = calibrate(&mut fused, calls, OP_TRIAL_TIME)?;
    let nr = calibrate(&mut reference, calls, OP_TRIAL_TIME)?;
    let n = nf.min(nr);
    let (mut tf, mut tr) = (vec![], vec![]);
    for _ in 0..trials {
        tf.push(trial(&mut fused, n)?);
        tr.push(trial(&mut reference, n)?);
    }
    Ok(OpTiming {
        fused: Timing { trial_ms: tf, calls: n },
        reference: Timing { trial_ms: tr, calls: n },
        fused_peak_bytes: peak_extra(&*b.fused)?,
        reference_peak_bytes: peak_extra(&*b.reference)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
