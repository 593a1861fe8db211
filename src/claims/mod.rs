//! The claims room, above the engine: each catalogue entry's claim check, one file per catalogue
//! section (as src/registry/). A check asks a `ClaimCtx` (the replay, src/cli/replay.rs) to train
//! named variants at the current budget, reads their summaries (and, where a claim needs the
//! curve, the runs' metrics.jsonl) and returns a `Verdict`. The registry keeps each claim's words
//! and metric name; `check` maps an entry's name to the function that measures it.

pub mod autoencoders;
pub mod clip;
pub mod cnn;
pub mod depth;
pub mod dnn;
pub mod encdec;
pub mod encoders;
pub mod experts;
#[cfg(test)]
pub(crate) mod fake;
pub mod finetune;
pub mod generative;
pub mod plan;
pub mod rlhf;
pub mod segment;
pub mod sequence;
pub mod toolbox;
pub mod transformers;
pub mod translate;
#[cfg(test)]
mod verdicts;
pub mod words;

use crate::engine::runner::Summary;

/// What a claim check can ask for: train a named variant (with extra `--set` overrides) at the
/// current budget, and get its summary. Runs are cached within one `replay`.
pub trait ClaimCtx {
    fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary>;
    /// Whether the replay runs at the smoke budget, which checks only the pipeline: a claim may
    /// then train smaller variants than its protocol's.
    fn smoke(&self) -> bool {
        false
    }
}

/// The `--set` of a claim that reads only training metrics: at the full budget its runs skip the
/// held-out evaluations (`train.eval_heldout = false`); at the smoke budget they keep them, since
/// the pipeline check reads the validation loss.
pub fn heldout_evals(ctx: &dyn ClaimCtx) -> (&'static str, &'static str) {
    ("train.eval_heldout", if ctx.smoke() { "true" } else { "false" })
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

/// How the detail of a claim that could not be checked on the data at hand begins (e.g. the
/// analogy questions are not fetched). `replay` reports such a claim as SKIP, not FAIL; it also
/// skips, by itself, every claim whose runs fell back to built-in data.
pub const NOT_CHECKED: &str = "not checked: ";

/// The verdict of a claim that cannot be checked here, saying why (and how to fetch what it needs).
pub fn not_checked(why: impl std::fmt::Display) -> Verdict {
    Verdict { value: f64::NAN, threshold: f64::NAN, pass: false, detail: format!("{NOT_CHECKED}{why}") }
}

/// The verdict of a claim whose runs may have fallen back to built-in data: `note` (why it was
/// not checked) makes it [`not_checked`], keeping the measured value and detail beside it.
pub fn unless_fell_back(note: Option<String>, value: f64, threshold: f64, ok: bool, detail: String) -> Verdict {
    match note {
        Some(note) => Verdict { value, threshold, ..not_checked(format!("{note}; measured: {detail}")) },
        None => Verdict { value, threshold, pass: ok, detail },
    }
}

/// True for a verdict made by [`not_checked`].
pub fn is_not_checked(v: &Verdict) -> bool {
    v.detail.starts_with(NOT_CHECKED)
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
    Ok(val_lines(s)?
        .into_iter()
        .find(|v| v[key].as_f64().is_some_and(&reached))
        .and_then(|v| v["step"].as_u64())
        .map(|x| x as usize))
}

/// The validation lines of the run's metrics.jsonl (one per evaluation, in order).
pub fn val_lines(s: &Summary) -> anyhow::Result<Vec<serde_json::Value>> {
    split_lines(s, "val")
}

/// The lines of the run's metrics.jsonl whose `split` is `split`, in order.
fn split_lines(s: &Summary, split: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = std::path::Path::new(&s.run_dir).join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut out = vec![];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["split"] == split {
            out.push(v);
        }
    }
    Ok(out)
}

/// The logged update times of a run in ms (metrics.jsonl's `ms` on its training lines: forward,
/// backward and optimizer of every `log_every`-th update; evaluations and checkpoints excluded).
pub fn update_ms(s: &Summary) -> anyhow::Result<Vec<f64>> {
    Ok(update_times(s)?.into_iter().map(|(_, ms)| ms).collect())
}

/// (step, milliseconds an update) of every training line of the run's metrics.jsonl, in order.
pub fn update_times(s: &Summary) -> anyhow::Result<Vec<(usize, f64)>> {
    let ms: Vec<(usize, f64)> = split_lines(s, "train")?
        .iter()
        .filter_map(|v| Some((v["step"].as_u64()? as usize, v["ms"].as_f64()?)))
        .collect();
    if ms.is_empty() {
        anyhow::bail!("run {} logged no update times", s.name);
    }
    Ok(ms)
}

/// A run's training time in seconds: its mean logged update time times its updates. Unlike the
/// wall time it leaves out evaluations and checkpoints, which differ between milestones (the GAN
/// samples and scores 1,000 images every 500 updates).
pub fn train_seconds(s: &Summary) -> anyhow::Result<f64> {
    let ms = update_ms(s)?;
    Ok(ms.iter().sum::<f64>() / ms.len() as f64 * s.steps as f64 / 1e3)
}

/// A claim check: trains what it needs through the context and measures the claim.
pub type Check = fn(&mut dyn ClaimCtx) -> anyhow::Result<Verdict>;

/// Every check, by the name of the catalogue entry whose claim it measures, in catalogue order.
const CHECKS: &[(&str, Check)] = &[
    // section 1: deep neural networks, the CNNs, segmentation
    ("perceptron", dnn::claim_perceptron),
    ("backprop", dnn::claim_backprop),
    ("mlp", dnn::claim_mlp),
    ("lenet", dnn::claim_lenet),
    ("cnn", cnn::claim_cnn),
    ("alexnet", cnn::claim_alexnet),
    ("alexnet-tanh", cnn::claim_alexnet_tanh),
    ("unet", segment::claim_unet),
    ("unet-noskip", segment::claim_noskip),
    // section 2: optimisation and regularisation, the depth study
    ("weight-decay", toolbox::claim_weight_decay),
    ("no-decay", toolbox::claim_no_decay),
    ("dropout", toolbox::claim_dropout),
    ("no-dropout", toolbox::claim_no_dropout),
    ("sgd", toolbox::claim_sgd),
    ("momentum", toolbox::claim_momentum),
    ("adam", toolbox::claim_adam),
    ("batchnorm", toolbox::claim_batchnorm),
    ("no-norm", toolbox::claim_no_norm),
    ("sigmoid", toolbox::claim_sigmoid),
    ("tanh", toolbox::claim_tanh),
    ("relu", toolbox::claim_relu),
    ("gelu", toolbox::claim_gelu),
    ("layernorm", toolbox::claim_layernorm),
    ("plain", depth::claim_plain),
    ("residual", depth::claim_residual),
    // section 3: sequence modeling, experts, word vectors, translation
    ("rnn", sequence::claim_rnn),
    ("lstm", sequence::claim_lstm),
    ("lstm-noforget", sequence::claim_noforget),
    ("forget-gate", sequence::claim_forget_gate),
    ("moe", experts::claim_moe),
    ("dense", experts::claim_dense),
    ("word2vec", words::claim_word2vec),
    ("phrase2vec", words::claim_phrase2vec),
    ("seq2seq", translate::claim_seq2seq),
    ("seq2seq-reversed", translate::claim_reversed),
    ("attention", translate::claim_attention),
    // section 4: transformers
    ("gpt", transformers::claim_gpt),
    ("gpt-xs", transformers::claim_scaling),
    ("lora", finetune::claim_lora),
    // section 4: transformers, the encoder-decoders
    ("transformer", encdec::claim_transformer),
    ("t5", encdec::claim_t5),
    // section 4: transformers, the encoders
    ("bert", encoders::claim_bert),
    ("roberta", encoders::claim_roberta),
    ("vit", encoders::claim_vit),
    // section 4: generative models
    ("vae", autoencoders::claim_vae),
    ("vq-vae", autoencoders::claim_vqvae),
    ("vq-vae-plain", autoencoders::claim_vqvae_plain),
    // section 4: generative models
    ("gan", generative::claim_gan),
    ("diffusion", generative::claim_diffusion),
    ("ddpm", generative::claim_ddpm),
    ("ddpm-cosine", generative::claim_ddpm_cosine),
    // section 5: image and text
    ("clip", clip::claim_clip),
    ("dalle", clip::claim_dalle),
    ("dalle2", clip::claim_dalle2),
    // section 4: learning from human feedback
    ("rlhf", rlhf::claim_rlhf),
];

/// What a study adds to `dlhist compare` beyond the table and the curves: text for the terminal,
/// JSON for its summary.json, and plots (by file stem) for cli/ to write.
pub struct StudyAnalysis {
    pub text: String,
    pub json: serde_json::Value,
    pub plots: Vec<(String, crate::report::plot::LogLog)>,
}

/// A study's analysis of the compared variants' summaries (label, summary).
pub type Analysis = fn(&[(String, Summary)]) -> anyhow::Result<StudyAnalysis>;

/// Every study's extra analysis, by study.
const ANALYSES: &[(&str, Analysis)] =
    &[("gpt-scaling", transformers::scaling_analysis), ("gpt", finetune::finetune_analysis)];

/// The extra analysis `dlhist compare` runs for `study`, if it has one.
pub fn analysis(study: &str) -> Option<Analysis> {
    ANALYSES.iter().find(|(s, _)| *s == study).map(|(_, a)| *a)
}

/// The check of the claim of catalogue entry `name`; None if it has no claim.
pub fn check(name: &str) -> Option<Check> {
    CHECKS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn every_claim_has_a_check_and_every_check_belongs_to_a_claim() {
        for e in registry::entries() {
            assert_eq!(
                e.claim.is_some(),
                check(e.name).is_some(),
                "`{}`: a claim needs a check, and a check a claim",
                e.name
            );
        }
        for (i, (name, _)) in CHECKS.iter().enumerate() {
            let e = registry::get(name).unwrap_or_else(|_| panic!("check `{name}` names no catalogue entry"));
            assert!(e.claim.is_some(), "check `{name}`: its entry has no claim");
            assert!(!CHECKS[..i].iter().any(|(n, _)| n == name), "two checks for `{name}`");
        }
    }

    /// Every registered claim is run on both verdicts by the tests: each name appears as
    /// `both("NAME"` in the claim tests (src/claims/, read here).
    #[test]
    fn every_registered_claim_has_a_test_of_both_verdicts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/claims");
        let mut text = String::new();
        for sub in [dir.clone(), dir.join("verdicts")] {
            for f in std::fs::read_dir(&sub).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        // whitespace aside (so formatting cannot hide a name); a loop over names,
        // `for name in ["a", "b"] { ... both(name, ...`, counts for each name it lists
        let text: String = text.split_whitespace().collect();
        let looped = |n: &str| {
            text.match_indices("fornamein[").any(|(i, _)| {
                let rest = &text[i..];
                let (list, body) = rest.split_at(rest.find(']').unwrap());
                list.contains(&format!("\"{n}\"")) && body[..body.find('}').unwrap()].contains("both(name,")
            })
        };
        let untested: Vec<&str> =
            CHECKS.iter().map(|(n, _)| *n).filter(|n| !text.contains(&format!("both(\"{n}\"")) && !looped(n)).collect();
        assert!(untested.is_empty(), "claims without a test of both verdicts (fake::both): {untested:?}");
    }
}
