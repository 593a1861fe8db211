//! Catalogue section 3, the mixture-of-experts study: the claims of `moe` and `dense` (Shazeer et al. 2017).

use super::{metric, ClaimCtx, Verdict};

/// With balancing, no expert takes more than this multiple of an even share of the slots.
pub const MAX_LOAD: f64 = 2.0;

pub fn claim_moe(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (m, d) = (ctx.run("moe", &[])?, ctx.run("dense", &[])?);
    let nb = ctx.run("moe", &[("model.balance", "0")])?;
    let (lm, ld, lnb) = (metric(&m, "val_loss")?, metric(&d, "val_loss")?, metric(&nb, "val_loss")?);
    let (max_b, max_nb) = (metric(&m, "val_load_max")?, metric(&nb, "val_load_max")?);
    let (min_b, min_nb) = (metric(&m, "val_load_min")?, metric(&nb, "val_load_min")?);
    Ok(Verdict {
        value: lm - ld,
        threshold: 0.0,
        pass: lm < ld && max_b <= MAX_LOAD,
        detail: format!(
            "val loss on {} after {} steps: moe {lm:.4} vs dense {ld:.4} (equal multiply-adds per character; moe has {} parameters, dense {}); expert load relative to even, busiest/idlest: {max_b:.2}/{min_b:.2} with balancing (claim ≤ {MAX_LOAD}), {max_nb:.2}/{min_nb:.2} without (val loss {lnb:.4})",
            m.data, m.steps, m.params, d.params
        ),
    })
}

pub fn claim_dense(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let v = claim_moe(ctx)?;
    Ok(Verdict { value: -v.value, threshold: 0.0, ..v })
}
