//! The data of `clip`: emoji images with their names and keywords as captions (split into
//! train / val / held-out test emoji), handwritten digits with captions written from templates
//! (training), and held-out test digits for zero-shot classification with a template never
//! used in training. One word vocabulary, from the training captions only.

use crate::data::{emoji, vision, ImageSet};
use crate::error::DlError;
use crate::rng::Rng;
use std::collections::{BTreeSet, HashMap};

/// Id of `<unk>`, the word a caption gets for a word outside the vocabulary (id 0 is padding).
pub const UNK: u32 = 1;

const DIGIT_WORDS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// Training captions of a digit, `{d}` the numeral and `{w}` its word. The zero-shot template
/// [`ZERO_SHOT`] is not among them.
pub const TRAIN_TEMPLATES: [&str; 5] =
    ["handwritten digit {w}", "the number {d}", "{w} written by hand", "a digit {d} drawn in ink", "number {w}"];

/// The caption of class `c` at zero-shot test time ("a handwritten 7").
pub const ZERO_SHOT: &str = "a handwritten {d}";

/// `template` filled in for digit `c`.
pub fn digit_caption(template: &str, c: usize) -> String {
    template.replace("{d}", &c.to_string()).replace("{w}", DIGIT_WORDS[c])
}

/// One image (3, S, S) channels first, in [0, 1] on white, and its caption.
#[derive(Clone, Debug)]
pub struct Item {
    pub chw: Vec<f32>,
    /// the caption as written (the emoji's name and keywords)
    pub caption: String,
    /// the emoji's name alone (what `sample` shows)
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct Splits<T> {
    pub train: T,
    pub val: T,
    pub test: T,
}

pub struct ClipData {
    pub size: usize,
    /// emoji (empty when the set is not fetched)
    pub emoji: Splits<Vec<Item>>,
    /// digits (3, S, S) as black ink on white, by split, with their labels
    pub digits: Splits<(Vec<Vec<f32>>, Vec<u8>)>,
    pub words: Vec<String>,
    index: HashMap<String, u32>,
    /// "mnist+emoji", or what stood in for them
    pub name: String,
    pub notice: Option<String>,
}

/// What `load` reads, from the `[data]` section.
pub struct Spec {
    pub image_size: usize,
    /// held-out test emoji, and validation emoji
    pub test_emoji: usize,
    pub val_emoji: usize,
    /// training digits (0: all), and test digits for the zero-shot accuracy
    pub train_digits: usize,
    pub test_digits: usize,
    /// words seen fewer times in the training captions become <unk>
    pub min_count: usize,
}

/// (H·W·3 interleaved) → (3, H, W).
pub fn hwc_to_chw(rgb: &[f32], size: usize) -> Vec<f32> {
    let n = size * size;
    (0..3 * n).map(|i| rgb[(i % n) * 3 + i / n]).collect()
}

/// Grey digits (white ink on black, any side) → (3, S, S) black ink on white, the digit filling
/// 7/8 of the side as MNIST's 28 of 32.
pub fn digit_images(set: &ImageSet, size: usize) -> (Vec<Vec<f32>>, Vec<u8>) {
    let set = vision::resize_box(set, size, size * 7 / 8);
    let imgs = (0..set.len()).map(|i| set.image(i).iter().map(|v| 1.0 - v).cycle().take(3 * size * size).collect());
    (imgs.collect(), set.labels.clone())
}

fn first(set: &ImageSet, n: usize) -> ImageSet {
    if n == 0 || n >= set.len() {
        return set.clone();
    }
    set.subset(&(0..n).collect::<Vec<_>>())
}

pub fn load(spec: &Spec) -> Result<ClipData, DlError> {
    let size = spec.image_size;
    let mut notes = vec![];
    let d = vision::load("mnist", 0)?;
    if let Some(n) = &d.notice {
        notes.push(n.clone());
    }
    // a fixed training subset, the same for every seed
    let train = match spec.train_digits {
        0 => d.train.clone(),
        n => d.train.subset(&Rng::new(0xc119).permutation(d.train.len())[..n.min(d.train.len())]),
    };
    let digits = Splits {
        train: digit_images(&train, size),
        val: digit_images(&first(&d.val, 500), size),
        test: digit_images(&first(&d.test, spec.test_digits), size),
    };
    let emoji = match emoji::load(size)? {
        Some(set) => {
            let items: Vec<Item> = set
                .items
                .iter()
                .map(|e| Item {
                    chw: hwc_to_chw(&e.rgb, size),
                    caption: std::iter::once(e.name.as_str())
                        .chain(e.keywords.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                    name: e.name.clone(),
                })
                .collect();
            // a fixed split, independent of the run's seed
            let p = Rng::new(0xe3_0771).permutation(items.len());
            let (nt, nv) = (spec.test_emoji.min(items.len() / 4), spec.val_emoji.min(items.len() / 4));
            let pick = |r: &[usize]| r.iter().map(|&i| items[i].clone()).collect::<Vec<_>>();
            Splits { test: pick(&p[..nt]), val: pick(&p[nt..nt + nv]), train: pick(&p[nt + nv..]) }
        }
        None => {
            notes.push(format!(
                "note: the emoji set is not in {}; training on captioned digits only, without the retrieval test (fetch it with `dlhist data fetch emoji`)",
                crate::data::catalog::fetched_dir().display()
            ));
            Splits { train: vec![], val: vec![], test: vec![] }
        }
    };
    // the vocabulary: every word of the training captions seen min_count times, digit templates
    // included (so the zero-shot words "a", "handwritten" and the numerals are known)
    let mut counts: HashMap<String, usize> = HashMap::new();
    let templates = (0..10).flat_map(|c| TRAIN_TEMPLATES.iter().map(move |t| digit_caption(t, c)));
    for cap in emoji.train.iter().map(|i| i.caption.clone()).chain(templates) {
        for w in emoji::words(&cap) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let kept: BTreeSet<String> =
        counts.into_iter().filter(|(_, c)| *c >= spec.min_count.max(1)).map(|(w, _)| w).collect();
    let words: Vec<String> = ["<pad>", "<unk>"].into_iter().map(String::from).chain(kept).collect();
    let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
    let name = format!("{}+{}", d.name, if emoji.train.is_empty() { "no-emoji" } else { "emoji" });
    Ok(ClipData { size, emoji, digits, words, index, name, notice: (!notes.is_empty()).then(|| notes.join("; ")) })
}

impl ClipData {
    /// Word ids of `text` (unknown words → <unk>; an empty caption → one <unk>).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let ids: Vec<u32> = emoji::words(text).iter().map(|w| self.index.get(w).copied().unwrap_or(UNK)).collect();
        if ids.is_empty() {
            vec![UNK]
        } else {
            ids
        }
    }

    /// The words of `text` outside the vocabulary.
    pub fn unknown(&self, text: &str) -> Vec<String> {
        emoji::words(text).into_iter().filter(|w| !self.index.contains_key(w)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_and_the_zero_shot_one_is_held_out() {
        assert_eq!(digit_caption(TRAIN_TEMPLATES[2], 7), "seven written by hand");
        assert_eq!(digit_caption(ZERO_SHOT, 7), "a handwritten 7");
        assert!(!TRAIN_TEMPLATES.contains(&ZERO_SHOT));
        let rgb: Vec<f32> = (0..12).map(|v| v as f32).collect(); // 2x2, interleaved
        assert_eq!(hwc_to_chw(&rgb, 2), vec![0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]);
    }
}
