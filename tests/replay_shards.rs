//! Seeds and shards of `dlhist replay`, black-box: `--seeds N` reports each claim's values at N
//! seeds (mean, spread, per seed, and every compared run's metrics per seed); `--shard K/N`
//! splits the claims so the shards together run each exactly once; `--merge` joins the shards'
//! JSON into the verdicts one unsharded replay gives.

mod common;

use common::{Out, Sandbox};
use std::collections::BTreeMap;

/// Cheap claims whose smoke runs take seconds, from several studies.
const CHEAP: [&str; 10] =
    ["perceptron", "backprop", "mlp", "lenet", "cnn", "batchnorm", "no-norm", "sigmoid", "tanh", "relu"];

fn rows(out: &Out) -> Vec<serde_json::Value> {
    out.json().as_array().expect("replay --json prints a list").clone()
}

/// Each row's (name, status, value), in the rows' order.
fn verdicts(rows: &[serde_json::Value]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["status"].to_string(), r["value"].to_string()))
        .collect()
}

/// `--json replay --budget smoke` of the cheap claims: its arguments, and its output (checked ok).
fn smoke_replay(sb: &Sandbox) -> (Vec<&'static str>, Out) {
    let mut args = vec!["--json", "replay", "--budget", "smoke"];
    args.extend(CHEAP);
    let whole = sb.run(&args);
    whole.ok();
    (args, whole)
}

#[test]
fn replay_at_three_seeds_reports_the_mean_the_spread_and_each_seed() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "replay", "--seeds", "3", "perceptron", "relu"]);
    out.ok();
    for r in rows(&out) {
        let name = r["name"].as_str().unwrap();
        assert_eq!(r["seeds"], 3, "{name}");
        let per: Vec<f64> = r["per_seed"].as_array().unwrap().iter().map(|p| p["value"].as_f64().unwrap()).collect();
        assert_eq!(per.len(), 3, "{name}");
        let mean = per.iter().sum::<f64>() / 3.0;
        assert!((r["mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{name}: {r}");
        assert!(r["sd"].as_f64().unwrap() >= 0.0 && r["min"].as_f64().unwrap() <= r["max"].as_f64().unwrap());
        assert!(r["detail"].as_str().unwrap().contains("seeds"), "{name}: the verdict says it used the seeds");
        // every compared run reports each metric at each seed
        let runs = r["runs"].as_array().unwrap();
        assert!(!runs.is_empty(), "{name}");
        for run in runs {
            for (k, m) in run["metrics"].as_object().unwrap() {
                assert_eq!(m["per_seed"].as_array().unwrap().len(), 3, "{name} {k}");
            }
        }
        if name == "relu" {
            // the seeds are different runs: the fraction of zero activations moves with them
            assert!(per.iter().any(|v| (v - per[0]).abs() > 1e-9), "relu's three seeds gave {per:?}");
        }
    }
}

#[test]
fn a_replay_at_one_seed_is_the_replay_without_the_option() {
    let sb = Sandbox::new();
    let plain = sb.run(&["--json", "replay", "relu"]);
    let one = sb.run(&["--json", "replay", "--seeds", "1", "relu"]);
    let (a, b) = (&rows(&plain)[0], &rows(&one)[0]);
    assert_eq!(a["value"], b["value"]);
    assert_eq!(a["seeds"], 1);
    assert_eq!(a["per_seed"].as_array().unwrap().len(), 1);
}

#[test]
fn three_shards_run_every_claim_once_and_their_merge_equals_one_replay() {
    let sb = Sandbox::new();
    let (args, whole) = smoke_replay(&sb);
    let by_name = |rows: &[serde_json::Value]| -> BTreeMap<String, (String, String)> {
        verdicts(rows).into_iter().map(|(n, st, v)| (n, (st, v))).collect()
    };
    let want = by_name(&rows(&whole));
    let mut files = vec![];
    let mut seen: Vec<String> = vec![];
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let mut a = args.clone();
        a.extend(["--shard", &shard]);
        let out = sb.run(&a);
        out.ok();
        for r in rows(&out) {
            assert_eq!(r["shard"], shard.as_str());
            seen.push(r["name"].as_str().unwrap().to_string());
        }
        let f = sb.path(&format!("shard{k}.json"));
        std::fs::write(&f, &out.stdout).unwrap();
        files.push(f);
    }
    seen.sort();
    let mut all: Vec<String> = CHEAP.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(seen, all, "the three shards together run each claim exactly once");
    // batchnorm and no-norm share their runs: one shard holds both
    let mut merge = vec!["--json", "replay", "--merge"];
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    merge.extend(paths.iter().map(String::as_str));
    let merged = sb.run(&merge);
    merged.ok();
    let merged_rows = rows(&merged);
    let order: Vec<&str> = merged_rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(order, CHEAP, "the merge lists the claims in catalogue order");
    assert_eq!(by_name(&merged_rows), want);
    // the same file twice: an error that says what went wrong
    let twice = sb.run(&["replay", "--merge", &paths[0], &paths[0]]);
    twice.expect_code(2).stderr_says(&["two of the files"]);
}

#[test]
fn two_jobs_at_once_give_the_verdicts_and_values_of_one_replay_and_record_one_history_and_one_trace() {
    let sb = Sandbox::new();
    let (args, whole) = smoke_replay(&sb);
    let trace = sb.path("jobs-trace.json").display().to_string();
    let mut jobs = vec!["--trace", trace.as_str()];
    jobs.extend(args.iter().copied());
    jobs.extend(["--jobs", "2"]);
    let both = sb.run(&jobs);
    both.ok();
    // one trace: the parent as process 1, each study's child a process named by its claims,
    // with its steps; the children's part files are gone
    let events: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let studies: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["name"] == "process_name" && e["pid"] != 1).collect();
    assert!(studies.len() >= 2, "a process per study: {studies:?}");
    for s in &studies {
        assert!(events.iter().any(|e| e["pid"] == s["pid"] && e["name"] == "step"), "{s} has no steps");
    }
    assert!(!sb.path("jobs-trace.json.parts").exists());
    // the same claims, in catalogue order, with the same values (the studies ran at one thread)
    assert_eq!(verdicts(&rows(&both)), verdicts(&rows(&whole)));
    assert!(both.stderr.contains("2 at once (longest first)"), "{}", both.stderr);
    // one verdicts file per replay (the shards record none), and `dlhist history` reads the
    // joined one: every claim of the list has a status
    let hist = sb.run(&["--json", "history", "--out", &sb.path("h.png").display().to_string()]);
    hist.ok();
    let h = hist.json();
    let file = std::path::PathBuf::from(h["replay"].as_str().expect("history names the replay it read"));
    let dir = file.parent().unwrap();
    let files = std::fs::read_dir(dir)
        .unwrap()
        .filter(|f| f.as_ref().unwrap().file_name().to_string_lossy().starts_with("verdicts-"))
        .count();
    assert_eq!(files, 2, "the whole replay and the --jobs one record a file each, its studies none");
    let recorded: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(verdicts(&recorded), verdicts(&rows(&both)));
    // --jobs does not combine with --shard
    let mut bad = args.clone();
    bad.extend(["--jobs", "2", "--shard", "1/2"]);
    sb.run(&bad).expect_code(2);
}
