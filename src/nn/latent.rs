//! The pieces of a variational autoencoder's objective (Kingma & Welling 2014), composed of
//! candle ops that all have a backward:
//!
//! - a diagonal Gaussian posterior q(z|x) = N(μ, diag σ²), parameterised by μ and log σ²;
//! - the reparameterisation z = μ + σ·ε with ε ~ N(0, I) drawn by the caller (our seeded RNG;
//!   candle's CPU RNG cannot be seeded), so the sample is a differentiable function of μ, σ;
//! - the KL divergence of two diagonal Gaussians in closed form (the ELBO's regulariser against
//!   the prior N(0, I) is the special case μ₂ = 0, log σ₂² = 0);
//! - the Bernoulli decoder's negative log-likelihood −log p(x|z) from logits, summed over pixels.
//!
//! Every function returns one value per row (per image), in nats, so the caller chooses the
//! mean over the batch (the training loss) or the sum over a split (the test bound).

use candle_core::{Result, Tensor, D};

/// z = μ + exp(½ log σ²)·ε, row by row. μ, log σ², ε: (B, L).
pub fn reparameterize(mu: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    mu + (logvar * 0.5)?.exp()? * eps
}

/// KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) summed over the L dimensions of each row:
/// ½ Σ [log σ₂² − log σ₁² + (σ₁² + (μ₁ − μ₂)²)/σ₂² − 1]. Inputs (B, L) -> (B,).
pub fn kl_diag(mu1: &Tensor, lv1: &Tensor, mu2: &Tensor, lv2: &Tensor) -> Result<Tensor> {
    let ratio = ((lv1.exp()? + (mu1 - mu2)?.sqr()?)? / lv2.exp()?)?;
    (((lv2 - lv1)? + ratio)? - 1.0)?.sum(D::Minus1)? * 0.5
}

/// KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ [μ² + σ² − 1 − log σ²] per row: the ELBO's regulariser.
/// (B, L) -> (B,).
pub fn kl_std_normal(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    (((mu.sqr()? + logvar.exp()?)? - logvar)? - 1.0)?.sum(D::Minus1)? * 0.5
}

/// −log p(x|z) of a Bernoulli decoder with logits `z` and targets `x` in {0, 1} (or in [0, 1],
/// the cross-entropy against grey values), summed over each row:
/// Σ softplus(z) − x·z, with softplus(z) = max(z, 0) + ln(1 + e^(−|z|)) (stable for any z).
/// (B, P) -> (B,). The fused op `crate::ops::bernoulli` (tested there against `bernoulli_nll_ref`).
pub fn bernoulli_nll(z: &Tensor, x: &Tensor) -> Result<Tensor> {
    crate::ops::bernoulli::bernoulli_nll(z, x)
}

/// `bernoulli_nll` composed of candle ops: the reference (it lives beside the fused op).
pub use crate::ops::bernoulli::bernoulli_nll_ref;

/// log N(z; μ, σ²) summed over each row's L dimensions, given ε = (z − μ)/σ:
/// −½ Σ [ε² + log σ² + log 2π]. (B, L) -> (B,). With μ = 0, log σ² = 0 it is the prior's log p(z).
pub fn log_normal(eps: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let log2pi = (2.0 * std::f64::consts::PI).ln();
    ((eps.sqr()? + logvar)? + log2pi)?.sum(D::Minus1)? * -0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{Device, Var};

    fn rand(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (scale * rng.normal()) as f32).collect()
    }

    /// The closed form against a Monte Carlo estimate of E_q[log q(z) − log p(z)] with 200,000
    /// draws (standard error ≈ 0.01 here), and against the textbook 1-D value
    /// KL(N(1, 1) ‖ N(0, 4)) = log 2 + (1 + 1)/8 − ½ = 0.4431.
    #[test]
    fn the_kl_of_two_gaussians_matches_its_closed_form_and_a_monte_carlo_estimate() -> Result<()> {
        let dev = Device::Cpu;
        let t = |v: &[f32]| Tensor::new(v, &dev).unwrap().reshape((1, v.len())).unwrap();
        let kl = kl_diag(&t(&[1.0]), &t(&[0.0]), &t(&[0.0]), &t(&[(4f32).ln()]))?.to_vec1::<f32>()?[0];
        assert!((kl as f64 - (2f64.ln() + 0.25 - 0.5)).abs() < 1e-6, "{kl}");
        // 3-D, by Monte Carlo in f64
        let (m1, l1, m2, l2) = ([0.3f32, -1.0, 2.0], [0.2f32, -0.7, 1.1], [-0.5f32, 0.4, 1.5], [0.0f32, 0.5, -0.3]);
        let kl = kl_diag(&t(&m1), &t(&l1), &t(&m2), &t(&l2))?.to_vec1::<f32>()?[0] as f64;
        let mut rng = Rng::new(7);
        let n = 200_000;
        let mut acc = 0.0;
        for _ in 0..n {
            let mut lq_minus_lp = 0.0;
            for d in 0..3 {
                let (s1, s2) = ((l1[d] as f64 / 2.0).exp(), (l2[d] as f64 / 2.0).exp());
                let z = m1[d] as f64 + s1 * rng.normal();
                let lq = -0.5 * ((z - m1[d] as f64) / s1).powi(2) - s1.ln();
                let lp = -0.5 * ((z - m2[d] as f64) / s2).powi(2) - s2.ln();
                lq_minus_lp += lq - lp;
            }
            acc += lq_minus_lp;
        }
        let mc = acc / n as f64;
        assert!((kl - mc).abs() < 0.05, "closed form {kl} vs Monte Carlo {mc}");
        // the prior case is the special case μ₂ = 0, σ₂ = 1
        let (mu, lv) = (t(&m1), t(&l1));
        let zero = mu.zeros_like()?;
        let a = kl_std_normal(&mu, &lv)?.to_vec1::<f32>()?[0];
        let b = kl_diag(&mu, &lv, &zero, &zero)?.to_vec1::<f32>()?[0];
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        Ok(())
    }

    /// dKL/dμ = μ and dKL/d log σ² = ½(σ² − 1), the gradients that pull q towards the prior.
    #[test]
    fn the_prior_kl_has_the_textbook_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(3);
        let (mu_v, lv_v) = (rand(&mut rng, 8, 1.0), rand(&mut rng, 8, 0.5));
        let mu = Var::from_tensor(&Tensor::from_vec(mu_v.clone(), (2, 4), &dev)?)?;
        let lv = Var::from_tensor(&Tensor::from_vec(lv_v.clone(), (2, 4), &dev)?)?;
        let g = kl_std_normal(mu.as_tensor(), lv.as_tensor())?.sum_all()?.backward()?;
        let gm = g.get(mu.as_tensor()).unwrap().flatten_all()?.to_vec1::<f32>()?;
        let gl = g.get(lv.as_tensor()).unwrap().flatten_all()?.to_vec1::<f32>()?;
        for i in 0..8 {
            assert!((gm[i] - mu_v[i]).abs() < 1e-6);
            assert!((gl[i] - 0.5 * (lv_v[i].exp() - 1.0)).abs() < 1e-5);
        }
        Ok(())
    }

    /// −log p(x|z) of a Bernoulli by hand: Σ −[x log σ(z) + (1 − x) log(1 − σ(z))], also at
    /// logits where σ underflows; and log N(z; μ, σ²) against the density written out.
    #[test]
    fn bernoulli_nll_and_log_normal_match_their_definitions() -> Result<()> {
        let dev = Device::Cpu;
        let zs = [0.0f32, 2.0, -3.0, 80.0, -80.0, 0.5];
        let xs = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.3];
        let z = Tensor::new(&zs, &dev)?.reshape((2, 3))?;
        let x = Tensor::new(&xs, &dev)?.reshape((2, 3))?;
        let got = bernoulli_nll(&z, &x)?.to_vec1::<f32>()?;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let term = |z: f64, x: f64| {
            if z.abs() > 30.0 {
                // the stable form by hand: softplus(z) − x z
                z.max(0.0) - x * z
            } else {
                -(x * sig(z).ln() + (1.0 - x) * (1.0 - sig(z)).ln())
            }
        };
        for r in 0..2 {
            let want: f64 = (0..3).map(|c| term(zs[3 * r + c] as f64, xs[3 * r + c] as f64)).sum();
            assert!((got[r] as f64 - want).abs() < 1e-4, "row {r}: {} vs {want}", got[r]);
        }
        let (e, lv) = ([0.5f32, -1.0], [0.3f32, -0.2]);
        let ln = log_normal(&Tensor::new(&e, &dev)?.reshape((1, 2))?, &Tensor::new(&lv, &dev)?.reshape((1, 2))?)?;
        let want: f64 = (0..2)
            .map(|d| {
                let s = (lv[d] as f64 / 2.0).exp();
                // density of z = μ + s·ε at z: exp(−ε²/2) / (s √(2π))
                ((-0.5 * (e[d] as f64).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())).ln()
            })
            .sum();
        assert!((ln.to_vec1::<f32>()?[0] as f64 - want).abs() < 1e-5);
        Ok(())
    }

    /// The reparameterised sample moves with μ one for one and with log σ² by ½σε.
    #[test]
    fn the_reparameterised_sample_is_differentiable_in_mu_and_logvar() -> Result<()> {
        let dev = Device::Cpu;
        let mu = Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0]], &dev)?)?;
        let lv = Var::from_tensor(&Tensor::new(&[[0.4f32, -0.6]], &dev)?)?;
        let eps = Tensor::new(&[[1.5f32, -0.3]], &dev)?;
        let z = reparameterize(mu.as_tensor(), lv.as_tensor(), &eps)?;
        let zv = z.to_vec2::<f32>()?[0].clone();
        assert!((zv[0] - (0.5 + (0.2f32).exp() * 1.5)).abs() < 1e-6);
        let g = z.sum_all()?.backward()?;
        assert_eq!(g.get(mu.as_tensor()).unwrap().to_vec2::<f32>()?, vec![vec![1.0, 1.0]]);
        let gl = g.get(lv.as_tensor()).unwrap().to_vec2::<f32>()?[0].clone();
        assert!(
            (gl[0] - 0.5 * (0.2f32).exp() * 1.5).abs() < 1e-6 && (gl[1] - 0.5 * (-0.3f32).exp() * -0.3).abs() < 1e-6
        );
        Ok(())
    }
}
