//! The batch-normalisation study (Ioffe & Szegedy 2015) on the `lenet` family: LeNet-5 with and
//! without batch norm after each convolution, trained at a high learning rate (SGD + momentum
//! 0.9, lr 0.1). The metric is the number of updates until the validation accuracy (5,000 held-out
//! MNIST images, evaluated every 50 updates) first reaches 97%.

use super::{first_eval_step, ClaimCtx, Verdict};
use crate::engine::runner::Summary;

const TARGET: f64 = 0.97;

/// First evaluated step at which val accuracy ≥ TARGET, from the run's metrics.jsonl; None if never.
fn steps_to_target(s: &Summary) -> anyhow::Result<Option<usize>> {
    first_eval_step(s, "acc", |a| a >= TARGET)
}

pub fn claim_batchnorm(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (b, n) = (ctx.run("batchnorm", &[])?, ctx.run("no-norm", &[])?);
    let (sb, sn) = (steps_to_target(&b)?, steps_to_target(&n)?);
    // a run that never gets there counts as its whole budget (and then some: it did not arrive)
    let (vb, vn) = (sb.unwrap_or(b.steps + 1) as f64, sn.unwrap_or(n.steps + 1) as f64);
    let show = |s: Option<usize>| s.map_or("never (within the budget)".to_string(), |x| format!("{x} steps"));
    Ok(Verdict {
        value: vb,
        threshold: vn / 2.0,
        pass: sb.is_some() && vb <= vn / 2.0,
        detail: format!(
            "97% val accuracy: batchnorm after {}, no-norm after {} (claim: at most half)",
            show(sb),
            show(sn)
        ),
    })
}

pub fn claim_no_norm(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let v = claim_batchnorm(ctx)?;
    Ok(Verdict { value: v.threshold * 2.0, threshold: v.value * 2.0, pass: v.pass, detail: v.detail })
}
