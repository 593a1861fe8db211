//! The gpt milestones through the command line: the recipe trains on the built-in moby (the
//! sandbox has no fetched data) and samples with temperature and top-k (top-k 1 is greedy, a
//! fixed seed repeats, unknown prompt characters are named), and `compare gpt-xs gpt-s gpt-m`
//! fits and plots the power law of val loss against parameters.

mod common;

use common::{smoke, Sandbox};

#[test]
fn gpt_trains_and_samples_with_temperature_and_top_k() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    let d = dir.to_str().unwrap();
    sb.run(&["train", "gpt", "-c", &smoke("gpt"), "--run-dir", d]).ok();
    let sample = |args: &[&str]| {
        let mut all = vec!["--json", "sample", d, "--prompt", "Call me", "--n", "60"];
        all.extend(args);
        let out = sb.run(&all);
        out.ok();
        out.json()["sample"]["text"].as_str().unwrap().to_string()
    };
    let a = sample(&["--temperature", "0.8", "--top-k", "40", "--seed", "3"]);
    assert_eq!(a.chars().count(), 60);
    assert_eq!(a, sample(&["--temperature", "0.8", "--top-k", "40", "--seed", "3"]), "a fixed seed repeats");
    assert_ne!(a, sample(&["--temperature", "0.8", "--top-k", "40", "--seed", "4"]));
    // top-k 1 is greedy: the seed no longer matters
    assert_eq!(sample(&["--top-k", "1", "--seed", "1"]), sample(&["--top-k", "1", "--seed", "2"]));
    let bad = sb.run(&["sample", d, "--prompt", "ROMEO☃:", "--n", "5"]);
    bad.expect_code(2).stderr_says(&["'☃' (U+2603)", "use only these"]);
    let bad = sb.run(&["sample", d, "--top-k", "0"]);
    bad.expect_code(2);
}

#[test]
fn compare_of_the_ladder_fits_a_power_law_and_plots_it() {
    let sb = Sandbox::new();
    let out_dir = sb.path("cmp");
    let args = ["compare", "gpt-xs", "gpt-s", "gpt-m", "-c", &smoke("gpt-xs"), "--out", out_dir.to_str().unwrap()];
    let out = sb.run(&args);
    out.ok();
    for want in ["gpt-xs", "gpt-m", "power law: val loss =", "R²", "scaling:"] {
        assert!(out.stdout.contains(want), "{want:?} missing from\n{}", out.stdout);
    }
    let png = std::fs::read(out_dir.join("scaling.png")).expect("the log-log plot exists");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["study"], "gpt-scaling");
    let law = &summary["analysis"]["result"]["power_law"];
    assert!(law["alpha"].as_f64().unwrap().is_finite() && law["r2"].as_f64().unwrap() <= 1.0, "{law}");
    let points = summary["analysis"]["result"]["points"].as_array().unwrap();
    let params: Vec<f64> = points.iter().map(|p| p["params"].as_f64().unwrap()).collect();
    assert!(params[1] >= 5.0 * params[0] && params[2] >= 5.0 * params[1], "rungs at least 5x apart: {params:?}");
}
