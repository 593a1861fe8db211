//! The k-means and code-reset schedule, and the tokenizer API.

use super::*;

fn small(kmeans_init: bool, reset_every: usize) -> VqVae {
    let mut c = defaults();
    c.data.dataset = "digits8".into();
    c.train.batch_size = 8;
    c.model = ModelCfg { channels: [4, 8], dim: 3, codes: 16, kmeans_init, reset_every, ..ModelCfg::default() };
    VqVae::new(&c, &Device::Cpu).unwrap()
}

fn book(v: &VqVae) -> Vec<Vec<f32>> {
    v.net.quant.codebook.to_vec2().unwrap()
}

/// k-means runs once, at the first training step (the flag is a buffer, so a resumed or
/// `init_from` run skips it); resets come every `reset_every` steps and restart the counts;
/// the plain recipe never moves the codebook outside the optimizer.
#[test]
fn kmeans_init_runs_once_and_code_resets_come_on_schedule() -> Result<()> {
    let mut v = small(true, 3);
    let start = book(&v);
    let out = v.train_loss(0, &mut Rng::new(1))?;
    assert!(v.net.quant.is_ready()? && book(&v) != start, "k-means set the codebook");
    assert!(!out.metrics.contains_key("codes_reset"));
    let per_step = (8 * VqVaeNet::GRID * VqVaeNet::GRID) as f32;
    assert_eq!(v.net.quant.usage()?.iter().sum::<f32>(), per_step, "each assignment counted");
    let after_init = book(&v);
    for step in 1..3 {
        assert!(!v.train_loss(step, &mut Rng::new(1))?.metrics.contains_key("codes_reset"));
    }
    assert_eq!(book(&v), after_init, "no optimizer ran: the codebook only moves by init and resets");
    let dead = v.net.quant.usage()?.iter().filter(|&&u| u == 0.0).count();
    let out = v.train_loss(3, &mut Rng::new(1))?;
    assert_eq!(out.metrics["codes_reset"], dead as f64, "every unused code is reset");
    assert_eq!(v.net.quant.usage()?.iter().sum::<f32>(), per_step, "counts restart at the reset");

    let mut plain = small(false, 0);
    let start = book(&plain);
    for step in 0..4 {
        plain.train_loss(step, &mut Rng::new(1))?;
    }
    assert!(!plain.net.quant.is_ready()? && book(&plain) == start);
    Ok(())
}

/// The tokenizer API: codes in 0..K on the 7x7 grid, images in [0, 1] of the input's size,
/// and decode(encode(x)) is the training pass's reconstruction.
#[test]
fn encode_and_decode_are_the_training_pass() -> Result<()> {
    let v = small(false, 0);
    let x = image_batch(&v.data.test, &[0, 1, 2], &Device::Cpu)?;
    let codes = v.net.encode(&x)?;
    assert_eq!(codes.dims(), &[3, 7, 7]);
    assert!(codes.flatten_all()?.to_vec1::<u32>()?.iter().all(|&c| c < 16));
    let y = v.net.decode(&codes)?;
    assert_eq!(y.dims(), &[3, 1, 28, 28]);
    let (q, logits) = v.net.forward(&x)?;
    assert_eq!(q.codes.to_vec1::<u32>()?, codes.flatten_all()?.to_vec1::<u32>()?);
    let d = (candle_nn::ops::sigmoid(&logits)? - &y)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    assert!(d < 1e-5, "{d}");
    Ok(())
}

/// The reconstruction loss alone reaches every encoder parameter, only through the
/// straight-through estimator (the argmin has no gradient; without the copy the encoder would
/// learn from the commitment loss alone), and never the codebook, which moves by the codebook
/// loss only.
#[test]
fn the_reconstruction_gradient_reaches_the_encoder_straight_through() -> Result<()> {
    let v = small(false, 0);
    let x = image_batch(&v.data.test, &[0, 1, 2, 3], &Device::Cpu)?;
    let (q, logits) = v.net.forward(&x)?;
    let rec = bernoulli_nll(&logits.flatten_from(1)?, &x.flatten_from(1)?)?.sum_all()?;
    let g = rec.backward()?;
    for (name, var) in v.params.trainable() {
        let grad = g.get(var.as_tensor());
        if name.starts_with("quant.") {
            assert!(grad.is_none(), "{name}: the decoder's loss does not reach the codebook");
            continue;
        }
        let norm = grad.unwrap_or_else(|| panic!("{name}: no gradient")).sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(norm.is_finite() && norm > 0.0, "{name}: |g|² = {norm}");
    }
    // cut the copy (decode the codes' vectors as constants): the encoder gets nothing
    let e = v.net.quant.lookup(&q.codes)?.detach();
    let logits = v.net.decode_logits(&e.reshape((4, 7, 7, 3))?.permute((0, 3, 1, 2))?.contiguous()?)?;
    let g = bernoulli_nll(&logits.flatten_from(1)?, &x.flatten_from(1)?)?.sum_all()?.backward()?;
    for (name, var) in v.params.trainable().iter().filter(|(n, _)| n.starts_with("enc")) {
        assert!(g.get(var.as_tensor()).is_none(), "{name}");
    }
    Ok(())
}
