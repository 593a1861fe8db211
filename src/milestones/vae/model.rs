//! The VAE's model: the encoder and decoder MLPs, the one-sample −ELBO and the
//! importance-weighted bound.

use super::{normal, ModelCfg, EVAL_BATCH};
use crate::nn::latent::{bernoulli_nll, kl_std_normal, log_normal, reparameterize};
use crate::nn::linear::InitKind;
use crate::nn::mlp::Mlp;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

pub struct VaeModel {
    pub enc: Mlp,
    pub dec: Mlp,
    pub latent: usize,
    pub pixels: usize,
}

impl VaeModel {
    pub fn new(c: &ModelCfg, pixels: usize, params: &Params, device: &Device) -> Result<Self> {
        let vb = params.vb(device);
        let mut e = vec![pixels];
        e.extend(&c.hidden);
        e.push(2 * c.latent);
        let mut d = vec![c.latent];
        d.extend(c.hidden.iter().rev());
        d.push(pixels);
        let enc = Mlp::new(&e, c.act, InitKind::Default, vb.pp("enc"))?;
        let dec = Mlp::new(&d, c.act, InitKind::Default, vb.pp("dec"))?;
        Ok(Self { enc, dec, latent: c.latent, pixels })
    }

    /// x (B, P) -> μ, log σ² (B, L) of q(z|x).
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.enc.forward(x)?;
        Ok((h.narrow(1, 0, self.latent)?, h.narrow(1, self.latent, self.latent)?))
    }

    /// z (B, L) -> the decoder's logits (B, P).
    pub fn decode_logits(&self, z: &Tensor) -> Result<Tensor> {
        self.dec.forward(z)
    }

    /// z (B, L) -> pixel probabilities (B, P), the mean of p(x|z).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.decode_logits(z)?)
    }

    /// The one-sample −ELBO's two terms per image, −log p(x|z) and KL(q ‖ p), each (B,), for
    /// binary x (B, P) and noise ε (B, L).
    pub fn neg_elbo(&self, x: &Tensor, eps: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (mu, lv) = self.encode(x)?;
        let z = reparameterize(&mu, &lv, eps)?;
        let rec = bernoulli_nll(&self.decode_logits(&z)?, x)?;
        Ok((rec, kl_std_normal(&mu, &lv)?, mu))
    }

    /// The importance-weighted bound (Burda et al. 2016) with K samples on `n` binary images:
    /// mean over images of −log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x), in nats.
    /// K = 1 is the one-sample ELBO; it tightens towards −log p(x) as K grows.
    pub fn iw_bound(&self, bits: &[f32], n: usize, k: usize, rng: &mut Rng, device: &Device) -> Result<f64> {
        let p = self.pixels;
        let per = (EVAL_BATCH * 10 / k).max(1); // images per batch: about 10,000 decodings
        let mut total = 0.0;
        for start in (0..n).step_by(per) {
            let b = per.min(n - start);
            let x = Tensor::from_vec(bits[start * p..(start + b) * p].to_vec(), (b, p), device)?;
            let (mu, lv) = self.encode(&x)?;
            let rep = |t: &Tensor| t.unsqueeze(1)?.repeat((1, k, 1))?.reshape((b * k, self.latent));
            let (mu, lv, xk) = (rep(&mu)?, rep(&lv)?, x.unsqueeze(1)?.repeat((1, k, 1))?.reshape((b * k, p))?);
            let eps = normal(b * k, self.latent, rng, device)?;
            let z = reparameterize(&mu, &lv, &eps)?;
            let log_px = bernoulli_nll(&self.decode_logits(&z)?, &xk)?.neg()?;
            let log_pz = log_normal(&z, &z.zeros_like()?)?;
            let log_q = log_normal(&eps, &lv)?;
            let lw = ((log_px + log_pz)? - log_q)?.to_vec1::<f32>()?;
            for row in lw.chunks(k) {
                let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                total -= m + (s / k as f64).ln();
            }
        }
        Ok(total / n as f64)
    }
}
