//! `dlhist replay --budget smoke --json` over every claim: the whole pipeline of each milestone
//! runs in seconds and its validation loss falls.

mod common;

use common::Sandbox;

#[test]
fn replay_at_smoke_budget_passes_every_claim_within_a_minute_each() {
    let sb = Sandbox::new();
    let out_dir = sb.path("replay");
    let out = sb.run(&["--json", "replay", "--budget", "smoke", "--out", out_dir.to_str().unwrap()]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().expect("an array of claims");
    let with_claim: Vec<&str> =
        dlhist::registry::entries().iter().filter(|e| e.claim.is_some()).map(|e| e.name).collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, with_claim, "one row per milestone with a claim");
    let mut bad = vec![];
    for r in rows {
        let name = r["name"].as_str().unwrap();
        if r["pass"] != true {
            bad.push(format!("{name} failed: {}", r["detail"]));
        }
        let secs = r["seconds"].as_f64().unwrap_or(f64::INFINITY);
        if secs >= 60.0 {
            bad.push(format!("{name} took {secs:.1}s at smoke budget (limit 60s)"));
        }
        assert_eq!(r["budget"], "smoke");
        assert!(r["claim"].is_string() && r["metric"].is_string(), "{r}");
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // claims that train the same run (the same folder) are kept in one shard by `--shard K/N`
    let mut by_dir: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for r in rows {
        for run in r["runs"].as_array().unwrap() {
            by_dir.entry(run["dir"].as_str().unwrap().to_string()).or_default().push(r["name"].as_str().unwrap());
        }
    }
    for n in 2..=4 {
        let shards: Vec<Vec<&str>> = (1..=n).map(|k| dlhist::claims::plan::shard(&with_claim, k, n)).collect();
        let home = |c: &str| shards.iter().position(|s| s.contains(&c));
        for (dir, claims) in &by_dir {
            assert!(
                claims.iter().all(|c| home(c) == home(claims[0])),
                "{claims:?} share run {dir} but --shard K/{n} splits them: link them in claims/plan.rs"
            );
        }
    }
    assert!(
        common::files_named(&out_dir, "summary.json").len() >= with_claim.len(),
        "each claim's runs are kept under --out"
    );
}
