//! Catalogue section 4, transformers: the claims of the encoders. `bert` and `roberta` chain
//! two stages: a pretraining run, then fine-tuning runs started from its directory
//! (`train.init_from`), against the same fine-tuning from scratch (`train.init_from = ""`).
//! `vit` trains the ViT and `lenet` on the same recipe at two training-set sizes.
//!
//! On the built-in fallbacks (moby's quarters instead of the four texts; the 8x8 digits instead
//! of MNIST) the claims are not checked (`replay` reports SKIP) and say so with the numbers measured.

use super::{metric, ClaimCtx, Verdict, SEEDS};
use crate::data::provenance::FOUR_TEXTS;
use crate::engine::runner::Summary;

/// `bert`: the pretrained encoder's mean test accuracy (3 fine-tuning seeds) must beat the same
/// model trained from scratch on the same labels by at least this much (a fraction: 0.05 = 5
/// points).
pub const PRETRAIN_GAIN: f64 = 0.05;
/// `vit`: with 1,000 training images LeNet-5 must be ahead of the ViT by at least this much
/// test accuracy.
pub const SMALL_GAP: f64 = 0.03;
/// `vit`: with all 55,000, the gap must have shrunk to at most this fraction of the small-data gap.
pub const GAP_KEPT: f64 = 0.5;
/// `vit`: the two training-set sizes: 1,000 images, and all (0: MNIST's 55,000 training images
/// outside the validation split). With all, both models train for the vit preset's updates
/// (3,000 at the full budget); with 1,000, for half as many.
pub const SIZES: [&str; 2] = ["1000", "0"];

/// What fetches the texts of the provenance task (moby is built in).
const FETCH_TEXTS: &str = "dlhist data fetch shakespeare sotu verses";

/// The note that says a claim was not checked, when a run's data is not `want`.
fn fallback_note(runs: &[&Summary], want: &str, what: &str, fetch: &str) -> Option<String> {
    runs.iter().find(|s| s.data != want).map(|s| {
        format!(
            "{} ran on the built-in `{}` ({what} not fetched: `{fetch}`); the claim is checked only on {want}",
            s.name, s.data
        )
    })
}

fn verdict(value: f64, threshold: f64, ok: bool, detail: String, note: Option<String>) -> Verdict {
    super::unless_fell_back(note, value, threshold, ok, detail)
}

/// Mean test accuracy of `name` fine-tuned from `init` ("" = from scratch) over `SEEDS`, the
/// per-seed accuracies, and the runs.
fn finetuned(ctx: &mut dyn ClaimCtx, name: &str, init: &str) -> anyhow::Result<(f64, Vec<f64>, Vec<Summary>)> {
    let (mut accs, mut runs) = (vec![], vec![]);
    for seed in SEEDS {
        let s = ctx.run(name, &[("train.init_from", init), ("train.seed", seed)])?;
        accs.push(metric(&s, "test_acc")?);
        runs.push(s);
    }
    Ok((accs.iter().sum::<f64>() / accs.len() as f64, accs, runs))
}

fn pct(v: &[f64]) -> String {
    v.iter().map(|a| format!("{:.1}", a * 100.0)).collect::<Vec<_>>().join("/")
}

/// A pretraining run, and the fine-tuning runs started from it: (pretrain, mean, per seed, runs).
fn stage(ctx: &mut dyn ClaimCtx, name: &str) -> anyhow::Result<(Summary, f64, Vec<f64>, Vec<Summary>)> {
    let pre = ctx.run(&format!("{name}-pretrain"), &[])?;
    let (mean, accs, runs) = finetuned(ctx, name, &pre.run_dir)?;
    Ok((pre, mean, accs, runs))
}

/// Devlin et al.'s point: pretraining on unlabelled text makes a few labels go further.
pub fn claim_bert(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (pre, bert, accs, runs) = stage(ctx, "bert")?;
    let (scratch, s_accs, s_runs) = finetuned(ctx, "bert", "")?;
    let detail = format!(
        "mean test accuracy over {} fine-tuning seeds on {} ({} labelled windows per text): pretrained {:.1}% ({}) vs from scratch {:.1}% ({}) (claim: at least +{:.0} points); pretraining: val MLM loss {:.3}, masked-word accuracy {:.1}%, next-sentence accuracy {:.1}%",
        SEEDS.len(),
        pre.data,
        crate::milestones::bert::finetune_defaults().data.labels,
        bert * 100.0,
        pct(&accs),
        scratch * 100.0,
        pct(&s_accs),
        PRETRAIN_GAIN * 100.0,
        metric(&pre, "val_mlm_loss")?,
        metric(&pre, "val_mlm_acc")? * 100.0,
        pre.metric("val_nsp_acc").unwrap_or(f64::NAN) * 100.0,
    );
    let all: Vec<&Summary> = std::iter::once(&pre).chain(&runs).chain(&s_runs).collect();
    let note = fallback_note(&all, FOUR_TEXTS, "the four texts are", FETCH_TEXTS);
    Ok(verdict(bert, scratch + PRETRAIN_GAIN, bert >= scratch + PRETRAIN_GAIN, detail, note))
}

/// Liu et al.'s changes at the same budget: dynamic masks and no next-sentence task do no worse.
pub fn claim_roberta(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (rpre, roberta, r_accs, r_runs) = stage(ctx, "roberta")?;
    let (bpre, bert, b_accs, b_runs) = stage(ctx, "bert")?;
    let detail = format!(
        "mean test accuracy over {} fine-tuning seeds on {}: roberta {:.1}% ({}) vs bert {:.1}% ({}) (claim: roberta ≥ bert); pretraining at the same budget ({} steps): val MLM loss roberta {:.3} vs bert {:.3}, masked-word accuracy {:.1}% vs {:.1}%",
        SEEDS.len(),
        rpre.data,
        roberta * 100.0,
        pct(&r_accs),
        bert * 100.0,
        pct(&b_accs),
        rpre.steps,
        metric(&rpre, "val_mlm_loss")?,
        metric(&bpre, "val_mlm_loss")?,
        metric(&rpre, "val_mlm_acc")? * 100.0,
        metric(&bpre, "val_mlm_acc")? * 100.0,
    );
    let all: Vec<&Summary> = [&rpre, &bpre].into_iter().chain(&r_runs).chain(&b_runs).collect();
    let note = fallback_note(&all, FOUR_TEXTS, "the four texts are", FETCH_TEXTS);
    Ok(verdict(roberta, bert, roberta >= bert, detail, note))
}

/// Dosovitskiy et al.'s fig. 3 in two points: the ViT trails a CNN when data is scarce and
/// closes the gap as it grows.
pub fn claim_vit(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    // the large size first, at the preset's budget: its updates set the small size's
    let large = ctx.run("vit", &[("data.train_size", SIZES[1])])?;
    let steps = [(large.steps / 2).max(1).to_string(), large.steps.to_string()];
    let mut gaps = vec![];
    let mut parts = vec![];
    let mut runs = vec![];
    for (size, steps) in SIZES.iter().zip(&steps) {
        let sets = [("data.train_size", *size), ("train.steps", steps.as_str())];
        let v = if *size == SIZES[1] { large.clone() } else { ctx.run("vit", &sets)? };
        let l = ctx.run("lenet", &sets)?;
        let (va, la) = (metric(&v, "test_acc")?, metric(&l, "test_acc")?);
        gaps.push(la - va);
        let n = if *size == "0" { "all".to_string() } else { size.to_string() };
        parts.push(format!(
            "{n} training images ({steps} updates): lenet {:.2}% vs vit {:.2}% (gap {:.2} points)",
            la * 100.0,
            va * 100.0,
            (la - va) * 100.0
        ));
        runs.push(v);
        runs.push(l);
    }
    let (small, large) = (gaps[0], gaps[1]);
    let detail = format!(
        "test accuracy on {}: {}; claim: gap ≥ {:.0} points with 1,000 images, and at most {:.0}% of it with all",
        runs[0].data,
        parts.join("; "),
        SMALL_GAP * 100.0,
        GAP_KEPT * 100.0
    );
    let refs: Vec<&Summary> = runs.iter().collect();
    let note = fallback_note(&refs, "mnist", "MNIST is", "dlhist data fetch mnist");
    let ok = small >= SMALL_GAP && large <= GAP_KEPT * small;
    Ok(verdict(large, GAP_KEPT * small, ok, detail, note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Metrics;
    use std::collections::HashMap;

    /// Hands out summaries whose test accuracy is looked up by (name, init_from, data.train_size):
    /// pretraining runs get the run directory `pre/NAME`, fine-tuning runs started from one are
    /// keyed by it, runs from scratch by "".
    struct Fake {
        data: &'static str,
        acc: HashMap<(String, String, String), f64>,
        asked: Vec<String>,
    }

    impl ClaimCtx for Fake {
        fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
            let get = |k: &str| sets.iter().find(|(a, _)| *a == k).map_or(String::new(), |(_, v)| v.to_string());
            self.asked.push(format!("{name} {sets:?}"));
            let key = (name.to_string(), get("train.init_from"), get("data.train_size"));
            let acc = self.acc.get(&key).copied().unwrap_or(0.5);
            let m: Metrics = [("test_acc", acc), ("val_mlm_loss", 5.0), ("val_mlm_acc", 0.15)]
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let data = if name == "vit" || name == "lenet" {
                if self.data == FOUR_TEXTS {
                    "mnist"
                } else {
                    "digits8"
                }
            } else {
                self.data
            };
            Ok(Summary {
                name: name.into(),
                run_dir: format!("pre/{name}"),
                data: data.into(),
                steps: 10,
                session_steps: 10,
                eval_s: 0.0,
                epochs: 1.0,
                wall_s: 1.0,
                steps_per_s: 1.0,
                params: 1,
                flops: 1.0,
                threads: 1,
                train_loss: 1.0,
                initial: Metrics::new(),
                final_metrics: m,
                config_hash: String::new(),
                frozen_params: 0,
                init_from: None,
            })
        }
    }

    fn fake(data: &'static str, accs: &[(&str, &str, &str, f64)]) -> Fake {
        let acc = accs.iter().map(|(n, i, s, a)| ((n.to_string(), i.to_string(), s.to_string()), *a)).collect();
        Fake { data, acc, asked: vec![] }
    }

    fn texts(bert: f64, scratch: f64, roberta: f64) -> Vec<(&'static str, &'static str, &'static str, f64)> {
        vec![
            ("bert", "pre/bert-pretrain", "", bert),
            ("bert", "", "", scratch),
            ("roberta", "pre/roberta-pretrain", "", roberta),
        ]
    }

    #[test]
    fn bert_fine_tunes_from_its_pretraining_run_and_must_beat_scratch_by_the_margin() {
        let mut ctx = fake(FOUR_TEXTS, &texts(0.90, 0.90 - PRETRAIN_GAIN - 0.01, 0.5));
        let v = claim_bert(&mut ctx).unwrap();
        assert!(v.pass && (v.value - 0.90).abs() < 1e-12, "{v:?}");
        // the pretraining run, then three seeds from its directory and three from scratch
        assert!(ctx.asked[0].starts_with("bert-pretrain"), "{:?}", ctx.asked);
        assert_eq!(ctx.asked.iter().filter(|a| a.contains("pre/bert-pretrain")).count(), 3);
        assert_eq!(ctx.asked.iter().filter(|a| a.contains("(\"train.init_from\", \"\")")).count(), 3);
        let v = claim_bert(&mut fake(FOUR_TEXTS, &texts(0.90, 0.90 - PRETRAIN_GAIN + 0.01, 0.5))).unwrap();
        assert!(!v.pass, "{v:?}");
    }

    #[test]
    fn roberta_must_reach_berts_accuracy() {
        assert!(claim_roberta(&mut fake(FOUR_TEXTS, &texts(0.90, 0.8, 0.90))).unwrap().pass);
        let v = claim_roberta(&mut fake(FOUR_TEXTS, &texts(0.90, 0.8, 0.899))).unwrap();
        assert!(!v.pass && v.threshold == 0.90, "{v:?}");
    }

    #[test]
    fn vit_must_trail_with_little_data_and_close_the_gap_with_more() {
        let accs = |small_vit: f64, large_vit: f64| {
            vec![
                ("lenet", "", SIZES[0], 0.94),
                ("vit", "", SIZES[0], small_vit),
                ("lenet", "", SIZES[1], 0.99),
                ("vit", "", SIZES[1], large_vit),
            ]
        };
        let mut ctx = fake(FOUR_TEXTS, &accs(0.86, 0.98));
        let v = claim_vit(&mut ctx).unwrap();
        // the large vit run at the preset's budget first, then half its updates for the small size
        assert_eq!(ctx.asked[0], "vit [(\"data.train_size\", \"0\")]");
        assert!(
            ctx.asked[1].contains("\"train.steps\", \"5\"") && ctx.asked[2].contains("\"train.steps\", \"5\""),
            "{:?}",
            ctx.asked
        );
        assert!(
            ctx.asked[3].contains("\"train.steps\", \"10\"") && ctx.asked[3].starts_with("lenet"),
            "{:?}",
            ctx.asked
        );
        assert!(v.pass && (v.value - 0.01).abs() < 1e-9 && (v.threshold - 0.04).abs() < 1e-9, "{v:?}");
        // too small a gap with little data, or a gap that does not shrink enough
        assert!(!claim_vit(&mut fake(FOUR_TEXTS, &accs(0.94 - SMALL_GAP + 0.005, 0.99))).unwrap().pass);
        assert!(!claim_vit(&mut fake(FOUR_TEXTS, &accs(0.86, 0.95))).unwrap().pass);
    }

    #[test]
    fn on_the_built_in_fallbacks_no_claim_passes_and_the_detail_says_why() {
        let good = texts(0.95, 0.5, 0.99);
        for v in [claim_bert(&mut fake(FALLBACK_NAME, &good)), claim_roberta(&mut fake(FALLBACK_NAME, &good))] {
            let v = v.unwrap();
            assert!(!v.pass && super::super::is_not_checked(&v) && v.detail.contains(FETCH_TEXTS), "{v:?}");
        }
        let v = claim_vit(&mut fake(FALLBACK_NAME, &[("lenet", "", SIZES[0], 0.9)])).unwrap();
        assert!(!v.pass && super::super::is_not_checked(&v) && v.detail.contains("dlhist data fetch mnist"), "{v:?}");
    }

    const FALLBACK_NAME: &str = crate::data::provenance::FALLBACK;
}
