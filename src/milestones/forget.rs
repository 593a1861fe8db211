//! `forget-gate` and `lstm-noforget`: learning to forget (Gers, Schmidhuber & Cummins 2000). The
//! continual embedded Reber grammar (`data::seq_tasks::ReberStream`): embedded Reber strings
//! follow each other in one stream that is never reset, and at every symbol the net predicts
//! which symbols may come next (7 sigmoid outputs, trained with per-output cross-entropy against
//! the set of legal successors).
//!
//! Training is truncated backprop through time on `batch_size` parallel streams: each update
//! takes the next `data.chunk` symbols of every stream, starting from the state (h, c) the
//! previous update ended in (detached, and kept in checkpoint buffers so a resumed run carries on
//! from it). A stream on which the net made a prediction error in its chunk starts its next chunk
//! from the zero state, so the net learns from the state it is tested from and meets longer runs
//! without resets only as it stops making errors (the paper likewise restarted the net after an
//! error in training; we do it per chunk). Evaluation runs one long stream of `data.test_strings` strings from the zero state,
//! without resets, and scores the paper's criterion at every symbol: correct when the outputs of
//! all legal next symbols are above 0.5 and all others below (`prediction_correct`).
//!
//! Metrics: `acc` (fraction of symbols predicted correctly), `string_acc` (fraction of strings
//! with every symbol correct), `critical_acc` (the predictions of the final T/P that need the
//! memory of the string's second symbol), `late_acc` (symbol accuracy over the last quarter of the
//! stream) and `cell_abs` (mean |c| over the cells at the end of the stream). Without a forget
//! gate the cell state can only accumulate (c_t = c_{t−1} + i⊙g), so on a stream without resets
//! it grows; the paper found that the net then breaks down. (Measured here, with full backprop
//! through time and Adam, the cells grow to |c| ~ 10⁴ but the net still predicts the stream: see
//! the registry entry.)

use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::continual::LazyStream;
use crate::data::seq_tasks::{prediction_correct, ReberStream};
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, Split, TrainOut};
use crate::nn::bce::bce_with_logits;
use crate::nn::linear::{linear, InitKind, Linear};
use crate::nn::lstm::{lstm, Lstm};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{DType, Device, Module, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// The 7 symbols: one-hot inputs, one output each.
const K: usize = 7;
/// The paper's decision threshold on each output.
const THRESHOLD: f32 = 0.5;
/// Symbols per forward call when evaluating the long stream (the state carries across calls).
const EVAL_CHUNK: usize = 1000;

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// symbols per update and stream (the truncation of backprop through time); the state
    /// carries over from one update to the next
    pub chunk: usize,
    /// embedded Reber strings in each evaluation stream, run without resets
    pub test_strings: usize,
    /// in training, a stream whose chunk held a prediction error restarts from the zero state
    /// (false: the training streams are never reset either)
    pub reset_on_error: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// LSTM cells
    pub hidden: usize,
    /// false: the 1997 cell, c_t = c_{t−1} + i⊙g
    pub forget_gate: bool,
    /// true: the 1997 truncated gradient that Gers et al. trained with (the error flows back
    /// through time only along the cell state); false: full backprop through time
    #[serde(default)]
    pub truncated: bool,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 2000,
            batch_size: 16,
            lr: 1e-2,
            clip_grad_norm: 1.0,
            eval_every: 500,
            ..Default::default()
        },
        data: DataCfg { chunk: 50, test_strings: 1000, reset_on_error: true },
        model: ModelCfg { hidden: 32, forget_gate: true, truncated: false },
    }
}

pub struct Reber {
    lstm: Lstm,
    /// H -> 7 logits
    head: Linear,
    params: Params,
    chunk: usize,
    reset_on_error: bool,
    streams: Vec<LazyStream>,
    /// (h, c) where the previous update ended, (B, H) each; checkpointed buffers
    state: (Var, Var),
    val: ReberStream,
    test: ReberStream,
    device: Device,
}

fn one_hot(symbols: &[u8]) -> Vec<f32> {
    symbols.iter().flat_map(|&s| (0..K as u8).map(move |k| (k == s) as u8 as f32)).collect()
}

fn multi_hot(legal: &[u8]) -> Vec<f32> {
    legal.iter().flat_map(|&m| (0..K).map(move |k| ((m >> k) & 1) as f32)).collect()
}

impl Reber {
    /// Logits (B·T, 7) for one-hot inputs x (B, T, 7) from (h0, c0); also returns (h_T, c_T).
    fn step(&self, x: &Tensor, h0: &Tensor, c0: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let (h, h_t, c_t) = self.lstm.forward_state(x, h0, c0)?;
        let z = self.head.forward(&h.reshape((b * t, self.lstm.hidden))?)?;
        Ok((z, h_t, c_t))
    }

    /// Runs `s` from the zero state without resets and scores it (see the module doc).
    fn score(&self, s: &ReberStream) -> Result<Metrics> {
        let dev = &self.device;
        let zero = Tensor::zeros((1, self.lstm.hidden), DType::F32, dev)?;
        let (mut h, mut c) = (zero.clone(), zero);
        let (mut act, mut loss_sum) = (Vec::with_capacity(s.len() * K), 0f64);
        for start in (0..s.len()).step_by(EVAL_CHUNK) {
            let r = start..(start + EVAL_CHUNK).min(s.len());
            let x = Tensor::from_vec(s.one_hot(r.clone()), (1, r.len(), K), dev)?;
            let y = Tensor::from_vec(s.multi_hot(r.clone()), (r.len(), K), dev)?;
            let (z, h_t, c_t) = self.step(&x, &h, &c)?;
            loss_sum += bce_with_logits(&z, &y)?.to_scalar::<f32>()? as f64 * r.len() as f64;
            act.extend(candle_nn::ops::sigmoid(&z)?.flatten_all()?.to_vec1::<f32>()?);
            (h, c) = (h_t, c_t);
        }
        let mut m = accuracy(&act, s);
        m.extend([
            ("loss".to_string(), loss_sum / s.len().max(1) as f64),
            ("cell_abs".to_string(), c.abs()?.mean_all()?.to_scalar::<f32>()? as f64),
            ("stream_len".to_string(), s.len() as f64),
        ]);
        Ok(m)
    }
}

/// The accuracies of outputs `act` ((len, 7) sigmoid activations) on the stream `s` (see the
/// module doc).
fn accuracy(act: &[f32], s: &ReberStream) -> Metrics {
    let ok: Vec<bool> = act.chunks(K).zip(&s.legal_next).map(|(a, &m)| prediction_correct(a, m, THRESHOLD)).collect();
    let frac = |xs: &mut dyn Iterator<Item = bool>| {
        let (n, k) = xs.fold((0usize, 0usize), |(n, k), b| (n + 1, k + b as usize));
        k as f64 / n.max(1) as f64
    };
    let ends: Vec<usize> = s.starts.iter().skip(1).copied().chain([s.len()]).collect();
    let good: Vec<bool> = s.starts.iter().zip(&ends).map(|(&a, &b)| ok[a..b].iter().all(|&x| x)).collect();
    Metrics::from([
        ("acc".to_string(), frac(&mut ok.iter().copied())),
        ("string_acc".to_string(), frac(&mut good.iter().copied())),
        ("critical_acc".to_string(), frac(&mut s.critical_positions().into_iter().map(|i| ok[i]))),
        ("late_acc".to_string(), frac(&mut ok[s.len() * 3 / 4..].iter().copied())),
    ])
}

impl Experiment for Reber {
    fn params(&self) -> &Params {
        &self.params
    }

    /// The stream never ends: an "epoch" is one update.
    fn steps_per_epoch(&self) -> usize {
        1
    }

    /// Update `step` takes positions [step·chunk, (step+1)·chunk) of every stream.
    fn train_loss(&mut self, step: usize, _rng: &mut Rng) -> Result<TrainOut> {
        let (b, l) = (self.streams.len(), self.chunk);
        let (mut x, mut y) = (Vec::with_capacity(b * l * K), Vec::with_capacity(b * l * K));
        for s in &mut self.streams {
            let (syms, legal) = s.window(step * l, l);
            x.extend(one_hot(syms));
            y.extend(multi_hot(legal));
        }
        let x = Tensor::from_vec(x, (b, l, K), &self.device)?;
        let y = Tensor::from_vec(y, (b * l, K), &self.device)?;
        let (h0, c0) = if step == 0 {
            let z = Tensor::zeros((b, self.lstm.hidden), DType::F32, &self.device)?;
            (z.clone(), z)
        } else {
            (self.state.0.as_tensor().clone(), self.state.1.as_tensor().clone())
        };
        let (z, h_t, c_t) = self.step(&x, &h0, &c0)?;
        // a stream on which the net erred starts its next chunk from the zero state
        let act = candle_nn::ops::sigmoid(&z)?.flatten_all()?.to_vec1::<f32>()?;
        let mut keep = Vec::with_capacity(b);
        for (i, s) in self.streams.iter_mut().enumerate() {
            let (_, legal) = s.window(step * l, l);
            let rows = act[i * l * K..(i + 1) * l * K].chunks(K);
            let ok = rows.zip(legal).all(|(a, &m)| prediction_correct(a, m, THRESHOLD));
            keep.push((ok || !self.reset_on_error) as u8 as f32);
        }
        let resets = keep.iter().filter(|&&k| k == 0.0).count() as f64 / b as f64;
        let keep = Tensor::from_vec(keep, (b, 1), &self.device)?;
        self.state.0.set(&h_t.detach().broadcast_mul(&keep)?)?;
        self.state.1.set(&c_t.detach().broadcast_mul(&keep)?)?;
        let cell = c_t.abs()?.mean_all()?.to_scalar::<f32>()? as f64;
        let metrics = Metrics::from([("cell_abs".to_string(), cell), ("resets".to_string(), resets)]);
        Ok(TrainOut { loss: bce_with_logits(&z, &y)?, metrics })
    }

    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        self.score(if split == Split::Val { &self.val } else { &self.test })
    }

    fn data_name(&self) -> String {
        "continual embedded Reber".into()
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let bad = |context: &str, message: &str| DlError::BadValue { context: context.into(), message: message.into() };
    if c.data.chunk == 0 || c.data.test_strings == 0 {
        anyhow::bail!(bad("[data]", "chunk and test_strings must be at least 1"));
    }
    if c.model.hidden == 0 {
        anyhow::bail!(bad("model.hidden", "the LSTM needs at least one cell"));
    }
    let params = Params::new(c.train.seed);
    let vb = params.vb(device);
    let (b, h) = (c.train.batch_size, c.model.hidden);
    let zeros = || Tensor::zeros((b, h), DType::F32, device);
    let state = (params.buffer("state.h", zeros()?)?, params.buffer("state.c", zeros()?)?);
    let stream = |b: usize| LazyStream::new(Rng::derive(c.train.seed, "reber/train", b as u64));
    // fixed for every seed, so variants are scored on the same streams
    let fixed = |tag: &str| ReberStream::generate(&mut Rng::derive(0, tag, 0), c.data.test_strings);
    Ok(Box::new(Reber {
        lstm: lstm(K, h, c.model.forget_gate, vb.pp("lstm"))?.with_truncation(c.model.truncated),
        head: linear(h, K, InitKind::Default, vb.pp("head"))?,
        params,
        chunk: c.data.chunk,
        reset_on_error: c.data.reset_on_error,
        streams: (0..b).map(stream).collect(),
        state,
        val: fixed("reber/val"),
        test: fixed("reber/test"),
        device: device.clone(),
    }))
}

pub static FAMILY: Family =
    Family { id: "reber", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs equal to the targets are all correct; one wrong critical prediction costs one
    /// symbol, one string and one critical position (Gers et al. 2000's all-outputs criterion).
    #[test]
    fn accuracies_count_symbols_strings_and_critical_positions() {
        let s = ReberStream::generate(&mut Rng::new(7), 40);
        let mut act = s.multi_hot(0..s.len());
        assert!(accuracy(&act, &s).values().all(|&v| v == 1.0));
        let i = *s.critical_positions().last().unwrap(); // in the last string, the last quarter
        let outer = s.legal_next[i].trailing_zeros() as usize;
        act[i * K + outer] = 0.4; // the right symbol, but below the threshold
        let m = accuracy(&act, &s);
        let n = s.len() as f64;
        assert!((m["acc"] - (n - 1.0) / n).abs() < 1e-12, "{m:?}");
        assert!((m["string_acc"] - 39.0 / 40.0).abs() < 1e-12 && (m["critical_acc"] - 39.0 / 40.0).abs() < 1e-12);
        let late = (s.len() - s.len() * 3 / 4) as f64;
        assert!((m["late_acc"] - (late - 1.0) / late).abs() < 1e-12, "{m:?}");
    }
}
