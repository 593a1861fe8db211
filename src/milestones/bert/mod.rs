//! `bert` and `roberta` (Devlin, Chang, Lee & Toutanova 2019; Liu et al. 2019): a transformer
//! encoder pretrained as a masked language model on four texts, then fine-tuned to tell which
//! text a window of words comes from, with few labels. Two stages, two families, chained through
//! run directories:
//!
//! - `bert-pretrain` / `roberta-pretrain` (family `encoder-pretrain`, `pretrain.rs`): masked-LM
//!   pretraining; BERT with next-sentence prediction and static masks, RoBERTa with dynamic
//!   masks and no next-sentence task, same budget.
//! - `bert` / `roberta` (family `encoder-finetune`, `finetune.rs`): the provenance classifier,
//!   started from the newest pretraining run of its kind (`train.init_from` in the preset) or,
//!   with `train.init_from = ""`, from scratch.
//!
//! The model is in `model.rs`, the texts and the split in `data::provenance`, the masking in
//! `data::masking`, the claims in `src/claims/encoders.rs`.

pub mod finetune;
pub mod model;
pub mod pretrain;

use super::{from_table, to_table, Family};
use crate::config::{OptimKind, ScheduleKind, TrainConfig};
use crate::data::masking::Masking;
use crate::data::provenance::{Corpus, FOUR_TEXTS};
use crate::error::DlError;
use candle_core::{DType, Result, Tensor, D};
use model::ModelCfg;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `[data]` of the pretraining stage.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct PretrainData {
    /// four-texts (shakespeare, moby, kjv, sotu; falls back to moby-quarters when not fetched) | moby-quarters
    pub source: String,
    /// word vocabulary size, the 4 special tokens included (must match the fine-tuning stage's)
    pub vocab: usize,
    /// tokens per sequence, [CLS] and [SEP]s included
    pub seq_len: usize,
    /// training windows per text (the pretraining corpus is 4 × windows sequences, fed for epochs)
    pub windows: usize,
    /// static (BERT: masks drawn once per window and copy) | dynamic (RoBERTa: a new mask each time)
    pub masking: Masking,
    /// static masking: differently masked copies of each window, cycled over the epochs (BERT's dupe_factor)
    pub mask_copies: usize,
    /// fraction of tokens to predict (80% of them become [MASK], 10% a random word, 10% stay)
    pub mask_prob: f64,
    /// next-sentence prediction (BERT): [CLS] A [SEP] B [SEP], B the continuation half the time
    pub nsp: bool,
    /// held-out windows per text for the validation (and as many for the test) MLM loss
    pub eval_windows: usize,
}

/// The `[data]` of the fine-tuning stage.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct FinetuneData {
    /// four-texts | moby-quarters, as in pretraining
    pub source: String,
    /// word vocabulary size (the pretraining run's)
    pub vocab: usize,
    /// words per window to classify (the input is [CLS] window [SEP])
    pub window: usize,
    /// labelled training windows per text
    pub labels: usize,
    /// validation windows per text
    pub val: usize,
    /// test windows per text
    pub test: usize,
}

pub type PretrainConfig = super::Config<PretrainData, ModelCfg>;
pub type FinetuneConfig = super::Config<FinetuneData, ModelCfg>;

pub fn pretrain_defaults() -> PretrainConfig {
    PretrainConfig {
        train: TrainConfig {
            steps: 2000,
            batch_size: 32,
            optimizer: OptimKind::Adamw,
            lr: 1e-3,
            weight_decay: 0.01,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 100,
            clip_grad_norm: 1.0,
            eval_every: 500,
            ..Default::default()
        },
        data: PretrainData {
            source: FOUR_TEXTS.into(),
            vocab: 4096,
            seq_len: 64,
            windows: 2000,
            masking: Masking::Static,
            mask_copies: 2,
            mask_prob: 0.15,
            nsp: true,
            eval_windows: 128,
        },
        model: ModelCfg::default(),
    }
}

pub fn finetune_defaults() -> FinetuneConfig {
    FinetuneConfig {
        train: TrainConfig {
            steps: 200,
            batch_size: 32,
            optimizer: OptimKind::Adamw,
            lr: 3e-4,
            weight_decay: 0.01,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 20,
            clip_grad_norm: 1.0,
            eval_every: 100,
            ..Default::default()
        },
        data: FinetuneData { source: FOUR_TEXTS.into(), vocab: 4096, window: 30, labels: 100, val: 250, test: 500 },
        model: ModelCfg::default(),
    }
}

/// The corpus of `source` with `vocab` ids, or the error that says what to change.
fn corpus(source: &str, vocab: usize) -> std::result::Result<Arc<Corpus>, DlError> {
    Corpus::load(source, vocab)
}

/// Accuracy of argmax `logits` (N, K) against `y` (N,).
pub fn accuracy(logits: &Tensor, y: &Tensor) -> Result<f64> {
    let hits = logits.argmax(D::Minus1)?.eq(y)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64;
    Ok(hits / y.dim(0)?.max(1) as f64)
}

pub static PRETRAIN: Family = Family {
    id: "encoder-pretrain",
    defaults: || to_table(&pretrain_defaults()),
    build: |t, d| Ok(Box::new(pretrain::Pretrain::new(&from_table::<PretrainConfig>(t)?, d)?)),
};

pub static FINETUNE: Family = Family {
    id: "encoder-finetune",
    defaults: || to_table(&finetune_defaults()),
    build: |t, d| Ok(Box::new(finetune::Finetune::new(&from_table::<FinetuneConfig>(t)?, d)?)),
};
