//! How `replay` plans the claims: how many seeds each claim runs by default (chosen from a
//! calibration across seeds: one where the margin is many times the seed-to-seed spread, more
//! where it is not), and how long each took at the full budget (to balance `--shard K/N`, which
//! keeps the claims of one study, which share runs, in one shard so no run is trained twice).

use crate::registry::{self, Entry};
use std::collections::BTreeMap;

/// A claim's replay plan.
pub struct Plan {
    pub name: &'static str,
    /// seconds of the claim at the full budget and its default seeds, in the last full replay on
    /// 2 cores (0: its runs are shared with a claim before it, which pays for them)
    pub seconds: f64,
    /// default number of seeds
    pub seeds: usize,
    /// the calibration that chose `seeds`: margin and spread across seeds, or why one seed
    pub calibration: &'static str,
    /// one seed only because three take longer than the claim's time cap, though the
    /// calibration's margin is under 3 seed sd: each verdict at one seed says so
    pub over_cap: bool,
}

/// What an entry without a row below gets: one seed, a minute.
const DEFAULT_SECONDS: f64 = 60.0;

const fn p(name: &'static str, seconds: f64, seeds: usize, calibration: &'static str) -> Plan {
    Plan { name, seconds, seeds, calibration, over_cap: false }
}

/// One seed because three would take longer than the claim's time cap (the rule below).
const fn capped(name: &'static str, seconds: f64, calibration: &'static str) -> Plan {
    Plan { name, seconds, seeds: 1, calibration, over_cap: true }
}

/// One seed, not calibrated across seeds yet.
const ONE: &str = "";

// The rule: a claim runs one seed where its margin (value − threshold) is at least 3 seed
// standard deviations (measured with `dlhist --threads 2 replay --seeds 3 NAME --json`,
// 2026-12-05, the machine loaded by other jobs: seconds are upper bounds), and three where it is
// not. At three seeds the verdict compares the means; where even that margin is within the
// spread, the verdict says so. Since 2026-12-06 the claims of the modern half have a time cap
// (each claim's replay at most 5 minutes on 2 cores, the diffusion claims 10): a claim whose
// three seeds take longer runs one (`capped`), and its verdict says that one seed may not decide
// it and that `--seeds 3` gives the means. The cap is counted per claim: a claim's own
// seconds, without runs a claim before it paid for. Its seconds are then one seed's: the three-seed
// replay's divided by three unless a one-seed replay measured them.

/// Every claim's plan, in catalogue order. Seconds: sections 1-3 from one replay at their
/// default seeds on 2026-12-05 (`dlhist --threads 2 replay <the 36 names> --json`, 21 min 37 s of
/// wall time, otherwise idle machine); sections 4-5 from replays of 2026-12-04/05 (loaded
/// machine, upper bounds), except gan, vae, vq-vae, diffusion, ddpm, clip, dalle and dalle2:
/// `dlhist --threads 2 replay gan vae vq-vae diffusion ddpm ddpm-cosine clip dalle dalle2 --json`
/// at their default seeds, 2026-12-06 10:46-11:54 UTC (1 h 8 min, a quiet machine with 512-bit
/// FMAs at half rate, the direct convolutions), every value as before.
const PLANS: &[Plan] = &[
    p("perceptron", 0.2, 1, "3 seeds: every seed's best of 8 solves 50% of XOR, against ≤ 75%: margin 0.25, seed sd 0"),
    p("backprop", 1.1, 1, "3 seeds of its 8 seeds: margin +0.29 (the weaker task, XOR or symmetry, solved by 50–63% of seeds, needs 25%), seed sd 0.072: 4.0x"),
    p("mlp", 7.4, 1, "3 seeds: margin +0.0035 (test accuracy 98.35% vs 98%), seed sd 0.0007: 5.2x"),
    p("lenet", 26.0, 3, "3 seeds: margin +0.0008 (test accuracy 99.08% vs 99%), seed sd 0.0011: 0.7x, within noise (one seed of three ends at 98.99%)"),
    p("cnn", 10.8, 1, "3 seeds: margin +0.0030 (test accuracy 97.80% vs 97.5%), seed sd 0.0010: 3.0x"),
    // alexnet and plain: since their runs score only training data (`train.eval_heldout`), their
    // replay seconds fell to 0.45x (alexnet) and 0.81x (plain) in the `--jobs 2` replay of
    // 2026-12-05 22:18; the seconds below are the earlier 2-thread ones scaled by that
    p("alexnet", 111.0, 1, "3 seeds: ReLU reaches the level in 0.78x tanh's updates on the mean curves (0.78, 0.67, 0.89 per seed) against the ≥ 2x claimed: margin −1.22, seed sd 0.11: 11x, a FAIL at any seed"),
    p("alexnet-tanh", 0.0, 1, "as alexnet (the same runs): 11x"),
    p("unet", 190.7, 3, "3 seeds: skips ahead by +0.111, +0.115 and −0.042 mean IoU against +0.05: margin +0.011, seed sd 0.090, within noise"),
    p("unet-noskip", 0.0, 3, "as unet (the same runs): within noise"),
    p("weight-decay", 17.6, 3, "3 seeds: margin −0.0047 test error (10.45% vs 10.93%), seed sd 0.0029: 1.6x"),
    p("no-decay", 0.0, 3, "as weight-decay (the same runs): 1.6x"),
    p("dropout", 20.4, 1, "3 seeds: margin +0.0061 test accuracy (93.47% vs 92.86%), seed sd 0.0011: 5.8x"),
    p("no-dropout", 0.0, 1, "as dropout (the same runs): 5.8x"),
    p("sgd", 23.8, 1, "3 seeds: margin +0.23 train loss (sgd 0.298 vs adam 0.070), seed sd 0.0014: 160x"),
    p("momentum", 0.0, 1, "3 seeds, sgd's runs: margin 0.22 train loss (momentum 0.081 vs sgd 0.298), seed sd ≤ 0.005"),
    p("adam", 0.0, 1, "3 seeds, sgd's runs: margins 0.23 (mlp) and 0.12 (char-LM) train loss, seed sd ≤ 0.005"),
    p("batchnorm", 29.2, 3, "3 seeds: margin −125 updates to 97% (means 400 vs 525 half of no-norm's), seed sd 88: 1.4x"),
    p("no-norm", 0.0, 3, "as batchnorm (the same runs): 1.4x"),
    p("sigmoid", 2.5, 1, "3 seeds: margin +0.31 train loss, seed sd 0.0008: 370x"),
    p("tanh", 5.8, 1, "3 seeds: margin 2.23 train loss, seed sd 0.0045: 490x"),
    p("relu", 1.8, 1, "3 seeds: margin +0.033 (53.3% zeros vs 50%), seed sd 0.0045: 7.3x"),
    p("gelu", 8.3, 3, "3 seeds: margin −0.0002 train loss (gelu 0.0898 vs relu 0.0901), seed sd 0.0061: within noise even at 3 seeds (the preset's seed alone fails: 0.0939 vs 0.0876)"),
    p("layernorm", 20.5, 3, "3 seeds: margin −0.034 val loss (2.188 vs 2.222), seed sd 0.014: 2.4x"),
    // plain and residual: 3 seeds since 2026-12-05 (one before); the seconds are those of the
    // 3-seed full replay of 2026-12-05 16:00 (780.6 s on a machine running 1.69x slower than the
    // idle one, the median ratio over the 19 other claims of over 5 s), scaled to the idle machine
    p("plain", 373.0, 3, "the CIFAR protocol, 3 seeds: margin +0.48 train loss (plain-56 1.023 vs plain-20 0.539), seed sd 0.055: 8.8x; three seeds because residual, which shares its runs, needs them"),
    p("residual", 0.0, 3, "3 seeds: margin −0.0019 train loss (residual-56 0.537 vs plain-20 0.539; per seed 0.545, 0.603, 0.464), seed sd 0.060: within noise even at 3 seeds (the preset's seed alone passes by 0.011)"),
    p("rnn", 13.5, 1, "3 seeds: margin 0.55 bits/char below the bound, seed sd 0.012: 46x"),
    p("lstm", 19.3, 1, "3 seeds: margin 0.0039 MSE (lstm 0.0001 vs ≤ 0.004), seed sd 0.0001: 45x"),
    // the forget-gate study: 3 seeds since 2026-12-05 (one before); seconds scaled as above
    // (30.4 s measured)
    p("lstm-noforget", 17.9, 3, "3 seeds, each the mean of the claim's own three: without the gate 81.6%, 60.1% and 99.5% of the strings right against ≤ 50%: margin +0.30, seed sd 0.20: 1.5x"),
    p("forget-gate", 0.0, 3, "3 seeds: with the gate 99.9% of the strings right at every seed against ≥ 90%: margin +0.099, seed sd 0.0002; three seeds because lstm-noforget, which shares its runs, needs them"),
    p("moe", 42.5, 1, "3 seeds: margin −0.027 val loss (moe vs dense), seed sd 0.0022: 12.6x"),
    p("dense", 0.0, 1, "as moe (the same runs): 12.6x"),
    p("word2vec", 83.0, 1, "3 seeds: margin +0.016 analogy accuracy (5.6% vs 4%), seed sd 0.0043: 3.8x"),
    p("phrase2vec", 92.4, 1, "3 seeds: 2,308 phrase tokens at every seed against 1,000: margin 1,308, seed sd 0"),
    p("seq2seq", 142.1, 3, "one seed's BLEU moves by tenths with the rounding of the run while the threshold is +0.5 BLEU (see BEFORE in the text above), so three seeds by protocol, without a separate calibration"),
    p("seq2seq-reversed", 0.0, 3, "as seq2seq (the same runs)"),
    p("attention", 99.4, 3, "3 seeds: margin +1.96 BLEU on long sources (mean 7.19 vs 5.23 needed), seed sd 2.58: 0.8x, within noise (seeds 9.85, 7.15, 4.57: one of three fails)"),
    p("gpt", 34.6, 1, "3 seeds: val loss 1.8526, 1.8365, 1.8358 against ≤ 1.93: margin −0.077, seed sd 0.0095: 8.1x (the time half is not a seed effect: 62.4 s of training per seed on 2026-12-05's machine, which ran 1.69x slow, against ≤ 34 s; FAIL there)"),
    p("gpt-xs", 108.4, 1, "3 seeds: power-law exponent 0.0641, 0.0668, 0.0627 against > 0 (each larger model lower at every seed): margin +0.065, seed sd 0.0021: 31x"),
    p("lora", 138.4, 1, "3 seeds: LoRA's val loss 1.0894, 1.1016, 1.0941x full fine-tuning's against ≤ 1.05x (1.49% of the parameters trainable at every seed): margin +0.045, seed sd 0.0061: 7.3x, a FAIL at any seed"),
    p("rlhf", 106.0, 1, "3 seeds: the labeler's score rises −0.97, −0.58, −0.59 against ≥ +0.5 (KL far above 4 nats): margin −1.21, seed sd 0.22: 5.5x, a FAIL at any seed"),
    capped("transformer", 182.3, "3 seeds: test BLEU 13.34, 12.64, 12.95 against attention's 10.08, 7.71, 5.11: margin +3.84 over the +1.5 needed, seed sd of the difference 2.32: 1.7x, so three seeds (the claim FAILs on its time half at every seed: 1.11x attention's time per epoch against below 1x, not a seed effect); one seed by default since 2026-12-06: three took 547 s, over the 5-minute cap (182 s a seed)"),
    capped("t5", 194.7, "3 seeds: test BLEU 6.05, 10.99, 9.93 against ≥ 3: the preset seed's margin +3.05 is 1.2 seed sd (2.60), so three seeds; the mean's margin +5.99 is 2.3 sd (provenance accuracy above its 54% at every seed); one seed by default since 2026-12-06: three took 584 s, over the 5-minute cap (195 s a seed)"),
    // bert and roberta: 3 seeds from 2026-12-05 (`replay --seeds 3 bert roberta`, 28 min 30 s,
    // the machine slowed and briefly shared with a build) to 2026-12-06; one seed since, and the
    // seconds are one seed's, from `dlhist --threads 2 replay --seeds 1 bert roberta lora`
    // (2026-12-06 14:03, a quiet machine, the same values), as are lora's
    p("bert", 303.5, 1, "3 seeds: pretrained fine-tunes to 92.72%, 92.75%, 92.87% against scratch's +5 points (87.43%, 88.13%, 87.20% needed): margin +0.052, seed sd 0.0053: 9.8x; one seed by the rule above (three only while roberta, which shares its runs, ran three; since 2026-12-06 roberta is capped at one); at one seed its replay takes 303.5 s, over the 5-minute cap by 1%"),
    capped("roberta", 281.5, "3 seeds: roberta 92.67%, 92.45%, 92.93% against bert's 92.72%, 92.75%, 92.87%: margin −0.0009, seed sd 0.0019: 0.5x, within noise (one seed of three passes); one seed by default since 2026-12-06: three took 700 s, over the 5-minute cap (282 s a seed)"),
    p("vit", 147.6, 1, "3 seeds: test accuracy gap with all images 0.89, 0.43, 0.35 points against at most half the 1,000-image gap (3.95 points at the preset seed): margin −0.034, seed sd 0.0029: 12x"),
    p("vae", 128.0, 1, "3 seeds: test −ELBO 95.39, 95.17, 95.85 nats against ≤ 100: margin −4.53, seed sd 0.35: 13x"),
    p("vq-vae", 66.3, 1, "3 seeds: 100% of the 128 codes in use at every seed against ≥ 90%: margin 0.10, seed sd 0"),
    p("vq-vae-plain", 140.9, 1, "3 seeds: codebook usage without the remedies 45.3%, 43.8%, 39.8% against at most vq-vae's 100% − 20 points: margin −0.37, seed sd 0.028: 13x"),
    // gan and diffusion: since 2026-12-06 17:20 the GAN trains 9,000 updates and diffusion is
    // compared at the GAN's first evaluation that reaches its training time (see `dlhist info
    // diffusion`), calibrated with `dlhist --threads 2 replay --seeds 3 gan diffusion` (31 min, a
    // quiet machine); the seconds are one seed's, from the one-seed replay of issue 12's seven
    // claims that followed it (gan's with the lenet for FD trained in it, on an empty runs
    // folder). ddpm: `replay --seeds 3 gan diffusion ddpm ddpm-cosine` (1 h 16 min, 2026-12-06,
    // slowed) and the replay named above PLANS (10:46), per seed
    p("gan", 270.4, 1, "3 seeds (2026-12-06 17:21, 9,000 updates): final/step-500 validation FD 0.1142, 0.1466, 0.1362 against ≤ 0.5: margin −0.369, seed sd 0.017: 22x (at 8,000 updates 0.1207, 0.1452, 0.1491, 24x; at 18,000, the fused step, 42x)"),
    capped("diffusion", 322.2, "3 seeds (2026-12-06 17:21, the GAN at 9,000 updates, compared at its first evaluation that reaches diffusion's training time): test FD diffusion 55.12, 32.60, 35.32 against the GAN's 75.83 (its final evaluation: 0.916 of diffusion's time, ≥ 0.9), 84.18 and 84.49 (step 8,000): differences +20.7, +51.6, +49.2, margin +49.5, seed sd 17.2: 2.9x; one seed by default since three take 1,594 s with the GAN's runs, over the diffusion claims' 10-minute cap (the GAN at 8,000 updates compared at its end: margin +42.0, seed sd 14.5, seed 3 NOT MET; at 18,000: margin −8.2, within noise)"),
    capped("ddpm", 296.1, "3 seeds (2026-12-06): test FD cosine 55.12, 32.60, 35.32 against linear 34.23, 35.77, 30.44: margin −7.5, seed sd 12.2: 0.6x, within noise (one seed of three passes); one seed by default since 2026-12-06: three took 888 s, over the diffusion claims' 10-minute cap (296 s a seed)"),
    capped("ddpm-cosine", 0.0, "shares ddpm's runs and its calibration (2026-12-06): 3 seeds, margin −7.5 FD within the seed sd 12.2; one seed by default since 2026-12-06, as ddpm"),
    p("clip", 58.6, 1, "3 seeds: the smaller of the two multiples of chance 8.92x, 8.28x, 8.31x against ≥ 5x: margin +3.92, seed sd 0.36: 10.9x"),
    p("dalle", 282.6, 1, "3 seeds: lenet labels 90.0%, 88.5%, 89.5% of the images drawn for the ten prompts as prompted against ≥ 50%: margin +0.39, seed sd 0.0076: 51x"),
    p("dalle2", 139.9, 1, "3 seeds: lenet labels 25%, 31%, 27% of the drawn images as prompted against ≥ 50%: margin −0.22, seed sd 0.031: 7.3x, a FAIL at any seed"),
];

/// The plan of claim `name` (a default for a claim without a row).
pub fn plan(name: &str) -> Plan {
    match PLANS.iter().find(|p| p.name == name) {
        Some(p) => Plan { ..*p },
        None => Plan { name: "", seconds: DEFAULT_SECONDS, seeds: 1, calibration: ONE, over_cap: false },
    }
}

/// The default number of seeds of claim `name`.
pub fn default_seeds(name: &str) -> usize {
    plan(name).seeds
}

/// What a verdict at one seed of a `capped` claim adds: that its calibration's margin was under
/// 3 seed sd, so this seed alone may not decide it (None for any other claim).
pub fn one_seed_caveat(name: &str) -> Option<String> {
    plan(name).over_cap.then(|| {
        format!(
            "one seed (its default, since three take longer than the claim's time cap): at 3 seeds the calibration's margin was under 3 seed sd (`dlhist info {name}`), so one seed may not decide it; `dlhist replay --seeds 3 {name}` compares the means"
        )
    })
}

/// The studies among `names`, longest first by recorded seconds (ties by study name), each as
/// its claims in catalogue order with their seconds: claims that share runs are one study
/// (tests/replay_smoke.rs checks that no two studies share a run), the unit `--shard` deals
/// out and `--jobs` schedules.
pub fn studies(names: &[&'static str]) -> Vec<(Vec<&'static str>, f64)> {
    let entries: Vec<&'static Entry> = names.iter().filter_map(|n| registry::get(n).ok()).collect();
    let mut by_study: BTreeMap<&str, (Vec<&'static str>, f64)> = BTreeMap::new();
    for e in &entries {
        let s = by_study.entry(e.study).or_default();
        s.0.push(e.name);
        s.1 += plan(e.name).seconds;
    }
    let mut order: Vec<(&str, (Vec<&'static str>, f64))> = by_study.into_iter().collect();
    order.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1).then(a.0.cmp(b.0)));
    order.into_iter().map(|(_, s)| s).collect()
}

/// The claims of shard `k` of `n` (1-based) among `names` (catalogue order kept): claims sharing
/// runs stay together, and the studies are dealt longest first to the shard with the fewest
/// recorded seconds so far (ties to the lower shard), so the shards take about equally long.
/// Deterministic: the same names give the same shards on every machine.
pub fn shard(names: &[&'static str], k: usize, n: usize) -> Vec<&'static str> {
    let mut load = vec![0.0f64; n];
    let mut mine: Vec<&'static str> = vec![];
    for (claims, c) in studies(names) {
        let s = (0..n).min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b))).unwrap_or(0);
        load[s] += c;
        if s + 1 == k {
            mine.extend(claims);
        }
    }
    names.iter().copied().filter(|n| mine.contains(n)).collect()
}

/// Parses `K/N` (1 ≤ K ≤ N).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard takes K/N with 1 ≤ K ≤ N, e.g. 2/3 (got `{s}`)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Vec<&'static str> {
        registry::entries().iter().filter(|e| e.claim.is_some()).map(|e| e.name).collect()
    }

    #[test]
    fn the_shards_together_hold_every_claim_exactly_once() {
        let all = claims();
        for n in 1..=5 {
            let mut seen: Vec<&str> = (1..=n).flat_map(|k| shard(&all, k, n)).collect();
            assert_eq!(seen.len(), all.len(), "{n} shards");
            seen.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(seen, want, "{n} shards");
        }
        assert_eq!(shard(&all, 1, 1), all, "one shard is the whole replay, in catalogue order");
    }

    #[test]
    fn claims_that_share_runs_share_a_shard_and_the_shards_are_balanced() {
        let all = claims();
        let shards: Vec<Vec<&str>> = (1..=3).map(|k| shard(&all, k, 3)).collect();
        let home = |n: &str| shards.iter().position(|s| s.contains(&n)).unwrap();
        for pair in [("alexnet", "alexnet-tanh"), ("diffusion", "gan"), ("lstm", "rnn"), ("transformer", "attention")] {
            assert_eq!(home(pair.0), home(pair.1), "{pair:?}");
        }
        let secs: Vec<f64> = shards.iter().map(|s| s.iter().map(|n| plan(n).seconds).sum()).collect();
        let total: f64 = secs.iter().sum();
        let biggest_group: f64 = ["gan", "diffusion", "ddpm"].iter().map(|n| plan(n).seconds).sum(); // one study
        for s in &secs {
            assert!(*s <= (total / 3.0).max(biggest_group) + 450.0, "unbalanced: {secs:?}");
        }
    }

    #[test]
    fn every_plan_names_a_claim_and_seeds_are_at_least_one() {
        for p in PLANS {
            let e = registry::get(p.name).unwrap_or_else(|_| panic!("plan `{}` names no entry", p.name));
            assert!(e.claim.is_some(), "plan `{}`: no claim", p.name);
            assert!(p.seeds >= 1);
            assert!(!p.over_cap || p.seeds == 1, "plan `{}`: capped at one seed", p.name);
            assert_eq!(one_seed_caveat(p.name).is_some(), p.over_cap, "{}", p.name);
        }
        assert!(one_seed_caveat("ddpm").unwrap().contains("--seeds 3 ddpm"));
        assert_eq!(one_seed_caveat("mlp"), None, "a claim whose one seed is calibrated adds nothing");
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
