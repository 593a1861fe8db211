//! Phrase detection of Mikolov, Sutskever, Chen, Corrado & Dean 2013b ("Distributed
//! representations of words and phrases and their compositionality", section 4): a bigram `a b`
//! becomes one token `a_b` when
//!
//!   score(a, b) = (count(ab) − δ) / (count(a) · count(b)) · N  >  threshold
//!
//! where δ discounts bigrams seen only a few times and N is the number of tokens. The paper's
//! formula has no N; the released word2phrase.c multiplies by it (so thresholds like its 100 do
//! not depend on the corpus size) and skips words seen fewer than δ times; we do the same.
//! Running 2–4 passes with a falling threshold lets longer phrases form ("new_york_times").

use std::collections::HashMap;

/// Separates the words of a phrase token: words themselves never contain it (`words::words`).
pub const JOIN: char = '_';

/// One pass: counts words and adjacent pairs of `tokens`, then merges, left to right, every pair
/// whose score exceeds `threshold` (a merged pair is not merged again with the next word in the
/// same pass, as in word2phrase.c). Returns the new tokens and the merged pair types, by count.
pub fn merge_pass(tokens: &[String], delta: u64, threshold: f64) -> (Vec<String>, Vec<(String, u64)>) {
    let mut uni: HashMap<&str, u64> = HashMap::new();
    let mut bi: HashMap<(&str, &str), u64> = HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        *uni.entry(t).or_insert(0) += 1;
        if let Some(next) = tokens.get(i + 1) {
            *bi.entry((t, next)).or_insert(0) += 1;
        }
    }
    let n = tokens.len() as f64;
    let delta = delta.max(1);
    let score = |a: &str, b: &str| -> Option<f64> {
        let (ca, cb) = (uni[a], uni[b]);
        let cab = *bi.get(&(a, b))?;
        if ca < delta || cb < delta || cab <= delta {
            return None;
        }
        Some((cab - delta) as f64 / (ca as f64 * cb as f64) * n)
    };
    let mut out = Vec::with_capacity(tokens.len());
    let mut merged: HashMap<String, u64> = HashMap::new();
    let mut i = 0;
    while i < tokens.len() {
        let a = &tokens[i];
        match tokens.get(i + 1) {
            Some(b) if score(a, b).is_some_and(|s| s > threshold) => {
                let p = format!("{a}{JOIN}{b}");
                *merged.entry(p.clone()).or_insert(0) += 1;
                out.push(p);
                i += 2;
            }
            _ => {
                out.push(a.clone());
                i += 1;
            }
        }
    }
    let mut merged: Vec<(String, u64)> = merged.into_iter().collect();
    merged.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (out, merged)
}

/// `thresholds.len()` passes of [`merge_pass`] (word2phrase's demo uses 200 then 100).
pub fn detect(tokens: Vec<String>, delta: u64, thresholds: &[f64]) -> Vec<String> {
    thresholds.iter().fold(tokens, |t, &th| merge_pass(&t, delta, th).0)
}

/// Whether `token` is a phrase (joined words).
pub fn is_phrase(token: &str) -> bool {
    token.contains(JOIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// The score by hand: in 40 tokens, "new york" 4 times, new 5, york 4, δ = 1:
    /// (4 − 1) / (5 · 4) · 40 = 6. It merges at threshold 5.9 and not at 6.1; the pair
    /// "a new", seen once (≤ δ), never merges.
    #[test]
    fn score_is_word2phrase_and_threshold_cuts() {
        let mut text: String = (0..4).map(|i| format!("new york f{i} g{i} ")).collect();
        text.push_str("a new ");
        text.push_str(&"z w ".repeat(11)); // z·w: (11 − 1)/(11·11)·40 = 3.3, no phrase
        let t = toks(&text);
        assert_eq!(t.len(), 40);
        let (out, merged) = merge_pass(&t, 1, 5.9);
        assert_eq!(merged, [("new_york".to_string(), 4)]);
        assert_eq!(out[..3], ["new_york", "f0", "g0"]);
        assert!(out.contains(&"new".to_string()) && !merged.iter().any(|(p, _)| p.starts_with("a_")));
        let (_, merged) = merge_pass(&t, 1, 6.1);
        assert!(!merged.iter().any(|(p, _)| p == "new_york"), "{merged:?}");
    }

    /// A second pass joins a phrase with the next word (word2phrase's "new_york_times"): 10 times
    /// "new york times" then 3 words seen once. Pass 1, N = 60: new·york scores (10 − 1)/(10·10)·60
    /// = 5.4 > 4 and merges; york is then taken, so "york times" waits. Pass 2, N = 50:
    /// new_york·times scores 9/100·50 = 4.5 > 4.
    #[test]
    fn second_pass_builds_trigrams() {
        let mut t = vec![];
        for i in 0..10 {
            t.extend(toks(&format!("new york times f{i} g{i} h{i}")));
        }
        let (once, _) = merge_pass(&t, 1, 4.0);
        assert_eq!(once[..2], ["new_york", "times"]);
        let out = detect(t, 1, &[4.0, 4.0]);
        assert_eq!(out.iter().filter(|w| *w == "new_york_times").count(), 10, "{out:?}");
        assert!(is_phrase("new_york") && !is_phrase("york"));
    }
}
