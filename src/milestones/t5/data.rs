//! The data of `t5`: one word vocabulary for every task, the span-corruption objective
//! (Raffel et al. 2019, §3.1.4) and the two supervised tasks written as text:
//! `translate english to spanish : <verse>` → its Spanish, and `source : <sentence>` → the name
//! of the text it comes from (`bible`, `shakespeare`, `moby`, `sotu`).
//!
//! Splits never mix: the verse pairs keep `pairs.rs`'s fixed split (the test pairs of
//! `attention` and `transformer`); a sentence of the other texts goes to train, val or test by a
//! hash of its words. Pretraining reads only training sentences.

use crate::data::catalog::{fetched_dir, present, MOBY_TXT};
use crate::data::pairs::{self, cipher, PairSpec, BOS, EOS, PAD, UNK};
use crate::data::verses::tokenize;
use crate::error::DlError;
use crate::rng::Rng;
use std::collections::HashMap;

/// Span sentinels <x0> … <x7>: at most this many corrupted spans per sentence (a 40-token
/// sentence has 6 noise tokens, 2 spans).
pub const SENTINELS: usize = 8;
const SPECIALS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];
/// The task prefixes, as the tokenizer writes them.
pub const TRANSLATE_PREFIX: &str = "translate English to Spanish:";
pub const SOURCE_PREFIX: &str = "source:";
/// The provenance labels, in class order, for the texts that are present.
pub const TEXTS: [&str; 4] = ["bible", "shakespeare", "moby", "sotu"];

/// Word ids: the specials (<pad> <unk> <bos> <eos>, the ids of `pairs.rs`), the sentinels, the
/// words of the prompts and labels, the words of the `primary` sentences seen at least
/// `min_count` times (the verse pairs: the translation task keeps the vocabulary `attention`
/// has), then those of the `secondary` sentences (the other texts), most frequent first (ties
/// alphabetical), up to `max` entries in all.
#[derive(Clone, Debug)]
pub struct T5Vocab {
    pub words: Vec<String>,
    index: HashMap<String, u32>,
}

/// The words of `sentences` seen at least `min_count` times, most frequent first.
fn counted<'a>(sentences: impl IntoIterator<Item = &'a [String]>, min_count: u64) -> Vec<String> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for s in sentences {
        for w in s {
            *counts.entry(w.as_str()).or_default() += 1;
        }
    }
    let mut kept: Vec<(&str, u64)> = counts.into_iter().filter(|&(_, c)| c >= min_count.max(1)).collect();
    kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    kept.into_iter().map(|(w, _)| w.to_string()).collect()
}

impl T5Vocab {
    pub fn build<'a, 'b>(
        fixed: &[String],
        primary: impl IntoIterator<Item = &'a [String]>,
        secondary: impl IntoIterator<Item = &'b [String]>,
        min_count: u64,
        max: usize,
    ) -> Self {
        let mut words: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        words.extend((0..SENTINELS).map(|i| format!("<x{i}>")));
        let mut index: HashMap<String, u32> = HashMap::new();
        for (i, w) in words.iter().enumerate() {
            index.insert(w.clone(), i as u32);
        }
        let candidates = fixed.iter().cloned().chain(counted(primary, min_count)).chain(counted(secondary, min_count));
        for w in candidates {
            if words.len() >= max.max(SPECIALS.len() + SENTINELS + fixed.len()) {
                break;
            }
            if !index.contains_key(&w) {
                index.insert(w.clone(), words.len() as u32);
                words.push(w);
            }
        }
        Self { words, index }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn id(&self, w: &str) -> Option<u32> {
        self.index.get(w).copied()
    }

    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t.as_ref()).unwrap_or(UNK)).collect()
    }

    pub fn word(&self, id: u32) -> &str {
        self.words.get(id as usize).map_or("<?>", String::as_str)
    }

    /// The id of sentinel `i`.
    pub fn sentinel(i: usize) -> u32 {
        (SPECIALS.len() + i.min(SENTINELS - 1)) as u32
    }

    /// Ids never to emit when decoding a supervised task: padding, <bos>, <unk>, the sentinels.
    pub fn banned() -> Vec<u32> {
        let mut v = vec![PAD, BOS, UNK];
        v.extend((0..SENTINELS).map(Self::sentinel));
        v
    }
}

/// A text-to-text example: input and target ids (the target without <eos>), and the words the
/// metrics read (the reference translation, or the label).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub input: Vec<u32>,
    pub target: Vec<u32>,
    /// the source words (without the prefix), for samples
    pub source: Vec<String>,
    /// the reference words (translation) or the label (provenance)
    pub reference: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Splits<T> {
    pub train: Vec<T>,
    pub val: Vec<T>,
    pub test: Vec<T>,
}

/// Sizes and filters of the data (`[data]` in the config).
#[derive(Clone, Debug)]
pub struct Spec {
    /// verses (falls back to the synthetic cipher when not fetched) or cipher
    pub dataset: String,
    /// translation training pairs: both sides at most this many words (as `attention`)
    pub max_words: usize,
    /// translation val/test pairs: at most this many words (as `attention`)
    pub eval_max_words: usize,
    /// provenance sentences: this many tokens at least and at most
    pub min_tokens: usize,
    pub max_tokens: usize,
    /// provenance sentences per text: training, and each of val and test
    pub per_text_train: usize,
    pub per_text_eval: usize,
    /// training sentences per other text (shakespeare, moby, sotu) in the pretraining corpus,
    /// beside both sides of every training verse pair
    pub pretrain_per_text: usize,
    pub min_count: u64,
    pub max_vocab: usize,
}

pub struct T5Data {
    /// "verses" or "cipher"
    pub name: String,
    pub notice: Option<String>,
    pub vocab: T5Vocab,
    /// the provenance labels in use, in class order
    pub labels: Vec<String>,
    /// sentences (ids) for span corruption
    pub corpus: Splits<Vec<u32>>,
    pub translate: Splits<Example>,
    pub provenance: Splits<Example>,
}

/// Which part a sentence of a text belongs to: 90% train, 5% val, 5% test by a hash of its words.
fn part(tokens: &[String]) -> usize {
    match Rng::derive(0x7e_57, &tokens.join(" "), 0).below(100) {
        0..=4 => 2,
        5..=9 => 1,
        _ => 0,
    }
}

/// The sentences of `text`: split after . ! ? (and at blank lines), tokenized.
pub fn sentences(text: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let blank_line = c == '\n' && chars.peek() == Some(&'\n');
        if !blank_line {
            cur.push(if c == '\n' { ' ' } else { c });
        }
        let end = matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace());
        if end || blank_line {
            let t = tokenize(&cur);
            if !t.is_empty() {
                out.push(t);
            }
            cur.clear();
        }
    }
    let t = tokenize(&cur);
    if !t.is_empty() {
        out.push(t);
    }
    out
}

/// The raw text `name` (shakespeare, sotu: fetched; moby: built in); None when not fetched.
fn raw_text(name: &str) -> Result<Option<String>, DlError> {
    if name == "moby" {
        return Ok(Some(MOBY_TXT.to_string()));
    }
    if !present(name) {
        return Ok(None);
    }
    let path = fetched_dir().join(name).join(format!("{name}.txt"));
    std::fs::read_to_string(&path).map(Some).map_err(|e| {
        DlError::Data(format!("cannot read {}: {e}. Re-fetch it with `dlhist data fetch {name}`", path.display()))
    })
}

/// The first `n` of `items` in an order fixed by `tag` (not the run's seed: both stages of a
/// chain, and every seed, see the same data).
fn pick<T>(mut items: Vec<T>, n: usize, tag: &str) -> Vec<T> {
    Rng::derive(0x75, tag, 0).shuffle(&mut items);
    items.truncate(n);
    items
}

pub fn load(spec: &Spec) -> Result<T5Data, DlError> {
    let pairs = pairs::load(&PairSpec {
        dataset: spec.dataset.clone(),
        max_words: spec.max_words,
        eval_max_words: spec.eval_max_words,
        min_count: 1,
    })?;
    let in_len = |t: &Vec<String>| (spec.min_tokens..=spec.max_tokens).contains(&t.len());
    // provenance sentences per text and split: the English verses keep the pairs' split
    let mut texts: Vec<(String, Splits<Vec<String>>)> = vec![];
    if pairs.name == "verses" {
        let en = |ex: &[pairs::Example]| ex.iter().map(|e| e.src_tokens.clone()).filter(in_len).collect::<Vec<_>>();
        texts.push(("bible".into(), Splits { train: en(&pairs.train), val: en(&pairs.val), test: en(&pairs.test) }));
    }
    for name in ["shakespeare", "moby", "sotu"] {
        if let Some(text) = raw_text(name)? {
            let mut s = Splits::default();
            for t in sentences(&text).into_iter().filter(in_len) {
                match part(&t) {
                    0 => s.train.push(t),
                    1 => s.val.push(t),
                    _ => s.test.push(t),
                }
            }
            texts.push((name.into(), s));
        }
    }
    if texts.len() < 2 {
        // without the fetched texts only moby is here: its cipher is the second "text"
        let moby = texts.iter().find(|(n, _)| n == "moby").map(|(_, s)| s.clone()).unwrap_or_default();
        let ciph = |v: &[Vec<String>]| v.iter().map(|t| t.iter().map(|w| cipher(w)).collect()).collect();
        texts
            .push(("cipher".into(), Splits { train: ciph(&moby.train), val: ciph(&moby.val), test: ciph(&moby.test) }));
    }
    let labels: Vec<String> = texts.iter().map(|(n, _)| n.clone()).collect();

    // the vocabulary: prompt and label words always, then the training words of every task
    let mut fixed: Vec<String> = tokenize(TRANSLATE_PREFIX);
    fixed.extend(tokenize(SOURCE_PREFIX));
    fixed.extend(labels.iter().cloned());
    let mut corpus_words: Vec<Vec<String>> = vec![];
    for e in &pairs.train {
        corpus_words.push(e.src_tokens.clone());
        corpus_words.push(e.tgt_tokens.clone());
    }
    for (name, s) in &texts {
        if name != "bible" && name != "cipher" {
            corpus_words.extend(pick(s.train.clone(), spec.pretrain_per_text, &format!("pretrain-{name}")));
        }
    }
    let prov: Vec<(usize, Splits<Vec<String>>)> = texts
        .iter()
        .enumerate()
        .map(|(c, (name, s))| {
            let take =
                |v: &[Vec<String>], n: usize, part: &str| pick(v.to_vec(), n, &format!("provenance-{name}-{part}"));
            (
                c,
                Splits {
                    train: take(&s.train, spec.per_text_train, "train"),
                    val: take(&s.val, spec.per_text_eval, "val"),
                    test: take(&s.test, spec.per_text_eval, "test"),
                },
            )
        })
        .collect();
    let verse_words: Vec<&[String]> =
        pairs.train.iter().flat_map(|e| [e.src_tokens.as_slice(), e.tgt_tokens.as_slice()]).collect();
    let vocab = T5Vocab::build(
        &fixed,
        verse_words,
        // the other texts' pretraining sentences only, so the provenance settings leave the
        // vocabulary (and the shapes `train.init_from` matches) as they are
        corpus_words[2 * pairs.train.len()..].iter().map(Vec::as_slice),
        spec.min_count,
        spec.max_vocab,
    );

    let tp = vocab.encode(&tokenize(TRANSLATE_PREFIX));
    let sp = vocab.encode(&tokenize(SOURCE_PREFIX));
    let with =
        |prefix: &[u32], src: &[String]| -> Vec<u32> { prefix.iter().copied().chain(vocab.encode(src)).collect() };
    let tr = |ex: &[pairs::Example]| -> Vec<Example> {
        ex.iter()
            .map(|e| Example {
                input: with(&tp, &e.src_tokens),
                target: vocab.encode(&e.tgt_tokens),
                source: e.src_tokens.clone(),
                reference: e.tgt_tokens.clone(),
            })
            .collect()
    };
    let pv = |which: fn(&Splits<Vec<String>>) -> &Vec<Vec<String>>| -> Vec<Example> {
        let mut v: Vec<Example> = prov
            .iter()
            .flat_map(|(c, s)| {
                which(s).iter().map(|t| Example {
                    input: with(&sp, t),
                    target: vocab.encode(&labels[*c..=*c]),
                    source: t.clone(),
                    reference: vec![labels[*c].clone()],
                })
            })
            .collect::<Vec<_>>();
        Rng::derive(0x75, "provenance-order", 0).shuffle(&mut v);
        v
    };
    let corpus_of = |v: Vec<Vec<String>>| -> Vec<Vec<u32>> { v.iter().map(|t| vocab.encode(t)).collect() };
    let eval_corpus = |f: fn(&Splits<Vec<String>>) -> &Vec<Vec<String>>| -> Vec<Vec<String>> {
        texts.iter().flat_map(|(_, s)| f(s).iter().take(spec.per_text_eval).cloned()).collect()
    };
    let data = T5Data {
        name: pairs.name.clone(),
        notice: pairs.notice.clone().or_else(|| {
            let missing: Vec<&str> = ["shakespeare", "sotu"].into_iter().filter(|s| !present(s)).collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "note: the provenance task also reads shakespeare and sotu, and {} has no {}; using the texts that are here (fetch them with `{}`)",
                    fetched_dir().display(),
                    missing.join(", "),
                    crate::data::catalog::fetch_command(&missing)
                )
            })
        }),
        corpus: Splits {
            train: corpus_of(corpus_words),
            val: corpus_of(eval_corpus(|s| &s.val)),
            test: corpus_of(eval_corpus(|s| &s.test)),
        },
        translate: Splits { train: tr(&pairs.train), val: tr(&pairs.val), test: tr(&pairs.test) },
        provenance: Splits { train: pv(|s| &s.train), val: pv(|s| &s.val), test: pv(|s| &s.test) },
        labels,
        vocab,
    };
    if data.provenance.test.is_empty() || data.corpus.val.is_empty() {
        return Err(DlError::BadValue {
            context: "data.min_tokens / data.max_tokens".into(),
            message: "no provenance sentence of that length in the val or test split; widen the range".into(),
        });
    }
    Ok(data)
}

/// Span corruption (Raffel et al. 2019, §3.1.4; T5's `random_spans_noise_mask`): round(noise·n)
/// tokens (at least 1, at most n − 1) in round(noise_tokens / mean_span) spans (at least 1)
/// are dropped from `tokens`; each span is replaced in the input by a sentinel <x_i>, and the
/// target lists <x_0> span_0 <x_1> span_1 … . Span lengths are a random segmentation of the
/// noise tokens, and the kept tokens are cut into the gaps around the spans at random, the
/// first and last gap possibly empty. (T5 always starts with a kept gap, so a single span
/// always ends the sequence; harmless in its 512-token windows with ~26 spans, but on our
/// one-sentence inputs, mostly of one span, it would turn the objective into predicting each
/// sentence's last words.)
pub fn span_corrupt(tokens: &[u32], noise: f64, mean_span: f64, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    let n = tokens.len();
    if n < 2 {
        return (tokens.to_vec(), vec![]);
    }
    let n_noise = ((n as f64 * noise).round() as usize).clamp(1, n - 1);
    let n_keep = n - n_noise;
    let spans = ((n_noise as f64 / mean_span).round() as usize).clamp(1, n_noise.min(n_keep + 1).min(SENTINELS));
    let noise_len = segment(n_noise, spans, rng);
    // spans + 1 gaps, the inner ones non-empty: a segmentation of n_keep + 2 with the ends cut by 1
    let mut gaps = segment(n_keep + 2, spans + 1, rng);
    gaps[0] -= 1;
    gaps[spans] -= 1;
    let (mut input, mut target) = (vec![], vec![]);
    let mut at = 0;
    for i in 0..spans {
        input.extend(&tokens[at..at + gaps[i]]);
        at += gaps[i];
        input.push(T5Vocab::sentinel(i));
        target.push(T5Vocab::sentinel(i));
        target.extend(&tokens[at..at + noise_len[i]]);
        at += noise_len[i];
    }
    input.extend(&tokens[at..]);
    (input, target)
}

/// `n` items cut into `parts` non-empty pieces at random (uniform over the compositions).
fn segment(n: usize, parts: usize, rng: &mut Rng) -> Vec<usize> {
    let mut cuts: Vec<usize> = rng.permutation(n - 1).into_iter().take(parts - 1).map(|c| c + 1).collect();
    cuts.sort_unstable();
    cuts.push(n);
    let mut prev = 0;
    cuts.into_iter()
        .map(|c| {
            let len = c - prev;
            prev = c;
            len
        })
        .collect()
}

/// The ids the decoder reads and predicts for `target`: `<bos> t` and `t <eos>`.
pub fn shifted(target: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut dec_in = vec![BOS];
    dec_in.extend(target);
    let mut dec_out = target.to_vec();
    dec_out.push(EOS);
    (dec_in, dec_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_corruption_hides_15_percent_in_sentinel_marked_spans() {
        let tokens: Vec<u32> = (100..140).collect(); // 40 tokens: 6 noise tokens in 2 spans
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let (input, target) = span_corrupt(&tokens, 0.15, 3.0, &mut rng);
            let s = |i| T5Vocab::sentinel(i);
            assert_eq!(input.iter().filter(|&&t| t == s(0) || t == s(1)).count(), 2, "{input:?}");
            assert_eq!((input.len(), target.len()), (34 + 2, 6 + 2));
            // putting each span back where its sentinel stands gives the sentence again
            let mut spans: Vec<Vec<u32>> = vec![];
            for &t in &target {
                if t < 100 {
                    spans.push(vec![]);
                } else {
                    spans.last_mut().unwrap().push(t);
                }
            }
            let rebuilt: Vec<u32> = input
                .iter()
                .flat_map(|&t| if t < 100 { spans[(t - s(0)) as usize].clone() } else { vec![t] })
                .collect();
            assert_eq!(rebuilt, tokens);
        }
        // a single span falls anywhere: at the start, inside and at the end of a 3-token sentence
        let mut seen = [0; 3];
        for _ in 0..300 {
            let (i, t) = span_corrupt(&[100, 101, 102], 0.15, 3.0, &mut rng);
            assert_eq!((i.len(), t.len()), (3, 2));
            seen[i.iter().position(|&x| x == T5Vocab::sentinel(0)).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&k| k > 50), "{seen:?}");
        assert_eq!(span_corrupt(&[100], 0.15, 3.0, &mut rng), (vec![100], vec![]));
    }

    #[test]
    fn sentences_split_at_end_marks_and_blank_lines() {
        let s = sentences("Call me Ishmael. Some years ago--never mind\nhow long!\n\nCHAPTER 1\nLoomings");
        assert_eq!(s[0], ["call", "me", "ishmael", "."]);
        assert_eq!(s[1].last().unwrap(), "!");
        assert_eq!(s[2], ["chapter", "1", "loomings"]);
    }

    #[test]
    fn vocabulary_puts_specials_sentinels_prompt_words_and_the_verses_first() {
        let w = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
        let fixed = w(&["source", ":", "moby"]);
        let verses = [w(&["a", "b", "a", "source", "c"])];
        let other = [w(&["z", "z", "z", "y", "b"])];
        let v = T5Vocab::build(&fixed, verses.iter().map(Vec::as_slice), other.iter().map(Vec::as_slice), 1, 100);
        assert_eq!(&v.words[..4], SPECIALS);
        assert_eq!(v.word(T5Vocab::sentinel(0)), "<x0>");
        assert_eq!(v.id("source"), Some(12));
        assert_eq!(v.words[15..], ["a", "b", "c", "z", "y"]);
        assert_eq!(v.encode(&["b", "zz"]), [16, UNK]);
        // the cap cuts the other texts' words first
        let v = T5Vocab::build(&fixed, verses.iter().map(Vec::as_slice), other.iter().map(Vec::as_slice), 1, 19);
        assert_eq!(v.words[15..], ["a", "b", "c", "z"]);
    }
}
