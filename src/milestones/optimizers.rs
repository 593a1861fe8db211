//! The optimizer study (Kingma & Ba 2014; momentum: Polyak 1964, Sutskever et al. 2013): the
//! `mlp` on MNIST for 1,000 updates with plain SGD (lr 0.05), SGD + momentum 0.9 (lr 0.05) and
//! Adam (lr 1e-3), each at its usual learning rate. The claims compare the mean training loss
//! over the last stretch of updates. Adam and SGD also meet on the char-LM task: the `lstm`
//! char-LM for 1,000 updates with SGD at lr 1.0 (the usual rate for LSTM language models with
//! clipped gradients, Zaremba et al. 2014) or Adam at lr 2e-3.

use super::{metric, ClaimCtx, Verdict};

fn loss(ctx: &mut dyn ClaimCtx, name: &str) -> anyhow::Result<f64> {
    metric(&ctx.run(name, &[])?, "train_loss")
}

/// The char-LM's training loss at the lstm's budget with plain SGD and with Adam.
fn char_lm(ctx: &mut dyn ClaimCtx) -> anyhow::Result<(f64, f64)> {
    let sgd = ctx.run("lstm", &[("train.optimizer", "sgd"), ("train.lr", "1.0")])?;
    let adam = ctx.run("lstm", &[("train.optimizer", "adam"), ("train.lr", "2e-3")])?;
    Ok((metric(&sgd, "train_loss")?, metric(&adam, "train_loss")?))
}

pub fn claim_adam(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (a, s) = (loss(ctx, "adam")?, loss(ctx, "sgd")?);
    let (cs, ca) = char_lm(ctx)?;
    Ok(Verdict {
        value: a,
        threshold: s,
        pass: a < s && ca < cs,
        detail: format!(
            "train loss: mlp (1,000 steps) adam {a:.4} vs sgd {s:.4}; lstm char-LM adam {ca:.4} vs sgd {cs:.4}"
        ),
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
    let (cs, ca) = char_lm(ctx)?;
    Ok(Verdict {
        value: s,
        threshold: best,
        pass: s > best && cs > ca,
        detail: format!(
            "train loss: mlp (1,000 steps) sgd {s:.4}, momentum {m:.4}, adam {a:.4}; lstm char-LM sgd {cs:.4}, adam {ca:.4}"
        ),
    })
}
