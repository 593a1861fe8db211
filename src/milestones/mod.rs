//! One file per milestone: a model and its recipe (config with defaults, data, claim checks).
//! No training loop lives here; the engine runs every milestone.

pub mod activations;
pub mod adding;
pub mod alexnet;
pub mod backprop;
pub mod charlm;
pub mod classify;
pub mod cnn;
pub mod depth;
pub mod forget;
pub mod gpt;
pub mod layernorm;
pub mod lenet;
pub mod lstm;
pub mod masks;
pub mod mlp;
pub mod moe;
pub mod normalization;
pub mod optimizers;
pub mod regularize;
pub mod rnn;
pub mod segment;
pub mod seq2seq;
pub mod translate;
pub mod translate_claims;
pub mod unet;
pub mod word2vec;
pub mod workloads;

use crate::engine::runner::Summary;
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

/// What a claim check can ask for: train a named variant (with extra `--set` overrides) at the
/// current budget, and get its summary. Runs are cached within one `replay`.
pub trait ClaimCtx {
    fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary>;
}

/// A claim's measured outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verdict {
    pub value: f64,
    pub threshold: f64,
    pub pass: bool,
    /// what was compared, in words, with the numbers
    pub detail: String,
}

pub struct Claim {
    /// the paper's headline result, restated for a small run
    pub text: &'static str,
    /// what `value` measures
    pub metric: &'static str,
    pub check: fn(&mut dyn ClaimCtx) -> anyhow::Result<Verdict>,
}

/// Reads a final metric from a summary, with a clear error if the milestone did not report it.
pub fn metric(s: &Summary, key: &str) -> anyhow::Result<f64> {
    s.metric(key).ok_or_else(|| anyhow::anyhow!("run {} reported no metric `{key}`", s.name))
}

/// The seeds of claims that average over runs, because one run's noise is as large as the effect.
pub const SEEDS: [&str; 3] = ["1", "2", "3"];

/// Mean of the final metrics `keys` over the runs of `name` (with `sets`) at each of `SEEDS`.
pub fn mean_over_seeds(
    ctx: &mut dyn ClaimCtx,
    name: &str,
    sets: &[(&str, &str)],
    keys: &[&str],
) -> anyhow::Result<Vec<f64>> {
    let mut sums = vec![0.0; keys.len()];
    for seed in SEEDS {
        let mut all = sets.to_vec();
        all.push(("train.seed", seed));
        let s = ctx.run(name, &all)?;
        for (sum, k) in sums.iter_mut().zip(keys) {
            *sum += metric(&s, k)?;
        }
    }
    Ok(sums.into_iter().map(|v| v / SEEDS.len() as f64).collect())
}

/// The first evaluation (every `train.eval_every` updates, from the run's metrics.jsonl) at which
/// the validation line's `key` (e.g. `acc`, or `fit_acc`: accuracy on training images) satisfies
/// `reached`; its step, or None if no evaluation did.
pub fn first_eval_step(s: &Summary, key: &str, reached: impl Fn(f64) -> bool) -> anyhow::Result<Option<usize>> {
    let path = std::path::Path::new(&s.run_dir).join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["split"] == "val" && v[key].as_f64().is_some_and(&reached) {
            return Ok(v["step"].as_u64().map(|x| x as usize));
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    /// Lives with the layers (nn/ must not import milestones/); re-exported for the milestones' tests.
    pub use crate::nn::tests::assert_every_param_gets_a_gradient;
}
