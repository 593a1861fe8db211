//! Catalogue section 4, learning from human feedback: PPO against the learned reward raises the
//! scripted labeler's score while the KL to the SFT model stays bounded (`dlhist info rlhf`).

use super::{metric, ClaimCtx, Verdict};

/// The least rise of the labeler's mean score (letters `e` per response), fixed before calibration.
pub const MIN_RISE: f64 = 0.5;
/// The most final KL(π ‖ π_SFT), nats per response, fixed before calibration.
pub const MAX_KL: f64 = 4.0;

pub fn claim_rlhf(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("rlhf", &[])?;
    let initial =
        |k: &str| s.initial.get(k).copied().ok_or_else(|| anyhow::anyhow!("run {} has no initial `{k}`", s.name));
    let (s0, s1) = (initial("val_score")?, metric(&s, "val_score")?);
    let kl = metric(&s, "val_kl")?;
    let (r0, r1) = (initial("val_reward").unwrap_or(f64::NAN), metric(&s, "val_reward").unwrap_or(f64::NAN));
    let (l0, l1) = (initial("val_sft_loss")?, metric(&s, "val_sft_loss")?);
    let rise = s1 - s0;
    Ok(Verdict {
        value: rise,
        threshold: MIN_RISE,
        pass: rise >= MIN_RISE && kl <= MAX_KL,
        detail: format!(
            "labeler score {s0:.3} → {s1:.3} (rise {rise:.3}, claim ≥ {MIN_RISE}); KL to the SFT model {kl:.3} nats per response (claim ≤ {MAX_KL}); learned reward {r0:.3} → {r1:.3}; SFT-text loss {l0:.4} → {l1:.4}; {} PPO updates in {:.1} s on {}",
            s.steps, s.wall_s, s.data
        ),
    })
}
