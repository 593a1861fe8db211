//! Word-level text for word2vec (Mikolov, Chen, Corrado & Dean 2013, "Efficient estimation of
//! word representations"; Mikolov, Sutskever et al. 2013, "Distributed representations of words
//! and phrases"): tokens, a counted vocabulary, and frequent-word subsampling.

use crate::error::{closest, DlError};
use crate::rng::Rng;
use std::collections::HashMap;

/// Lowercased words: maximal runs of letters and digits; everything else separates them, so
/// "The Union's 2 states." -> ["the", "union", "s", "2", "states"].
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut w = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            w.extend(c.to_lowercase());
        } else if !w.is_empty() {
            out.push(std::mem::take(&mut w));
        }
    }
    if !w.is_empty() {
        out.push(w);
    }
    out
}

/// Words seen at least `min_count` times, most frequent first (ties alphabetical, so the ids
/// are the same on every run); `total` is the number of corpus tokens that are in the vocabulary.
#[derive(Clone, Debug)]
pub struct WordVocab {
    pub words: Vec<String>,
    pub counts: Vec<u64>,
    pub total: u64,
    index: HashMap<String, u32>,
}

impl WordVocab {
    pub fn build<S: AsRef<str>>(tokens: &[S], min_count: u64) -> Self {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for t in tokens {
            *counts.entry(t.as_ref()).or_insert(0) += 1;
        }
        let mut kept: Vec<(&str, u64)> = counts.into_iter().filter(|&(_, c)| c >= min_count.max(1)).collect();
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let words: Vec<String> = kept.iter().map(|(w, _)| w.to_string()).collect();
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        Self { counts: kept.iter().map(|&(_, c)| c).collect(), total: kept.iter().map(|&(_, c)| c).sum(), words, index }
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

    /// The id of `w`, or an error naming it (with the closest known word, if one is close).
    pub fn require(&self, w: &str) -> Result<u32, DlError> {
        self.id(w).ok_or_else(|| DlError::UnknownName {
            what: "word",
            name: w.to_string(),
            suggestion: closest(w, self.words.iter().map(String::as_str)),
            hint: format!(
                "It is not among the {} words of the vocabulary (rare words are cut by min_count)",
                self.len()
            ),
        })
    }

    /// Ids of the in-vocabulary tokens, in order; out-of-vocabulary tokens are dropped.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().filter_map(|t| self.id(t.as_ref())).collect()
    }

    /// `keep_prob` of every word, indexed by id.
    pub fn keep_probs(&self, t: f64) -> Vec<f64> {
        self.counts.iter().map(|&c| keep_prob(c, self.total, t)).collect()
    }
}

/// Mikolov et al. 2013b, eq. 5: each occurrence of a word of relative frequency f = count/total
/// is discarded with probability 1 − sqrt(t/f), i.e. kept with probability min(1, sqrt(t/f)).
/// (The released word2vec C code uses a slightly different formula, (sqrt(f/t) + 1)·t/f.)
pub fn keep_prob(count: u64, total: u64, t: f64) -> f64 {
    if count == 0 || total == 0 {
        return 0.0;
    }
    (t / (count as f64 / total as f64)).sqrt().min(1.0)
}

/// The ids that survive subsampling with per-id probabilities `keep` (from `keep_probs`).
pub fn subsample(ids: &[u32], keep: &[f64], rng: &mut Rng) -> Vec<u32> {
    ids.iter().copied().filter(|&i| keep[i as usize] >= 1.0 || rng.uniform() < keep[i as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "The cat sat. The cat ran! A dog's bone; the DOG sat, the end.";

    #[test]
    fn words_are_lowercased_and_split_on_punctuation() {
        let w = words(TINY);
        assert_eq!(w[..6], ["the", "cat", "sat", "the", "cat", "ran"]);
        assert_eq!(w[6..10], ["a", "dog", "s", "bone"]);
        assert_eq!(words("Élan vital—2 times"), ["élan", "vital", "2", "times"]);
    }

    #[test]
    fn vocabulary_counts_orders_and_cuts_rare_words() {
        let v = WordVocab::build(&words(TINY), 2);
        // the ×4, cat ×2, dog ×2, sat ×2; a, bone, end, ran, s once each are cut
        assert_eq!(v.words, ["the", "cat", "dog", "sat"]);
        assert_eq!(v.counts, [4, 2, 2, 2]);
        assert_eq!(v.total, 10);
        assert_eq!(v.encode(&["the", "bone", "dog"]), [0, 2]);
        let err = v.require("cats").unwrap_err().to_string();
        assert!(err.contains("`cats`") && err.contains("did you mean `cat`"), "{err}");
        assert_eq!(WordVocab::build(&words(TINY), 0).len(), 9);
    }

    #[test]
    fn subsampling_drops_frequent_words_as_mikolov_2013() {
        // f = 0.01 with t = 1e-5: keep sqrt(1e-3) = 0.0316; f = 1e-6 < t: always kept
        assert!((keep_prob(100, 10_000, 1e-5) - 1e-3f64.sqrt()).abs() < 1e-12);
        assert_eq!(keep_prob(1, 1_000_000, 1e-5), 1.0);
        let v = WordVocab::build(&words(TINY), 1);
        let keep = v.keep_probs(0.05); // f(the) = 4/15, f(cat) = 2/15, singletons 1/15: keep 0.43, 0.61, 0.87
        assert!((keep[0] - (0.05f64 / (4.0 / 15.0)).sqrt()).abs() < 1e-12 && keep[0] < keep[1] && keep[1] < keep[8]);
        let ids: Vec<u32> = (0..20_000).map(|i| (i % 2) as u32 * 8).collect(); // "the" and a singleton
        let kept = subsample(&ids, &keep, &mut Rng::new(4));
        assert_eq!(kept, subsample(&ids, &keep, &mut Rng::new(4)));
        let the = kept.iter().filter(|&&i| i == 0).count() as f64 / 10_000.0;
        let rare = kept.iter().filter(|&&i| i == 8).count() as f64 / 10_000.0;
        assert!((the - keep[0]).abs() < 0.02 && (rare - keep[8]).abs() < 0.02, "{the} {rare}");
    }
}
