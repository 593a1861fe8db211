//! Catalogue section 2, the depth study: the claims of `plain` and `residual` (He et al. 2015).

use super::{heldout_evals, metric, ClaimCtx, Verdict};

/// Final train loss of `name` (plain or residual: their presets are the paper's CIFAR experiment
/// at reduced width, see the registry entry) at `depth` layers.
fn cifar(ctx: &mut dyn ClaimCtx, name: &str, depth: &str) -> anyhow::Result<(f64, String, usize)> {
    // the claims read only the training loss
    let s = ctx.run(name, &[("model.depth", depth), heldout_evals(ctx)])?;
    Ok((metric(&s, "train_loss")?, s.data.clone(), s.steps))
}

/// The three runs of the claims — plain-20, plain-56, residual-56 — as their final train losses
/// [plain-20, plain-56, residual-56], and the claims' detail line.
fn losses(ctx: &mut dyn ClaimCtx) -> anyhow::Result<([f64; 3], String)> {
    // at the smoke budget (the pipeline only) 8 layers for both depths: deeper nets' batch-norm
    // statistics do not settle in a few updates, so their eval-mode loss is noise there
    let (shallow, deep) = if ctx.smoke() { ("8", "8") } else { ("20", "56") };
    let (p20, data, steps) = cifar(ctx, "plain", shallow)?;
    let (p56, _, _) = cifar(ctx, "plain", deep)?;
    let (r56, _, _) = cifar(ctx, "residual", deep)?;
    let detail = format!(
        "the CIFAR family (w = 8) on {data}, train loss after {steps} updates: plain-20 {p20:.4}, plain-56 {p56:.4}, residual-56 {r56:.4} (before, MLPs on mnist: plain-8 0.103, plain-32 1.115, residual-32 0.143)"
    );
    Ok(([p20, p56, r56], detail))
}

/// `plain`: degradation, the deeper plain net trains worse.
pub fn claim_plain(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let ([p20, p56, _], detail) = losses(ctx)?;
    Ok(Verdict { value: p56, threshold: p20, pass: p56 > p20, detail })
}

/// `residual`: with shortcuts the 56-layer net beats both plain nets (and the claim needs the
/// degradation to be there, or there is nothing for the shortcuts to fix).
pub fn claim_residual(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let ([p20, p56, r56], detail) = losses(ctx)?;
    let best_plain = p20.min(p56);
    Ok(Verdict { value: r56, threshold: best_plain, pass: r56 < best_plain && p56 > p20, detail })
}
