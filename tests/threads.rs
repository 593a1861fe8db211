//! Training does not depend on the thread count: every sum in the fused ops is split into chunks
//! fixed by the shapes (kernels/README.md), so 50 lenet steps on 1 and on 2 threads give bitwise
//! the same weights. lenet covers conv2d's batch-chunked dw/db, max-pool, linear and Adam; gpt
//! in shards covers attention, LayerNorm, GELU and the shards' gradient sum.

mod common;

use common::{assert_same_tensors, read_tensors, smoke, Out, Sandbox, BIN};
use std::path::Path;
use std::process::{Command, Stdio};

/// `dlhist --threads N train NAME` on its smoke preset (lenet: digits8, gpt: moby; the sandbox
/// has no fetched data) for `steps` steps into `dir`, with `extra` arguments; its JSON summary.
/// Not `Sandbox::run`, which always passes `--threads 2`.
fn train(sb: &Sandbox, name: &str, threads: &str, steps: &str, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["--threads", threads, "train", name, "-c", &smoke(name), "--steps", steps, "--json"])
        .args(extra)
        .arg("--run-dir")
        .arg(dir)
        .current_dir(sb.tmp.path())
        .env("DLHIST_RUNS", &sb.runs)
        .env("DLHIST_DATA", &sb.data)
        .env_remove("DLHIST_LOG")
        .env_remove("RAYON_NUM_THREADS")
        .env_remove("CANDLE_NUM_THREADS")
        .stdin(Stdio::null())
        .output()
        .expect("dlhist starts");
    Out::from(out).ok().json()
}

#[test]
fn lenet_on_1_and_2_threads_gives_bitwise_equal_weights() {
    let sb = Sandbox::new();
    let (one, two) = (sb.path("t1"), sb.path("t2"));
    train(&sb, "lenet", "1", "50", &one, &[]);
    train(&sb, "lenet", "2", "50", &two, &[]);
    assert_same_tensors(&one.join("model.safetensors"), &two.join("model.safetensors"));
}

/// gpt's preset splits each batch into two shards run side by side (`train.shards`); their
/// gradients are summed in shard order, so the thread count still changes no bit. Against the
/// unsplit batch the weights differ by rounding only: the val losses agree to 1e-4.
#[test]
fn gpt_in_two_shards_gives_bitwise_equal_weights_on_1_2_and_3_threads_and_the_unsplit_loss() {
    let sb = Sandbox::new();
    let dirs: Vec<_> = ["1", "2", "3", "whole"].iter().map(|t| sb.path(&format!("gpt-{t}"))).collect();
    let shards = |threads, dir| train(&sb, "gpt", threads, "12", dir, &["--set", "train.shards=2"]);
    let split = shards("1", &dirs[0]);
    shards("2", &dirs[1]);
    shards("3", &dirs[2]);
    let whole = train(&sb, "gpt", "2", "12", &dirs[3], &["--set", "train.shards=1"]);
    for d in &dirs[1..3] {
        assert_same_tensors(&dirs[0].join("model.safetensors"), &d.join("model.safetensors"));
    }
    let loss = |j: &serde_json::Value| j["final"]["val_loss"].as_f64().expect("a val loss");
    let (a, b) = (loss(&split), loss(&whole));
    assert!((a - b).abs() < 1e-4 * b, "two shards: val loss {a}, the whole batch: {b}");
    // (else the run ignored the setting)
    assert_ne!(
        read_tensors(&dirs[0].join("model.safetensors")),
        read_tensors(&dirs[3].join("model.safetensors")),
        "the shards' gradient sum should round differently from the whole batch's"
    );
}
