//! `dlhist sample vae`: a grid of images decoded from the prior z ~ N(0, I), beside test images
//! and their reconstructions; `--interpolate`: latent walks between pairs of test images (each
//! row: image A, the decodings of ten evenly spaced points on the line from μ(A) to μ(B),
//! image B).

use super::{normal, pictures_of, posterior_means, Vae};
use crate::experiment::{SampleOut, SampleRequest};
use crate::picture::{Image, Picture};
use crate::rng::Rng;
use candle_core::Tensor;

/// Prior samples drawn at most (a 16x16 grid).
pub const MAX_SAMPLES: usize = 256;
/// Walks drawn at most.
pub const MAX_WALKS: usize = 16;
/// Latent points per walk, both ends included.
pub const WALK_POINTS: usize = 10;
/// Test images shown with their reconstructions.
const RECONSTRUCTIONS: usize = 8;
/// Each pixel drawn as a 2x2 block, so 28x28 digits are visible.
const SCALE: usize = 2;

pub fn sample(v: &mut Vae, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    if req.interpolate {
        interpolate(v, req, rng)
    } else {
        prior(v, req, rng)
    }
}

/// `n` distinct random test images (fewer if the split is smaller).
fn pick(n: usize, len: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p = rng.permutation(len);
    p.truncate(n.min(len));
    p
}

fn prior(v: &mut Vae, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    let n = req.n_at_most(64, MAX_SAMPLES, "that many samples fill the grid (16x16)");
    let samples = v.generate(n, rng)?;
    let (set, p) = (v.test_set(), v.model.pixels);
    let idx = pick(RECONSTRUCTIONS, set.len(), rng);
    let bits: Vec<f32> = idx.iter().flat_map(|&i| v.test_bits()[i * p..(i + 1) * p].to_vec()).collect();
    let x = Tensor::from_vec(bits.clone(), (idx.len(), p), v.device())?;
    let eps = normal(idx.len(), v.model.latent, rng, v.device())?;
    let (rec, kl, mu) = v.model.neg_elbo(&x, &eps)?;
    let nelbo: Vec<f32> = (rec + kl)?.to_vec1()?;
    let recon = pictures_of(&v.model.decode(&mu)?, set.h, set.w)?;
    let mut panel = super::to_images(&bits, set.h, set.w);
    panel.extend(recon);
    let grid = Image::square_grid(&samples, 2, 0.5).upscale(SCALE);
    let pairs = Image::grid(&panel, idx.len(), 2, 0.5).upscale(SCALE);
    let items: Vec<serde_json::Value> = idx
        .iter()
        .zip(&nelbo)
        .map(|(&i, &e)| serde_json::json!({"index": i, "label": set.labels[i], "neg_elbo": e}))
        .collect();
    let lines: Vec<String> = idx
        .iter()
        .zip(&nelbo)
        .map(|(&i, &e)| format!("  test image {i:>5} (a {}): −ELBO {e:.1} nats", set.labels[i]))
        .collect();
    let text = format!(
        "{n} samples from the prior z ~ N(0, I) of {}, decoded to pixel probabilities (a grid);\n\
         {} binarised test images (top row) and their reconstructions from μ(x) (bottom row), with each \
         image's one-sample −ELBO:\n{}\n",
        v.data_name_str(),
        idx.len(),
        lines.join("\n")
    );
    let json = serde_json::json!({"data": v.data_name_str(), "kind": "prior", "n": n, "reconstructions": items});
    Ok(SampleOut::new(text, json)
        .with_picture("samples", Picture::Image(grid))
        .with_picture("reconstructions", Picture::Image(pairs)))
}

fn interpolate(v: &mut Vae, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    let walks = req.n_at_most(4, MAX_WALKS, "that many walks are drawn");
    let (set, p) = (v.test_set(), v.model.pixels);
    let mut rows = vec![];
    let mut items = vec![];
    let mut lines = vec![];
    for _ in 0..walks {
        let ends = pick(2, set.len(), rng);
        let (a, b) = (ends[0], ends[1 % ends.len()]);
        let bits: Vec<f32> = [a, b].iter().flat_map(|&i| v.test_bits()[i * p..(i + 1) * p].to_vec()).collect();
        let mu = posterior_means(&v.model, &bits, v.device())?; // (2, L)
        let (za, zb) = (mu.get(0)?, mu.get(1)?);
        // z_t = (1 − t)·μ(A) + t·μ(B), t = 0, 1/9, …, 1
        let pts: Vec<Tensor> = (0..WALK_POINTS)
            .map(|j| {
                let t = j as f64 / (WALK_POINTS - 1) as f64;
                (&za * (1.0 - t))? + (&zb * t)?
            })
            .collect::<candle_core::Result<_>>()?;
        let decoded = pictures_of(&v.model.decode(&Tensor::stack(&pts, 0)?)?, set.h, set.w)?;
        let ends = super::to_images(&bits, set.h, set.w);
        rows.push(ends[0].clone());
        rows.extend(decoded);
        rows.push(ends[1].clone());
        items.push(serde_json::json!({"from": a, "to": b, "labels": [set.labels[a], set.labels[b]]}));
        lines.push(format!("  test image {a:>5} (a {}) -> test image {b:>5} (a {})", set.labels[a], set.labels[b]));
    }
    let grid = Image::grid(&rows, WALK_POINTS + 2, 2, 0.5).upscale(SCALE);
    let text = format!(
        "{walks} latent walk{} on {}: each row is a binarised test image A, the decodings of {WALK_POINTS} evenly spaced \
         points from μ(A) to μ(B), and image B\n{}\n",
        if walks == 1 { "" } else { "s" },
        v.data_name_str(),
        lines.join("\n")
    );
    let json =
        serde_json::json!({"data": v.data_name_str(), "kind": "interpolate", "points": WALK_POINTS, "walks": items});
    Ok(SampleOut::new(text, json).with_picture("walk", Picture::Image(grid)))
}
