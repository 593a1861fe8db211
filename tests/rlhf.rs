//! `rlhf`'s three stages chained through run directories, end to end on the smoke preset: the
//! PPO run trains the SFT model and the reward model it needs (kept as runs of their own), and
//! `sample rlhf` shows the same prompts before and after.

mod common;

use common::{files_named, Sandbox};

#[test]
fn rlhf_trains_its_sft_and_reward_runs_and_samples_the_same_prompts_before_and_after() {
    let sb = Sandbox::new();
    let dir = sb.path("rlhf");
    sb.train_smoke("rlhf", &dir, &[]);
    // the needed runs were trained once, into the runs root, and the PPO run names them
    let summaries = files_named(&sb.runs, "summary.json");
    let names: Vec<String> = summaries
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    for stage in ["sft", "reward-model"] {
        assert_eq!(names.iter().filter(|n| *n == stage).count(), 1, "one `{stage}` run: {names:?}");
    }
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let val: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["split"] == "val")
        .collect();
    assert!(val.len() >= 2, "validation lines every 3 PPO updates: {log}");
    for key in ["score", "reward", "kl", "sft_loss"] {
        assert!(val.iter().all(|v| v[key].as_f64().is_some_and(f64::is_finite)), "{key} logged: {log}");
    }

    let d = dir.to_str().unwrap();
    let v = sb.run(&["--json", "sample", d, "--n", "3", "--seed", "5"]).json();
    let items = v["sample"]["samples"].as_array().expect("samples");
    assert_eq!(items.len(), 3);
    for it in items {
        let (p, sft, rl) = (it["prompt"].as_str().unwrap(), it["sft"].as_str().unwrap(), it["rlhf"].as_str().unwrap());
        assert!(!p.is_empty() && !sft.is_empty() && !rl.is_empty(), "{it}");
        assert!(it["sft_score"].is_number() && it["rlhf_score"].is_number(), "{it}");
    }
    // a fixed seed repeats the draws
    let again = sb.run(&["--json", "sample", d, "--n", "3", "--seed", "5"]).json();
    assert_eq!(v["sample"], again["sample"]);
    // a prompt too long for the block is a usage error that gives the limit
    let long = "x".repeat(500);
    sb.run(&["sample", d, "--prompt", &long]).expect_code(2).stderr_says(&["--prompt must have 1 to"]);
}
