//! The translation milestones end to end on their smoke presets. The sandbox has no fetched
//! data, so they run on the synthetic cipher fallback and must say so.

mod common;

use common::{smoke, Sandbox};

#[test]
fn training_without_the_verses_says_it_uses_the_synthetic_cipher() {
    let sb = Sandbox::new();
    let dir = sb.path("s2s");
    let out = sb.train_smoke("seq2seq", &dir, &["--set", "data.dataset=\"verses\""]);
    out.stderr_says(&["verse pairs are not in", "letter cipher", "not into Spanish", "dlhist data fetch verses"]);
    // and its samples say so too, not only the training
    let out = sb.run(&["sample", dir.to_str().unwrap(), "--prompt", "call me ishmael"]);
    out.ok();
    out.stderr_says(&["letter cipher", "not into Spanish"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["data"], "cipher");
    for k in ["test_bleu", "test_bleu_long", "test_bleu_short", "test_bleu_len_0-15", "val_loss"] {
        assert!(summary["final"][k].is_number(), "{k} missing: {summary}");
    }
}

#[test]
fn sample_translates_a_prompt_names_unknown_words_and_prints_the_attention_matrix() {
    let sb = Sandbox::new();
    let dir = sb.path("att");
    sb.train_smoke("attention", &dir, &[]);
    let d = dir.to_str().unwrap();
    let out = sb.run(&["sample", d, "--prompt", "Call me Ishmael, qwertyzz"]);
    out.ok();
    for p in ["translation:", "qwertyzz", "<unk>", "attention %", "ishmael", "attention.png"] {
        assert!(out.stdout.contains(p), "{p}:\n{}", out.stdout);
    }
    let v = sb.run(&["--json", "sample", d, "--prompt", "call me ishmael"]).json();
    let matrix = v["sample"]["attention"].as_array().expect("an attention matrix");
    let words = v["sample"]["translation"].as_array().unwrap();
    assert_eq!(matrix.len(), words.len(), "one attention row per output word");
    for row in matrix {
        let row: Vec<f64> = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(row.len(), 3, "one column per source word");
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{row:?}");
    }
    let out = sb.run(&["sample", d, "--prompt", "  "]);
    assert_ne!(out.code, 0);
    out.stderr_says(&["no words to translate"]);
    // without a prompt: test sentences with their references
    let out = sb.run(&["sample", d, "--n", "2"]);
    out.ok();
    assert!(out.stdout.contains("reference:") && out.stdout.contains("translation:"), "{}", out.stdout);
}

#[test]
fn compare_seq2seq_attention_prints_bleu_columns_and_writes_the_plot() {
    let sb = Sandbox::new();
    let out_dir = sb.path("cmp");
    let preset = smoke("seq2seq");
    let o = out_dir.to_str().unwrap();
    let out = sb.run(&["compare", "seq2seq", "attention", "-c", &preset, "--steps", "10", "--out", o]);
    out.ok();
    for p in ["variant", "seq2seq", "attention", "test_bleu", "test_bleu_long", "curves:"] {
        assert!(out.stdout.contains(p), "{p}:\n{}", out.stdout);
    }
    assert!(out_dir.join("curves.png").is_file());
}
