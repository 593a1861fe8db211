//! The synthetic sequence tasks of the LSTM papers, generated from our seeded RNG so that a seed
//! gives the same data on every machine:
//!
//! - the adding problem, Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", section 5.4,
//!   experiment 4;
//! - the continual embedded Reber grammar, Gers, Schmidhuber & Cummins 2000, "Learning to Forget:
//!   Continual Prediction with LSTM" (the embedded Reber grammar is experiment 1 of the
//!   1997 paper; Gers et al. concatenate its strings into one stream without resets).

use crate::error::DlError;
use crate::rng::Rng;

/// The lag of the paper's hardest reported adding setting.
pub const ADDING_T: usize = 100;

/// The adding problem. Each step is a pair (value uniform in [−1, 1], marker in {−1, 0, 1}).
/// As in the paper: one of the first 10 pairs is marked 1, then one of the first T/2 − 1 still
/// unmarked pairs (so both marks lie in the first half); every other marker is 0 except the first
/// and last pair, whose markers are −1. With X1, X2 the values of the earlier and later marked
/// pair, the target is 0.5 + (X1 + X2)/4, in [0, 1]. When the first pair itself is marked, its
/// marker is 1 and X1 is set to 0 (the paper: "X1 is set to zero in the rare case where the first
/// pair of the sequence got marked").
///
/// One deviation: the paper draws each sequence's length from [T, T + T/10]; here every sequence
/// has length exactly T, so a batch is a rectangular (B, T, 2) tensor. The marks are random either
/// way, so a fixed length gives a network nothing to count.
#[derive(Clone, Copy, Debug)]
pub struct AddingTask {
    pub t: usize,
}

/// A batch: `inputs` is (B, T, 2) row-major, (value, marker) per step; `targets` is (B);
/// `marks[i]` are the two marked positions of sequence i, earlier first.
#[derive(Clone, Debug, PartialEq)]
pub struct AddingBatch {
    pub inputs: Vec<f32>,
    pub targets: Vec<f32>,
    pub marks: Vec<[usize; 2]>,
    pub b: usize,
    pub t: usize,
}

impl AddingTask {
    /// `t` must be at least 20 so that the first ten pairs lie in the first half.
    pub fn new(t: usize) -> Result<Self, DlError> {
        if t < 20 {
            return Err(DlError::BadValue {
                context: "task.seq_len".into(),
                message: format!(
                    "the adding problem needs sequences of at least 20 steps, got {t}; the paper uses 100"
                ),
            });
        }
        Ok(Self { t })
    }

    /// Appends one sequence to `inputs` ((T, 2) values) and returns (target, marks).
    fn sequence(&self, rng: &mut Rng, inputs: &mut Vec<f32>) -> (f32, [usize; 2]) {
        let t = self.t;
        let first = rng.below(10);
        // one of the first T/2 − 1 unmarked pairs: positions 0..T/2 without `first`
        let mut second = rng.below(t / 2 - 1);
        if second >= first {
            second += 1;
        }
        let marks = [first.min(second), first.max(second)];
        let start = inputs.len();
        for i in 0..t {
            let value = (2.0 * rng.uniform() - 1.0) as f32;
            let marker = if marks.contains(&i) {
                1.0
            } else if i == 0 || i == t - 1 {
                -1.0
            } else {
                0.0
            };
            inputs.extend([value, marker]);
        }
        if marks[0] == 0 {
            inputs[start] = 0.0;
        }
        let (x1, x2) = (inputs[start + 2 * marks[0]], inputs[start + 2 * marks[1]]);
        (0.5 + (x1 + x2) / 4.0, marks)
    }

    /// `b` sequences drawn from `rng` (e.g. `Rng::derive(seed, "adding/train", step)`).
    pub fn batch(&self, rng: &mut Rng, b: usize) -> AddingBatch {
        let mut inputs = Vec::with_capacity(b * self.t * 2);
        let (mut targets, mut marks) = (Vec::with_capacity(b), Vec::with_capacity(b));
        for _ in 0..b {
            let (y, m) = self.sequence(rng, &mut inputs);
            targets.push(y);
            marks.push(m);
        }
        AddingBatch { inputs, targets, marks, b, t: self.t }
    }
}

/// The 7 symbols of the Reber grammar; a symbol is its index here.
pub const REBER_SYMBOLS: [char; 7] = ['B', 'T', 'P', 'S', 'X', 'V', 'E'];
pub const SYM_B: u8 = 0;
pub const SYM_T: u8 = 1;
pub const SYM_P: u8 = 2;
pub const SYM_S: u8 = 3;
pub const SYM_X: u8 = 4;
pub const SYM_V: u8 = 5;
pub const SYM_E: u8 = 6;

/// The Reber grammar after its initial B (Reber 1967; the transition graph of Hochreiter & Schmidhuber
/// 1997, experiment 1): `REBER[state]` lists (symbol, next state); state 5 emits E and the string ends.
/// Examples: BTXSE, BPVVE, BTSSXXTVVE, BPVPXVPXVPXVVE.
const REBER: [&[(u8, usize)]; 6] = [
    &[(SYM_T, 1), (SYM_P, 2)],
    &[(SYM_S, 1), (SYM_X, 3)],
    &[(SYM_T, 2), (SYM_V, 4)],
    &[(SYM_X, 2), (SYM_S, 5)],
    &[(SYM_P, 3), (SYM_V, 5)],
    &[(SYM_E, usize::MAX)],
];

fn mask(symbols: impl IntoIterator<Item = u8>) -> u8 {
    symbols.into_iter().fold(0, |m, s| m | 1 << s)
}

fn legal_after(state: usize) -> u8 {
    mask(REBER[state].iter().map(|&(s, _)| s))
}

/// One embedded Reber string B (T|P) <Reber string> (same T|P) E, every choice with
/// probability 1/2, with the legal successors of each symbol as a bitmask (bit k = symbol k).
/// The successor of the final E is B: the next string of a continual stream.
pub fn embedded_reber(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let outer = if rng.below(2) == 0 { SYM_T } else { SYM_P };
    let mut syms = vec![SYM_B, outer, SYM_B];
    let mut next = vec![mask([SYM_T, SYM_P]), mask([SYM_B]), legal_after(0)];
    let mut state = 0;
    loop {
        let choices = REBER[state];
        let (sym, to) = choices[rng.below(choices.len())];
        syms.push(sym);
        if sym == SYM_E {
            // the long-range dependency: only the outer symbol chosen at position 1 may follow
            next.push(mask([outer]));
            break;
        }
        next.push(legal_after(to));
        state = to;
    }
    syms.extend([outer, SYM_E]);
    next.extend([mask([SYM_E]), mask([SYM_B])]);
    (syms, next)
}

/// True when `s` is a (plain) Reber string, B through E.
pub fn is_reber(s: &[u8]) -> bool {
    let Some((&SYM_B, rest)) = s.split_first() else { return false };
    let mut state = 0;
    for (i, &sym) in rest.iter().enumerate() {
        let Some(&(_, to)) = REBER[state].iter().find(|&&(c, _)| c == sym) else { return false };
        if sym == SYM_E {
            return i + 1 == rest.len();
        }
        state = to;
    }
    false
}

/// True when `s` is an embedded Reber string: B, T or P, a Reber string, the same T or P, E.
pub fn is_embedded_reber(s: &[u8]) -> bool {
    let n = s.len();
    n >= 9
        && s[0] == SYM_B
        && (s[1] == SYM_T || s[1] == SYM_P)
        && s[n - 2] == s[1]
        && s[n - 1] == SYM_E
        && is_reber(&s[2..n - 2])
}

/// The continual embedded Reber task: embedded Reber strings concatenated into one stream with
/// no reset between them. At position i the input is `symbols[i]` and the target is the set
/// `legal_next[i]` of symbols that may come next.
#[derive(Clone, Debug, PartialEq)]
pub struct ReberStream {
    pub symbols: Vec<u8>,
    /// bitmask of legal successors, bit k for `REBER_SYMBOLS[k]`
    pub legal_next: Vec<u8>,
    /// where each embedded string begins
    pub starts: Vec<usize>,
}

impl ReberStream {
    /// `n_strings` embedded Reber strings drawn from `rng`.
    pub fn generate(rng: &mut Rng, n_strings: usize) -> Self {
        let mut s = ReberStream { symbols: vec![], legal_next: vec![], starts: vec![] };
        for _ in 0..n_strings {
            let (syms, next) = embedded_reber(rng);
            s.starts.push(s.symbols.len());
            s.symbols.extend(syms);
            s.legal_next.extend(next);
        }
        s
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// One-hot inputs of positions `range`, (len, 7) row-major.
    pub fn one_hot(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        self.symbols[range].iter().flat_map(|&s| (0..7).map(move |k| (k == s) as u8 as f32)).collect()
    }

    /// Multi-hot targets of positions `range`, (len, 7): 1 for every legal next symbol.
    pub fn multi_hot(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        self.legal_next[range].iter().flat_map(|&m| (0..7).map(move |k| ((m >> k) & 1) as f32)).collect()
    }

    /// Positions where the only legal successor is the outer T/P (the inner string's E): the
    /// predictions that need memory of a symbol seen 6 or more steps before.
    pub fn critical_positions(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.symbols[i] == SYM_E && self.legal_next[i] != mask([SYM_B])).collect()
    }
}

/// Gers et al. 2000's criterion for one step: correct when every legal next symbol's output
/// exceeds `threshold` and every other output is below it. `act` has 7 entries.
pub fn prediction_correct(act: &[f32], legal_next: u8, threshold: f32) -> bool {
    act.iter().enumerate().all(|(k, &a)| if (legal_next >> k) & 1 == 1 { a > threshold } else { a < threshold })
}

/// "BTSXSE" -> symbol ids; None if a character is not one of the 7 symbols.
pub fn reber_from_str(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| REBER_SYMBOLS.iter().position(|&r| r == c).map(|k| k as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_batches_are_deterministic_and_follow_the_paper() {
        let task = AddingTask::new(ADDING_T).unwrap();
        let a = task.batch(&mut Rng::derive(5, "adding", 0), 500);
        assert_eq!(a, task.batch(&mut Rng::derive(5, "adding", 0), 500));
        assert_ne!(a.inputs, task.batch(&mut Rng::derive(5, "adding", 1), 500).inputs);
        assert_eq!((a.inputs.len(), a.targets.len()), (500 * 100 * 2, 500));
        let mut first_marked = 0;
        for (i, (&y, m)) in a.targets.iter().zip(&a.marks).enumerate() {
            let seq = &a.inputs[i * 200..(i + 1) * 200];
            let markers: Vec<f32> = seq.chunks(2).map(|p| p[1]).collect();
            assert!(m[0] < m[1] && m[0] < 10 && m[1] < 50, "marks {m:?}");
            assert_eq!(markers.iter().filter(|&&x| x == 1.0).count(), 2);
            assert_eq!((markers[m[0]], markers[m[1]], markers[99]), (1.0, 1.0, -1.0));
            assert_eq!(markers[0], if m[0] == 0 { 1.0 } else { -1.0 });
            assert_eq!(markers[1..99].iter().filter(|&&x| x == -1.0).count(), 0);
            assert!(seq.chunks(2).all(|p| (-1.0..=1.0).contains(&p[0])));
            let x1 = if m[0] == 0 { 0.0 } else { seq[2 * m[0]] };
            if m[0] == 0 {
                assert_eq!(seq[0], 0.0);
            }
            assert!((y - (0.5 + (x1 + seq[2 * m[1]]) / 4.0)).abs() < 1e-6 && (0.0..=1.0).contains(&y));
            first_marked += (m[0] == 0) as usize;
        }
        // the first pair is marked in 1/10 + 9/10 · 1/49 ≈ 11.8% of sequences: about 59 of 500
        assert!((30..90).contains(&first_marked), "{first_marked}");
        let mean = a.targets.iter().sum::<f32>() / 500.0;
        assert!((mean - 0.5).abs() < 0.03, "mean target {mean}");
        assert!(AddingTask::new(10).unwrap_err().to_string().contains("at least 20"));
    }

    #[test]
    fn reber_checker_accepts_the_grammar_and_rejects_the_rest() {
        for s in ["BTXSE", "BPVVE", "BTSSXXTVVE", "BPVPXVPXVPXVVE"] {
            assert!(is_reber(&reber_from_str(s).unwrap()), "{s}");
        }
        for s in ["BTXSEE", "BTXS", "TXSE", "BTVVE", "BPXSE", ""] {
            assert!(!is_reber(&reber_from_str(s).unwrap()), "{s}");
        }
        assert!(is_embedded_reber(&reber_from_str("BTBTXSETE").unwrap()));
        assert!(!is_embedded_reber(&reber_from_str("BTBTXSEPE").unwrap()), "outer symbols must agree");
        assert_eq!(reber_from_str("BQ"), None);
    }

    #[test]
    fn every_generated_string_is_grammatical_and_random_strings_mostly_are_not() {
        let mut rng = Rng::new(11);
        for _ in 0..2000 {
            let (s, next) = embedded_reber(&mut rng);
            assert!(is_embedded_reber(&s), "{s:?}");
            assert_eq!(s.len(), next.len());
            // the symbol that actually follows is always among the legal ones
            assert!(s.windows(2).zip(&next).all(|(w, &m)| (m >> w[1]) & 1 == 1));
        }
        let mut accepted = 0;
        for _ in 0..5000 {
            let n = 9 + rng.below(12);
            let s: Vec<u8> = (0..n).map(|_| rng.below(7) as u8).collect();
            accepted += is_embedded_reber(&s) as usize;
        }
        assert!(accepted < 5, "{accepted} random strings accepted");
    }

    #[test]
    fn the_continual_stream_has_no_resets_and_correct_targets() {
        let s = ReberStream::generate(&mut Rng::derive(3, "reber", 0), 300);
        assert_eq!(s, ReberStream::generate(&mut Rng::derive(3, "reber", 0), 300));
        assert_eq!(s.starts.len(), 300);
        for (k, &a) in s.starts.iter().enumerate() {
            let b = s.starts.get(k + 1).copied().unwrap_or(s.len());
            assert!(is_embedded_reber(&s.symbols[a..b]));
            // across the boundary: after E comes B, and the target said so
            assert_eq!(s.legal_next[b - 1], 1 << SYM_B);
        }
        // hand-checked targets of "BTBTXSETE": {T,P} {B} {T,P} {S,X} {X,S} {E} {T} {E} {B}
        let (t, p, b, e, sx) = (1 << SYM_T, 1 << SYM_P, 1 << SYM_B, 1 << SYM_E, (1 << SYM_S) | (1 << SYM_X));
        let want = [t | p, b, t | p, sx, sx, e, t, e, b];
        let i = (0..300).find(|&k| s.symbols[s.starts[k]..].starts_with(&reber_from_str("BTBTXSETE").unwrap()));
        let i = s.starts[i.expect("BTBTXSETE occurs among 300 strings")];
        assert_eq!(&s.legal_next[i..i + 9], &want);
        assert_eq!(s.critical_positions().len(), 300);
        let targets = s.multi_hot(0..s.len());
        assert_eq!(targets.len(), 7 * s.len());
        let oh = s.one_hot(0..2);
        assert_eq!(oh[..7], [1., 0., 0., 0., 0., 0., 0.]);
        assert_eq!((oh[7 + s.symbols[1] as usize], oh.iter().sum::<f32>()), (1.0, 2.0));
        assert!(prediction_correct(&[0.1, 0.9, 0.8, 0.0, 0.2, 0.0, 0.0], t | p, 0.5));
        assert!(!prediction_correct(&[0.1, 0.9, 0.4, 0.0, 0.2, 0.0, 0.0], t | p, 0.5));
        assert!(!prediction_correct(&[0.6, 0.9, 0.8, 0.0, 0.2, 0.0, 0.0], t | p, 0.5));
    }
}
