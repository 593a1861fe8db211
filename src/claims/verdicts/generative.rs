//! Section 4, generative models and learning from human feedback.

use crate::claims::autoencoders::{MSE_MAX, PERPLEXITY_MIN, USED_GAP, USED_MIN};
use crate::claims::fake::{both, by_name, fails, run, Fake};

#[test]
fn the_vae_bound_is_at_most_100_nats() {
    let vae = |nelbo: f64| {
        let m = [("test_loss", nelbo), ("test_rec", nelbo - 20.0), ("test_kl", 20.0), ("test_active_units", 16.0)];
        by_name(vec![("vae", run("mnist", &m))])
    };
    both("vae", vae(100.0), vae(100.01));
}

/// vq-vae's and vq-vae-plain's test codebook usage, perplexity and MSE.
fn vq(reset: (f64, f64, f64), plain: (f64, f64, f64)) -> Fake {
    let r =
        |(u, p, m): (f64, f64, f64)| run("mnist", &[("test_used_frac", u), ("test_perplexity", p), ("test_mse", m)]);
    by_name(vec![("vq-vae", r(reset)), ("vq-vae-plain", r(plain))])
}

#[test]
fn the_vq_vae_uses_most_of_its_codebook_and_the_plain_one_does_not() {
    let good = (USED_MIN, PERPLEXITY_MIN, MSE_MAX);
    let plain = (0.5, 10.0, 0.005);
    both("vq-vae", vq(good, plain), vq((USED_MIN - 1e-3, 70.0, 0.004), plain));
    fails("vq-vae", vec![vq((0.99, PERPLEXITY_MIN - 0.1, 0.004), plain), vq((0.99, 70.0, MSE_MAX + 1e-4), plain)]);
    let reset = (0.95, 70.0, 0.004);
    both("vq-vae-plain", vq(reset, (0.95 - USED_GAP, 9.0, 0.005)), vq(reset, (0.95 - USED_GAP + 1e-3, 9.0, 0.005)));
}

/// The gan's validation FD: 10 at its first evaluation (update 500), `last` at the end.
fn gan(last: f64) -> Fake {
    let r = run("mnist", &[("val_fd", last), ("test_fd", last)]).curve("fd", &[(0, 50.0), (500, 10.0), (1000, last)]);
    by_name(vec![("gan", r)])
}

#[test]
fn the_gans_fd_falls_to_half_its_first_evaluation() {
    // step 0 is before training: the first evaluation after it is the reference
    let (p, _) = both("gan", gan(5.0), gan(5.01));
    assert!(p.value == 0.5 && p.detail.contains("final/step-500"), "{p:?}");
}

/// gan and diffusion's test FD and training seconds; ddpm's (linear schedule) test FD. Every run
/// takes 500 s of wall time: the claim compares training time (100 updates of 10·s ms), so the
/// evaluations and checkpoints in the wall time do not count.
fn fds(gan: (f64, f64), diffusion: (f64, f64), linear: f64) -> Fake {
    let r = |fd: f64, s: f64| run("mnist", &[("test_fd", fd), ("test_loss", 0.03)]).update_ms(10.0 * s).wall(500.0);
    by_name(vec![("gan", r(gan.0, gan.1)), ("diffusion", r(diffusion.0, diffusion.1)), ("ddpm", r(linear, 100.0))])
}

#[test]
fn diffusion_beats_the_gan_in_equal_time_and_the_cosine_schedule_is_no_worse() {
    both("diffusion", fds((10.0, 90.0), (9.999, 100.0), 9.0), fds((10.0, 90.0), (10.0, 100.0), 9.0));
    fails("diffusion", vec![fds((10.0, 89.9), (5.0, 100.0), 9.0)]);
    for name in ["ddpm", "ddpm-cosine"] {
        // the cosine schedule is `diffusion`: equal FDs pass
        both(name, fds((10.0, 90.0), (9.0, 100.0), 9.0), fds((10.0, 90.0), (9.0, 100.0), 8.999));
    }
}

/// The rlhf run: labeler score 1.0 before PPO, `score` after, with a final KL of `kl`.
fn rlhf(score: f64, kl: f64) -> Fake {
    let before = [("val_score", 1.0), ("val_reward", 0.0), ("val_sft_loss", 2.0)];
    let after = [("val_score", score), ("val_kl", kl), ("val_reward", 1.0), ("val_sft_loss", 2.1)];
    by_name(vec![("rlhf", run("verses", &after).initial(&before))])
}

#[test]
fn ppo_raises_the_labelers_score_within_the_kl_bound() {
    both("rlhf", rlhf(1.5, 4.0), rlhf(1.499, 4.0));
    fails("rlhf", vec![rlhf(2.0, 4.001)]);
}
