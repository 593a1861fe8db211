//! The fine-tuning stage of `bert` and `roberta`: which of the four texts is a window of 30
//! words from? Input `[CLS] w₁ … w₃₀ [SEP]`, a linear classifier on the encoder's `[CLS]` output,
//! cross-entropy; every parameter is trained. Only `data.labels` windows per text are labelled
//! (100: few labels); validation and test windows come from held-out blocks of each text.
//!
//! Started from a pretraining run (`train.init_from`), the encoder's weights are loaded and the
//! classifier `cls.*` is new; with `train.init_from = ""` the same model learns from the labels
//! alone (the "from scratch" baseline).

use super::model::{cls_rows, text_encoder, TextEncoder};
use super::FinetuneConfig;
use crate::data::batch::EpochSampler;
use crate::data::provenance::{Corpus, Part, Window, CLS, SEP};
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor, D};
use std::sync::Arc;

pub struct Finetune {
    pub model: TextEncoder,
    /// C -> classes on `[CLS]`
    pub cls: Linear,
    pub params: Params,
    pub corpus: Arc<Corpus>,
    train: Vec<Window>,
    val: Vec<Window>,
    test: Vec<Window>,
    sampler: EpochSampler,
    device: Device,
}

/// `[CLS] ids [SEP]`.
fn framed(ids: &[u32]) -> Vec<u32> {
    let mut s = Vec::with_capacity(ids.len() + 2);
    s.push(CLS);
    s.extend_from_slice(ids);
    s.push(SEP);
    s
}

impl Finetune {
    pub fn new(c: &FinetuneConfig, device: &Device) -> anyhow::Result<Self> {
        let d = &c.data;
        if d.window < 1 || d.window + 2 > c.model.positions || d.labels == 0 {
            anyhow::bail!(crate::error::DlError::BadValue {
                context: "data".into(),
                message: format!(
                    "window must be in 1..={} (model.positions − 2) and labels at least 1; got window {}, labels {}",
                    c.model.positions.saturating_sub(2),
                    d.window,
                    d.labels
                ),
            });
        }
        let corpus = super::corpus(&d.source, d.vocab)?;
        let params = Params::new(c.train.seed);
        let model = text_encoder(&c.model, d.vocab, &params, device)?;
        let cls = linear(c.model.n_embd, corpus.classes.len(), InitKind::Default, params.vb(device).pp("cls"))?;
        let train = corpus.windows(Part::Train, d.window, d.labels, "labels");
        let val = corpus.windows(Part::Val, d.window, d.val, "finetune-val");
        let test = corpus.windows(Part::Test, d.window, d.test, "finetune-test");
        let sampler = EpochSampler::new(c.train.seed, train.len(), c.train.batch_size);
        Ok(Self { model, cls, params, corpus, train, val, test, sampler, device: device.clone() })
    }

    /// Class logits (B, K) of `rows` of `set`.
    fn logits(&self, set: &[Window], rows: &[usize]) -> Result<(Tensor, Tensor)> {
        let t = set[rows[0]].ids.len() + 2;
        let ids: Vec<u32> = rows.iter().flat_map(|&i| framed(&set[i].ids)).collect();
        let y: Vec<u32> = rows.iter().map(|&i| set[i].class as u32).collect();
        let x = Tensor::from_vec(ids, (rows.len(), t), &self.device)?;
        let logits = self.cls.forward(&cls_rows(&self.model.hidden(&x)?)?)?;
        Ok((logits, Tensor::from_vec(y, rows.len(), &self.device)?))
    }

    /// Class probabilities of one text (its first `positions − 2` words).
    fn classify(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let ids = framed(&ids[..ids.len().min(self.model.positions - 2)]);
        let x = Tensor::from_vec(ids.clone(), (1, ids.len()), &self.device)?;
        let logits = self.cls.forward(&cls_rows(&self.model.hidden(&x)?)?)?;
        candle_nn::ops::softmax(&logits, D::Minus1)?.squeeze(0)?.to_vec1::<f32>()
    }
}

impl Experiment for Finetune {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    fn train_loss(&mut self, step: usize, _rng: &mut Rng) -> Result<TrainOut> {
        let rows = self.sampler.indices(step);
        let (logits, y) = self.logits(&self.train, &rows)?;
        let loss = crate::nn::loss::cross_entropy(&logits, &y)?;
        let acc = super::accuracy(&logits, &y)?;
        Ok(TrainOut { loss, metrics: Metrics::from([("acc".to_string(), acc)]) })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = match split {
            Split::Val => &self.val,
            Split::Test => &self.test,
        };
        let k = self.corpus.classes.len();
        let (mut loss, mut hits) = (0.0, vec![0.0; k]);
        let mut per = vec![0.0; k];
        for chunk in (0..set.len()).collect::<Vec<_>>().chunks(250) {
            let (logits, y) = self.logits(set, chunk)?;
            loss += crate::nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            for (&i, p) in chunk.iter().zip(pred) {
                per[set[i].class] += 1.0;
                if p as usize == set[i].class {
                    hits[set[i].class] += 1.0;
                }
            }
        }
        let n = set.len().max(1) as f64;
        let mut m = Metrics::from([("loss".to_string(), loss / n), ("acc".to_string(), hits.iter().sum::<f64>() / n)]);
        if split == Split::Test {
            for (c, name) in self.corpus.classes.iter().enumerate() {
                m.insert(format!("acc_{}", name.replace('/', "of")), hits[c] / f64::max(per[c], 1.0));
            }
        }
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed, SampleOpt::Prompt]
    }

    /// Which text is it from: the class probabilities of the prompt, or of `n` test windows.
    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let cases: Vec<(Vec<u32>, Option<usize>)> = match &req.prompt {
            Some(p) => {
                let ids = self.corpus.encode(p);
                if ids.is_empty() {
                    anyhow::bail!(crate::error::DlError::Usage("the prompt has no words to classify".into()));
                }
                vec![(ids, None)]
            }
            None => (0..req.n_at_most(4, 20, "that many test examples are classified"))
                .map(|_| {
                    let w = &self.test[rng.below(self.test.len())];
                    (w.ids.clone(), Some(w.class))
                })
                .collect(),
        };
        let (mut text, mut items) = (String::new(), vec![]);
        for (ids, truth) in cases {
            let p = self.classify(&ids)?;
            let best = p.iter().enumerate().fold(0, |b, (i, &q)| if q > p[b] { i } else { b });
            let probs: Vec<String> =
                self.corpus.classes.iter().zip(&p).map(|(c, q)| format!("{c} {:.0}%", q * 100.0)).collect();
            let mark = match truth {
                Some(t) if t == best => format!(" (true: {}, ok)", self.corpus.classes[t]),
                Some(t) => format!(" (true: {}, WRONG)", self.corpus.classes[t]),
                None => String::new(),
            };
            text.push_str(&format!(
                "{}\n  -> {}{mark}: {}\n",
                self.corpus.decode(&ids),
                self.corpus.classes[best],
                probs.join(", ")
            ));
            items.push(serde_json::json!({
                "text": self.corpus.decode(&ids), "pred": self.corpus.classes[best],
                "truth": truth.map(|t| self.corpus.classes[t].clone()),
                "probs": self.corpus.classes.iter().zip(&p).map(|(c, q)| (c.clone(), *q)).collect::<std::collections::BTreeMap<_, _>>(),
            }));
        }
        Ok(SampleOut::new(text, serde_json::json!({"data": self.corpus.name, "predictions": items})))
    }

    fn data_name(&self) -> String {
        self.corpus.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        self.corpus.notice.clone()
    }
}
