//! `--device`: CUDA asked of a build without it (or of a machine without a GPU) is a usage error
//! that says what to do, on every command that takes the flag; `auto` runs anywhere; and runs and
//! checkpoints do not depend on the device they were made on.

mod common;

use candle_core::{DType, Device, Tensor};
use common::Sandbox;
use std::collections::BTreeMap;

/// Every command with --device, with the arguments that get it as far as choosing the device.
fn commands_with_a_device_flag(run: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["train", "mlp", "--steps", "1"]),
        v(&["eval", run]),
        v(&["sample", run]),
        v(&["compare", "relu", "gelu", "--steps", "1"]),
        v(&["replay", "mlp", "--budget", "smoke"]),
        v(&["bench", "mlp", "--steps", "1", "--trials", "1"]),
    ]
}

/// Without the feature: "built without CUDA", how to rebuild, and --device cpu. With it, on a
/// machine without a usable GPU: what was found and --device cpu. (With a GPU: nothing to check.)
#[test]
fn cuda_without_a_build_or_gpu_for_it_says_what_to_do_on_every_command() {
    let phrases: &[&str] = if cfg!(feature = "cuda") {
        match dlhist::device::cuda(0) {
            Ok(_) => {
                println!("SKIPPED cuda_without_a_build_or_gpu_for_it_says_what_to_do: this machine has a GPU");
                return;
            }
            Err(_) => &["--device cpu"],
        }
    } else {
        &["built without CUDA", "--features cuda", "--device cpu"]
    };
    let sb = Sandbox::new();
    let run = sb.path("mlp-run");
    sb.train_smoke("mlp", &run, &[]);
    for args in commands_with_a_device_flag(run.to_str().unwrap()) {
        for dev in ["cuda:0", "cuda"] {
            let mut a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            a.extend(["--device", dev]);
            sb.run(&a).expect_code(2).stderr_says(phrases);
        }
    }
    // nothing was trained under the runs root (the one run above was written beside it)
    sb.assert_no_complete_run();
}

#[test]
fn a_bad_device_name_lists_the_choices() {
    let sb = Sandbox::new();
    for dev in ["gpu", "cuda:x", "tpu"] {
        let out = sb.run(&["train", "mlp", "--steps", "1", "--device", dev]);
        out.expect_code(2).stderr_says(&["device", "cpu, auto"]);
    }
    sb.assert_no_complete_run();
}

/// `auto` trains where it can (the GPU of a CUDA build on a GPU machine, else the CPU), and the
/// run then evaluates and samples on the CPU: a GPU-trained run is used on the CPU like any other.
#[test]
fn auto_trains_and_the_run_evaluates_and_samples_on_the_cpu() {
    let sb = Sandbox::new();
    let run = sb.path("auto-run");
    let out = sb.train_smoke("mlp", &run, &["--device", "auto"]);
    out.stderr_says(&["training mlp on "]);
    let r = run.to_str().unwrap();
    sb.run(&["eval", r, "--device", "cpu"]).ok();
    sb.run(&["sample", r, "--device", "cpu", "--n", "2"]).ok();
    // and the reverse direction for whatever auto is here
    sb.run(&["eval", r, "--device", "auto"]).ok();
}

#[test]
fn info_and_bench_print_the_device() {
    let sb = Sandbox::new();
    let out = sb.run(&["info", "mlp"]);
    out.ok();
    assert!(out.stdout.contains("Device: "), "{}", out.stdout);
    let out = sb.run(&["bench", "mlp", "--steps", "1", "--trials", "1"]);
    out.ok();
    assert!(out.stdout.contains("Device: cpu"), "{}", out.stdout);
    let out = sb.run(&["--json", "bench", "mlp", "--steps", "1", "--trials", "1"]);
    out.ok();
    assert_eq!(out.json()[0]["device"], "cpu");
}

/// A checkpoint is f32 safetensors whatever the tensors it was written from: here bf16 and
/// strided (transposed) tensors, as other devices and dtypes hold them, come back as contiguous
/// f32 on the device asked for, with their values. Under `--features cuda` with a GPU the same
/// round trip goes GPU → CPU and CPU → GPU.
#[test]
fn checkpoints_load_on_any_device_whatever_they_were_written_from() -> anyhow::Result<()> {
    use dlhist::engine::checkpoint;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ck.safetensors");
    let a = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((3, 4))?;
    let written = vec![
        ("a_t".to_string(), a.t()?),                      // a strided view
        ("b_bf16".to_string(), a.to_dtype(DType::BF16)?), // another dtype (values exact in bf16)
    ];
    let meta = BTreeMap::from([("dlhist.milestone".to_string(), "test".to_string())]);
    checkpoint::save(&path, &written, &meta)?;
    #[cfg_attr(not(feature = "cuda"), allow(unused_mut))]
    let mut devices = vec![Device::Cpu, dlhist::device::auto()];
    #[cfg(feature = "cuda")]
    if let Some(gpu) = dlhist::device::gpu_or_skip("checkpoints_load_on_any_device (GPU side)") {
        // written from GPU tensors, read back on the CPU
        let from_gpu = dir.path().join("gpu.safetensors");
        let on_gpu: Vec<(String, Tensor)> =
            written.iter().map(|(n, t)| Ok((n.clone(), t.to_device(&gpu)?))).collect::<anyhow::Result<_>>()?;
        checkpoint::save(&from_gpu, &on_gpu, &meta)?;
        let l = checkpoint::load(&from_gpu, &Device::Cpu)?;
        assert_eq!(l.tensors["a_t"].to_vec2::<f32>()?, a.t()?.to_vec2::<f32>()?);
        devices.push(gpu);
    }
    for dev in devices {
        let l = checkpoint::load(&path, &dev)?;
        let at = &l.tensors["a_t"];
        assert_eq!(at.dtype(), DType::F32);
        assert!(at.device().same_device(&dev));
        assert_eq!(at.to_device(&Device::Cpu)?.to_vec2::<f32>()?, a.t()?.to_vec2::<f32>()?);
        let b = l.tensors["b_bf16"].to_device(&Device::Cpu)?;
        assert_eq!((b.dtype(), b.to_vec2::<f32>()?), (DType::F32, a.to_vec2::<f32>()?));
    }
    Ok(())
}
