//! Corpus BLEU-4 (Papineni, Roukos, Ward & Zhu 2002, "BLEU: a method for automatic evaluation
//! of machine translation"), computed as sacrebleu and nltk's `corpus_bleu` do without smoothing:
//!
//! - for n = 1..4, clipped n-gram matches (each hypothesis n-gram counts at most as often as it
//!   occurs in any one reference) and hypothesis n-gram totals are **summed over the corpus**,
//!   then p_n = matches_n / totals_n;
//! - BLEU = BP · exp(¼ Σ ln p_n), and 0 when some p_n is 0;
//! - BP = 1 when c ≥ r, else exp(1 − r/c), with c the total hypothesis length and r the total of
//!   each sentence's reference length closest to its hypothesis (ties take the shorter).
//!
//! Inputs are already tokenised sentences. Scores are in [0, 1] (sacrebleu prints them × 100).

use std::collections::HashMap;

pub const MAX_N: usize = 4;

/// Sufficient statistics: BLEU of a corpus is a function of these sums, so buckets and corpora
/// are scored by adding sentence statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BleuStats {
    pub matches: [u64; MAX_N],
    pub totals: [u64; MAX_N],
    pub hyp_len: u64,
    pub ref_len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bleu {
    pub score: f64,
    pub precisions: [f64; MAX_N],
    pub brevity_penalty: f64,
    pub hyp_len: u64,
    pub ref_len: u64,
}

fn ngram_counts<'t, 'a>(toks: &'t [&'a str], n: usize) -> HashMap<&'t [&'a str], u64> {
    let mut m = HashMap::new();
    for g in toks.windows(n) {
        *m.entry(g).or_insert(0) += 1;
    }
    m
}

impl BleuStats {
    /// Adds one hypothesis scored against its references (at least one).
    pub fn add<S: AsRef<str>>(&mut self, hyp: &[S], refs: &[Vec<S>]) {
        assert!(!refs.is_empty(), "BLEU needs at least one reference per hypothesis");
        let hyp: Vec<&str> = hyp.iter().map(AsRef::as_ref).collect();
        let refs: Vec<Vec<&str>> = refs.iter().map(|r| r.iter().map(AsRef::as_ref).collect()).collect();
        let c = hyp.len();
        // closest reference length; on a tie the shorter one
        let r = refs.iter().map(Vec::len).min_by_key(|&l| (l.abs_diff(c), l)).unwrap();
        self.hyp_len += c as u64;
        self.ref_len += r as u64;
        for n in 1..=MAX_N {
            let mut max_ref: HashMap<&[&str], u64> = HashMap::new();
            for rf in &refs {
                for (g, k) in ngram_counts(rf, n) {
                    let e = max_ref.entry(g).or_insert(0);
                    *e = (*e).max(k);
                }
            }
            let counts = ngram_counts(&hyp, n);
            self.matches[n - 1] +=
                counts.iter().map(|(g, &k)| k.min(max_ref.get(g).copied().unwrap_or(0))).sum::<u64>();
            self.totals[n - 1] += c.saturating_sub(n - 1) as u64;
        }
    }

    pub fn merge(&mut self, o: &BleuStats) {
        for n in 0..MAX_N {
            self.matches[n] += o.matches[n];
            self.totals[n] += o.totals[n];
        }
        self.hyp_len += o.hyp_len;
        self.ref_len += o.ref_len;
    }

    pub fn bleu(&self) -> Bleu {
        let precisions: [f64; MAX_N] =
            std::array::from_fn(
                |n| if self.totals[n] == 0 { 0.0 } else { self.matches[n] as f64 / self.totals[n] as f64 },
            );
        let (c, r) = (self.hyp_len as f64, self.ref_len as f64);
        let brevity_penalty = if c == 0.0 {
            0.0
        } else if c >= r {
            1.0
        } else {
            (1.0 - r / c).exp()
        };
        let score = if precisions.contains(&0.0) {
            0.0
        } else {
            brevity_penalty * (precisions.iter().map(|p| p.ln()).sum::<f64>() / MAX_N as f64).exp()
        };
        Bleu { score, precisions, brevity_penalty, hyp_len: self.hyp_len, ref_len: self.ref_len }
    }
}

/// Corpus BLEU-4 with several references per hypothesis: `refs[i]` are the references of `hyps[i]`.
pub fn corpus_bleu_multi<S: AsRef<str>>(hyps: &[Vec<S>], refs: &[Vec<Vec<S>>]) -> Bleu {
    assert_eq!(hyps.len(), refs.len(), "one reference set per hypothesis");
    let mut st = BleuStats::default();
    for (h, r) in hyps.iter().zip(refs) {
        st.add(h, r);
    }
    st.bleu()
}

/// Corpus BLEU-4 with one reference per hypothesis (the verse pairs).
pub fn corpus_bleu<S: AsRef<str>>(hyps: &[Vec<S>], refs: &[Vec<S>]) -> Bleu {
    assert_eq!(hyps.len(), refs.len(), "one reference per hypothesis");
    let mut st = BleuStats::default();
    for (h, r) in hyps.iter().zip(refs) {
        st.add(h, std::slice::from_ref(r));
    }
    st.bleu()
}

/// Corpus BLEU of the sentences whose source length lies in `lo..=hi` (`hi` None: no upper end).
#[derive(Clone, Debug)]
pub struct BucketBleu {
    pub lo: usize,
    pub hi: Option<usize>,
    pub sentences: usize,
    pub bleu: Bleu,
}

impl BucketBleu {
    /// "1-10", "11-20", "31+".
    pub fn label(&self) -> String {
        match self.hi {
            Some(hi) => format!("{}-{hi}", self.lo),
            None => format!("{}+", self.lo),
        }
    }
}

/// BLEU by source-length bucket (Bahdanau et al. 2014, fig. 2 plots it against sentence length).
/// `edges` are inclusive upper bounds in increasing order: [10, 20] gives buckets 0-10, 11-20 and
/// 21+. Every bucket is returned, empty ones with `sentences == 0` and score 0.
pub fn bleu_by_length<S: AsRef<str>>(
    src_lens: &[usize],
    hyps: &[Vec<S>],
    refs: &[Vec<S>],
    edges: &[usize],
) -> Vec<BucketBleu> {
    assert!(
        src_lens.len() == hyps.len() && hyps.len() == refs.len(),
        "one source length, hypothesis and reference each"
    );
    assert!(edges.windows(2).all(|w| w[0] < w[1]), "bucket edges must increase: {edges:?}");
    let mut stats = vec![(BleuStats::default(), 0usize); edges.len() + 1];
    for ((&len, h), r) in src_lens.iter().zip(hyps).zip(refs) {
        let b = edges.iter().position(|&e| len <= e).unwrap_or(edges.len());
        stats[b].0.add(h, std::slice::from_ref(r));
        stats[b].1 += 1;
    }
    stats
        .iter()
        .enumerate()
        .map(|(i, (st, k))| BucketBleu {
            lo: if i == 0 { 0 } else { edges[i - 1] + 1 },
            hi: edges.get(i).copied(),
            sentences: *k,
            bleu: st.bleu(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn identical_corpus_scores_one_and_disjoint_scores_zero() {
        let refs = vec![toks("the cat sat on the mat"), toks("a dog ran in the big park today")];
        let b = corpus_bleu(&refs, &refs);
        assert!(close(b.score, 1.0) && b.brevity_penalty == 1.0, "{b:?}");
        let hyps = vec![toks("w x y z u v"), toks("p q r s t u v w")];
        let b = corpus_bleu(&hyps, &refs);
        assert_eq!(b.score, 0.0);
        assert_eq!(b.precisions[0], 0.0);
        assert_eq!(corpus_bleu::<&str>(&[vec![]], &[toks("a b")]).score, 0.0);
    }

    #[test]
    fn exact_ngram_counts_by_hand() {
        // hyp "a b c d e" vs ref "a b c d f": matches 4/5, 3/4, 2/3, 1/2; c = r = 5 so BP = 1.
        // BLEU = (4/5 · 3/4 · 2/3 · 1/2)^(1/4) = (1/5)^(1/4) = 0.668740...
        let b = corpus_bleu(&[toks("a b c d e")], &[toks("a b c d f")]);
        assert_eq!(b.precisions, [0.8, 0.75, 2.0 / 3.0, 0.5]);
        assert!(close(b.score, 0.2f64.powf(0.25)), "{}", b.score);
        assert!((b.score - 0.668740).abs() < 1e-6);
    }

    #[test]
    fn brevity_penalty_applies_when_the_corpus_is_short() {
        // every n-gram of "a b c d" is in "a b c d e f": p_n = 1; c = 4 < r = 6,
        // BP = exp(1 - 6/4) = exp(-0.5) = 0.606531
        let b = corpus_bleu(&[toks("a b c d")], &[toks("a b c d e f")]);
        assert!(close(b.brevity_penalty, (-0.5f64).exp()) && close(b.score, (-0.5f64).exp()));
        assert!((b.score - 0.606531).abs() < 1e-6);
        // a longer hypothesis gets no bonus: BP = 1
        assert_eq!(corpus_bleu(&[toks("a b c d e f g")], &[toks("a b c d")]).brevity_penalty, 1.0);
    }

    #[test]
    fn counts_are_summed_over_the_corpus_not_averaged_over_sentences() {
        // s1: "a b c d" = ref: matches 4,3,2,1 of 4,3,2,1. s2: "w x y z v" vs "p q r s v":
        // matches 1,0,0,0 of 5,4,3,2. Corpus p = 5/9, 3/7, 2/5, 1/3; c = r = 9.
        // BLEU = (5/9 · 3/7 · 2/5 · 1/3)^(1/4) = (2/63)^(1/4) = 0.422107...
        // (the mean of sentence BLEUs would be (1 + 0)/2 = 0.5).
        let b = corpus_bleu(&[toks("a b c d"), toks("w x y z v")], &[toks("a b c d"), toks("p q r s v")]);
        assert!(close(b.score, (2.0f64 / 63.0).powf(0.25)), "{}", b.score);
        assert!((b.score - 0.422107).abs() < 1e-6);
    }

    #[test]
    fn papineni_examples_of_modified_precision() {
        // Papineni et al. 2002, section 2.1, example 2: "the the the the the the the" against
        // "The cat is on the mat" / "There is a cat on the mat": modified unigram precision 2/7.
        let lower = |s: &str| s.to_lowercase().split_whitespace().map(String::from).collect::<Vec<_>>();
        let b = corpus_bleu_multi(
            &[lower("the the the the the the the")],
            &[vec![lower("The cat is on the mat"), lower("There is a cat on the mat")]],
        );
        assert!(close(b.precisions[0], 2.0 / 7.0) && b.score == 0.0, "{b:?}");
        // Example 1: candidate 1 has unigram precision 17/18 and bigram precision 10/17;
        // candidate 2 has 8/14 and 1/13 (punctuation left out, as the paper counts words).
        let refs = vec![
            lower("It is a guide to action that ensures that the military will forever heed Party commands"),
            lower("It is the guiding principle which guarantees the military forces always being under the command of the Party"),
            lower("It is the practical guide for the army always to heed the directions of the party"),
        ];
        let c1 =
            lower("It is a guide to action which ensures that the military always obeys the commands of the party");
        let c2 = lower("It is to insure the troops forever hearing the activity guidebook that party direct");
        let b1 = corpus_bleu_multi(&[c1], std::slice::from_ref(&refs));
        let b2 = corpus_bleu_multi(&[c2], &[refs]);
        assert!(close(b1.precisions[0], 17.0 / 18.0) && close(b1.precisions[1], 10.0 / 17.0), "{b1:?}");
        assert!(close(b2.precisions[0], 8.0 / 14.0) && close(b2.precisions[1], 1.0 / 13.0), "{b2:?}");
        // Candidate 1 in full: p = 17/18, 10/17, 7/16, 4/15; c = 18 equals the closest reference
        // length, BP = 1; BLEU = (7/108)^(1/4) = 0.5045666840058485, the value nltk's
        // documentation gives for this sentence. Candidate 2 has no trigram match: 0.
        assert!(close(b1.score, (7.0f64 / 108.0).powf(0.25)) && (b1.score - 0.5045666840058485).abs() < 1e-12);
        assert_eq!(b2.score, 0.0);
    }

    #[test]
    fn reference_length_is_the_closest_with_ties_to_the_shorter() {
        // c = 5, references of 4 and 6 words: tie, r = 4, so no penalty.
        let refs = vec![vec![toks("a b c d"), toks("a b c d e f")]];
        assert_eq!(corpus_bleu_multi(&[toks("a b c d e")], &refs).ref_len, 4);
        // c = 3, references 4 and 7: r = 4, BP = exp(1 - 4/3)
        let refs = vec![vec![toks("a b c d"), toks("a b c d e f g")]];
        let b = corpus_bleu_multi(&[toks("a b c")], &refs);
        assert!(close(b.brevity_penalty, (1.0f64 - 4.0 / 3.0).exp()));
    }

    #[test]
    fn buckets_by_source_length_score_their_own_sentences() {
        let refs = vec![toks("a b c d"), toks("e f g h"), toks("i j k l")];
        let hyps = vec![toks("a b c d"), toks("x y z w"), toks("i j k l")];
        let buckets = bleu_by_length(&[3, 15, 40], &hyps, &refs, &[10, 20]);
        let labels: Vec<String> = buckets.iter().map(BucketBleu::label).collect();
        assert_eq!(labels, ["0-10", "11-20", "21+"]);
        assert_eq!(buckets.iter().map(|b| b.sentences).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(close(buckets[0].bleu.score, 1.0) && buckets[1].bleu.score == 0.0 && close(buckets[2].bleu.score, 1.0));
        let empty = bleu_by_length(&[3], &hyps[..1], &refs[..1], &[10, 20]);
        assert_eq!(empty[2].sentences, 0);
    }
}
