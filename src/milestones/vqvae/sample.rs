//! `dlhist sample vq-vae`: random test images beside their reconstructions through the codes
//! (rows of up to 8: the originals, then their reconstructions below), each image's MSE and how
//! many distinct codes of the 7x7 grid it uses; the JSON carries every image's code grid.

use super::{image_batch, VqVae, VqVaeNet};
use crate::experiment::{SampleOut, SampleRequest};
use crate::picture::{Image, Picture};
use crate::rng::Rng;

/// Images shown at most.
pub const MAX_IMAGES: usize = 32;
/// Images per row pair.
const COLS: usize = 8;
/// Each pixel drawn as a 2x2 block.
const SCALE: usize = 2;

pub fn sample(v: &mut VqVae, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    let set = v.test_set();
    let n = req.n_at_most_of(
        8,
        MAX_IMAGES,
        "that many images are drawn with their reconstructions",
        set.len(),
        "the test set",
    );
    let mut idx = rng.permutation(set.len());
    idx.truncate(n);
    let x = image_batch(set, &idx, v.device())?;
    let codes = v.net.encode(&x)?; // (n, 7, 7)
    let y = v.net.decode(&codes)?;
    let orig = super::to_images(&x.flatten_all()?.to_vec1::<f32>()?, set.h, set.w);
    let recon = super::to_images(&y.flatten_all()?.to_vec1::<f32>()?, set.h, set.w);
    let grids = codes.to_vec3::<u32>()?;
    // row pairs: up to COLS originals, their reconstructions below (a short last pair padded)
    let cols = COLS.min(n);
    let blank = Image::filled(set.w, set.h, 1, [0.5; 3]);
    let mut panel: Vec<Image> = vec![];
    for (o, r) in orig.chunks(cols).zip(recon.chunks(cols)) {
        for row in [o, r] {
            panel.extend_from_slice(row);
            panel.extend(std::iter::repeat_n(blank.clone(), cols - row.len()));
        }
    }
    let picture = Image::grid(&panel, cols, 2, 0.5).upscale(SCALE);
    let mut lines = vec![];
    let mut items = vec![];
    for (k, &i) in idx.iter().enumerate() {
        let mse = orig[k].data.iter().zip(&recon[k].data).map(|(a, b)| (a - b).powi(2)).sum::<f32>()
            / orig[k].data.len() as f32;
        let mut distinct: Vec<u32> = grids[k].iter().flatten().copied().collect();
        distinct.sort();
        distinct.dedup();
        lines.push(format!(
            "  test image {i:>5} (a {}): MSE {mse:.4}, {} distinct codes of {}",
            set.labels[i],
            distinct.len(),
            VqVaeNet::GRID * VqVaeNet::GRID
        ));
        items.push(serde_json::json!({"index": i, "label": set.labels[i], "mse": mse, "codes": grids[k]}));
    }
    let text = format!(
        "{n} test image{} of {} (rows of up to {COLS}: originals, then their reconstructions from {} codes each, \
         out of a codebook of {})\n{}\n",
        if n == 1 { "" } else { "s" },
        v.data_name_str(),
        VqVaeNet::GRID * VqVaeNet::GRID,
        v.net.cfg.codes,
        lines.join("\n")
    );
    let json = serde_json::json!({"data": v.data_name_str(), "codebook": v.net.cfg.codes, "images": items});
    Ok(SampleOut::new(text, json).with_picture("reconstructions", Picture::Image(picture)))
}
