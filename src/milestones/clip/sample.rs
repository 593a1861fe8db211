//! `dlhist sample clip …`: `--image FILE.png` ranks captions (every emoji's name and the ten
//! zero-shot digit captions) for an image; `--prompt "a red heart"` ranks the held-out images
//! for a caption and draws the best as a strip; with neither, held-out images with the
//! captions the model ranks first for them.

use super::data::{digit_caption, ZERO_SHOT};
use super::Clip;
use crate::error::DlError;
use crate::experiment::{SampleOut, SampleRequest};
use crate::picture::{Image, Picture};
use crate::rng::Rng;

/// An image of any size (grey or RGB, in [0, 1]) box-averaged to (3, S, S).
fn to_chw(img: &Image, s: usize) -> Vec<f32> {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut out = vec![0f32; 3 * s * s];
    for y in 0..s {
        let (y0, y1) = (y * h / s, ((y + 1) * h).div_ceil(s).max(y * h / s + 1));
        for x in 0..s {
            let (x0, x1) = (x * w / s, ((x + 1) * w).div_ceil(s).max(x * w / s + 1));
            let mut sum = [0f32; 3];
            for yy in y0..y1.min(h) {
                for xx in x0..x1.min(w) {
                    let p = &img.data[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                    for (ch, v) in sum.iter_mut().enumerate() {
                        *v += p[ch.min(c - 1)];
                    }
                }
            }
            let n = ((y1.min(h) - y0) * (x1.min(w) - x0)).max(1) as f32;
            for ch in 0..3 {
                out[ch * s * s + y * s + x] = sum[ch] / n;
            }
        }
    }
    out
}

/// (3, S, S) → a picture, 2x upscaled.
fn picture(chw: &[f32], s: usize) -> Image {
    let n = s * s;
    Image::rgb(s, s, (0..3 * n).map(|i| chw[(i % 3) * n + i / 3]).collect()).upscale(2)
}

/// Images per row of a sample's strip: a long one (`--n 300`) wraps.
const STRIP_COLS: usize = 10;

/// Indices of `scores` from the highest, the first `k`.
fn top(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx.truncate(k);
    idx
}

/// Every caption `--image` is ranked against: the emoji names (once each) and the digits'.
fn captions(m: &Clip) -> Vec<String> {
    let e = &m.data.emoji;
    let mut names: Vec<String> = e.train.iter().chain(&e.val).chain(&e.test).map(|i| i.name.clone()).collect();
    names.sort();
    names.dedup();
    names.extend((0..10).map(|c| digit_caption(ZERO_SHOT, c)));
    names
}

/// The held-out images `--prompt` ranks: the test emoji and 100 test digits.
fn held_out(m: &Clip) -> Vec<(&[f32], String)> {
    let mut v: Vec<(&[f32], String)> = m.data.emoji.test.iter().map(|i| (i.chw.as_slice(), i.name.clone())).collect();
    let (imgs, labels) = &m.data.digits.test;
    v.extend(imgs.iter().zip(labels).take(100).map(|(i, &l)| (i.as_slice(), format!("test digit {l}"))));
    v
}

pub fn sample(m: &Clip, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    let s = m.data.size;
    if let Some(img) = &req.image {
        let chw = to_chw(img, s);
        let caps = captions(m);
        let sim = m.similarity(&[&chw], &caps)?;
        let best = top(&sim, req.n_at_most(5, caps.len(), "there are that many captions to rank"));
        let mut text = format!("captions closest to the image ({} candidates):\n", caps.len());
        for &i in &best {
            text.push_str(&format!("  {:.3}  {}\n", sim[i], caps[i]));
        }
        let ranked: Vec<_> = best.iter().map(|&i| serde_json::json!({"caption": caps[i], "score": sim[i]})).collect();
        let json = serde_json::json!({"image": [img.width, img.height], "ranked": ranked});
        return Ok(SampleOut::new(text, json).with_picture("input", Picture::Image(picture(&chw, s))));
    }
    if let Some(p) = &req.prompt {
        let unknown = m.data.unknown(p);
        if !unknown.is_empty() || crate::data::emoji::words(p).is_empty() {
            let some: Vec<&str> = ["red", "heart", "cat", "face", "flag", "handwritten", "7"]
                .into_iter()
                .filter(|w| m.data.unknown(w).is_empty())
                .collect();
            return Err(DlError::Usage(format!(
                "the prompt has words the model never saw in a caption: {}. Use words of emoji names and keywords or of the digit captions (e.g. {})",
                if unknown.is_empty() { "(no words at all)".to_string() } else { unknown.join(", ") },
                some.join(", ")
            ))
            .into());
        }
        let pool = held_out(m);
        let images: Vec<&[f32]> = pool.iter().map(|p| p.0).collect();
        let sim = m.similarity(&images, std::slice::from_ref(p))?;
        let best = top(&sim, req.n_at_most(8, pool.len(), "there are that many held-out images"));
        let mut text = format!("held-out images closest to \"{p}\" (of {}):\n", pool.len());
        for (r, &i) in best.iter().enumerate() {
            text.push_str(&format!("  {}. {:.3}  {}\n", r + 1, sim[i], pool[i].1));
        }
        let ranked: Vec<_> = best.iter().map(|&i| serde_json::json!({"image": pool[i].1, "score": sim[i]})).collect();
        let strip: Vec<Image> = best.iter().map(|&i| picture(pool[i].0, s)).collect();
        let cols = strip.len().min(STRIP_COLS);
        return Ok(SampleOut::new(text, serde_json::json!({"prompt": p, "ranked": ranked}))
            .with_picture("ranked", Picture::Image(Image::grid(&strip, cols, 2, 0.5))));
    }
    // held-out images, each with the model's first three captions among the held-out ones
    let pool = held_out(m);
    let caps = captions(m);
    let n = req.n_at_most(4, pool.len(), "there are that many held-out images");
    let pick: Vec<usize> = rng.permutation(pool.len())[..n].to_vec();
    let images: Vec<&[f32]> = pick.iter().map(|&i| pool[i].0).collect();
    let sim = m.similarity(&images, &caps)?;
    let mut text = format!("{n} held-out images and the captions the model ranks first ({}):\n", m.data.name);
    let mut items = vec![];
    for (r, &i) in pick.iter().enumerate() {
        let row = &sim[r * caps.len()..(r + 1) * caps.len()];
        let best: Vec<&str> = top(row, 3).into_iter().map(|j| caps[j].as_str()).collect();
        text.push_str(&format!("  {}: {}\n", pool[i].1, best.join(" | ")));
        items.push(serde_json::json!({"image": pool[i].1, "captions": best}));
    }
    let strip: Vec<Image> = pick.iter().map(|&i| picture(pool[i].0, s)).collect();
    let cols = strip.len().min(STRIP_COLS);
    Ok(SampleOut::new(text, serde_json::json!({"data": m.data.name, "examples": items}))
        .with_picture("held-out", Picture::Image(Image::grid(&strip, cols, 2, 0.5))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_average_keeps_a_flat_colour_and_spreads_grey_to_rgb() {
        let red = Image::rgb(5, 3, [1.0, 0.0, 0.0].repeat(15));
        let chw = to_chw(&red, 2);
        assert_eq!(chw, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let grey = Image::gray(2, 2, vec![0.0, 1.0, 1.0, 0.0]);
        assert_eq!(to_chw(&grey, 1), vec![0.5, 0.5, 0.5]);
        assert_eq!(top(&[0.1, 0.9, 0.5], 2), vec![1, 2]);
        let p = picture(&to_chw(&red, 2), 2);
        assert_eq!((p.width, p.channels, &p.data[..3]), (4, 3, &[1.0, 0.0, 0.0][..]));
    }
}
