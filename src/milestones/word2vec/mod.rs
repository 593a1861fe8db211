//! `word2vec` and `phrase2vec`: the skip-gram with negative sampling of Mikolov, Chen, Corrado
//! & Dean 2013 and Mikolov, Sutskever, Chen, Corrado & Dean 2013b. Each word w has a vector v_w
//! (`w_in`) and a context vector v'_w (`w_out`); for a word c and a word o seen near it, and k
//! noise words drawn from unigram^¾, the loss is
//!
//!   −log σ(v'_o · v_c) − Σ_j log σ(−v'_j · v_c)
//!
//! Frequent words are subsampled, and `phrase2vec` first joins frequent bigrams ("united_states").
//! The vectors are judged on the analogy questions (3CosAdd, `eval`) against a count baseline
//! (PPMI-SVD, `count`) and random vectors.

pub mod corpus;
pub mod count;
pub mod eval;
mod sample;

use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::config::{OptimKind, ScheduleKind};
use crate::data::analogy::{self, Questions};
use crate::data::words;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split};
use crate::nn::embedding::{embedding, Embedding};
use crate::nn::skipgram::sgns_loss;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use corpus::{Alias, Corpus};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// sotu | moby | shakespeare (a fetched text that is absent falls back to the built-in moby)
    pub text: String,
    /// words seen fewer times are dropped
    pub min_count: u64,
    /// subsampling threshold t (Mikolov et al. 2013b, eq. 5); 0 = keep every word
    pub sample: f64,
    /// phrase detection, one pass per threshold ([] = none; word2phrase's demo uses [200, 100])
    pub phrase_thresholds: Vec<f64>,
    /// the discount δ of the phrase score, and the least count of a phrase's words
    pub phrase_delta: u64,
    /// share of the text, at its end, held out for the validation loss
    pub val_frac: f64,
    /// words whose nearest neighbours `dlhist sample` shows without a prompt
    pub probes: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// vector dimension D
    pub dim: usize,
    /// largest window W; a context at distance d is used with probability (W − d + 1)/W
    pub window: usize,
    /// noise words k per (word, context) pair
    pub negatives: usize,
    /// exponent of the noise distribution, unigram^power
    pub noise_power: f64,
    /// also score the PPMI-SVD count baseline (a few seconds) in the test metrics
    pub count_baseline: bool,
    /// judge v + v′ instead of v (and U·Σ^½ + V·Σ^½ for the count baseline): Levy, Goldberg &
    /// Dagan 2015, section 3.3
    pub add_context: bool,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 20_000,
            batch_size: 4096,
            optimizer: OptimKind::Adam,
            lr: 0.01,
            schedule: ScheduleKind::Cosine,
            eval_every: 1000,
            log_every: 50,
            ckpt_every: 5000,
            ..Default::default()
        },
        data: DataCfg {
            text: "sotu".into(),
            min_count: 5,
            sample: 1e-3,
            phrase_thresholds: vec![],
            phrase_delta: 5,
            val_frac: 0.02,
            probes: ["liberty", "war", "congress", "economy", "america"].map(String::from).to_vec(),
        },
        model: ModelCfg {
            dim: 100,
            window: 5,
            negatives: 5,
            noise_power: 0.75,
            count_baseline: true,
            add_context: false,
        },
    }
}

/// Held-out pairs scored for the validation loss.
const VAL_PAIRS: usize = 8192;

pub struct Word2Vec {
    params: Params,
    /// v_w, the word vectors: (V, D)
    w_in: Embedding,
    /// v'_w, the context vectors: (V, D)
    w_out: Embedding,
    pub corpus: Corpus,
    keep: Vec<f64>,
    noise: Alias,
    dist: Vec<usize>,
    /// the subsampled training ids of one epoch, and which epoch
    stream: Option<(usize, Vec<u32>)>,
    steps_per_epoch: usize,
    /// (centers (N,), ids (N, 1 + k)) of the validation loss
    val: (Tensor, Tensor),
    questions: Option<Questions>,
    /// unit rows of the PPMI-SVD vectors, once computed
    count_vectors: Option<Vec<f32>>,
    cfg: Config,
    device: Device,
}

impl Word2Vec {
    pub fn new(cfg: Config, device: &Device) -> anyhow::Result<Self> {
        let (m, tc) = (&cfg.model, &cfg.train);
        for (key, v) in [("model.dim", m.dim), ("model.window", m.window), ("model.negatives", m.negatives)] {
            if v == 0 {
                return Err(DlError::BadValue { context: key.into(), message: "must be at least 1".into() }.into());
            }
        }
        if !(m.noise_power.is_finite() && m.noise_power >= 0.0) {
            let message = format!("must be a finite power ≥ 0 (the paper's is 0.75), got {}", m.noise_power);
            return Err(DlError::BadValue { context: "model.noise_power".into(), message }.into());
        }
        let corpus = Corpus::load(&cfg.data)?;
        if corpus.train.len() < 2 * m.window + 1 || corpus.val.len() < 2 {
            return Err(DlError::BadValue {
                context: "data".into(),
                message: format!("{} has too few in-vocabulary words to train on; lower data.min_count", corpus.name),
            }
            .into());
        }
        let v = corpus.vocab.len();
        let keep = if cfg.data.sample > 0.0 { corpus.vocab.keep_probs(cfg.data.sample) } else { vec![1.0; v] };
        let noise = corpus::noise(&corpus.vocab, m.noise_power);
        let dist = corpus::distance_table(m.window);
        let kept: f64 = corpus.train.iter().map(|&i| keep[i as usize]).sum();
        let pairs = corpus::pairs_per_epoch(kept, m.window);
        let steps_per_epoch = (pairs / tc.batch_size.max(1) as f64).ceil().max(1.0) as usize;
        let mut rng = Rng::derive(tc.seed, "val-pairs", 0);
        let (c, ids) = corpus::batch(&corpus.val, &dist, &noise, VAL_PAIRS, m.negatives, &mut rng);
        let val =
            (Tensor::from_vec(c, VAL_PAIRS, device)?, Tensor::from_vec(ids, (VAL_PAIRS, m.negatives + 1), device)?);
        let params = Params::new(tc.seed);
        let vb = params.vb(device);
        // word2vec.c draws v_w from U(−0.5/D, 0.5/D) and sets v'_w to 0; v' gets the same small
        // random start here so that the first step already moves every table (std 0.5/D/√3)
        let std = 0.5 / m.dim as f64 / 3f64.sqrt();
        let (w_in, w_out) = (embedding(v, m.dim, std, vb.pp("w_in"))?, embedding(v, m.dim, std, vb.pp("w_out"))?);
        let questions = analogy::load()?;
        Ok(Self {
            params,
            w_in,
            w_out,
            corpus,
            keep,
            noise,
            dist,
            stream: None,
            steps_per_epoch,
            val,
            questions,
            count_vectors: None,
            cfg,
            device: device.clone(),
        })
    }

    /// The unit-length word vectors v_w (or v_w + v′_w with `model.add_context`): (V, D) row-major.
    pub fn unit_vectors(&self) -> Result<Vec<f32>> {
        let w = if self.cfg.model.add_context {
            (&self.w_in.weight + &self.w_out.weight)?
        } else {
            self.w_in.weight.clone()
        };
        Ok(eval::unit_rows(&w.flatten_all()?.to_vec1::<f32>()?, self.cfg.model.dim))
    }

    /// Analogy metrics of the questions (if fetched) for these unit vectors, prefixed by `pre`.
    fn analogy_metrics(&self, unit: &[f32], pre: &str, m: &mut Metrics) -> Result<()> {
        let Some(qs) = &self.questions else { return Ok(()) };
        let s = eval::score(unit, self.cfg.model.dim, &self.corpus.vocab, qs)?;
        m.insert(format!("{pre}acc"), s.acc());
        if pre.is_empty() {
            m.insert("coverage".into(), s.coverage());
            m.insert("asked".into(), s.asked as f64);
            m.insert("semantic_acc".into(), eval::ratio(s.semantic.1, s.semantic.0));
            m.insert("syntactic_acc".into(), eval::ratio(s.syntactic.1, s.syntactic.0));
        }
        Ok(())
    }
}

impl Experiment for Word2Vec {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<crate::experiment::TrainOut> {
        // each epoch has its own subsampled stream (seeded by the epoch: a resumed run sees the same)
        let epoch = step / self.steps_per_epoch;
        if self.stream.as_ref().map(|s| s.0) != Some(epoch) {
            let mut r = Rng::derive(self.cfg.train.seed, "subsample", epoch as u64);
            let mut s = words::subsample(&self.corpus.train, &self.keep, &mut r);
            if s.len() < 2 * self.cfg.model.window + 1 {
                s = self.corpus.train.clone(); // a tiny text subsampled to nothing: keep it whole
            }
            self.stream = Some((epoch, s));
        }
        let stream = &self.stream.as_ref().expect("set above").1;
        let (b, k) = (self.cfg.train.batch_size, self.cfg.model.negatives);
        let (c, ids) = corpus::batch(stream, &self.dist, &self.noise, b, k, rng);
        let c = Tensor::from_vec(c, b, &self.device)?;
        let ids = Tensor::from_vec(ids, (b, k + 1), &self.device)?;
        let loss = sgns_loss(&self.w_in.weight, &self.w_out.weight, &c, &ids)?;
        Ok(crate::experiment::TrainOut { loss, metrics: Metrics::new() })
    }

    /// Val: the loss on held-out pairs. Test: analogy accuracy (in-vocabulary questions), its
    /// coverage and sections, the same for random and PPMI-SVD vectors, and the phrases found.
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        if split == Split::Val {
            let loss =
                sgns_loss(&self.w_in.weight, &self.w_out.weight, &self.val.0, &self.val.1)?.to_scalar::<f32>()?;
            return Ok(Metrics::from([("loss".to_string(), loss as f64)]));
        }
        let (v, d) = (self.corpus.vocab.len(), self.cfg.model.dim);
        let mut m = Metrics::new();
        self.analogy_metrics(&self.unit_vectors()?, "", &mut m)?;
        if self.questions.is_some() {
            let mut rng = Rng::derive(self.cfg.train.seed, "random-vectors", 0);
            let random: Vec<f32> = (0..v * d).map(|_| rng.normal() as f32).collect();
            self.analogy_metrics(&eval::unit_rows(&random, d), "random_", &mut m)?;
            if self.cfg.model.count_baseline {
                if self.count_vectors.is_none() {
                    let m = &self.cfg.model;
                    let c = count::ppmi_svd(&self.corpus.train, v, m.window, d, m.add_context, self.cfg.train.seed);
                    self.count_vectors = Some(eval::unit_rows(&c, d));
                }
                let c = self.count_vectors.take().expect("set above");
                self.analogy_metrics(&c, "count_", &mut m)?;
                self.count_vectors = Some(c);
            }
        }
        m.insert("vocab".into(), v as f64);
        m.insert("phrases".into(), self.corpus.phrases.len() as f64);
        m.insert("has_united_states".into(), self.corpus.vocab.id("united_states").is_some() as u8 as f64);
        Ok(m)
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Prompt]
    }

    fn sample(&mut self, req: &SampleRequest, _rng: &mut Rng) -> anyhow::Result<SampleOut> {
        sample::sample(self, req)
    }

    fn data_name(&self) -> String {
        self.corpus.name.clone()
    }

    fn data_notice(&self) -> Option<String> {
        let missing = self.questions.is_none().then(|| {
            "note: the analogy questions are not fetched (`dlhist data fetch analogy`); only the loss and neighbours are measured"
                .to_string()
        });
        match (self.corpus.notice.clone(), missing) {
            (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
            (a, b) => a.or(b),
        }
    }
}

pub static FAMILY: Family = Family {
    id: "word2vec",
    defaults: || to_table(&defaults()),
    build: |t, d| Ok(Box::new(Word2Vec::new(from_table::<Config>(t)?, d)?)),
};
