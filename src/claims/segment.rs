//! Catalogue section 1, continued: the segmentation claims (U-Net and its no-skip baseline).

use super::{metric, ClaimCtx, Verdict};

/// Skips must raise the test mean IoU (11 classes, background included) by at least this much.
/// Measured gaps at the full budget: 0.098, 0.086 and 0.141 (seeds 1234, 7, 99; the registry's
/// info text has the numbers); the margin is about half the smallest, since one run's mean IoU
/// moves by a few hundredths with the seed.
pub const MARGIN: f64 = 0.05;

pub fn claim_unet(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (s, n) = (ctx.run("unet", &[])?, ctx.run("unet-noskip", &[])?);
    let (ms, mn) = (metric(&s, "test_miou")?, metric(&n, "test_miou")?);
    let (ds, dn) = (metric(&s, "test_miou_digits")?, metric(&n, "test_miou_digits")?);
    Ok(Verdict {
        value: ms - mn,
        threshold: MARGIN,
        pass: ms - mn >= MARGIN,
        detail: format!(
            "test mean IoU (11 classes) with skips {:.3}, without {:.3} (digits only: {:.3} vs {:.3}) on {} after {} steps; claim: skips ahead by ≥ {MARGIN}",
            ms, mn, ds, dn, s.data, s.steps
        ),
    })
}

pub fn claim_noskip(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let v = claim_unet(ctx)?;
    Ok(Verdict { value: -v.value, threshold: -MARGIN, pass: v.pass, detail: v.detail })
}
