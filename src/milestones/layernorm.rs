//! `layernorm` (Ba, Kiros & Hinton 2016, "Layer normalization"): batch normalisation needs a
//! batch to estimate its statistics, so it degrades when the batch is small and does not fit
//! sequence models; layer normalisation normalises each token over its own features and works
//! at any batch size. The study trains a small pre-norm transformer char-LM (the `gpt` model)
//! at batch 2 with its norm slots set to LayerNorm (the `layernorm` preset) or BatchNorm
//! (`--set model.norm=batch`, over the B·T tokens of the batch per feature, running statistics
//! at evaluation), and compares the final validation loss.

use super::charlm::TextCfg;
use super::gpt::{build_char_lm, GptInit, ModelCfg};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::nn::norm::NormKind;

pub type Config = super::Config<TextCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        // batch 2: the point of the study
        train: TrainConfig { steps: 3000, batch_size: 2, lr: 1e-3, eval_every: 250, ..Default::default() },
        data: TextCfg { seq_len: 64, ..Default::default() },
        // vocab is set from the text at build time
        model: ModelCfg {
            vocab: 0,
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block: 64,
            norm: NormKind::Layer,
            init: GptInit::Torch,
            ..Default::default()
        },
    }
}

pub static FAMILY: Family = Family {
    id: "layernorm",
    defaults: || to_table(&defaults()),
    build: |t, d| build_char_lm(&from_table::<Config>(t)?, d),
};
