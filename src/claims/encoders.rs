//! Catalogue section 4, transformers: the claims of the encoders. `bert` and `roberta` chain
//! two stages: a pretraining run, then fine-tuning runs started from its directory
//! (`train.init_from`), against the same fine-tuning from scratch (`train.init_from = ""`).
//! `vit` trains the ViT and `lenet` on the same recipe at two training-set sizes.
//!
//! On the built-in fallbacks (moby's quarters instead of the four texts; the 8x8 digits instead
//! of MNIST) the claims are not checked: they FAIL with a note and the numbers measured.

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
/// `vit`: the two training-set sizes (the second: all of MNIST's training images but the 5,000
/// of the validation split) and the updates at each, the same for both models.
pub const SIZES: [(&str, &str); 2] = [("1000", "1500"), ("0", "3000")];

/// The note that says a claim was not checked, when a run's data is not `want`.
fn fallback_note(runs: &[&Summary], want: &str, what: &str) -> Option<String> {
    runs.iter().find(|s| s.data != want).map(|s| {
        format!(
            "NOT CHECKED: {} ran on the built-in `{}` ({what} not fetched; run `make data`); the claim is checked only on {want}",
            s.name, s.data
        )
    })
}

fn verdict(value: f64, threshold: f64, ok: bool, detail: String, note: Option<String>) -> Verdict {
    match note {
        Some(note) => Verdict { value, threshold, pass: false, detail: format!("{note}; measured: {detail}") },
        None => Verdict { value, threshold, pass: ok, detail },
    }
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
    let note = fallback_note(&all, FOUR_TEXTS, "the four texts are");
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
    let note = fallback_note(&all, FOUR_TEXTS, "the four texts are");
    Ok(verdict(roberta, bert, roberta >= bert, detail, note))
}

/// Dosovitskiy et al.'s fig. 3 in two points: the ViT trails a CNN when data is scarce and
/// closes the gap as it grows.
pub fn claim_vit(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let mut gaps = vec![];
    let mut parts = vec![];
    let mut runs = vec![];
    for (size, steps) in SIZES {
        let sets = [("data.train_size", size), ("train.steps", steps), ("train.eval_every", "500")];
        let (v, l) = (ctx.run("vit", &sets)?, ctx.run("lenet", &sets)?);
        let (va, la) = (metric(&v, "test_acc")?, metric(&l, "test_acc")?);
        gaps.push(la - va);
        let n = if size == "0" { "all".to_string() } else { size.to_string() };
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
    let note = fallback_note(&refs, "mnist", "MNIST is");
    let ok = small >= SMALL_GAP && large <= GAP_KEPT * small;
    Ok(verdict(large, GAP_KEPT * small, ok, detail, note))
}
