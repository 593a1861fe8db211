//! The pretraining stage of `bert` and `roberta` (`bert-pretrain`, `roberta-pretrain`): masked
//! language modelling on fixed windows of the four texts, with BERT's next-sentence prediction
//! (`data.nsp`) and static masks, or RoBERTa's dynamic masks and contiguous windows.
//!
//! A sequence is `[CLS] w₁ … w₆₂ [SEP]` (64 positions). With next-sentence prediction it is
//! `[CLS] A [SEP] B [SEP]`: A the window's first 31 tokens, B its next 30 (IsNext) or, half the
//! time, tokens 31..61 of another window drawn at random (NotNext); a classifier on `[CLS]`
//! predicts which. Then 15% of the tokens (not `[CLS]`/`[SEP]`) are corrupted by the 80/10/10
//! rule (`data::masking`) and the MLM head predicts the originals there.

use super::model::{cls_rows, gather_rows, text_encoder, TextEncoder};
use super::PretrainConfig;
use crate::data::batch::EpochSampler;
use crate::data::masking::{MaskRule, MaskSchedule, Masking};
use crate::data::provenance::{Corpus, Part, CLS, FIRST_WORD, MASK, SEP};
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor, D};
use std::sync::Arc;

/// One batch on the device.
pub struct MlmBatch {
    /// (B, T) corrupted ids
    pub input: Tensor,
    /// (M,) b·T + t of the targets
    pub flat: Tensor,
    /// (M,) the original ids there
    pub targets: Tensor,
    /// (B,) 1 = IsNext, 0 = NotNext (with next-sentence prediction)
    pub next: Option<Tensor>,
}

pub struct Pretrain {
    pub model: TextEncoder,
    /// C -> V on the masked positions
    pub mlm: Linear,
    /// C -> 2 on `[CLS]`: BERT's next-sentence head
    pub nsp: Option<Linear>,
    pub params: Params,
    pub corpus: Arc<Corpus>,
    /// the training windows, `seq_len − 2` tokens each
    windows: Vec<Vec<u32>>,
    sampler: EpochSampler,
    schedule: MaskSchedule,
    rule: MaskRule,
    seq_len: usize,
    val: Vec<MlmBatch>,
    test: Vec<MlmBatch>,
    device: Device,
}

/// A sequence before masking: ids and, with next-sentence prediction, whether B follows A.
fn sequence(w: &[u32], partner: Option<(&[u32], bool)>, seq_len: usize) -> (Vec<u32>, Option<bool>) {
    let mut s = Vec::with_capacity(seq_len);
    s.push(CLS);
    match partner {
        None => {
            s.extend_from_slice(&w[..seq_len - 2]);
            s.push(SEP);
            (s, None)
        }
        Some((other, is_next)) => {
            let a = (seq_len - 2) / 2; // 31 of 64
            let b = seq_len - 3 - a; // 30
            s.extend_from_slice(&w[..a]);
            s.push(SEP);
            s.extend_from_slice(if is_next { &w[a..a + b] } else { &other[a..a + b] });
            s.push(SEP);
            (s, Some(is_next))
        }
    }
}

impl Pretrain {
    pub fn new(c: &PretrainConfig, device: &Device) -> anyhow::Result<Self> {
        let d = &c.data;
        if d.seq_len < 8 || d.seq_len > c.model.positions {
            anyhow::bail!(crate::error::DlError::BadValue {
                context: "data.seq_len".into(),
                message: format!("must be in 8..={} (model.positions), got {}", c.model.positions, d.seq_len),
            });
        }
        if !(0.0 < d.mask_prob && d.mask_prob < 1.0) || d.mask_copies == 0 || d.windows == 0 {
            anyhow::bail!(crate::error::DlError::BadValue {
                context: "data".into(),
                message: "mask_prob must be in (0, 1), mask_copies and windows at least 1".into(),
            });
        }
        let corpus = super::corpus(&d.source, d.vocab)?;
        let params = Params::new(c.train.seed);
        let model = text_encoder(&c.model, d.vocab, &params, device)?;
        let vb = params.vb(device);
        let mlm = linear(c.model.n_embd, d.vocab, InitKind::Default, vb.pp("mlm"))?;
        let nsp = if d.nsp { Some(linear(c.model.n_embd, 2, InitKind::Default, vb.pp("nsp"))?) } else { None };
        let len = d.seq_len - 2;
        let windows: Vec<Vec<u32>> =
            corpus.windows(Part::Train, len, d.windows, "pretrain").into_iter().map(|w| w.ids).collect();
        let rule = MaskRule { prob: d.mask_prob, mask_id: MASK, first_word: FIRST_WORD, vocab: d.vocab as u32 };
        let schedule = MaskSchedule { masking: d.masking, copies: d.mask_copies, seed: c.train.seed };
        let sampler = EpochSampler::new(c.train.seed, windows.len(), c.train.batch_size);
        let mut me = Self {
            model,
            mlm,
            nsp,
            params,
            corpus: corpus.clone(),
            windows,
            sampler,
            schedule,
            rule,
            seq_len: d.seq_len,
            val: vec![],
            test: vec![],
            device: device.clone(),
        };
        // held-out windows with masks (and pairings) fixed for every seed and variant
        for (part, tag, n) in
            [(Part::Val, "pretrain-val", d.eval_windows), (Part::Test, "pretrain-test", d.eval_windows)]
        {
            let held: Vec<Vec<u32>> = corpus.windows(part, len, n, tag).into_iter().map(|w| w.ids).collect();
            let fixed = MaskSchedule { masking: Masking::Static, copies: 1, seed: 0xe7a1 };
            let mut batches = vec![];
            for start in (0..held.len()).step_by(128) {
                let rows: Vec<usize> = (start..(start + 128).min(held.len())).collect();
                batches.push(me.batch(&held, &rows, |_, i| fixed.rng(i, 0, 0, 0))?);
            }
            match part {
                Part::Val => me.val = batches,
                _ => me.test = batches,
            }
        }
        Ok(me)
    }

    /// The batch of `rows` of `set`, the pairing and mask of example `i` in row `r` drawn from
    /// `rng_of(r, i)`.
    fn batch(&self, set: &[Vec<u32>], rows: &[usize], rng_of: impl Fn(usize, usize) -> Rng) -> Result<MlmBatch> {
        let (mut input, mut flat, mut targets, mut next) = (vec![], vec![], vec![], vec![]);
        for (r, &i) in rows.iter().enumerate() {
            let mut rng = rng_of(r, i);
            let partner = self.nsp.as_ref().map(|_| {
                let is_next = rng.uniform() < 0.5;
                // another window: any but this one
                let j = (i + 1 + rng.below(set.len().max(2) - 1)) % set.len();
                (set[j].as_slice(), is_next)
            });
            let (seq, is_next) = sequence(&set[i], partner, self.seq_len);
            let m = self.rule.apply(&seq, |p| seq[p] != CLS && seq[p] != SEP, &mut rng);
            flat.extend(m.positions.iter().map(|&p| (r * self.seq_len + p) as u32));
            targets.extend(m.targets);
            input.extend(m.input);
            next.extend(is_next.map(u32::from));
        }
        let (b, m) = (rows.len(), targets.len());
        Ok(MlmBatch {
            input: Tensor::from_vec(input, (b, self.seq_len), &self.device)?,
            flat: Tensor::from_vec(flat, m, &self.device)?,
            targets: Tensor::from_vec(targets, m, &self.device)?,
            next: if self.nsp.is_some() { Some(Tensor::from_vec(next, b, &self.device)?) } else { None },
        })
    }

    /// MLM logits (M, V) and next-sentence logits (B, 2).
    fn forward(&self, b: &MlmBatch) -> Result<(Tensor, Option<Tensor>)> {
        let h = self.model.hidden(&b.input)?;
        let mlm = self.mlm.forward(&gather_rows(&h, &b.flat)?)?;
        let nsp = match &self.nsp {
            Some(head) => Some(head.forward(&cls_rows(&h)?)?),
            None => None,
        };
        Ok((mlm, nsp))
    }

    /// The loss (MLM cross-entropy, plus next-sentence cross-entropy) and its parts.
    fn loss(&self, b: &MlmBatch) -> Result<(Tensor, Metrics)> {
        let (mlm, nsp) = self.forward(b)?;
        let mlm_loss = crate::nn::loss::cross_entropy(&mlm, &b.targets)?;
        let mut m = Metrics::new();
        m.insert("mlm_loss".into(), mlm_loss.to_scalar::<f32>()? as f64);
        m.insert("mlm_acc".into(), super::accuracy(&mlm, &b.targets)?);
        let loss = match (nsp, &b.next) {
            (Some(logits), Some(y)) => {
                m.insert("nsp_acc".into(), super::accuracy(&logits, y)?);
                (mlm_loss + crate::nn::loss::cross_entropy(&logits, y)?)?
            }
            _ => mlm_loss,
        };
        Ok((loss, m))
    }
}

impl Experiment for Pretrain {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, _rng: &mut Rng) -> Result<TrainOut> {
        let rows = self.sampler.indices(step);
        let epoch = step / self.sampler.steps_per_epoch();
        let sched = self.schedule;
        let b = self.batch(&self.windows, &rows, |r, i| sched.rng(i, epoch, step, r))?;
        let (loss, metrics) = self.loss(&b)?;
        Ok(TrainOut { loss, metrics })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let batches = match split {
            Split::Val => &self.val,
            Split::Test => &self.test,
        };
        let mut sums = Metrics::new();
        let mut n = 0.0;
        for b in batches {
            let (loss, m) = self.loss(b)?;
            let w = b.input.dim(0)? as f64;
            *sums.entry("loss".into()).or_default() += loss.to_scalar::<f32>()? as f64 * w;
            for (k, v) in m {
                *sums.entry(k).or_default() += v * w;
            }
            n += w;
        }
        Ok(sums.into_iter().map(|(k, v)| (k, v / n.max(1.0))).collect())
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt, SampleOpt::TopK]
    }

    /// Fill in the blanks: the model's top-k words at each `[MASK]` of the prompt, or of `n`
    /// held-out windows with 15% of their words masked.
    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let k = req.top_k.unwrap_or(5).max(1);
        let mut inputs: Vec<(Vec<u32>, Vec<u32>)> = vec![]; // (ids with [MASK]s, the originals or empty)
        match &req.prompt {
            Some(p) => {
                let mut ids = vec![CLS];
                ids.extend(self.corpus.encode(p).into_iter().take(self.seq_len - 2));
                ids.push(SEP);
                if !ids.contains(&MASK) {
                    anyhow::bail!(crate::error::DlError::Usage(format!(
                        "the prompt has no [MASK] to fill in; write one where a word should go, e.g. --prompt \"{}\"",
                        "and god said , let there be [MASK]"
                    )));
                }
                inputs.push((ids, vec![]));
            }
            None => {
                let held = self.corpus.windows(Part::Test, self.seq_len - 2, 1000, "pretrain-test");
                for _ in 0..req.n_at_most(3, 20, "that many test windows are filled in") {
                    let w = &held[rng.below(held.len())].ids;
                    let (seq, _) = sequence(w, None, self.seq_len);
                    let m = self.rule.apply(&seq, |p| seq[p] != CLS && seq[p] != SEP, rng);
                    let mut input = seq.clone();
                    for &p in &m.positions {
                        input[p] = MASK; // show every target as a blank
                    }
                    inputs.push((input, seq));
                }
            }
        }
        let (mut text, mut items) = (String::new(), vec![]);
        for (input, orig) in inputs {
            let x = Tensor::from_vec(input.clone(), (1, input.len()), &self.device)?;
            let h = self.model.hidden(&x)?;
            let probs = candle_nn::ops::softmax(&self.mlm.forward(&h.squeeze(0)?)?, D::Minus1)?.to_vec2::<f32>()?;
            text.push_str(&format!("{}\n", self.corpus.decode(&input[1..input.len() - 1])));
            let mut blanks = vec![];
            for p in (0..input.len()).filter(|&p| input[p] == MASK) {
                let mut top: Vec<(usize, f32)> = probs[p].iter().copied().enumerate().collect();
                top.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
                let words: Vec<String> = top[..k.min(top.len())]
                    .iter()
                    .map(|&(w, q)| format!("{} {:.0}%", self.corpus.vocab[w], q * 100.0))
                    .collect();
                let truth = orig.get(p).map(|&t| self.corpus.vocab[t as usize].clone());
                text.push_str(&format!(
                    "  [MASK] at {p:>2}: {}{}\n",
                    words.join(", "),
                    truth.as_ref().map_or(String::new(), |t| format!("   (was: {t})"))
                ));
                blanks.push(serde_json::json!({"position": p, "top": words, "truth": truth}));
            }
            items.push(serde_json::json!({"input": self.corpus.decode(&input), "blanks": blanks}));
        }
        Ok(SampleOut::new(text, serde_json::json!({"data": self.corpus.name, "fills": items})))
    }

    fn data_name(&self) -> String {
        self.corpus.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.corpus.notice.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_cls_a_sep_b_sep_or_one_contiguous_window() {
        let w: Vec<u32> = (10..72).collect(); // 62 tokens
        let o: Vec<u32> = (100..162).collect();
        let (s, n) = sequence(&w, None, 64);
        assert_eq!((s.len(), n), (64, None));
        assert_eq!((s[0], s[63], &s[1..63]), (CLS, SEP, &w[..]));
        let (s, n) = sequence(&w, Some((&o, true)), 64);
        assert_eq!((s.len(), n), (64, Some(true)));
        assert_eq!((s[0], s[32], s[63]), (CLS, SEP, SEP));
        assert_eq!(&s[1..32], &w[..31]);
        assert_eq!(&s[33..63], &w[31..61]); // B continues A
        let (s, _) = sequence(&w, Some((&o, false)), 64);
        assert_eq!(&s[33..63], &o[31..61]); // B from another window
    }
}
