//! Catalogue section 4, generative models: the GAN's FD falls as it trains, diffusion beats it
//! at equal training time, and the cosine noise schedule is at least as good as the linear one.
//! All compare the Fréchet distance (FD) of samples, lower is better (milestones/generative.rs).
//! On the built-in digits8 (MNIST not fetched) the claims are measured all the same and the
//! detail says the numbers are not MNIST's; `replay` reports them as SKIP, with those numbers.

use super::{metric, train_seconds, update_times, val_lines, ClaimCtx, Verdict};
use crate::engine::runner::Summary;

/// The GAN's final validation FD must be at most this fraction of its FD at the first
/// evaluation (step 500), fixed before the calibration run (final/step-500 = 0.058 there; see
/// `dlhist info gan`).
pub const GAN_FALL: f64 = 0.5;
/// Where the GAN's whole run trained less than the diffusion model (`train_seconds`: updates
/// only; until 2026-12-06 the runs' wall time, which also counted the GAN's FD evaluations and
/// checkpoints), it must have trained at least this fraction of diffusion's time.
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
    let df = metric(&d, "test_fd")?;
    // training time, evaluations and checkpoints left out: the GAN samples and scores 2,000
    // images every 500 updates, diffusion only at the end
    let dt = train_seconds(&d)?;
    let (curve, gt) = gan_curve(&g)?;
    let at = gan_point(&curve, dt).expect("gan_curve gives at least the final evaluation");
    let equal = at.secs >= EQUAL_TIME * dt;
    let when = if at.secs >= dt {
        format!("its first evaluation at diffusion's training time: step {} at {:.0} s", at.step, at.secs)
    } else {
        format!(
            "its final evaluation: step {} at {:.0} s, {:.2} of diffusion's time ({}at least {EQUAL_TIME} asked)",
            at.step,
            at.secs,
            at.secs / dt,
            if equal { "" } else { "NOT MET: " }
        )
    };
    Ok(Verdict {
        value: at.fd - df,
        threshold: 0.0,
        pass: df < at.fd && equal,
        detail: format!(
            "test FD diffusion {df:.2} ({} steps, {dt:.0} s of training) vs gan {:.2} at {when} (its whole run: {} steps, {gt:.0} s, test FD {:.2}); claim: diffusion lower at equal training time{}",
            d.steps,
            at.fd,
            g.steps,
            metric(&g, "test_fd")?,
            fallback(&[&g, &d])
        ),
    })
}

/// One of the GAN's evaluations: its step, test FD and training seconds by then.
#[derive(Clone, Copy, Debug, PartialEq)]
struct GanEval {
    step: usize,
    fd: f64,
    secs: f64,
}

/// The GAN's evaluations after step 0 with their test FD (`fd_test`, logged at every
/// evaluation) and training time (the mean logged update time up to the step, times the step);
/// a run without `fd_test` (trained before it was logged) gives its final test FD alone. With
/// the run's whole training time (`train_seconds`, from the same lines).
fn gan_curve(g: &Summary) -> anyhow::Result<(Vec<GanEval>, f64)> {
    let times = update_times(g)?;
    let secs_at = |step: usize| {
        let ms: Vec<f64> = times.iter().filter(|(st, _)| *st <= step).map(|(_, ms)| *ms).collect();
        ms.iter().sum::<f64>() / ms.len().max(1) as f64 * step as f64 / 1e3
    };
    let total_secs = secs_at(g.steps);
    let mut curve: Vec<GanEval> = val_lines(g)?
        .iter()
        .filter_map(|v| Some((v["step"].as_u64()? as usize, v["fd_test"].as_f64()?)))
        .filter(|(step, _)| *step > 0)
        .map(|(step, fd)| GanEval { step, fd, secs: secs_at(step) })
        .collect();
    if curve.is_empty() {
        curve.push(GanEval { step: g.steps, fd: metric(g, "test_fd")?, secs: total_secs });
    }
    Ok((curve, total_secs))
}

/// The GAN evaluation to compare diffusion with: the first whose training time reaches
/// diffusion's `secs`, so the GAN had at least diffusion's time and at most one evaluation
/// interval more; else (its whole run trained less) its last, where the claim then asks for at
/// least `EQUAL_TIME` of diffusion's time.
fn gan_point(curve: &[GanEval], secs: f64) -> Option<GanEval> {
    curve.iter().find(|e| e.secs >= secs).or(curve.last()).copied()
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
    use super::{gan_point, GanEval};

    /// Diffusion is compared with the GAN's first evaluation at or past its training time, or
    /// with the GAN's last when the GAN's whole run trained less.
    #[test]
    fn the_gan_is_compared_at_its_first_evaluation_that_reaches_diffusions_time() {
        let e = |step, fd, secs| GanEval { step, fd, secs };
        let curve = [e(500, 300.0, 100.0), e(1000, 120.0, 210.0), e(1500, 40.0, 330.0)];
        assert_eq!(gan_point(&curve, 250.0), Some(curve[2]), "210 s < 250 s: the next one");
        assert_eq!(gan_point(&curve, 210.0), Some(curve[1]), "exactly diffusion's time counts");
        assert_eq!(gan_point(&curve, 50.0), Some(curve[0]));
        assert_eq!(gan_point(&curve, 400.0), Some(curve[2]), "the whole run trained less: its last");
        assert_eq!(gan_point(&[], 1.0), None);
    }
}
