//! Learning-rate schedules: constant, step decay, and linear warmup + cosine decay.

pub use crate::config::ScheduleKind;
use crate::config::TrainConfig;

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub lr: f64,
    pub total_steps: usize,
    pub warmup_steps: usize,
    pub min_lr: f64,
    pub step_size: usize,
    pub gamma: f64,
}

impl Schedule {
    /// The schedule of a `[train]` section over `total_steps` updates.
    pub fn of(tc: &TrainConfig, total_steps: usize) -> Self {
        Self {
            kind: tc.schedule,
            lr: tc.lr,
            total_steps,
            warmup_steps: tc.warmup_steps,
            min_lr: tc.min_lr,
            step_size: tc.step_size,
            gamma: tc.gamma,
        }
    }

    /// The learning rate used for update number `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        // warmup applies to every kind: lr ramps linearly from lr/warmup to lr
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Step => {
                let k = step.checked_div(self.step_size).unwrap_or(0) as i32;
                self.lr * self.gamma.powi(k)
            }
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let p = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> Schedule {
        Schedule { kind, lr: 1.0, total_steps: 110, warmup_steps: 10, min_lr: 0.1, step_size: 50, gamma: 0.5 }
    }

    #[test]
    fn warmup_then_cosine_reaches_min_lr_at_the_end() {
        let s = sched(ScheduleKind::Cosine);
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-12);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn step_decay_halves_every_step_size() {
        let s = Schedule { warmup_steps: 0, ..sched(ScheduleKind::Step) };
        assert_eq!(s.lr(49), 1.0);
        assert_eq!(s.lr(50), 0.5);
        assert_eq!(s.lr(100), 0.25);
    }
}
