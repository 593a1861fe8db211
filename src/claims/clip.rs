//! Catalogue section 5, image and text: `clip`'s claim (one run; retrieval between the held-out
//! emoji and their captions, and zero-shot classification of held-out MNIST digits, each
//! measured against chance) `dalle`'s and `dalle2`'s (one run each; a judge labels the digits they draw).
//! Without the emoji set or MNIST the claims are not checked.

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

/// `dalle`: the judge must label at least this fraction of the drawn images as prompted.
pub const DALLE_ACC: f64 = 0.5;

pub fn claim_dalle2(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("dalle2", &[])?;
    if s.data != "mnist" {
        return Ok(not_checked(format!(
            "dalle2 ran on `{}`, not MNIST (fetch it with `dlhist data fetch mnist`)",
            s.data
        )));
    }
    let acc = metric(&s, "test_acc")?;
    Ok(Verdict {
        value: acc,
        threshold: DALLE_ACC,
        pass: acc >= DALLE_ACC,
        detail: format!(
            "lenet labels {:.1}% of 100 images drawn for \"a handwritten N\" (10 per digit, prior then decoder, guidance 3) as N (chance 10%; claim ≥ {:.0}%); the prior's cosine to the image embeddings {:.3}; denoising loss on test images {:.4}",
            acc * 100.0,
            DALLE_ACC * 100.0,
            metric(&s, "test_prior_cos")?,
            metric(&s, "test_loss")?
        ),
    })
}

pub fn claim_dalle(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("dalle", &[])?;
    if s.data != "mnist" {
        return Ok(not_checked(format!(
            "dalle ran on `{}`, not MNIST (fetch it with `dlhist data fetch mnist`)",
            s.data
        )));
    }
    let acc = metric(&s, "test_acc")?;
    let rerank = s.metric("test_acc_rerank").map_or("not measured".to_string(), |r| format!("{:.1}%", r * 100.0));
    Ok(Verdict {
        value: acc,
        threshold: DALLE_ACC,
        pass: acc >= DALLE_ACC,
        detail: format!(
            "lenet labels {:.1}% of 200 images drawn for \"a handwritten N\" (20 per digit) as N (chance 10%; claim ≥ {:.0}%); best of 4 by CLIP: {rerank}; code loss on test images {:.3}",
            acc * 100.0,
            DALLE_ACC * 100.0,
            metric(&s, "test_loss")?
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

    /// dalle reads test_acc (here the fake's zero-shot slot) and test_loss (its chance slot).
    struct FakeDalle(&'static str, f64);

    impl ClaimCtx for FakeDalle {
        fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
            let mut s = Fake(self.0, [0.0, 1.0, 0.0]).run(name, sets)?;
            s.final_metrics = [("test_acc".to_string(), self.1), ("test_loss".to_string(), 2.0)].into_iter().collect();
            Ok(s)
        }
    }

    #[test]
    fn dalle_passes_when_half_the_drawn_digits_read_as_prompted_and_fails_just_below() {
        let v = claim_dalle(&mut FakeDalle("mnist", 0.5)).unwrap();
        assert!(v.pass && v.detail.contains("not measured"), "{v:?}");
        assert!(!claim_dalle(&mut FakeDalle("mnist", 0.4999)).unwrap().pass);
        assert!(super::super::is_not_checked(&claim_dalle(&mut FakeDalle("digits8", 0.9)).unwrap()));
    }

    #[test]
    fn dalle2_passes_when_half_the_drawn_digits_read_as_prompted_and_fails_just_below() {
        struct F(&'static str, f64);
        impl ClaimCtx for F {
            fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
                let mut s = FakeDalle(self.0, self.1).run(name, sets)?;
                s.final_metrics.insert("test_prior_cos".into(), 0.9);
                Ok(s)
            }
        }
        assert!(claim_dalle2(&mut F("mnist", 0.5)).unwrap().pass);
        assert!(!claim_dalle2(&mut F("mnist", 0.4999)).unwrap().pass);
        assert!(super::super::is_not_checked(&claim_dalle2(&mut F("digits8", 0.9)).unwrap()));
    }
}
