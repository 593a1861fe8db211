//! `dalle`'s captions and sequences, its loss on the codes, drawing (codes one at a time, then
//! the VQ-VAE's decoder), CLIP reranking, the judge's accuracy, and `dlhist sample dalle`.

use super::{Dalle, CODES, TEXT_LEN};
use crate::data::ImageSet;
use crate::error::DlError;
use crate::experiment::{SampleOut, SampleRequest};
use crate::milestones::charlm::draw;
use crate::milestones::classify::ClassModel;
use crate::milestones::clip::{self, data::digit_caption, data::ZERO_SHOT};
use crate::milestones::gpt::Gpt;
use crate::milestones::{generative, lenet};
use crate::params::Params;
use crate::picture::Picture;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// The caption vocabulary: padding, the template words, the digits' words and numerals. Codes
/// follow as tokens `WORDS.len() + k`.
pub const WORDS: [&str; 26] = [
    "<pad>",
    "a",
    "handwritten",
    "the",
    "digit",
    "number",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
];
const DIGIT_WORDS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// Training captions of digit `{w}` / `{d}`; the claim prompts with the first.
pub const TEMPLATES: [&str; 5] = ["a handwritten {w}", "a handwritten {d}", "the digit {w}", "the number {d}", "{w}"];

/// Caption `template` (an index into `TEMPLATES`) for class `c`.
pub fn caption(c: usize, template: usize) -> String {
    TEMPLATES[template].replace("{w}", DIGIT_WORDS[c]).replace("{d}", &c.to_string())
}

/// Word ids of a caption padded to `TEXT_LEN`; Err(unknown words) or Err(too long).
pub fn encode_words(text: &str) -> std::result::Result<Vec<u32>, String> {
    let words = crate::data::emoji::words(text);
    let unknown: Vec<&str> = words.iter().filter(|w| !WORDS.contains(&w.as_str())).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the prompt has words dalle never saw in a caption: {}. It knows: {}",
            unknown.join(", "),
            WORDS[1..].join(" ")
        ));
    }
    if words.is_empty() || words.len() > TEXT_LEN {
        return Err(format!(
            "the prompt needs 1 to {TEXT_LEN} words, e.g. \"a handwritten seven\"; got {}",
            words.len()
        ));
    }
    let mut ids: Vec<u32> = words.iter().map(|w| WORDS.iter().position(|x| x == w).unwrap() as u32).collect();
    ids.resize(TEXT_LEN, 0);
    Ok(ids)
}

/// [caption | codes] as tokens, without the last code (the model's input; its targets are the codes).
pub fn sequence(text: &[u32], codes: &[u32]) -> Vec<u32> {
    text.iter().copied().chain(codes.iter().map(|&c| c + WORDS.len() as u32)).collect()
}

/// Cross-entropy of the codes of full sequences (`TEXT_LEN + CODES` tokens each): the logits
/// at positions TEXT_LEN−1 … end−1 predict the 49 codes.
pub fn code_loss(model: &Gpt, seqs: &[Vec<u32>], dev: &Device) -> Result<Tensor> {
    let (b, t) = (seqs.len(), TEXT_LEN + CODES - 1);
    let input: Vec<u32> = seqs.iter().flat_map(|s| s[..t].to_vec()).collect();
    let logits = model.forward_t(&Tensor::from_vec(input, (b, t), dev)?, true)?; // (B·T, V)
    let rows: Vec<u32> = (0..b).flat_map(|i| (TEXT_LEN - 1..t).map(move |p| (i * t + p) as u32)).collect();
    let targets: Vec<u32> = seqs.iter().flat_map(|s| s[TEXT_LEN..].to_vec()).collect();
    let picked = logits.index_select(&Tensor::from_vec(rows, b * CODES, dev)?, 0)?;
    crate::nn::loss::cross_entropy(&picked, &Tensor::from_vec(targets, b * CODES, dev)?)
}

/// Draws the codes of one image per caption (each `TEXT_LEN` word ids), one code at a time
/// among the codebook's tokens only; returns the images (n·28·28 grey values in [0, 1]).
pub fn draw_images(
    d: &Dalle,
    texts: &[Vec<u32>],
    temperature: f64,
    top_k: Option<usize>,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let w = WORDS.len();
    let mut pixels = vec![];
    for chunk in texts.chunks(200) {
        let mut seqs: Vec<Vec<u32>> = chunk.to_vec();
        for _ in 0..CODES {
            let (b, t) = (seqs.len(), seqs[0].len());
            let flat: Vec<u32> = seqs.iter().flatten().copied().collect();
            let logits = d.model.forward(&Tensor::from_vec(flat, (b, t), &d.device)?)?.reshape((b, t, ()))?;
            let last: Vec<Vec<f32>> = logits.narrow(1, t - 1, 1)?.squeeze(1)?.to_vec2()?;
            for (s, l) in seqs.iter_mut().zip(&last) {
                s.push((w + draw(&l[w..], temperature, top_k, rng)) as u32);
            }
        }
        let codes: Vec<u32> = seqs.iter().flat_map(|s| s[TEXT_LEN..].iter().map(|&c| c - w as u32)).collect();
        let g = super::vqvae::VqVaeNet::GRID;
        let x = d.vq.decode(&Tensor::from_vec(codes, (chunk.len(), g, g), &d.device)?)?;
        pixels.extend(x.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(pixels)
}

fn as_set(pixels: Vec<f32>) -> ImageSet {
    let n = pixels.len() / 784;
    ImageSet { pixels, labels: vec![0; n], h: 28, w: 28, classes: 10 }
}

/// Of `k` candidates per image (consecutive in `pixels`), the index of the one CLIP scores
/// highest for "a handwritten N" (`classes[i]` for image i).
fn rerank(c: &clip::Clip, pixels: &[f32], classes: &[usize], k: usize) -> Result<Vec<usize>> {
    let (imgs, _) = clip::data::digit_images(&as_set(pixels.to_vec()), c.data.size);
    let zi = c.embed_images(&imgs.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
    let zt = c.embed_texts(&(0..10).map(|n| digit_caption(ZERO_SHOT, n)).collect::<Vec<_>>())?;
    let sim: Vec<Vec<f32>> = zi.matmul(&zt.t()?)?.to_vec2()?;
    Ok(classes
        .iter()
        .enumerate()
        .map(|(i, &cl)| (0..k).max_by(|&a, &b| sim[i * k + a][cl].total_cmp(&sim[i * k + b][cl])).unwrap() + i * k)
        .collect())
}

/// Images drawn for `classes` (one caption each), best of `k` by CLIP when k > 1 and CLIP is attached.
fn drawn(
    d: &Dalle,
    texts: &[Vec<u32>],
    classes: &[usize],
    k: usize,
    temp: f64,
    top_k: Option<usize>,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let many: Vec<Vec<u32>> = texts.iter().flat_map(|t| std::iter::repeat_n(t.clone(), k)).collect();
    let pixels = draw_images(d, &many, temp, top_k, rng)?;
    match (&d.clip, k > 1) {
        (Some(c), true) => {
            let keep = rerank(c, &pixels, classes, k)?;
            Ok(keep.iter().flat_map(|&i| pixels[i * 784..(i + 1) * 784].to_vec()).collect())
        }
        _ => Ok(pixels.chunks(784).step_by(k).flatten().copied().collect()),
    }
}

/// The judge's labels of images (n·28·28 in [0, 1]).
fn judge(d: &Dalle, pixels: &[f32]) -> Result<Vec<usize>> {
    judge_labels(d.judge.as_ref().expect("judge attached"), pixels, &d.device)
}

/// A lenet's labels (arg max) of images given as n·28·28 grey values in [0, 1].
pub fn judge_labels(j: &lenet::LeNet, pixels: &[f32], dev: &Device) -> Result<Vec<usize>> {
    let n = pixels.len() / 784;
    let logits: Vec<Vec<f32>> =
        j.logits(&Tensor::from_vec(pixels.to_vec(), (n, 1, 28, 28), dev)?, false, &mut Rng::new(0))?.to_vec2()?;
    Ok(logits.iter().map(|l| (0..10).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap()).collect())
}

/// The fraction of `per` images per class, drawn for "a handwritten N" (best of `k` by CLIP),
/// that the judge labels N.
pub fn accuracy(d: &Dalle, per: usize, k: usize, rng: &mut Rng) -> Result<f64> {
    let classes: Vec<usize> = (0..10).flat_map(|c| std::iter::repeat_n(c, per)).collect();
    let texts: Vec<Vec<u32>> = classes.iter().map(|&c| encode_words(&caption(c, 0)).expect("known")).collect();
    let labels = judge(d, &drawn(d, &texts, &classes, k, 1.0, None, rng)?)?;
    Ok(labels.iter().zip(&classes).filter(|(a, b)| a == b).count() as f64 / classes.len().max(1) as f64)
}

/// The config of the `clip` run of `spec` (MILESTONE[:KEY=VALUE…]): its defaults (the clip
/// preset sets nothing beside them) with the spec's overrides.
pub fn clip_config(spec: &str) -> anyhow::Result<clip::Config> {
    let mut t = crate::milestones::to_table(&clip::defaults());
    for set in spec.split(':').skip(1).filter(|s| !s.is_empty()) {
        crate::config::apply_set(&mut t, set, "clip")?;
    }
    Ok(crate::milestones::from_table(&t)?)
}

/// The `clip` run of `spec` rebuilt from its config and loaded with `trained`.
pub fn clip_from(spec: &str, trained: &Params, dev: &Device) -> anyhow::Result<clip::Clip> {
    let c = clip::build(&clip_config(spec)?, dev)?;
    c.params
        .load(&trained.tensors().into_iter().collect())
        .map_err(|m| anyhow::anyhow!("dalle: loading the clip run: {m}"))?;
    Ok(c)
}

pub fn sample(d: &mut Dalle, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
    let prompt = req.prompt.clone().unwrap_or_else(|| caption(7, 0));
    let text = encode_words(&prompt).map_err(DlError::Usage)?;
    let n = req.n_or(16);
    let k = if d.clip.is_some() { d.cfg.data.rerank.max(1) } else { 1 };
    // the class CLIP reranks for: the prompt's digit, if it names one
    let class = (0..10).find(|&c| {
        text.contains(&(WORDS.iter().position(|w| *w == DIGIT_WORDS[c]).unwrap() as u32))
            || text.contains(&(WORDS.iter().position(|w| *w == c.to_string()).unwrap() as u32))
    });
    let k = if class.is_some() { k } else { 1 };
    let pixels =
        drawn(d, &vec![text; n], &vec![class.unwrap_or(0); n], k, req.temperature.unwrap_or(1.0), req.top_k, rng)?;
    let mut out = format!("{n} images drawn for \"{prompt}\"");
    out.push_str(&if k > 1 { format!(", each the best of {k} by CLIP's score\n") } else { "\n".to_string() });
    let mut json = serde_json::json!({"prompt": prompt, "n": n, "rerank": k});
    if d.judge.is_some() {
        let labels = judge(d, &pixels)?;
        out.push_str(&format!(
            "lenet reads them as: {}\n",
            labels.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(" ")
        ));
        json["judge"] = serde_json::json!(labels);
    }
    let unit: Vec<f32> = pixels.iter().map(|v| 2.0 * v - 1.0).collect();
    Ok(SampleOut::new(out, json).with_picture("grid", Picture::Image(generative::grid(&unit, 28))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_encode_to_padded_ids_and_bad_prompts_say_why() {
        assert_eq!(caption(7, 0), "a handwritten seven");
        assert_eq!(caption(3, 3), "the number 3");
        assert_eq!(encode_words("A handwritten seven").unwrap(), vec![1, 2, 13]);
        assert_eq!(encode_words("7").unwrap(), vec![23, 0, 0]);
        assert!(encode_words("a handwritten zebra").unwrap_err().contains("zebra"));
        assert!(encode_words("a handwritten seven please").unwrap_err().contains(": please."));
        assert!(encode_words("a handwritten seven seven").unwrap_err().contains("1 to 3 words"));
        assert!(encode_words("").unwrap_err().contains("1 to 3 words"));
        assert_eq!(sequence(&[1, 2, 0], &[0, 5]), vec![1, 2, 0, 26, 31]);
    }
}
