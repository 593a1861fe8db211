//! Catalogue section 5, image and text: `clip`'s claim. One run; retrieval between the held-out
//! emoji and their captions, and zero-shot classification of held-out MNIST digits, each
//! measured against chance. Without the emoji set or MNIST the claim is not checked.

use super::{metric, not_checked, ClaimCtx, Verdict};

/// Both measures must reach this multiple of chance.
pub const TIMES_CHANCE: f64 = 5.0;
/// The data the claim is about (the run's `data` name).
const DATA: &str = "mnist+emoji";

pub fn claim_clip(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("clip", &[])?;
    if s.data != DATA {
        return Ok(not_checked(format!(
            "clip ran on `{}`, not MNIST and the emoji set (fetch them with `dlhist data fetch mnist emoji`)",
            s.data
        )));
    }
    let (i2t, t2i, chance) = (metric(&s, "test_r10_i2t")?, metric(&s, "test_r10_t2i")?, metric(&s, "test_chance_r10")?);
    let zs = metric(&s, "test_zero_shot")?;
    let retrieval = (i2t + t2i) / 2.0 / chance;
    let zero_shot = zs / 0.1;
    let value = retrieval.min(zero_shot);
    let (r1, r5) = (
        (metric(&s, "test_r1_i2t")? + metric(&s, "test_r1_t2i")?) / 2.0,
        (metric(&s, "test_r5_i2t")? + metric(&s, "test_r5_t2i")?) / 2.0,
    );
    Ok(Verdict {
        value,
        threshold: TIMES_CHANCE,
        pass: value >= TIMES_CHANCE,
        detail: format!(
            "held-out emoji recall@10 {:.1}% image→text, {:.1}% text→image against chance {:.1}% ({retrieval:.1}x; recall@1 {:.1}%, @5 {:.1}%); zero-shot digit accuracy {:.1}% against 10% ({zero_shot:.1}x) with \"a handwritten N\"; both need ≥ {TIMES_CHANCE}x chance",
            i2t * 100.0,
            t2i * 100.0,
            chance * 100.0,
            r1 * 100.0,
            r5 * 100.0,
            zs * 100.0
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runner::Summary;
    use crate::experiment::Metrics;

    struct Fake(&'static str, [f64; 3]);

    impl ClaimCtx for Fake {
        fn run(&mut self, name: &str, _sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
            let [r10, chance, zs] = self.1;
            let m: Metrics = [
                ("test_r10_i2t", r10),
                ("test_r10_t2i", r10),
                ("test_r1_i2t", 0.0),
                ("test_r1_t2i", 0.0),
                ("test_r5_i2t", 0.0),
                ("test_r5_t2i", 0.0),
                ("test_chance_r10", chance),
                ("test_zero_shot", zs),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            Ok(Summary {
                name: name.into(),
                run_dir: String::new(),
                data: self.0.into(),
                steps: 1,
                epochs: 1.0,
                wall_s: 1.0,
                steps_per_s: 1.0,
                params: 1,
                threads: 1,
                train_loss: 1.0,
                initial: Metrics::new(),
                final_metrics: m,
                config_hash: String::new(),
                frozen_params: 0,
                init_from: None,
            })
        }
    }

    #[test]
    fn passes_at_five_times_chance_on_both_and_fails_just_below_either() {
        let v = claim_clip(&mut Fake(DATA, [0.25, 0.05, 0.5])).unwrap();
        assert!(v.pass && (v.value - 5.0).abs() < 1e-9, "{v:?}");
        // retrieval just below 5x chance
        assert!(!claim_clip(&mut Fake(DATA, [0.2499, 0.05, 0.9])).unwrap().pass);
        // zero-shot just below 50%
        assert!(!claim_clip(&mut Fake(DATA, [0.9, 0.05, 0.4999])).unwrap().pass);
        let skipped = claim_clip(&mut Fake("digits8+no-emoji", [0.9, 0.05, 0.9])).unwrap();
        assert!(super::super::is_not_checked(&skipped), "{skipped:?}");
    }
}
