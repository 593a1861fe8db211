//! Black-box tests of `dlhist bench`: the JSON fields scripts rely on, the human table, usage
//! errors (exit 2 with a suggestion) and the op-bench section. Tiny budgets (`--trials 1
//! --steps 1..2`): these check the command, not the speed.

mod common;

use common::Sandbox;

const FIELDS: [&str; 11] = [
    "workload",
    "ms_per_step",
    "steps_per_s",
    "threads",
    "gflops",
    "gflop_per_step",
    "trials",
    "steps_per_trial",
    "min_ms",
    "max_ms",
    "shapes",
];

#[test]
fn help_shows_examples() {
    let out = Sandbox::new().run(&["bench", "--help"]);
    out.ok();
    assert!(out.stdout.contains("Examples:") && out.stdout.contains("dlhist bench"), "{}", out.stdout);
}

#[test]
fn json_has_one_row_per_named_workload_in_order_with_every_field() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "bench", "mlp", "lenet", "mlp", "--trials", "2", "--steps", "2"]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().unwrap_or_else(|| panic!("expected an array: {v}"));
    let names: Vec<&str> = rows.iter().map(|r| r["workload"].as_str().unwrap()).collect();
    assert_eq!(names, ["mlp", "lenet"], "duplicates dropped, order kept");
    for r in rows {
        for f in FIELDS {
            assert!(!r[f].is_null(), "field {f} missing in {r}");
        }
        let ms = r["ms_per_step"].as_f64().unwrap();
        assert!(ms > 0.0 && (r["steps_per_s"].as_f64().unwrap() - 1e3 / ms).abs() < 1e-6 * (1e3 / ms), "{r}");
        assert!(r["min_ms"].as_f64().unwrap() <= ms && ms <= r["max_ms"].as_f64().unwrap(), "{r}");
        assert_eq!(r["threads"], 2, "the sandbox runs with --threads 2");
        assert_eq!((r["trials"].as_u64(), r["steps_per_trial"].as_u64()), (Some(2), Some(2)));
        assert!(r["gflops"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!((rows[0]["gflop_per_step"].as_f64().unwrap() - 0.411).abs() < 0.001, "mlp: 3·2·128·535040 FLOP");
}

#[test]
fn human_output_is_a_table() {
    let out = Sandbox::new().run(&["bench", "lenet", "--trials", "1", "--steps", "1"]);
    out.ok();
    for s in ["workload", "ms/step", "steps/s", "GFLOP/s", "lenet", "threads"] {
        assert!(out.stdout.contains(s), "{s:?} missing:\n{}", out.stdout);
    }
}

#[test]
fn an_unknown_workload_exits_2_and_suggests_the_closest() {
    let sb = Sandbox::new();
    let out = sb.run(&["bench", "gpt2"]);
    out.expect_code(2).stderr_says(&["unknown workload `gpt2`", "did you mean `gpt`", "mlp, lenet, lstm, gpt"]);
    let out = sb.run(&["--json", "bench", "mlp", "lstmm"]);
    out.expect_code(2);
    assert!(out.json()["error"].as_str().unwrap().contains("did you mean `lstm`"), "{}", out.stdout);
    assert!(!out.stderr.contains("bench: mlp"), "nothing runs before every name is checked:\n{}", out.stderr);
}

#[test]
fn bad_counts_are_usage_errors() {
    let sb = Sandbox::new();
    for args in [&["bench", "--trials", "0"][..], &["bench", "--steps", "0"], &["bench", "--steps", "many"]] {
        let out = sb.run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains("--help"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn with_ops_json_has_workloads_and_op_rows() {
    let out = Sandbox::new().run(&["--json", "bench", "lenet", "--ops", "--trials", "1", "--steps", "1"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["workloads"].as_array().map(|a| a.len()), Some(1), "{v}");
    let ops = v["ops"].as_array().unwrap_or_else(|| panic!("no ops array: {v}"));
    // exactly the op registry, in its order (an empty list would pass the loop below)
    let names: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap_or("")).collect();
    let registry: Vec<&str> = dlhist::ops::all_benches().unwrap().iter().map(|b| b.name).collect();
    assert!(!registry.is_empty() && names == registry, "benched {names:?}, registered {registry:?}");
    for o in ops {
        for f in ["op", "shape", "fused_ms", "reference_ms", "speedup", "fused_peak_bytes", "reference_peak_bytes"] {
            assert!(!o[f].is_null(), "field {f} missing in {o}");
        }
    }
}
