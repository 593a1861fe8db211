//! The ELBO by hand and the importance-weighted bound against it.

use super::*;

/// A small random VAE (20 pixels, 4 latents) on 1,000 random binary images.
fn setup() -> Result<(VaeModel, Vec<f32>)> {
    let p = Params::new(5);
    let c = ModelCfg { hidden: vec![16], latent: 4, act: Activation::Tanh, iw_samples: 0, iw_images: 0 };
    let m = VaeModel::new(&c, 20, &p, &Device::Cpu)?;
    let mut rng = Rng::new(6);
    let bits = binarize(&(0..1000 * 20).map(|i| ((i % 7) as f32) / 7.0).collect::<Vec<_>>(), &mut rng);
    Ok((m, bits))
}

/// The importance-weighted bound with K = 1 estimates the same −ELBO as the closed-form-KL
/// estimate (both unbiased, within Monte Carlo error), and with more samples it is lower
/// (tighter): −log p(x) ≤ IW_K ≤ IW_1 = −ELBO (Burda et al. 2016, theorem 1).
#[test]
fn the_importance_weighted_bound_tightens_the_elbo() -> Result<()> {
    let (m, bits) = setup()?;
    let dev = Device::Cpu;
    let x = Tensor::from_vec(bits.clone(), (1000, 20), &dev)?;
    let mut rng = Rng::new(1);
    let mut elbo = 0.0;
    for _ in 0..20 {
        let (r, k, _) = m.neg_elbo(&x, &normal(1000, 4, &mut rng, &dev)?)?;
        elbo += (r + k)?.mean_all()?.to_scalar::<f32>()? as f64 / 20.0;
    }
    let iw1 = m.iw_bound(&bits, 1000, 1, &mut Rng::new(2), &dev)?;
    let iw64 = m.iw_bound(&bits, 1000, 64, &mut Rng::new(3), &dev)?;
    assert!((iw1 - elbo).abs() < 0.1, "K = 1: {iw1} vs −ELBO {elbo}");
    assert!(iw64 < elbo - 0.01, "K = 64: {iw64} vs −ELBO {elbo}");
    Ok(())
}

/// The one-sample −ELBO's two terms equal the closed forms computed by hand from the
/// encoder's μ, log σ² and the decoder's logits at z = μ + σ·ε.
#[test]
fn the_elbo_is_reconstruction_plus_kl_by_hand() -> Result<()> {
    let (m, bits) = setup()?;
    let dev = Device::Cpu;
    let x = Tensor::from_vec(bits[..3 * 20].to_vec(), (3, 20), &dev)?;
    let eps = normal(3, 4, &mut Rng::new(4), &dev)?;
    let (rec, kl, _) = m.neg_elbo(&x, &eps)?;
    let (mu, lv) = m.encode(&x)?;
    let (mu, lv, e) = (mu.to_vec2::<f32>()?, lv.to_vec2::<f32>()?, eps.to_vec2::<f32>()?);
    let z: Vec<f32> = (0..3)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| mu[i][j] + (lv[i][j] / 2.0).exp() * e[i][j])
        .collect();
    let logits = m.decode_logits(&Tensor::from_vec(z, (3, 4), &dev)?)?.to_vec2::<f32>()?;
    let (rec, kl) = (rec.to_vec1::<f32>()?, kl.to_vec1::<f32>()?);
    for i in 0..3 {
        let want_kl: f64 =
            (0..4).map(|j| 0.5 * ((mu[i][j] as f64).powi(2) + (lv[i][j] as f64).exp() - 1.0 - lv[i][j] as f64)).sum();
        let want_rec: f64 = (0..20)
            .map(|j| {
                let (l, t) = (logits[i][j] as f64, bits[i * 20 + j] as f64);
                let p = 1.0 / (1.0 + (-l).exp());
                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
            })
            .sum();
        assert!((kl[i] as f64 - want_kl).abs() < 1e-5 && (rec[i] as f64 - want_rec).abs() < 1e-4, "image {i}");
    }
    Ok(())
}
