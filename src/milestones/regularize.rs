//! The regularisation studies on the `mlp` family (their presets hold the differences):
//! - `weight-decay` vs `no-decay` (Krogh & Hertz 1991): an MLP on 1,000 MNIST digits trained far
//!   past a perfect fit; L2 decay (λ = 0.005, SGD + momentum) keeps the weights small and the
//!   test error lower.
//! - `dropout` vs `no-dropout` (Srivastava et al. 2014): a wide MLP (2 × 1,024) on 2,000 digits;
//!   dropping half the hidden units in training narrows the train–test gap and raises test accuracy.
//!
//! One run's test accuracy moves by a few tenths of a percent with the seed, as much as the
//! effects here, so each claim averages three seeds per variant.

use super::{ClaimCtx, Verdict};

/// Mean of `keys` over the three seeded runs of `name`.
fn mean(ctx: &mut dyn ClaimCtx, name: &str, keys: &[&str]) -> anyhow::Result<Vec<f64>> {
    super::mean_over_seeds(ctx, name, &[], keys)
}

pub fn claim_weight_decay(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let d = mean(ctx, "weight-decay", &["test_acc", "val_weight_norm"])?;
    let n = mean(ctx, "no-decay", &["test_acc", "val_weight_norm"])?;
    let (err_d, err_n) = (1.0 - d[0], 1.0 - n[0]);
    Ok(Verdict {
        value: err_d,
        threshold: err_n,
        pass: err_d < err_n && d[1] < n[1],
        detail: format!(
            "mean of 3 seeds: test error {:.2}% with decay vs {:.2}% without; weight norm {:.2} vs {:.2}",
            err_d * 100.0,
            err_n * 100.0,
            d[1],
            n[1]
        ),
    })
}

/// `no-decay`'s own claim is the same comparison, seen from the other side.
pub fn claim_no_decay(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let v = claim_weight_decay(ctx)?;
    Ok(Verdict { value: v.threshold, threshold: v.value, pass: v.pass, detail: v.detail })
}

pub fn claim_dropout(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let d = mean(ctx, "dropout", &["test_acc", "val_fit_acc"])?;
    let n = mean(ctx, "no-dropout", &["test_acc", "val_fit_acc"])?;
    let (gap_d, gap_n) = (d[1] - d[0], n[1] - n[0]);
    Ok(Verdict {
        value: d[0],
        threshold: n[0],
        pass: d[0] > n[0] && gap_d < gap_n,
        detail: format!(
            "mean of 3 seeds: test accuracy {:.2}% with dropout vs {:.2}% without; train–test gap {:.2} vs {:.2} points",
            d[0] * 100.0,
            n[0] * 100.0,
            gap_d * 100.0,
            gap_n * 100.0
        ),
    })
}

pub fn claim_no_dropout(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let v = claim_dropout(ctx)?;
    Ok(Verdict { value: v.threshold, threshold: v.value, pass: v.pass, detail: v.detail })
}
