//! The sequence milestones through the command line: a char-LM trains on the built-in moby and
//! samples text from a prompt (unknown characters named in the error), `compare rnn lstm` prints
//! its table and writes its plot, and the continual Reber run, whose state carries from update to
//! update in checkpoint buffers, resumes exactly.

mod common;

use common::{assert_same_tensors, looks_complete, smoke, Sandbox};
use std::path::Path;

#[test]
fn lstm_trains_a_char_lm_and_samples_from_a_prompt() {
    let sb = Sandbox::new();
    // the sandbox has no fetched data: shakespeare falls back to the built-in moby, with a notice
    let dir = sb.path("run");
    let d = dir.to_str().unwrap();
    let train = sb.run(&["train", "lstm", "-c", &smoke("lstm"), "--set", "data.text=shakespeare", "--run-dir", d]);
    train.ok().stderr_says(&["shakespeare is not in", "using the built-in moby"]);
    assert!(train.stdout.contains("bpc"), "the report gives val bits per char:\n{}", train.stdout);
    let out = sb.run(&["sample", d, "--prompt", "Call me", "--n", "40", "--temperature", "0.8"]);
    out.ok();
    assert!(out.stdout.starts_with("Call me"), "{}", out.stdout);
    assert_eq!(out.stdout.strip_suffix('\n').unwrap_or("").chars().count(), "Call me".len() + 40, "{:?}", out.stdout);
    // the same seed gives the same text; JSON carries the prompt and the continuation
    let again = sb.run(&["--json", "sample", d, "--prompt", "Call me", "--n", "40", "--temperature", "0.8"]);
    let j = again.json();
    assert_eq!(j["sample"]["prompt"], "Call me");
    assert_eq!(format!("Call me{}\n", j["sample"]["text"].as_str().unwrap()), out.stdout);
    // a character moby never contains is named, with what to do
    let bad = sb.run(&["sample", d, "--prompt", "Call me ☃"]);
    bad.expect_code(2).stderr_says(&["'☃' (U+2603)", "use only these"]);
}

#[test]
fn compare_rnn_lstm_prints_a_table_and_writes_the_curves() {
    let sb = Sandbox::new();
    let out_dir = sb.path("cmp");
    let out = sb.run(&["compare", "rnn", "lstm", "-c", &smoke("rnn"), "--out", out_dir.to_str().unwrap()]);
    out.ok();
    let table = &out.stdout;
    for want in ["variant", "rnn", "lstm", "moby", "curves:"] {
        assert!(table.contains(want), "{want:?} missing from\n{table}");
    }
    let png = std::fs::read(out_dir.join("curves.png")).expect("the plot exists");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["study"], "char-lm");
    for v in summary["variants"].as_array().unwrap() {
        let bpc = v["summary"]["final"]["val_bpc"].as_f64().unwrap();
        assert!(bpc.is_finite() && bpc > 0.0, "{v}");
    }
}

#[test]
fn the_reber_stream_resumes_with_its_carried_state() {
    let sb = Sandbox::new();
    let (a, b) = (sb.path("A"), sb.path("B"));
    let preset = smoke("forget-gate");
    let run = |dir: &Path, steps: &str, resume: bool| {
        let d = dir.to_str().unwrap();
        if resume {
            // a resumed run keeps its config: only the budget is given again
            sb.run(&["train", "forget-gate", "--resume", "--run-dir", d, "--steps", steps]).ok();
        } else {
            // never reset on errors, so that the carried state is not zero (early on, every
            // chunk has an error)
            let never = "data.reset_on_error=false";
            sb.run(&["train", "forget-gate", "-c", &preset, "--set", never, "--run-dir", d, "--steps", steps]).ok();
        }
    };
    run(&a, "30", false);
    run(&b, "15", false);
    run(&b, "30", true);
    assert!(looks_complete(&a) && looks_complete(&b));
    // weights, optimizer state and the carried (h, c) buffers all agree
    assert_same_tensors(&a.join("ckpt/latest.safetensors"), &b.join("ckpt/latest.safetensors"));
    let t = common::read_tensors(&a.join("model.safetensors"));
    assert!(t.contains_key("state.h"), "{:?}", t.keys());
    assert!(t["state.c"].bytes.iter().any(|&b| b != 0), "the carried cell state is not all zero");
}
