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
}

/// What an entry without a row below gets: one seed, a minute.
const DEFAULT_SECONDS: f64 = 60.0;

const fn p(name: &'static str, seconds: f64, seeds: usize, calibration: &'static str) -> Plan {
    Plan { name, seconds, seeds, calibration }
}

/// One seed, not calibrated across seeds yet.
const ONE: &str = "";

/// Every claim's plan, in catalogue order. Seconds: the replays of 2026-11-29 (sections 1-3,
/// idle machine) and 2026-12-04/05 (section 4, loaded machine).
const PLANS: &[Plan] = &[
    p("perceptron", 0.2, 1, ONE),
    p("backprop", 1.1, 1, ONE),
    p("mlp", 10.0, 1, ONE),
    p("lenet", 11.5, 1, ONE),
    p("cnn", 12.1, 1, ONE),
    p("alexnet", 84.9, 1, ONE),
    p("alexnet-tanh", 0.0, 1, ONE),
    p("unet", 113.3, 1, ONE),
    p("unet-noskip", 0.0, 1, ONE),
    p("weight-decay", 33.0, 3, ONE),
    p("no-decay", 0.0, 3, ONE),
    p("dropout", 69.6, 3, ONE),
    p("no-dropout", 0.0, 3, ONE),
    p("sgd", 27.7, 1, ONE),
    p("momentum", 0.0, 1, ONE),
    p("adam", 0.0, 1, ONE),
    p("batchnorm", 10.5, 1, ONE),
    p("no-norm", 0.0, 1, ONE),
    p("sigmoid", 3.2, 1, ONE),
    p("tanh", 7.1, 1, ONE),
    p("relu", 2.5, 1, ONE),
    p("gelu", 16.5, 3, ONE),
    p("layernorm", 33.7, 3, ONE),
    p("plain", 9.1, 1, ONE),
    p("residual", 0.0, 1, ONE),
    p("rnn", 14.6, 1, ONE),
    p("lstm", 20.9, 1, ONE),
    p("lstm-noforget", 9.1, 1, ONE),
    p("forget-gate", 0.0, 1, ONE),
    p("moe", 52.3, 1, ONE),
    p("dense", 0.0, 1, ONE),
    p("word2vec", 99.1, 1, ONE),
    p("phrase2vec", 115.7, 1, ONE),
    p("seq2seq", 60.0, 1, ONE),
    p("seq2seq-reversed", 0.0, 1, ONE),
    p("attention", 39.6, 1, ONE),
    p("gpt", 34.6, 1, ONE),
    p("gpt-xs", 108.4, 1, ONE),
    p("transformer", 222.3, 1, ONE),
    p("bert", 412.7, 1, ONE),
    p("roberta", 337.4, 1, ONE),
    p("vit", 147.6, 1, ONE),
    p("vae", 222.0, 1, ONE),
    p("vq-vae", 169.3, 1, ONE),
    p("vq-vae-plain", 140.9, 1, ONE),
    p("gan", 660.3, 1, ONE),
    p("diffusion", 726.6, 1, ONE),
    p("ddpm", 846.9, 1, ONE),
    p("ddpm-cosine", 0.0, 1, ONE),
];

/// The plan of claim `name` (a default for a claim without a row).
pub fn plan(name: &str) -> Plan {
    match PLANS.iter().find(|p| p.name == name) {
        Some(p) => Plan { ..*p },
        None => Plan { name: "", seconds: DEFAULT_SECONDS, seeds: 1, calibration: ONE },
    }
}

/// The default number of seeds of claim `name`.
pub fn default_seeds(name: &str) -> usize {
    plan(name).seeds
}

/// The claims of shard `k` of `n` (1-based) among `names` (catalogue order kept): claims sharing
/// runs stay together, and the groups are dealt longest first to the shard with the fewest
/// recorded seconds so far (ties to the lower shard), so the shards take about equally long.
/// Deterministic: the same names give the same shards on every machine.
pub fn shard(names: &[&'static str], k: usize, n: usize) -> Vec<&'static str> {
    let entries: Vec<&'static Entry> = names.iter().filter_map(|n| registry::get(n).ok()).collect();
    // a claim's runs are its study's variants (tests/replay_smoke.rs checks that no two studies
    // share a run), so a study is the unit dealt to a shard
    let group: Vec<&str> = entries.iter().map(|e| e.study).collect();
    let mut cost: BTreeMap<&str, f64> = BTreeMap::new();
    for (e, g) in entries.iter().zip(&group) {
        *cost.entry(*g).or_default() += plan(e.name).seconds;
    }
    let mut order: Vec<(&str, f64)> = cost.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut load = vec![0.0f64; n];
    let mut shard_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (g, c) in order {
        let s = (0..n).min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b))).unwrap_or(0);
        load[s] += c;
        shard_of.insert(g, s);
    }
    entries.iter().zip(&group).filter(|(_, g)| shard_of[*g] + 1 == k).map(|(e, _)| e.name).collect()
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
        let biggest_group = 660.3 + 726.6 + 846.9; // gan, diffusion, ddpm: one study
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
        }
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
