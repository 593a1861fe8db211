//! One file per milestone: a model and its recipe (config with defaults, data, metrics). No
//! training loop lives here (the engine runs every milestone), and no claim check (src/claims/
//! checks the claims on the runs' summaries).

pub mod activations;
pub mod adding;
pub mod alexnet;
pub mod backprop;
pub mod bert;
pub mod charlm;
pub mod classify;
pub mod clip;
pub mod cnn;
pub mod dalle;
pub mod dalle2;
pub mod depth;
pub mod diffusion;
pub mod forget;
pub mod gan;
pub mod generative;
pub mod gpt;
pub mod layernorm;
pub mod lenet;
pub mod lstm;
pub mod masks;
pub mod mlp;
pub mod moe;
pub mod resnet_cifar;
pub mod rlhf;
pub mod rnn;
pub mod segment;
pub mod seq2seq;
pub mod t5;
pub mod transformer;
pub mod translate;
pub mod unet;
pub mod vae;
pub mod vit;
pub mod vqvae;
pub mod word2vec;
pub mod workloads;

use crate::error::DlError;
use crate::experiment::Experiment;
use candle_core::Device;

/// A milestone family: its default config and how to build it. Variants of a study (e.g.
/// `relu`, `gelu`) share a family and differ by config overrides.
pub struct Family {
    pub id: &'static str,
    pub defaults: fn() -> toml::Table,
    pub build: fn(&toml::Table, &Device) -> anyhow::Result<Box<dyn Experiment>>,
}

/// A milestone's config: the engine's `[train]` section plus the milestone's own `[data]` and
/// `[model]` sections, each struct with `deny_unknown_fields`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Config<D, M> {
    pub train: crate::config::TrainConfig,
    pub data: D,
    pub model: M,
}

/// Serialises a default config struct into the table the config layers merge into.
pub fn to_table<T: serde::Serialize>(cfg: &T) -> toml::Table {
    toml::Table::try_from(cfg).expect("default configs serialise to TOML")
}

/// Deserialises a resolved table into a milestone's typed config.
pub fn from_table<T: serde::de::DeserializeOwned>(t: &toml::Table) -> Result<T, DlError> {
    t.clone()
        .try_into::<T>()
        .map_err(|e| DlError::BadValue { context: "the config".into(), message: e.to_string().trim().to_string() })
}

#[cfg(test)]
pub(crate) mod tests {
    /// Lives with the layers (nn/ must not import milestones/); re-exported for the milestones' tests.
    pub use crate::nn::tests::assert_every_param_gets_a_gradient;
}
