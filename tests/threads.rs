//! Training does not depend on the thread count: every sum in the fused ops is split into chunks
//! fixed by the shapes (kernels/README.md), so 50 lenet steps on 1 and on 2 threads give bitwise
//! the same weights. lenet covers conv2d's batch-chunked dw/db, max-pool, linear and Adam.

mod common;

use common::{assert_same_tensors, smoke, Out, Sandbox, BIN};
use std::path::Path;
use std::process::{Command, Stdio};

/// `dlhist --threads N train lenet` on its smoke preset (digits8: the sandbox has no MNIST) for
/// 50 steps into `dir`. Not `Sandbox::run`, which always passes `--threads 2`.
fn train_lenet(sb: &Sandbox, threads: &str, dir: &Path) {
    let out = Command::new(BIN)
        .args(["--threads", threads, "train", "lenet", "-c", &smoke("lenet"), "--steps", "50"])
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
    Out::from(out).ok();
}

#[test]
fn lenet_on_1_and_2_threads_gives_bitwise_equal_weights() {
    let sb = Sandbox::new();
    let (one, two) = (sb.path("t1"), sb.path("t2"));
    train_lenet(&sb, "1", &one);
    train_lenet(&sb, "2", &two);
    assert_same_tensors(&one.join("model.safetensors"), &two.join("model.safetensors"));
}
