//! Character-level text for the language models: a vocabulary of the characters of one text,
//! a fixed 90/10 train/val split, and random windows for training steps.

use super::catalog::{fetched_dir, present, MOBY_TXT};
use crate::error::DlError;
use crate::rng::Rng;

/// The texts a char-LM can train on: `moby` is built in, the others are fetched by `make data`.
pub const TEXTS: [&str; 3] = ["moby", "shakespeare", "sotu"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSplit {
    Train,
    Val,
}

/// A text as ids: `vocab` is the sorted set of its characters, `ids[i]` indexes `vocab`.
#[derive(Clone, Debug, PartialEq)]
pub struct CharText {
    pub vocab: Vec<char>,
    pub ids: Vec<u32>,
}

impl CharText {
    pub fn new(text: &str) -> Self {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let ids = text.chars().map(|c| vocab.binary_search(&c).unwrap() as u32).collect();
        Self { vocab, ids }
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The first 90% of the characters are train, the rest val; fixed for every seed.
    pub fn part(&self, split: TextSplit) -> &[u32] {
        let cut = self.ids.len() * 9 / 10;
        match split {
            TextSplit::Train => &self.ids[..cut],
            TextSplit::Val => &self.ids[cut..],
        }
    }

    /// `b` windows of `t + 1` consecutive ids from `split`, each starting at a position drawn
    /// from `rng` (e.g. `Rng::derive(seed, "batch", step)`); (B, T+1) row-major. Inputs are
    /// `[.., ..T]` and next-character targets `[.., 1..]` of each row.
    pub fn batch(&self, split: TextSplit, rng: &mut Rng, b: usize, t: usize) -> Result<Vec<u32>, DlError> {
        let ids = self.part(split);
        if ids.len() < t + 1 {
            return Err(DlError::BadValue {
                context: "seq_len".into(),
                message: format!(
                    "the {split:?} split has {} characters, fewer than one window of seq_len + 1 = {}; lower seq_len or use a longer text",
                    ids.len(),
                    t + 1
                ),
            });
        }
        let starts = ids.len() - t; // windows start in 0..=len-(t+1)
        let mut out = Vec::with_capacity(b * (t + 1));
        for _ in 0..b {
            let s = rng.below(starts);
            out.extend_from_slice(&ids[s..s + t + 1]);
        }
        Ok(out)
    }

    /// Ids of `s`; an error names every character of `s` that is not in the vocabulary.
    pub fn encode(&self, s: &str) -> Result<Vec<u32>, DlError> {
        let mut missing: Vec<char> = s.chars().filter(|c| self.vocab.binary_search(c).is_err()).collect();
        if !missing.is_empty() {
            missing.dedup();
            let names: Vec<String> = missing.iter().map(|c| format!("{c:?} (U+{:04X})", *c as u32)).collect();
            let vocab: String = self.vocab.iter().filter(|c| !c.is_control()).collect();
            return Err(DlError::Usage(format!(
                "the prompt has character(s) {} that the model's text never contains; use only these: {vocab:?}",
                names.join(", ")
            )));
        }
        Ok(s.chars().map(|c| self.vocab.binary_search(&c).unwrap() as u32).collect())
    }

    /// The text of `ids`; ids outside the vocabulary (never produced by a model of this size)
    /// become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.vocab.get(i as usize).copied().unwrap_or('\u{FFFD}')).collect()
    }
}

/// The text `name` (one of `TEXTS`). A fetched text that is absent falls back to the built-in
/// moby, with a one-line notice saying so.
pub fn load_text(name: &str) -> Result<(CharText, Option<String>), DlError> {
    match name {
        "moby" => Ok((CharText::new(MOBY_TXT), None)),
        "shakespeare" | "sotu" if present(name) => {
            let path = fetched_dir().join(name).join(format!("{name}.txt"));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                DlError::Data(format!(
                    "cannot read {} as UTF-8 text: {e}. Re-fetch it with `make data`",
                    path.display()
                ))
            })?;
            Ok((CharText::new(&text), None))
        }
        "shakespeare" | "sotu" => {
            let notice = format!(
                "note: {name} is not in {}; using the built-in moby instead (fetch it with `dlhist data fetch {name}`)",
                fetched_dir().display()
            );
            Ok((CharText::new(MOBY_TXT), Some(notice)))
        }
        other => Err(DlError::BadValue {
            context: "data.text".into(),
            message: format!("unknown text `{other}`; choose one of {}", TEXTS.join(", ")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_round_trips_and_unknown_prompt_characters_are_named() {
        let t = CharText::new("hello, world\n");
        assert_eq!(t.vocab, ['\n', ' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        assert_eq!(t.decode(&t.ids), "hello, world\n");
        assert_eq!(t.encode("old").unwrap(), [7, 6, 3]);
        let err = t.encode("hellö?").unwrap_err().to_string();
        assert!(err.contains("'ö' (U+00F6)") && err.contains("'?'") && !err.contains("'h'"), "{err}");
        assert_eq!(t.decode(&[99]), "\u{FFFD}");
    }

    #[test]
    fn split_is_90_10_and_batches_are_seeded_windows() {
        let text: String = (0..1000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let t = CharText::new(&text);
        assert_eq!((t.part(TextSplit::Train).len(), t.part(TextSplit::Val).len()), (900, 100));
        let b = t.batch(TextSplit::Val, &mut Rng::derive(1, "batch", 3), 4, 8).unwrap();
        assert_eq!(b, t.batch(TextSplit::Val, &mut Rng::derive(1, "batch", 3), 4, 8).unwrap());
        assert_eq!(b.len(), 4 * 9);
        // every row is a consecutive run of the val part
        let val = t.part(TextSplit::Val);
        assert!(b.chunks(9).all(|w| val.windows(9).any(|v| v == w)));
        // a window exactly as long as the split is allowed, one longer is an error saying what to do
        assert!(t.batch(TextSplit::Val, &mut Rng::new(0), 2, 99).is_ok());
        let err = t.batch(TextSplit::Val, &mut Rng::new(0), 2, 100).unwrap_err().to_string();
        assert!(err.contains("lower seq_len"), "{err}");
    }

    #[test]
    fn moby_is_built_in_and_unknown_names_are_rejected() {
        let (t, notice) = load_text("moby").unwrap();
        assert!(notice.is_none() && t.vocab_size() > 60 && t.ids.len() > 1_000_000);
        assert!(t.decode(&t.encode("Call me Ishmael.").unwrap()) == "Call me Ishmael.");
        let (_, notice) = load_text("sotu").unwrap();
        assert_eq!(notice.is_some(), !present("sotu"));
        assert!(load_text("tiny-shakespeare").unwrap_err().to_string().contains("moby, shakespeare, sotu"));
    }
}
