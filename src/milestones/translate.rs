//! The translation recipe of `seq2seq`, `seq2seq-reversed` and `attention` (one family; the
//! variants differ by `data.reverse_source` and `model.attention`) and of `transformer`:
//! English → Spanish verse pairs, teacher-forced training on the short pairs, greedy decoding,
//! corpus BLEU-4 on the test split and BLEU by source length. The recipe is generic over its
//! model (`TranslationModel`): the LSTMs are in `seq2seq.rs`, the transformer in
//! `transformer.rs`; the claims in `src/claims/translate.rs` and `src/claims/encdec.rs`.

use super::seq2seq::{pad_mask, seq2seq, ModelCfg, Seq2Seq, Translation};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::pairs::{self, make_batch, BucketSampler, Example, PairData, PairSpec, PAD, UNK};
use crate::data::verses::tokenize;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::ops::attention::KeyRange;
use crate::params::Params;
use crate::picture::Picture;
use crate::report::bleu::{bleu_by_length, corpus_bleu};
use crate::report::table::Table;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// verses | cipher (verses falls back to the synthetic cipher when not fetched)
    pub dataset: String,
    /// training pairs: both sides at most this many words (the short pairs)
    pub max_words: usize,
    /// val and test pairs: both sides at most this many words; above max_words the test also
    /// holds sentences longer than any seen in training (for BLEU by length)
    pub eval_max_words: usize,
    /// words seen fewer times in the training pairs become <unk>
    pub min_count: u64,
    /// feed each source sentence backwards (Sutskever et al. 2014)
    pub reverse_source: bool,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 1500,
            batch_size: 64,
            lr: 5e-3,
            clip_grad_norm: 5.0,
            eval_every: 500,
            ..Default::default()
        },
        data: DataCfg {
            dataset: "verses".into(),
            max_words: 16,
            eval_max_words: 24,
            min_count: 3,
            reverse_source: false,
        },
        model: ModelCfg { embed: 64, hidden: 128, attention: false },
    }
}

/// Source-length buckets (tokens, punctuation included) of the BLEU-by-length metrics:
/// 0-15, 16-20, 21-25, 26+. Training pairs have at most `max_words` (16) words, about 20 tokens.
pub const BUCKET_EDGES: [usize; 3] = [15, 20, 25];
/// Sources longer than this many tokens count as long (`bleu_long`, `bleu_short`): longer than
/// nearly every training source (at most 16 words).
pub const LONG: usize = 20;
/// Sentences per evaluation batch (sorted by length, so padding stays small).
const EVAL_BATCH: usize = 128;

/// What the recipe needs of a model: the teacher-forced loss of a batch and greedy translations.
pub trait TranslationModel {
    /// Mean cross-entropy over the batch's real target tokens; `rng` is the step's stream in
    /// training (dropout), None in evaluation.
    fn batch_loss(&self, t: &Tensors, rng: Option<&mut Rng>) -> Result<Tensor>;
    /// Greedy translations of the batch, at most `max_len` tokens each, never emitting <pad>,
    /// <bos> or <unk>; with `attention`, one row of attention weights per output word over the
    /// source as fed (where the model has them).
    fn translate(&self, t: &Tensors, max_len: usize, attention: bool) -> Result<Vec<Translation>>;
    /// What `sample --prompt` calls the attention picture (`sample-…-NAME.png`).
    fn attention_name(&self) -> &'static str {
        "attention"
    }
}

impl TranslationModel for Seq2Seq {
    fn batch_loss(&self, t: &Tensors, _rng: Option<&mut Rng>) -> Result<Tensor> {
        self.loss(&t.src, t.mask.clone(), &t.dec_in, &t.rows, &t.targets)
    }

    fn translate(&self, t: &Tensors, max_len: usize, _attention: bool) -> Result<Vec<Translation>> {
        self.greedy(&t.src, t.mask.clone(), max_len)
    }
}

pub struct Translator<M: TranslationModel = Seq2Seq> {
    pub model: M,
    pub params: Params,
    pub data: PairData,
    sampler: BucketSampler,
    reverse: bool,
    device: Device,
}

/// One batch on the device: source (B, S) left-padded, its mask (B, 1, S) (0 on tokens, −1e9 on
/// padding) and the same as key ranges (row b's tokens at `keys[b]`), decoder inputs (B, T),
/// the non-pad rows of B·T and their targets (N,).
pub struct Tensors {
    pub src: Tensor,
    pub mask: Tensor,
    pub keys: Vec<KeyRange>,
    pub dec_in: Tensor,
    pub rows: Tensor,
    pub targets: Tensor,
    pub n: usize,
}

pub fn build(c: &Config, device: &Device) -> anyhow::Result<Translator> {
    if c.model.embed == 0 || c.model.hidden == 0 {
        return Err(DlError::BadValue {
            context: "model.embed / model.hidden".into(),
            message: "both need at least one unit".into(),
        }
        .into());
    }
    Translator::new(&c.train, &c.data, device, |data, params| {
        Ok(seq2seq(&c.model, data.src_vocab.len(), data.tgt_vocab.len(), params.vb(device))?)
    })
}

pub static FAMILY: Family = Family {
    id: "seq2seq",
    defaults: || to_table(&defaults()),
    build: |t, d| Ok(Box::new(build(&from_table::<Config>(t)?, d)?)),
};

impl<M: TranslationModel> Translator<M> {
    /// The verse pairs (or the cipher) of `data`, batched as `train` says, for the model `make`
    /// builds from the vocabularies into the parameters (seeded by `train.seed`).
    pub fn new(
        train: &TrainConfig,
        data: &DataCfg,
        device: &Device,
        make: impl FnOnce(&PairData, &Params) -> anyhow::Result<M>,
    ) -> anyhow::Result<Self> {
        let spec = PairSpec {
            dataset: data.dataset.clone(),
            max_words: data.max_words,
            eval_max_words: data.eval_max_words,
            min_count: data.min_count,
        };
        let pairs = pairs::load(&spec)?;
        let params = Params::new(train.seed);
        let model = make(&pairs, &params)?;
        let lens = pairs.train.iter().map(|e| e.src.len()).collect();
        let sampler = BucketSampler::new(train.seed, lens, train.batch_size);
        Ok(Translator { model, params, data: pairs, sampler, reverse: data.reverse_source, device: device.clone() })
    }

    fn tensors(&self, ex: &[&Example]) -> Result<Tensors> {
        let bt = make_batch(ex, self.reverse);
        let rows: Vec<u32> = (0..bt.b * bt.t).filter(|&i| bt.dec_out[i] != PAD).map(|i| i as u32).collect();
        let targets: Vec<u32> = rows.iter().map(|&i| bt.dec_out[i as usize]).collect();
        let (d, n) = (&self.device, rows.len());
        // left-padded: row b's tokens are its last len_b positions
        let keys = ex.iter().map(|e| bt.s - e.src.len().min(bt.s)..bt.s).collect();
        Ok(Tensors {
            keys,
            mask: pad_mask(&bt.src, bt.b, bt.s, d)?,
            src: Tensor::from_vec(bt.src, (bt.b, bt.s), d)?,
            dec_in: Tensor::from_vec(bt.dec_in, (bt.b, bt.t), d)?,
            rows: Tensor::from_vec(rows, n, d)?,
            targets: Tensor::from_vec(targets, n, d)?,
            n,
        })
    }

    fn split(&self, split: Split) -> &[Example] {
        match split {
            Split::Val => &self.data.val,
            Split::Test => &self.data.test,
        }
    }

    /// `set` in evaluation batches of similar source length: (indices into `set`) per batch.
    fn eval_batches(set: &[Example]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.sort_by_key(|&i| set[i].src.len());
        order.chunks(EVAL_BATCH).map(<[usize]>::to_vec).collect()
    }

    /// Greedy translations of `ex`, in order. Decoding stops
    /// at <eos> or after 2·S + 4 tokens (S: the batch's longest source).
    pub fn translate(&self, ex: &[&Example]) -> Result<Vec<Translation>> {
        self.translate_with(ex, false)
    }

    /// As `translate`, with attention rows when `attention` (for `sample`).
    fn translate_with(&self, ex: &[&Example], attention: bool) -> Result<Vec<Translation>> {
        let t = self.tensors(ex)?;
        let s = t.src.dim(1)?;
        self.model.translate(&t, 2 * s + 4, attention)
    }

    fn words(&self, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| self.data.tgt_vocab.word(i).to_string()).collect()
    }
}

impl<M: TranslationModel> Experiment for Translator<M> {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let idx = self.sampler.indices(step);
        let ex: Vec<&Example> = idx.iter().map(|&i| &self.data.train[i]).collect();
        let t = self.tensors(&ex)?;
        let loss = self.model.batch_loss(&t, Some(rng))?;
        Ok(TrainOut { loss, metrics: Metrics::from([("tokens".to_string(), t.n as f64)]) })
    }

    /// loss: teacher-forced cross-entropy per target token; bleu: corpus BLEU-4 × 100 of greedy
    /// translations. On the test split also the brevity penalty, the length ratio and BLEU by
    /// source-length bucket (`bleu_len_16-20`, …).
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = self.split(split);
        let (mut loss_sum, mut tokens) = (0f64, 0usize);
        let mut hyps: Vec<Vec<String>> = vec![vec![]; set.len()];
        for idx in Self::eval_batches(set) {
            let ex: Vec<&Example> = idx.iter().map(|&i| &set[i]).collect();
            let t = self.tensors(&ex)?;
            let l = self.model.batch_loss(&t, None)?;
            loss_sum += l.to_scalar::<f32>()? as f64 * t.n as f64;
            tokens += t.n;
            for (&i, tr) in idx.iter().zip(self.translate(&ex)?) {
                hyps[i] = self.words(&tr.ids);
            }
        }
        let refs: Vec<Vec<String>> = set.iter().map(|e| e.tgt_tokens.clone()).collect();
        let b = corpus_bleu(&hyps, &refs);
        let mut m = Metrics::from([
            ("loss".to_string(), loss_sum / tokens.max(1) as f64),
            ("bleu".to_string(), b.score * 100.0),
        ]);
        if split == Split::Test {
            m.insert("bleu_bp".into(), b.brevity_penalty);
            m.insert("len_ratio".into(), b.hyp_len as f64 / b.ref_len.max(1) as f64);
            let lens: Vec<usize> = set.iter().map(|e| e.src.len()).collect();
            for bucket in bleu_by_length(&lens, &hyps, &refs, &BUCKET_EDGES) {
                m.insert(format!("bleu_len_{}", bucket.label()), bucket.bleu.score * 100.0);
                m.insert(format!("n_len_{}", bucket.label()), bucket.sentences as f64);
            }
            let halves = bleu_by_length(&lens, &hyps, &refs, &[LONG]);
            m.insert("bleu_short".into(), halves[0].bleu.score * 100.0);
            m.insert("bleu_long".into(), halves[1].bleu.score * 100.0);
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        match &req.prompt {
            Some(p) => self.sample_prompt(p),
            None => {
                let why = "that many test sentences are translated";
                self.sample_test(req.n_at_most_of(5, 50, why, self.data.test.len(), "the test set"), rng)
            }
        }
    }

    fn data_name(&self) -> String {
        self.data.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.data.notice.clone()
    }
}

impl<M: TranslationModel> Translator<M> {
    /// Translates `n` random test sentences: source, reference and translation side by side.
    fn sample_test(&self, n: usize, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let set = &self.data.test;
        let picked: Vec<&Example> = (0..n.min(set.len())).map(|_| &set[rng.below(set.len())]).collect();
        let out = self.translate(&picked)?;
        let mut text = String::new();
        let mut items = vec![];
        for (e, tr) in picked.iter().zip(&out) {
            let hyp = self.words(&tr.ids).join(" ");
            let (src, reference) = (e.src_tokens.join(" "), e.tgt_tokens.join(" "));
            text.push_str(&format!("source:      {src}\nreference:   {reference}\ntranslation: {hyp}\n\n"));
            items.push(serde_json::json!({"source": src, "reference": reference, "translation": hyp}));
        }
        let text = format!("{} test sentences of {} ({}):\n\n{text}", picked.len(), self.data.name, self.direction());
        Ok(SampleOut::new(text, serde_json::json!({"data": self.data.name, "translations": items})))
    }

    fn direction(&self) -> &'static str {
        if self.data.name == "verses" {
            "English -> Spanish"
        } else {
            "moby words -> their cipher"
        }
    }

    /// Translates the prompt. Words outside the source vocabulary are read as <unk>, with a
    /// notice naming them; with attention, the weights are printed as a table (one row per
    /// output word, one column per source word, in percent) and returned as a heatmap picture.
    fn sample_prompt(&self, prompt: &str) -> anyhow::Result<SampleOut> {
        let tokens = tokenize(prompt);
        if tokens.is_empty() {
            return Err(DlError::Usage(
                "the prompt has no words to translate; e.g. --prompt \"In the beginning\"".into(),
            )
            .into());
        }
        let src = self.data.src_vocab.encode(&tokens);
        let unknown: Vec<&str> =
            tokens.iter().zip(&src).filter(|(_, &id)| id == UNK).map(|(t, _)| t.as_str()).collect();
        let ex = Example { src_tokens: tokens.clone(), tgt_tokens: vec![], src, tgt: vec![] };
        let tr = self.translate_with(&[&ex], true)?.remove(0);
        let hyp = self.words(&tr.ids);
        let mut text = String::new();
        if !unknown.is_empty() {
            text.push_str(&format!(
                "note: not in the {}-word source vocabulary, read as <unk>: {}\n",
                self.data.src_vocab.len(),
                unknown.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(" ")
            ));
        }
        text.push_str(&format!("source:      {}\ntranslation: {}\n", tokens.join(" "), hyp.join(" ")));
        // attention columns follow the source as fed; map them back to the prompt's word order
        let s = tokens.len();
        let matrix: Vec<Vec<f32>> = tr
            .attention
            .iter()
            .map(|row| (0..s).map(|j| row[if self.reverse { s - 1 - j } else { j }]).collect())
            .collect();
        if !matrix.is_empty() {
            let mut header = vec!["attention %"];
            header.extend(tokens.iter().map(String::as_str));
            let mut t = Table::new(&header);
            for (w, row) in hyp.iter().zip(&matrix) {
                let mut cells = vec![w.clone()];
                cells.extend(row.iter().map(|a| format!("{:.0}", a * 100.0)));
                t.row(cells);
            }
            text.push_str(&format!("\n{}", t.render()));
        }
        let json = serde_json::json!({
            "source": tokens, "unknown": unknown, "translation": hyp, "attention": matrix,
        });
        let out = SampleOut::new(text, json);
        if matrix.is_empty() {
            return Ok(out);
        }
        // the same matrix as a heatmap: one row per output word, one column per source word
        Ok(out.with_picture(self.model.attention_name(), Picture::Heatmap { rows: hyp, cols: tokens, values: matrix }))
    }
}
