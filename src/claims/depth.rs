//! Catalogue section 2, the depth study: the claims of `plain` and `residual` (He et al. 2015).

use super::{metric, ClaimCtx, Verdict};

/// The paper's CIFAR experiment (§4.2, Fig. 6) at reduced width on Fashion-MNIST: the CIFAR
/// family (`model.conv`), w = 8, SGD + momentum 0.9 at lr 0.1 with weight decay 1e-4, batch 64,
/// 400 updates (see the registry entry).
const CIFAR: [(&str, &str); 7] = [
    ("model.conv", "true"),
    ("model.width", "8"),
    ("data.dataset", "fashion"),
    ("train.lr", "0.1"),
    ("train.weight_decay", "1e-4"),
    ("train.batch_size", "64"),
    ("train.steps", "400"),
];

/// Final train loss of `name` (plain or residual) at `depth` layers of the CIFAR family.
fn cifar(ctx: &mut dyn ClaimCtx, name: &str, depth: &str) -> anyhow::Result<(f64, String, usize)> {
    let mut sets = CIFAR.to_vec();
    sets.push(("model.depth", depth));
    let s = ctx.run(name, &sets)?;
    Ok((metric(&s, "train_loss")?, s.data.clone(), s.steps))
}

/// The three runs of the claims — plain-20, plain-56, residual-56 — as their final train losses
/// [plain-20, plain-56, residual-56], and the claims' detail line.
fn losses(ctx: &mut dyn ClaimCtx) -> anyhow::Result<([f64; 3], String)> {
    let (p20, data, steps) = cifar(ctx, "plain", "20")?;
    let (p56, _, _) = cifar(ctx, "plain", "56")?;
    let (r56, _, _) = cifar(ctx, "residual", "56")?;
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
