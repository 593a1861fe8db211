//! Resume exactness with augmentation and dropout: the mini AlexNet draws random
//! crops, flips and dropout masks from each step's own rng stream, so 10 steps, stop, and resume
//! to 20 gives bitwise the weights of 20 steps straight.

mod common;

use common::{assert_same_tensors, looks_complete, smoke, Sandbox};

#[test]
fn alexnet_with_crops_flips_and_dropout_resumes_to_the_weights_of_a_straight_run() {
    let sb = Sandbox::new();
    let (a, b) = (sb.path("A"), sb.path("B"));
    let preset = smoke("alexnet");
    let train = |dir: &std::path::Path, steps: &str| {
        let d = dir.to_str().unwrap();
        sb.run(&["train", "alexnet", "-c", &preset, "--steps", steps, "--run-dir", d]).ok();
    };
    train(&a, "20");
    train(&b, "10");
    sb.run(&["train", "alexnet", "--resume", "--run-dir", b.to_str().unwrap(), "--steps", "20"]).ok();
    assert!(looks_complete(&a) && looks_complete(&b));
    assert_same_tensors(&a.join("model.safetensors"), &b.join("model.safetensors"));
}
