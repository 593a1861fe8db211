//! Catalogue section 4, transformers: the claim of `lora` (rank-4 adapters on a trained `gpt`
//! reach full fine-tuning's val loss, within a few %, with < 2% of its trainable parameters)
//! and the gpt study's analysis in `dlhist compare` (lora and full-finetune are variants of `gpt`'s study: the claim trains the `gpt` run, so one shard keeps them) (val loss, trainable parameters and
//! checkpoint bytes of each variant).

use super::{metric, not_checked, ClaimCtx, StudyAnalysis, Verdict};
use crate::engine::runner::Summary;

/// LoRA's val loss may exceed full fine-tuning's by at most this factor (fixed before the
/// calibration runs: "within a few %")...
pub const MAX_LOSS_RATIO: f64 = 1.05;
/// ... with trainable parameters under this fraction of full fine-tuning's.
pub const MAX_PARAM_FRACTION: f64 = 0.02;

/// Bytes of a run's checkpoint (its `model.safetensors`); 0 when it has none.
pub fn ckpt_bytes(s: &Summary) -> u64 {
    std::fs::metadata(std::path::Path::new(&s.run_dir).join("model.safetensors")).map_or(0, |m| m.len())
}

fn row(label: &str, s: &Summary) -> anyhow::Result<(f64, String)> {
    let val = metric(s, "val_loss")?;
    let text = format!(
        "{label}: val loss {val:.4}, {} trainable parameters ({} frozen), checkpoint {} bytes, {:.1} s",
        s.params,
        s.frozen_params,
        ckpt_bytes(s),
        s.wall_s
    );
    Ok((val, text))
}

pub fn claim_lora(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let base = ctx.run("gpt", &[])?;
    let sets = [("train.init_from", base.run_dir.as_str())];
    let lora = ctx.run("lora", &sets)?;
    let full = ctx.run("full-finetune", &sets)?;
    let (lv, lt) = row("lora", &lora)?;
    let (fv, ft) = row("full-finetune", &full)?;
    let ratio = lv / fv;
    let frac = lora.params as f64 / full.params.max(1) as f64;
    let detail = format!(
        "{lt}; {ft}; val loss ratio {ratio:.4}, trainable fraction {:.2}% (claim: ratio ≤ {MAX_LOSS_RATIO}, fraction < {:.0}%); base: gpt on {} ({:.1} s)",
        100.0 * frac,
        100.0 * MAX_PARAM_FRACTION,
        base.data,
        base.wall_s
    );
    if lora.data != "sotu" || base.data != "shakespeare" {
        return Ok(not_checked(format!(
            "the runs fell back to the built-in moby (`dlhist data fetch shakespeare sotu`); the claim is calibrated on shakespeare -> sotu; measured: {detail}"
        )));
    }
    Ok(Verdict {
        value: ratio,
        threshold: MAX_LOSS_RATIO,
        pass: ratio <= MAX_LOSS_RATIO && frac < MAX_PARAM_FRACTION,
        detail,
    })
}

/// `dlhist compare lora full-finetune`: each variant's val loss, trainable parameters and
/// checkpoint bytes.
pub fn finetune_analysis(results: &[(String, Summary)]) -> anyhow::Result<StudyAnalysis> {
    let mut lines = vec![];
    let mut rows = vec![];
    for (label, s) in results {
        let (val, text) = row(label, s)?;
        lines.push(text);
        rows.push(serde_json::json!({
            "variant": label, "val_loss": val, "trainable_params": s.params,
            "frozen_params": s.frozen_params, "ckpt_bytes": ckpt_bytes(s),
        }));
    }
    Ok(StudyAnalysis { text: lines.join("\n"), json: serde_json::json!({ "variants": rows }), plots: vec![] })
}
