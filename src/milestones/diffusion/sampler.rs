//! Samplers of a Gaussian diffusion, generic over the denoiser (any ε-prediction: the U-Net
//! here, a text-conditioned decoder elsewhere). Both walk a descending sequence of timesteps
//! t → s (all T of them, or k < T evenly spaced: "respacing"), predicting x̂₀ from ε̂ at each,
//! clipped to the data range [−1, 1]:
//!
//!   x̂₀ = (x_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t,   ε' = (x_t − √ᾱ_t·x̂₀)/√(1 − ᾱ_t)  (ε̂ after the clip).
//!
//! - DDPM, ancestral (Ho et al. 2020, Algorithm 2; over a respaced sequence, Nichol & Dhariwal
//!   2021): x_s ~ q(x_s | x_t, x̂₀) = N(μ̃, β̃), with β' = 1 − ᾱ_t/ᾱ_s,
//!   μ̃ = √ᾱ_s·β'/(1 − ᾱ_t)·x̂₀ + √(1 − β')·(1 − ᾱ_s)/(1 − ᾱ_t)·x_t and β̃ = β'·(1 − ᾱ_s)/(1 − ᾱ_t).
//! - DDIM (Song, Meng & Ermon 2021, eq. 12): x_s = √ᾱ_s·x̂₀ + √(1 − ᾱ_s − σ²)·ε' + σ·z with
//!   σ = η·√(β̃); η = 0 is deterministic (and good in few steps), η = 1 is DDPM's update.
//!
//! The last step goes to s = "before 0", ᾱ = 1: the sample is x̂₀.

use super::schedule::NoiseSchedule;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    Ddpm,
    /// with its η (0: deterministic)
    Ddim {
        eta: f64,
    },
}

impl Sampler {
    /// `ddpm`, `ddim` (η = 0) or `ddim:ETA`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "ddpm" => Ok(Sampler::Ddpm),
            "ddim" => Ok(Sampler::Ddim { eta: 0.0 }),
            other => match other.strip_prefix("ddim:").map(|e| e.parse::<f64>()) {
                Some(Ok(eta)) if (0.0..=1.0).contains(&eta) => Ok(Sampler::Ddim { eta }),
                _ => Err(format!("unknown sampler `{other}`; choose ddpm, ddim, or ddim:ETA with ETA in [0, 1]")),
            },
        }
    }
}

impl std::fmt::Display for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sampler::Ddpm => write!(f, "ddpm"),
            Sampler::Ddim { eta } => write!(f, "ddim (eta {eta})"),
        }
    }
}

/// x̂₀ clipped to [−1, 1] and the ε' consistent with it, at timestep t.
fn predict_x0(x: &[f32], eps: &[f32], ab: f64) -> (Vec<f32>, Vec<f32>) {
    let (sa, s1) = (ab.sqrt() as f32, (1.0 - ab).sqrt() as f32);
    let x0: Vec<f32> = x.iter().zip(eps).map(|(&x, &e)| ((x - s1 * e) / sa).clamp(-1.0, 1.0)).collect();
    let e2 = x.iter().zip(&x0).map(|(&x, &x0)| (x - sa * x0) / s1.max(1e-12)).collect();
    (x0, e2)
}

/// One ancestral DDPM step from timestep `t` to `s` (None: the end), noise `z`.
pub fn ddpm_step(sch: &NoiseSchedule, t: usize, s: Option<usize>, x: &[f32], eps: &[f32], z: &[f32]) -> Vec<f32> {
    let (ab_t, ab_s) = (sch.ab(Some(t)), sch.ab(s));
    let (x0, _) = predict_x0(x, eps, ab_t);
    let beta = 1.0 - ab_t / ab_s;
    let c0 = (ab_s.sqrt() * beta / (1.0 - ab_t)) as f32;
    let ct = ((1.0 - beta).sqrt() * (1.0 - ab_s) / (1.0 - ab_t)) as f32;
    let sd = (beta * (1.0 - ab_s) / (1.0 - ab_t)).max(0.0).sqrt() as f32;
    x.iter().zip(&x0).zip(z).map(|((&x, &x0), &z)| c0 * x0 + ct * x + sd * z).collect()
}

/// One DDIM step from `t` to `s` with stochasticity η, noise `z` (unused when η = 0).
pub fn ddim_step(
    sch: &NoiseSchedule,
    t: usize,
    s: Option<usize>,
    x: &[f32],
    eps: &[f32],
    z: &[f32],
    eta: f64,
) -> Vec<f32> {
    let (ab_t, ab_s) = (sch.ab(Some(t)), sch.ab(s));
    let (x0, e) = predict_x0(x, eps, ab_t);
    let var = eta * eta * (1.0 - ab_s) / (1.0 - ab_t) * (1.0 - ab_t / ab_s);
    let (a, b, sd) = (ab_s.sqrt() as f32, (1.0 - ab_s - var).max(0.0).sqrt() as f32, var.max(0.0).sqrt() as f32);
    x0.iter().zip(&e).zip(z).map(|((&x0, &e), &z)| a * x0 + b * e + sd * z).collect()
}

/// What a sampling run returns: the samples and, if asked, frames of the trajectory.
pub struct Trajectory {
    /// n·C·H·W values in [−1, 1]
    pub samples: Vec<f32>,
    /// x_t after some of the steps (up to `frames` of them, evenly spaced, ending with the samples)
    pub frames: Vec<Vec<f32>>,
}

/// Draws `shape.0` samples of `shape` (n, C, H, W): x_T ~ N(0, I), then `steps` updates of
/// `sampler` over the respaced timesteps. `denoise(x_t, t)` returns ε̂ (same shape) for the
/// batch at timestep t (one value per sample); `tick` is called after each step.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    sch: &NoiseSchedule,
    sampler: Sampler,
    steps: usize,
    shape: (usize, usize, usize, usize),
    denoise: &mut dyn FnMut(&Tensor, &[f32]) -> Result<Tensor>,
    rng: &mut Rng,
    frames: usize,
    tick: &mut dyn FnMut(),
    device: &Device,
) -> Result<Trajectory> {
    let n: usize = shape.0 * shape.1 * shape.2 * shape.3;
    let ts = sch.respace(steps);
    let mut x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let keep: Vec<usize> = if frames == 0 {
        vec![]
    } else {
        (1..=frames.min(ts.len())).map(|i| i * ts.len() / frames.min(ts.len()) - 1).collect()
    };
    let mut out = vec![];
    for (i, &t) in ts.iter().enumerate() {
        let xt = Tensor::from_vec(x.clone(), shape, device)?;
        let eps = denoise(&xt, &vec![t as f32; shape.0])?.flatten_all()?.to_vec1::<f32>()?;
        let s = ts.get(i + 1).copied();
        let z: Vec<f32> = match (sampler, s) {
            (_, None) | (Sampler::Ddim { eta: 0.0 }, _) => vec![0.0; n],
            _ => (0..n).map(|_| rng.normal() as f32).collect(),
        };
        x = match sampler {
            Sampler::Ddpm => ddpm_step(sch, t, s, &x, &eps, &z),
            Sampler::Ddim { eta } => ddim_step(sch, t, s, &x, &eps, &z, eta),
        };
        if keep.contains(&i) {
            out.push(x.clone());
        }
        tick();
    }
    Ok(Trajectory { samples: x, frames: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::diffusion::schedule::ScheduleKind;

    fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    /// DDIM with η = 1 is DDPM's ancestral update (Song et al. 2021, §4.1): the same x_t, ε̂ and
    /// z give the same x_s, at every step of a respaced sequence, for both schedules.
    #[test]
    fn ddim_with_eta_one_is_the_ddpm_update() {
        let mut rng = Rng::new(3);
        for kind in [ScheduleKind::Linear, ScheduleKind::Cosine] {
            let sch = NoiseSchedule::new(kind, 1000);
            let ts = sch.respace(20);
            for (i, &t) in ts.iter().enumerate() {
                let s = ts.get(i + 1).copied();
                let (x, e, z) = (randn(&mut rng, 64), randn(&mut rng, 64), randn(&mut rng, 64));
                let a = ddpm_step(&sch, t, s, &x, &e, &z);
                let b = ddim_step(&sch, t, s, &x, &e, &z, 1.0);
                let d = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
                assert!(d < 1e-4, "{kind:?} t {t}: differ by {d}");
            }
        }
    }

    /// With the true noise as ε̂, a deterministic DDIM step lands exactly on the forward process'
    /// mean path: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε goes to √ᾱ_s x₀ + √(1 − ᾱ_s) ε.
    #[test]
    fn a_ddim_step_with_the_true_noise_stays_on_the_path() {
        let mut rng = Rng::new(4);
        let sch = NoiseSchedule::cosine(100);
        let x0: Vec<f32> = (0..32).map(|i| (i as f32 / 16.0 - 1.0) * 0.9).collect();
        let e = randn(&mut rng, 32);
        let at = |t: Option<usize>| -> Vec<f32> {
            let ab = sch.ab(t);
            x0.iter().zip(&e).map(|(&a, &b)| ab.sqrt() as f32 * a + (1.0 - ab).sqrt() as f32 * b).collect()
        };
        let next = ddim_step(&sch, 60, Some(30), &at(Some(60)), &e, &[0.0; 32], 0.0);
        let d = next.iter().zip(at(Some(30))).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "{d}");
        let end = ddim_step(&sch, 30, None, &at(Some(30)), &e, &[0.0; 32], 0.0);
        assert!(end.iter().zip(&x0).all(|(p, q)| (p - q).abs() < 1e-4), "the last step returns x₀");
    }

    #[test]
    fn samplers_parse() {
        assert_eq!(Sampler::parse("ddpm"), Ok(Sampler::Ddpm));
        assert_eq!(Sampler::parse("ddim"), Ok(Sampler::Ddim { eta: 0.0 }));
        assert_eq!(Sampler::parse("ddim:0.5"), Ok(Sampler::Ddim { eta: 0.5 }));
        assert!(Sampler::parse("ddim:2").is_err() && Sampler::parse("euler").unwrap_err().contains("ddpm, ddim"));
    }
}
