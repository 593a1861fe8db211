//! Noise schedules of a Gaussian diffusion (Ho, Jain & Abbeel 2020): the forward process adds
//! noise in T steps, q(x_t | x_{t−1}) = N(√(1 − β_t)·x_{t−1}, β_t·I), so that
//!
//!   q(x_t | x_0) = N(√ᾱ_t·x_0, (1 − ᾱ_t)·I),  ᾱ_t = Π_{s ≤ t} (1 − β_s),
//!
//! and the true posterior of one step back is q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t·I) with
//! β̃_t = β_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t). Two schedules: Ho et al.'s linear β_t from 1e-4 to 0.02
//! (for T = 1000; scaled by 1000/T otherwise, as Nichol & Dhariwal 2021 do), and Nichol &
//! Dhariwal's cosine ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s) · π/2), s = 0.008, whose
//! ᾱ falls more slowly near both ends, so fewer steps are spent on pure noise. Timesteps are
//! 0-based here: t = 0..T−1 is the paper's 1..T.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// β_t linear from 1e-4 to 0.02 (Ho et al. 2020)
    Linear,
    /// ᾱ_t = cos²-shaped (Nichol & Dhariwal 2021)
    Cosine,
}

#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    pub betas: Vec<f64>,
    /// ᾱ_t
    pub alpha_bar: Vec<f64>,
}

impl NoiseSchedule {
    pub fn new(kind: ScheduleKind, steps: usize) -> Self {
        match kind {
            ScheduleKind::Linear => Self::linear(steps),
            ScheduleKind::Cosine => Self::cosine(steps),
        }
    }

    /// β_t linear from 1e-4·1000/T to 0.02·1000/T, clipped at 0.999 (T < 50 would pass 1).
    pub fn linear(steps: usize) -> Self {
        let scale = 1000.0 / steps as f64;
        let (lo, hi) = (1e-4 * scale, 0.02 * scale);
        let betas = (0..steps)
            .map(|t| if steps == 1 { lo } else { lo + (hi - lo) * t as f64 / (steps - 1) as f64 }.min(0.999))
            .collect();
        Self::from_betas(betas)
    }

    /// ᾱ_t = f(t + 1)/f(0) with f(u) = cos²((u/T + s)/(1 + s)·π/2), s = 0.008; β_t = 1 − ᾱ_t/ᾱ_{t−1},
    /// clipped at 0.999 as in the paper (the last step would otherwise be 1).
    pub fn cosine(steps: usize) -> Self {
        let s = 0.008;
        let f = |u: f64| (((u / steps as f64) + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2);
        let betas = (0..steps).map(|t| (1.0 - f(t as f64 + 1.0) / f(t as f64)).min(0.999)).collect();
        Self::from_betas(betas)
    }

    fn from_betas(betas: Vec<f64>) -> Self {
        let mut a = 1.0;
        let alpha_bar = betas
            .iter()
            .map(|b| {
                a *= 1.0 - b;
                a
            })
            .collect();
        Self { betas, alpha_bar }
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// ᾱ at timestep `t`, with ᾱ_{−1} = 1 (no noise) for t = None.
    pub fn ab(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alpha_bar[t])
    }

    /// β̃_t = β_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t), the variance of q(x_{t−1} | x_t, x_0) (0 at t = 0).
    pub fn posterior_variance(&self, t: usize) -> f64 {
        let prev = if t == 0 { 1.0 } else { self.alpha_bar[t - 1] };
        self.betas[t] * (1.0 - prev) / (1.0 - self.alpha_bar[t])
    }

    /// `k` timesteps evenly spaced over 0..T−1, descending from T−1 to 0: the steps of a sampler
    /// that takes k < T steps ("respacing", Nichol & Dhariwal 2021; DDIM's τ).
    pub fn respace(&self, k: usize) -> Vec<usize> {
        let t = self.len();
        let k = k.clamp(1, t);
        if k == 1 {
            return vec![t - 1];
        }
        let mut v: Vec<usize> =
            (0..k).map(|i| ((i as f64) * (t - 1) as f64 / (k - 1) as f64).round() as usize).collect();
        v.dedup();
        v.reverse();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ᾱ against closed forms: the linear schedule's product, and the cosine's f(t)/f(0).
    #[test]
    fn alpha_bar_matches_its_closed_form() {
        let lin = NoiseSchedule::linear(1000);
        assert!((lin.betas[0] - 1e-4).abs() < 1e-15 && (lin.betas[999] - 0.02).abs() < 1e-15);
        let prod: f64 = (0..500).map(|t| 1.0 - (1e-4 + (0.02 - 1e-4) * t as f64 / 999.0)).product();
        assert!((lin.alpha_bar[499] - prod).abs() < 1e-12);
        assert!(lin.alpha_bar[999] < 1e-4, "the data is all but gone at t = T: {}", lin.alpha_bar[999]);
        let cos = NoiseSchedule::cosine(1000);
        let f = |u: f64| ((u / 1000.0 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for t in [0usize, 10, 250, 500, 900] {
            assert!((cos.alpha_bar[t] - f(t as f64 + 1.0) / f(0.0)).abs() < 1e-9, "t = {t}");
        }
        // the cosine schedule keeps more signal in the middle (its point)
        assert!(cos.alpha_bar[500] > 2.0 * lin.alpha_bar[500]);
    }

    /// β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t): at t = 0 it is 0; it is below β_t; and by hand at t = 1.
    #[test]
    fn posterior_variance_matches_its_closed_form() {
        let s = NoiseSchedule::linear(100);
        assert_eq!(s.posterior_variance(0), 0.0);
        let (b0, b1) = (s.betas[0], s.betas[1]);
        let want = b1 * (1.0 - (1.0 - b0)) / (1.0 - (1.0 - b0) * (1.0 - b1));
        assert!((s.posterior_variance(1) - want).abs() < 1e-12 * want, "{} vs {want}", s.posterior_variance(1));
        assert!((1..100).all(|t| s.posterior_variance(t) < s.betas[t]));
        assert!(NoiseSchedule::linear(10).betas.iter().all(|&b| b > 0.0 && b < 1.0));
    }

    #[test]
    fn respacing_runs_from_the_last_step_to_the_first() {
        let s = NoiseSchedule::cosine(1000);
        let r = s.respace(5);
        assert_eq!(r, [999, 749, 500, 250, 0]);
        assert_eq!(s.respace(2000).len(), 1000);
        assert_eq!(s.respace(1), [999]);
    }
}
