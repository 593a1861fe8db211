//! `layernorm` (Ba, Kiros & Hinton 2016, "Layer normalization"): batch normalisation needs a
//! batch to estimate its statistics, so it degrades when the batch is small and does not fit
//! sequence models; layer normalisation normalises each token over its own features and works
//! at any batch size. The study trains a small pre-norm transformer char-LM (the `gpt` model)
//! at batch 2 with its norm slots set to LayerNorm (the `layernorm` preset) or BatchNorm
//! (`--set model.norm=batch`, over the B·T tokens of the batch per feature, running statistics
//! at evaluation), and compares the final validation loss.

use super::charlm::TextCfg;
use super::gpt::{gpt, Gpt, ModelCfg};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Metrics};
use crate::nn::norm::NormKind;
use crate::params::Params;
use candle_core::{Device, Result, Tensor};

use super::charlm::{CharModel, TrainForward};

impl CharModel for Gpt {
    /// Evaluation mode: BatchNorm uses its running statistics.
    fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_t(tokens, false)
    }

    /// Training mode: BatchNorm normalises with the batch's statistics and updates its running ones.
    fn forward_train(&self, tokens: &Tensor) -> Result<TrainForward> {
        Ok(TrainForward { logits: self.forward_t(tokens, true)?, aux: None, metrics: Metrics::new() })
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.block)
    }
}

pub type Config = super::Config<TextCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        // batch 2: the point of the study
        train: TrainConfig { steps: 3000, batch_size: 2, lr: 1e-3, eval_every: 250, ..Default::default() },
        data: TextCfg { seq_len: 64, ..Default::default() },
        // vocab is set from the text at build time
        model: ModelCfg { vocab: 0, n_layer: 2, n_head: 4, n_embd: 64, block: 64, norm: NormKind::Layer },
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let m = &c.model;
    if m.n_embd == 0 || m.n_head == 0 || !m.n_embd.is_multiple_of(m.n_head) {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "[model]".into(),
            message: format!("n_head ({}) must divide n_embd ({}), both at least 1", m.n_head, m.n_embd)
        });
    }
    if c.data.seq_len > m.block {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "data.seq_len".into(),
            message: format!(
                "{} is longer than model.block ({}); raise model.block or lower data.seq_len",
                c.data.seq_len, m.block
            )
        });
    }
    let params = Params::new(c.train.seed);
    let p = params.clone();
    c.data.char_lm(&c.train, params, device, |vocab| gpt(&ModelCfg { vocab, ..m.clone() }, &p, device))
}

pub static FAMILY: Family =
    Family { id: "layernorm", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };
