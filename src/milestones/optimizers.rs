//! The optimizer study (Kingma & Ba 2014; momentum: Polyak 1964, Sutskever et al. 2013): the
//! `mlp` on MNIST for 1,000 updates with plain SGD (lr 0.05), SGD + momentum 0.9 (lr 0.05) and
//! Adam (lr 1e-3), each at its usual learning rate. The claims compare the mean training loss
//! over the last stretch of updates. (The issue asks for the char-LM task too once the sequence
//! milestones exist; until then the study runs on the mlp only.)

use super::{metric, ClaimCtx, Verdict};

fn loss(ctx: &mut dyn ClaimCtx, name: &str) -> anyhow::Result<f64> {
    metric(&ctx.run(name, &[])?, "train_loss")
}

pub fn claim_adam(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (a, s) = (loss(ctx, "adam")?, loss(ctx, "sgd")?);
    Ok(Verdict {
        value: a,
        threshold: s,
        pass: a < s,
        detail: format!("train loss after 1,000 steps: adam {a:.4} vs sgd {s:.4}"),
    })
}

pub fn claim_momentum(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (m, s) = (loss(ctx, "momentum")?, loss(ctx, "sgd")?);
    Ok(Verdict {
        value: m,
        threshold: s,
        pass: m < s,
        detail: format!("train loss after 1,000 steps: momentum {m:.4} vs sgd {s:.4}"),
    })
}

pub fn claim_sgd(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (s, m, a) = (loss(ctx, "sgd")?, loss(ctx, "momentum")?, loss(ctx, "adam")?);
    let best = m.min(a);
    Ok(Verdict {
        value: s,
        threshold: best,
        pass: s > best,
        detail: format!("train loss after 1,000 steps: sgd {s:.4}, momentum {m:.4}, adam {a:.4}"),
    })
}
