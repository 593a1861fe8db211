//! The masked-language-model corruption of BERT (Devlin, Chang, Lee & Toutanova 2019, §3.1):
//! pick 15% of a sequence's tokens as prediction targets; replace 80% of the picked tokens by
//! `[MASK]`, 10% by a random word and leave 10% unchanged (so the model cannot learn that only
//! `[MASK]` positions matter, and fine-tuning inputs, which have no `[MASK]`, look like
//! pretraining inputs). And when the masks are drawn: BERT drew them once, when its training
//! data was written (static: `copies` differently masked copies of each sequence, its
//! `dupe_factor`, cycled over the epochs); RoBERTa (Liu et al. 2019, §4.1) draws a new mask every
//! time a sequence is fed (dynamic).

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How the replacement of one picked token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskRule {
    /// the fraction of maskable tokens picked (0.15)
    pub prob: f64,
    /// the `[MASK]` token
    pub mask_id: u32,
    /// random replacements are drawn uniformly from the words `first_word..vocab`
    pub first_word: u32,
    pub vocab: u32,
}

/// A corrupted sequence: the model's input, and the positions (ascending) it must predict with
/// the original tokens there.
#[derive(Clone, Debug, PartialEq)]
pub struct Masked {
    pub input: Vec<u32>,
    pub positions: Vec<usize>,
    pub targets: Vec<u32>,
}

impl MaskRule {
    /// How many of `n` maskable tokens are picked: round(prob·n), at least 1 (so every sequence
    /// of a batch has the same number of targets).
    pub fn picks(&self, n: usize) -> usize {
        ((self.prob * n as f64).round() as usize).clamp(1, n.max(1))
    }

    /// Corrupts `ids`: picks `picks(n)` of the positions where `maskable` holds (not `[CLS]` or
    /// `[SEP]`), uniformly without replacement, and replaces each by `[MASK]` (80%), a random
    /// word (10%) or itself (10%).
    pub fn apply(&self, ids: &[u32], maskable: impl Fn(usize) -> bool, rng: &mut Rng) -> Masked {
        let mut cand: Vec<usize> = (0..ids.len()).filter(|&i| maskable(i)).collect();
        let k = self.picks(cand.len()).min(cand.len());
        // a partial Fisher–Yates shuffle: the first k of `cand` are a uniform k-subset
        for i in 0..k {
            let j = i + rng.below(cand.len() - i);
            cand.swap(i, j);
        }
        let mut positions = cand[..k].to_vec();
        positions.sort_unstable();
        let mut input = ids.to_vec();
        let targets = positions.iter().map(|&p| ids[p]).collect();
        for &p in &positions {
            let u = rng.uniform();
            if u < 0.8 {
                input[p] = self.mask_id;
            } else if u < 0.9 {
                input[p] = self.first_word + rng.below((self.vocab - self.first_word) as usize) as u32;
            } // else: unchanged
        }
        Masked { input, positions, targets }
    }
}

/// When masks are drawn.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Masking {
    /// once per sequence and copy, as BERT's data preparation did
    Static,
    /// anew every time a sequence is fed, as RoBERTa
    Dynamic,
}

/// Which random stream a sequence's mask (and, for next-sentence prediction, its pairing) is
/// drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskSchedule {
    pub masking: Masking,
    /// static masking: differently masked copies of each sequence (BERT's dupe_factor); epoch e
    /// uses copy e mod copies
    pub copies: usize,
    pub seed: u64,
}

impl MaskSchedule {
    /// The stream for sequence `example`, fed in `epoch` at `step` as row `row` of the batch.
    /// Static: depends only on (example, epoch mod copies), so the sequence comes back with the
    /// same mask; dynamic: on (step, row), a new mask every time.
    pub fn rng(&self, example: usize, epoch: usize, step: usize, row: usize) -> Rng {
        match self.masking {
            Masking::Static => {
                let copy = epoch % self.copies.max(1);
                Rng::derive(self.seed, &format!("mlm-static/{copy}"), example as u64)
            }
            Masking::Dynamic => Rng::derive(self.seed, &format!("mlm-dynamic/{step}"), row as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: MaskRule = MaskRule { prob: 0.15, mask_id: 3, first_word: 4, vocab: 100 };

    fn seq(n: usize) -> Vec<u32> {
        (0..n as u32).map(|i| 4 + i % 96).collect()
    }

    #[test]
    fn fifteen_percent_of_the_maskable_tokens_are_picked_and_specials_never() {
        assert_eq!(RULE.picks(62), 9);
        assert_eq!(RULE.picks(61), 9);
        assert_eq!(RULE.picks(30), 5); // round(4.5) away from zero
        assert_eq!(RULE.picks(2), 1); // never zero targets
        let ids = seq(64);
        for s in 0..50 {
            let m = RULE.apply(&ids, |i| i != 0 && i != 32 && i != 63, &mut Rng::new(s));
            assert_eq!(m.positions.len(), 9);
            assert!(m.positions.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
            assert!(!m.positions.iter().any(|p| [0, 32, 63].contains(p)), "{:?}", m.positions);
            assert_eq!(m.targets, m.positions.iter().map(|&p| ids[p]).collect::<Vec<_>>());
            // only picked positions change
            for (i, (a, b)) in ids.iter().zip(&m.input).enumerate() {
                assert!(a == b || m.positions.contains(&i));
            }
        }
    }

    /// Over 20,000 picked tokens: 80% [MASK], 10% a random word (almost never the same one),
    /// 10% unchanged, each within 1 point; random words are words, never specials.
    #[test]
    fn the_80_10_10_rule() {
        let ids = seq(62);
        let (mut mask, mut random, mut same, mut total) = (0, 0, 0, 0);
        for s in 0..2300 {
            let m = RULE.apply(&ids, |_| true, &mut Rng::derive(5, "t", s));
            for (&p, &t) in m.positions.iter().zip(&m.targets) {
                total += 1;
                match m.input[p] {
                    3 => mask += 1,
                    x if x == t => same += 1,
                    x => {
                        assert!((4..100).contains(&x), "{x}");
                        random += 1
                    }
                }
            }
        }
        let f = |c: usize| c as f64 / total as f64;
        assert!(total > 20_000);
        // a random word equals the original 1 time in 96, so "unchanged" gets ~0.1% extra
        assert!((f(mask) - 0.8).abs() < 0.01 && (f(random) - 0.1).abs() < 0.01 && (f(same) - 0.1).abs() < 0.01);
    }

    #[test]
    fn static_masks_repeat_per_copy_and_dynamic_masks_change_every_time() {
        let ids = seq(62);
        let draw = |s: &MaskSchedule, ex, ep, step, row| RULE.apply(&ids, |_| true, &mut s.rng(ex, ep, step, row));
        let st = MaskSchedule { masking: Masking::Static, copies: 1, seed: 9 };
        // the same example in another epoch, at another step and row: the same mask
        assert_eq!(draw(&st, 7, 0, 3, 0), draw(&st, 7, 5, 900, 12));
        assert_ne!(draw(&st, 7, 0, 3, 0), draw(&st, 8, 0, 3, 0));
        // two copies: epochs alternate between two masks
        let st2 = MaskSchedule { copies: 2, ..st };
        assert_eq!(draw(&st2, 7, 0, 3, 0), draw(&st2, 7, 2, 40, 5));
        assert_ne!(draw(&st2, 7, 0, 3, 0), draw(&st2, 7, 1, 20, 0));
        assert_eq!(draw(&st2, 7, 1, 3, 0), draw(&st2, 7, 3, 60, 2));
        // dynamic: a new mask each time the example is fed (another step or row)
        let dy = MaskSchedule { masking: Masking::Dynamic, copies: 1, seed: 9 };
        assert_ne!(draw(&dy, 7, 0, 3, 0), draw(&dy, 7, 1, 203, 0));
        assert_ne!(draw(&dy, 7, 0, 3, 0), draw(&dy, 7, 0, 3, 1));
        // but reproducible from (seed, step, row): a resumed run sees the same masks
        assert_eq!(draw(&dy, 7, 0, 3, 0), draw(&dy, 7, 0, 3, 0));
    }
}
