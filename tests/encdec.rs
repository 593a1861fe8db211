//! The encoder–decoder milestones end to end on their smoke presets (the sandbox has no fetched
//! data: the synthetic cipher and moby stand in). `transformer` translates a prompt and writes
//! the cross-attention heatmap; `t5` chains from a `t5-pretrain` run through `train.init_from`
//! and answers both of its tasks, written as text.

mod common;

use common::Sandbox;

#[test]
fn transformer_translates_a_prompt_and_writes_the_cross_attention_heatmap() {
    let sb = Sandbox::new();
    let dir = sb.path("tr");
    sb.train_smoke("transformer", &dir, &[]);
    let d = dir.to_str().unwrap();
    let out = sb.run(&["sample", d, "--prompt", "In the beginning"]);
    out.ok();
    for p in ["translation:", "attention %", "cross-attention.png"] {
        assert!(out.stdout.contains(p), "{p}:\n{}", out.stdout);
    }
    let pngs: Vec<_> = std::fs::read_dir(dir.join("samples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("cross-attention.png"))
        .collect();
    assert_eq!(pngs.len(), 1, "one heatmap written");
    let v = sb.run(&["--json", "sample", d, "--prompt", "in the beginning"]).json();
    let matrix = v["sample"]["attention"].as_array().expect("a cross-attention matrix");
    assert_eq!(matrix.len(), v["sample"]["translation"].as_array().unwrap().len(), "one row per output word");
    for row in matrix {
        let row: Vec<f64> = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(row.len(), 3, "one column per source word");
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{row:?}");
    }
}

#[test]
fn t5_starts_from_the_pretraining_run_and_answers_both_tasks() {
    let sb = Sandbox::new();
    // without a finished t5-pretrain run, t5's preset (init_from = "t5-pretrain") says what to do
    let out = sb.run(&["train", "t5", "--steps", "1"]);
    assert_ne!(out.code, 0);
    out.stderr_says(&["t5-pretrain", "dlhist train t5-pretrain"]);
    sb.assert_no_complete_run();

    let pre = sb.path("pre");
    sb.train_smoke("t5-pretrain", &pre, &[]);
    let fine = sb.path("fine");
    let init = format!("train.init_from=\"{}\"", pre.display());
    let out = sb.train_smoke("t5", &fine, &["--set", &init]);
    out.stderr_says(&["init from", "0 missing", "0 unexpected"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fine.join("summary.json")).unwrap()).unwrap();
    for k in ["test_bleu", "test_acc", "test_answered", "test_acc_moby", "test_acc_cipher", "val_loss"] {
        assert!(summary["final"][k].is_number(), "{k} missing: {summary}");
    }
    let f = fine.to_str().unwrap();
    for prompt in ["source: Call me Ishmael.", "translate English to Spanish: call me ishmael"] {
        let v = sb.run(&["--json", "sample", f, "--prompt", prompt]).json();
        assert!(v["sample"]["output"].is_array() && v["sample"]["input"][0].is_string(), "{v}");
    }
    let out = sb.run(&["sample", f, "--prompt", "call me ishmael"]);
    out.ok();
    assert!(out.stdout.contains("neither task prefix"), "{}", out.stdout);
    // the pretraining stage fills sentinels
    let out = sb.run(&["sample", pre.to_str().unwrap(), "--prompt", "call me <x0> ."]);
    out.ok();
    assert!(out.stdout.contains("input:  call me <x0> ."), "{}", out.stdout);
    let out = sb.run(&["sample", f, "--n", "2"]);
    out.ok();
    assert!(out.stdout.contains("reference:") && out.stdout.contains("output:"), "{}", out.stdout);
}
