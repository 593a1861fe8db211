//! lora and full-finetune through the command line: without a `gpt` run the error names the
//! command that makes one; from a smoke `gpt` run, lora trains adapters only, its checkpoint
//! holds them plus the base reference (far smaller than full fine-tuning's), `sample` loads
//! base + adapters, and `compare lora full-finetune` reports val loss, trainable parameters and
//! checkpoint bytes.

mod common;

use common::Sandbox;

#[test]
fn lora_without_a_gpt_run_says_to_train_one() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "lora", "--steps", "2"]);
    out.expect_code(1).stderr_says(&["no checkpoint", "dlhist train gpt"]);
    sb.assert_no_complete_run();
    // sampling a lora that was never trained names both steps, in order
    let out = sb.run(&["sample", "lora"]);
    out.expect_code(1).stderr_says(&["no finished `lora` run", "dlhist train gpt && dlhist train lora"]);
}

#[test]
fn lora_trains_adapters_on_a_gpt_run_samples_and_compares() {
    let sb = Sandbox::new();
    let (g, l, f) = (sb.path("gpt"), sb.path("lora"), sb.path("full"));
    sb.train_smoke("gpt", &g, &[]);
    let base = format!("train.init_from={}", g.display());
    sb.train_smoke("lora", &l, &["--set", &base]);
    sb.train_smoke("full-finetune", &f, &["--set", &base]);
    let summary = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap()
    };
    let (ls, fs) = (summary(&l), summary(&f));
    let (lp, fp) = (ls["params"].as_u64().unwrap(), fs["params"].as_u64().unwrap());
    // rank 4 on c_attn (32 -> 96) and c_proj (32 -> 32) of the smoke model's layers
    assert!(lp > 0 && lp * 20 < fp, "lora trains {lp} parameters, full fine-tuning {fp}");
    assert_eq!(ls["frozen_params"].as_u64().unwrap(), fp, "lora freezes every base parameter");
    let bytes = |d: &std::path::Path| std::fs::metadata(d.join("model.safetensors")).unwrap().len();
    assert!(bytes(&l) * 10 < bytes(&f), "lora's checkpoint {} vs full fine-tuning's {}", bytes(&l), bytes(&f));
    let tensors = common::read_tensors(&l.join("model.safetensors"));
    assert!(tensors.keys().all(|n| n.starts_with("lora.")), "only adapters: {:?}", tensors.keys());
    // sample loads base + adapters
    let out = sb.run(&["--json", "sample", l.to_str().unwrap(), "--prompt", "Call me", "--n", "30"]);
    out.ok();
    assert_eq!(out.json()["sample"]["text"].as_str().unwrap().chars().count(), 30);
    // compare: val loss, trainable parameters, checkpoint bytes of both
    let cmp = sb.path("cmp");
    let mut args = vec!["compare", "lora", "full-finetune", "--steps", "3", "--out", cmp.to_str().unwrap()];
    args.extend(["--set", &base, "--set", "data.text=moby", "--set", "data.vocab_of=moby", "--set", "data.seq_len=32"]);
    let out = sb.run(&args);
    out.ok();
    for want in ["lora: val loss", "full-finetune: val loss", "trainable parameters", "checkpoint"] {
        assert!(out.stdout.contains(want), "{want:?} missing from\n{}", out.stdout);
    }
}
