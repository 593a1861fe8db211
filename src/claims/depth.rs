//! Catalogue section 2, the depth study: the claims of `plain` and `residual` (He et al. 2015).

use super::{metric, ClaimCtx, Verdict};

/// The three runs of the claim — plain at depth 8 and 32, residual at 32 with the 2015 paper's
/// init — as their final train losses [plain-8, plain-32, residual-32], and the claim's detail
/// line, which also reports residual-32 with each block's last γ started at 0 (Goyal et al. 2017,
/// a later practice: shown beside the claim, not part of it).
fn losses(ctx: &mut dyn ClaimCtx) -> anyhow::Result<([f64; 3], String)> {
    let p8 = ctx.run("plain", &[("model.depth", "8")])?;
    let p32 = ctx.run("plain", &[])?;
    let r32 = ctx.run("residual", &[])?;
    let r32_zero = ctx.run("residual", &[("model.zero_init_residual", "true")])?;
    let l = [metric(&p8, "train_loss")?, metric(&p32, "train_loss")?, metric(&r32, "train_loss")?];
    let detail = format!(
        "train loss after {} updates on {}: plain-8 {:.4}, plain-32 {:.4}, residual-32 {:.4} (with γ started at 0 as Goyal et al. 2017: {:.4})",
        p32.steps,
        p32.data,
        l[0],
        l[1],
        l[2],
        metric(&r32_zero, "train_loss")?
    );
    Ok((l, detail))
}

/// `plain`: degradation, the deeper plain net trains worse.
pub fn claim_plain(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let ([p8, p32, _], detail) = losses(ctx)?;
    Ok(Verdict { value: p32, threshold: p8, pass: p32 > p8, detail })
}

/// `residual`: with shortcuts the 32-layer net beats both plain nets (and the claim needs the
/// degradation to be there, or there is nothing for the shortcuts to fix).
pub fn claim_residual(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let ([p8, p32, r32], detail) = losses(ctx)?;
    let best_plain = p8.min(p32);
    Ok(Verdict { value: r32, threshold: best_plain, pass: r32 < best_plain && p32 > p8, detail })
}
