//! Sentence pairs as token ids for the translation milestones: the verse pairs (English →
//! Spanish) or, without fetched data, a synthetic "cipher" task built from the built-in moby
//! text; word vocabularies with <pad>, <unk>, <bos>, <eos>; and length-bucketed batches.

use super::catalog::{present, MOBY_TXT};
use super::verses::{self, filter_by_length, tokenize, Pair};
use super::words::WordVocab;
use crate::error::DlError;
use crate::rng::Rng;

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;
pub const BOS: u32 = 2;
pub const EOS: u32 = 3;
const SPECIALS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];

/// Word ids: the four specials, then the training words seen at least `min_count` times, most
/// frequent first (WordVocab's order, so ids are the same on every run), shifted by the specials.
#[derive(Clone, Debug)]
pub struct Vocab {
    counted: WordVocab,
}

/// Ids below this are the specials.
const N_SPECIALS: u32 = SPECIALS.len() as u32;

impl Vocab {
    pub fn build<'a>(sentences: impl IntoIterator<Item = &'a [String]>, min_count: u64) -> Self {
        let flat: Vec<&str> = sentences.into_iter().flatten().map(String::as_str).collect();
        Self { counted: WordVocab::build(&flat, min_count) }
    }

    pub fn len(&self) -> usize {
        SPECIALS.len() + self.counted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn id(&self, w: &str) -> Option<u32> {
        match SPECIALS.iter().position(|s| *s == w) {
            Some(i) => Some(i as u32),
            None => self.counted.id(w).map(|i| i + N_SPECIALS),
        }
    }

    /// Ids of `tokens`, out-of-vocabulary tokens as UNK.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t.as_ref()).unwrap_or(UNK)).collect()
    }

    pub fn word(&self, id: u32) -> &str {
        match id.checked_sub(N_SPECIALS) {
            None => SPECIALS[id as usize],
            Some(i) => self.counted.words.get(i as usize).map_or("<?>", String::as_str),
        }
    }
}

/// One pair: the tokens (the reference for BLEU keeps rare words) and their ids.
#[derive(Clone, Debug)]
pub struct Example {
    pub src_tokens: Vec<String>,
    pub tgt_tokens: Vec<String>,
    pub src: Vec<u32>,
    pub tgt: Vec<u32>,
}

pub struct PairData {
    /// "verses" or "cipher"
    pub name: String,
    pub notice: Option<String>,
    pub src_vocab: Vocab,
    pub tgt_vocab: Vocab,
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub test: Vec<Example>,
}

/// Which pairs to load and how to cut them.
#[derive(Clone, Debug)]
pub struct PairSpec {
    /// "verses" (falls back to "cipher" when not fetched) or "cipher"
    pub dataset: String,
    /// training pairs: both sides at most this many words
    pub max_words: usize,
    /// val and test pairs: both sides at most this many words (≥ max_words: longer test sentences)
    pub eval_max_words: usize,
    pub min_count: u64,
}

/// The synthetic stand-in: `n` windows of 3..=`max_words` consecutive moby words (a fixed
/// stream, not the run's seed), each "translated" word by word with `cipher`.
pub fn cipher_pairs(n: usize, max_words: usize) -> Vec<Pair> {
    let words = super::words::words(MOBY_TXT);
    let mut rng = Rng::derive(0xC1_9E5, "cipher", 0);
    (0..n)
        .map(|_| {
            let len = 3 + rng.below(max_words.max(3) - 2);
            let start = rng.below(words.len() - len);
            let src = words[start..start + len].join(" ");
            let tgt = words[start..start + len].iter().map(|w| cipher(w)).collect::<Vec<_>>().join(" ");
            (src, tgt)
        })
        .collect()
}

/// A fixed word-by-word "translation": ASCII letters shifted three places (Caesar's cipher),
/// and words of more than three letters get "o" appended, so target words are not copies.
pub fn cipher(w: &str) -> String {
    let mut out: String = w
        .chars()
        .map(|c| if c.is_ascii_lowercase() { (b'a' + (c as u8 - b'a' + 3) % 26) as char } else { c })
        .collect();
    if w.chars().count() > 3 {
        out.push('o');
    }
    out
}

/// Number of synthetic pairs: a corpus about the size of the short verse pairs.
pub const CIPHER_PAIRS: usize = 8000;

pub fn load(spec: &PairSpec) -> Result<PairData, DlError> {
    if spec.max_words == 0 || spec.eval_max_words < spec.max_words {
        return Err(DlError::BadValue {
            context: "data.max_words / data.eval_max_words".into(),
            message: format!("need 1 ≤ max_words ≤ eval_max_words, got {} and {}", spec.max_words, spec.eval_max_words),
        });
    }
    let (name, notice, pairs) = match spec.dataset.as_str() {
        "verses" if present("verses") => ("verses", None, verses::load()?),
        "verses" => (
            "cipher",
            Some(format!(
                "note: the verse pairs are not in {}; using a synthetic task instead: runs of Moby-Dick's words translated into a letter cipher of them, not into Spanish (fetch the real task with `dlhist data fetch verses`)",
                super::catalog::fetched_dir().display()
            )),
            cipher_pairs(CIPHER_PAIRS, spec.eval_max_words),
        ),
        "cipher" => ("cipher", None, cipher_pairs(CIPHER_PAIRS, spec.eval_max_words)),
        other => {
            return Err(DlError::BadValue {
                context: "data.dataset".into(),
                message: format!("unknown dataset `{other}`; choose verses or cipher"),
            })
        }
    };
    let s = verses::split(filter_by_length(pairs, spec.eval_max_words));
    let train = filter_by_length(s.train, spec.max_words);
    let tok =
        |p: &[Pair]| -> Vec<(Vec<String>, Vec<String>)> { p.iter().map(|(a, b)| (tokenize(a), tokenize(b))).collect() };
    let (train, val, test) = (tok(&train), tok(&s.val), tok(&s.test));
    let src_vocab = Vocab::build(train.iter().map(|p| p.0.as_slice()), spec.min_count);
    let tgt_vocab = Vocab::build(train.iter().map(|p| p.1.as_slice()), spec.min_count);
    let ex = |v: Vec<(Vec<String>, Vec<String>)>| -> Vec<Example> {
        v.into_iter()
            .map(|(a, b)| Example {
                src: src_vocab.encode(&a),
                tgt: tgt_vocab.encode(&b),
                src_tokens: a,
                tgt_tokens: b,
            })
            .collect()
    };
    let (train, val, test) = (ex(train), ex(val), ex(test));
    if train.is_empty() || val.is_empty() || test.is_empty() {
        return Err(DlError::BadValue {
            context: "data.max_words".into(),
            message: format!(
                "the length filter leaves {} train, {} val and {} test pairs; raise max_words",
                train.len(),
                val.len(),
                test.len()
            ),
        });
    }
    Ok(PairData { name: name.into(), notice, src_vocab, tgt_vocab, train, val, test })
}

/// A batch as row-major ids. The source is **left**-padded, so the encoder's last step reads the
/// last real token and its final state (the decoder's initial state) follows the sentence, not
/// padding; `reverse` reverses each source before padding (Sutskever et al. 2014). The decoder
/// reads `<bos> y1 … yn` and predicts `y1 … yn <eos>`, both right-padded.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub b: usize,
    /// source length S (the longest source of the batch)
    pub s: usize,
    /// decoder length T (the longest target + 1)
    pub t: usize,
    /// (B, S)
    pub src: Vec<u32>,
    /// (B, T)
    pub dec_in: Vec<u32>,
    /// (B, T), PAD where there is no target
    pub dec_out: Vec<u32>,
}

pub fn make_batch(examples: &[&Example], reverse: bool) -> Batch {
    let b = examples.len();
    let s = examples.iter().map(|e| e.src.len()).max().unwrap_or(0).max(1);
    let t = examples.iter().map(|e| e.tgt.len()).max().unwrap_or(0) + 1;
    let (mut src, mut dec_in, mut dec_out) = (vec![PAD; b * s], vec![PAD; b * t], vec![PAD; b * t]);
    for (i, e) in examples.iter().enumerate() {
        let row = &mut src[i * s..(i + 1) * s];
        let start = s - e.src.len();
        row[start..].copy_from_slice(&e.src);
        if reverse {
            row[start..].reverse();
        }
        dec_in[i * t] = BOS;
        dec_in[i * t + 1..i * t + 1 + e.tgt.len()].copy_from_slice(&e.tgt);
        dec_out[i * t..i * t + e.tgt.len()].copy_from_slice(&e.tgt);
        dec_out[i * t + e.tgt.len()] = EOS;
    }
    Batch { b, s, t, src, dec_in, dec_out }
}

/// Minibatches of similar source length, as a pure function of (seed, step): epoch e draws a
/// permutation from the stream ("epoch", e), sorts each pool of `POOL` batches' worth of
/// examples by source length, cuts it into batches and shuffles the batch order. Sorted pools
/// cut the padding the fused LSTM would otherwise run over, and the shuffle keeps the length
/// of consecutive batches random.
pub struct BucketSampler {
    seed: u64,
    lens: Vec<usize>,
    batch: usize,
    cached: Option<(usize, Vec<Vec<usize>>)>,
}

const POOL: usize = 32;

impl BucketSampler {
    pub fn new(seed: u64, lens: Vec<usize>, batch: usize) -> Self {
        let batch = batch.clamp(1, lens.len().max(1));
        Self { seed, lens, batch, cached: None }
    }

    /// Full batches per epoch (the ragged tail of the permutation is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        (self.lens.len() / self.batch).max(1)
    }

    /// Indices of batch number `step`.
    pub fn indices(&mut self, step: usize) -> Vec<usize> {
        let spe = self.steps_per_epoch();
        let epoch = step / spe;
        if self.cached.as_ref().map(|c| c.0) != Some(epoch) {
            let mut rng = Rng::derive(self.seed, "epoch", epoch as u64);
            let mut p = rng.permutation(self.lens.len());
            p.truncate(spe * self.batch);
            let mut batches: Vec<Vec<usize>> = vec![];
            for pool in p.chunks_mut(POOL * self.batch) {
                pool.sort_by_key(|&i| self.lens[i]); // stable: ties keep the permutation's order
                batches.extend(pool.chunks(self.batch).map(<[usize]>::to_vec));
            }
            rng.shuffle(&mut batches);
            self.cached = Some((epoch, batches));
        }
        self.cached.as_ref().unwrap().1[step % spe].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(src: &[u32], tgt: &[u32]) -> Example {
        Example { src_tokens: vec![], tgt_tokens: vec![], src: src.to_vec(), tgt: tgt.to_vec() }
    }

    #[test]
    fn vocabulary_puts_specials_first_and_maps_rare_words_to_unk() {
        let sents: Vec<Vec<String>> =
            ["a b a c", "a b d"].iter().map(|s| s.split(' ').map(String::from).collect()).collect();
        let v = Vocab::build(sents.iter().map(Vec::as_slice), 2);
        assert_eq!(
            (0..v.len() as u32).map(|i| v.word(i)).collect::<Vec<_>>(),
            ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"]
        );
        assert_eq!(v.encode(&["b", "c", "zz", "a"]), [5, UNK, UNK, 4]);
        assert_eq!((v.word(PAD), v.word(EOS), v.word(99)), ("<pad>", "<eos>", "<?>"));
    }

    #[test]
    fn batch_left_pads_and_optionally_reverses_the_source_and_shifts_the_target() {
        let (a, b) = (ex(&[10, 11, 12], &[20, 21]), ex(&[13], &[22, 23, 24]));
        let bt = make_batch(&[&a, &b], false);
        assert_eq!((bt.b, bt.s, bt.t), (2, 3, 4));
        assert_eq!(bt.src, [10, 11, 12, PAD, PAD, 13]);
        assert_eq!(bt.dec_in, [BOS, 20, 21, PAD, BOS, 22, 23, 24]);
        assert_eq!(bt.dec_out, [20, 21, EOS, PAD, 22, 23, 24, EOS]);
        let rev = make_batch(&[&a, &b], true);
        assert_eq!(rev.src, [12, 11, 10, PAD, PAD, 13]);
        assert_eq!((rev.dec_in, rev.dec_out), (bt.dec_in, bt.dec_out));
    }

    #[test]
    fn bucketed_epochs_visit_each_example_once_in_batches_of_similar_length() {
        let lens: Vec<usize> = (0..640).map(|i| (i * 7919) % 40).collect();
        let mut s = BucketSampler::new(5, lens.clone(), 10);
        assert_eq!(s.steps_per_epoch(), 64);
        let batches: Vec<Vec<usize>> = (0..64).map(|k| s.indices(k)).collect();
        let mut seen: Vec<usize> = batches.concat();
        seen.sort();
        assert_eq!(seen, (0..640).collect::<Vec<_>>());
        // within a batch the lengths span less than in a random batch (pools of 320 sorted:
        // about 40/32 apart per batch against a spread of ~35 at random)
        let spread: usize = batches
            .iter()
            .map(|b| b.iter().map(|&i| lens[i]).max().unwrap() - b.iter().map(|&i| lens[i]).min().unwrap())
            .sum();
        assert!(spread < 64 * 5, "mean spread {}", spread as f64 / 64.0);
        // a pure function of (seed, step): a fresh sampler agrees, the next epoch differs
        assert_eq!(BucketSampler::new(5, lens.clone(), 10).indices(17), batches[17]);
        assert_ne!(s.indices(64), batches[0]);
    }

    #[test]
    fn cipher_task_is_fixed_and_translates_word_by_word() {
        assert_eq!(cipher("whale"), "zkdoho");
        assert_eq!(cipher("the"), "wkh");
        let p = cipher_pairs(50, 8);
        assert_eq!(p, cipher_pairs(50, 8));
        for (a, b) in &p {
            let (wa, wb): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
            assert!((3..=8).contains(&wa.len()) && wa.len() == wb.len(), "{a} / {b}");
            assert!(wa.iter().zip(&wb).all(|(x, y)| cipher(x) == *y));
        }
    }
}
