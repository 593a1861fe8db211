//! Catalogue section 4, generative models: the GAN's FD falls as it trains, diffusion beats it
//! at equal training time, and the cosine noise schedule is at least as good as the linear one.
//! All compare the Fréchet distance (FD) of samples, lower is better (milestones/generative.rs).
//! On the built-in digits8 (MNIST not fetched) the claims are measured all the same and the
//! detail says the numbers are not MNIST's; `replay` reports them as SKIP, with those numbers.

use super::{metric, train_seconds, val_lines, ClaimCtx, Verdict};
use crate::engine::runner::Summary;

/// The GAN's final validation FD must be at most this fraction of its FD at the first
/// evaluation (step 500), fixed before the calibration run (final/step-500 = 0.058 there; see
/// `dlhist info gan`).
pub const GAN_FALL: f64 = 0.5;
/// The GAN must have trained at least this fraction of the diffusion model's training time
/// (`train_seconds`: updates only; until 2026-12-06 the runs' wall time, which also counted the
/// GAN's 36 FD evaluations and checkpoints).
pub const EQUAL_TIME: f64 = 0.9;

/// "; on digits8: the built-in 8x8 digits, …" when a run fell back (MNIST not fetched).
fn fallback(runs: &[&Summary]) -> String {
    match runs.iter().find(|s| s.data == "digits8") {
        Some(s) => format!(
            "; on {}: the built-in 8x8 digits, a fallback since MNIST is not fetched (`dlhist data fetch mnist`), so these are not MNIST's numbers",
            s.data
        ),
        None => String::new(),
    }
}

/// (step, FD) of every validation evaluation in the run's metrics.jsonl.
fn fd_curve(s: &Summary) -> anyhow::Result<Vec<(usize, f64)>> {
    Ok(val_lines(s)?.iter().filter_map(|v| Some((v["step"].as_u64()? as usize, v["fd"].as_f64()?))).collect())
}

pub fn claim_gan(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("gan", &[])?;
    let curve = fd_curve(&s)?;
    let &(first_step, first) = curve
        .iter()
        .find(|(step, _)| *step > 0)
        .ok_or_else(|| anyhow::anyhow!("the gan run has no FD evaluation after step 0"))?;
    let last = metric(&s, "val_fd")?;
    let ratio = last / first;
    let points: Vec<String> = curve.iter().map(|(st, f)| format!("{st}: {f:.2}")).collect();
    Ok(Verdict {
        value: ratio,
        threshold: GAN_FALL,
        pass: ratio <= GAN_FALL,
        detail: format!(
            "validation FD by step {}; final/step-{first_step} = {ratio:.3} (claim ≤ {GAN_FALL}); test FD {:.2} after {} steps in {:.0} s{}",
            points.join(", "),
            metric(&s, "test_fd")?,
            s.steps,
            s.wall_s,
            fallback(&[&s])
        ),
    })
}

pub fn claim_diffusion(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (g, d) = (ctx.run("gan", &[])?, ctx.run("diffusion", &[])?);
    let (gf, df) = (metric(&g, "test_fd")?, metric(&d, "test_fd")?);
    // training time, evaluations and checkpoints left out: the GAN samples and scores 1,000
    // images every 500 updates, diffusion only at the end
    let (gt, dt) = (train_seconds(&g)?, train_seconds(&d)?);
    let equal = gt >= EQUAL_TIME * dt;
    // the GAN's training time at each evaluation, from its mean update time
    let curve: Vec<(usize, f64, f64)> =
        fd_curve(&g)?.into_iter().map(|(st, fd)| (st, fd, gt * st as f64 / g.steps.max(1) as f64)).collect();
    Ok(Verdict {
        value: gf - df,
        threshold: 0.0,
        pass: df < gf && equal,
        detail: format!(
            "test FD diffusion {df:.2} ({} steps, {dt:.0} s of training) vs gan {gf:.2} ({} steps, {gt:.0} s); claim: diffusion lower, with the GAN given at least {EQUAL_TIME} of diffusion's training time{}{}{}",
            d.steps,
            g.steps,
            if equal { "" } else { " (NOT MET: the GAN trained for less)" },
            gan_at(&curve, dt, gt),
            fallback(&[&g, &d])
        ),
    })
}

/// Where the GAN stood when it had trained as long as diffusion (`secs`), from its validation
/// FD curve of (step, FD, training seconds): reported beside the verdict, not part of it (the
/// preset's step count gives the GAN `gan_secs`, which on a machine where the U-Net runs faster
/// is more than diffusion's time).
fn gan_at(curve: &[(usize, f64, f64)], secs: f64, gan_secs: f64) -> String {
    match curve.iter().rev().find(|(_, _, t)| *t <= secs) {
        Some(&(step, fd, t)) if gan_secs > 1.2 * secs => format!(
            "; the GAN trained {:.1}x diffusion's time: at {t:.0} s, its last evaluation within diffusion's {secs:.0} s, it was at step {step} with validation FD {fd:.2} (not part of the verdict)",
            gan_secs / secs
        ),
        _ => String::new(),
    }
}

pub fn claim_ddpm_cosine(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let (lin, cos) = (ctx.run("ddpm", &[])?, ctx.run("diffusion", &[])?);
    let (lf, cf) = (metric(&lin, "test_fd")?, metric(&cos, "test_fd")?);
    Ok(Verdict {
        value: lf - cf,
        threshold: 0.0,
        pass: cf <= lf,
        detail: format!(
            "test FD cosine {cf:.2} vs linear {lf:.2} after {} steps (claim: cosine ≤ linear); denoising test loss {:.4} vs {:.4}{}",
            cos.steps,
            metric(&cos, "test_loss")?,
            metric(&lin, "test_loss")?,
            fallback(&[&lin, &cos])
        ),
    })
}

pub fn claim_ddpm(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    claim_ddpm_cosine(ctx)
}

#[cfg(test)]
mod tests {
    use super::gan_at;

    /// The GAN's standing at diffusion's time is its last evaluation within that time, and is
    /// only reported when the GAN trained clearly longer.
    #[test]
    fn the_gan_is_reported_at_its_last_evaluation_within_diffusions_time() {
        let curve = [(0, 900.0, 0.0), (500, 300.0, 100.0), (1000, 120.0, 210.0), (1500, 40.0, 330.0)];
        let at = gan_at(&curve, 250.0, 330.0);
        assert!(at.contains("1.3x") && at.contains("step 1000 with validation FD 120.00"), "{at}");
        assert_eq!(gan_at(&curve, 300.0, 330.0), "", "within 1.2x: equal enough, nothing to add");
    }
}
