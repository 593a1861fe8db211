//! Where the math runs: `--device cpu | cuda | cuda:N | auto` on every command that trains or
//! evaluates. CUDA needs a build with `--features cuda` and a machine with an NVIDIA driver and
//! GPU; each missing piece is an error that says what to do. `auto` is the first GPU when this
//! build has CUDA and the machine has one, else the CPU.
//!
//! Data, RNG streams and checkpoints do not depend on the device: batches are drawn on the host
//! and moved, and checkpoints are f32 safetensors loaded onto whichever device is asked for, so
//! a run trained on a GPU evaluates and samples on the CPU and the reverse.

use crate::error::DlError;
use candle_core::Device;

/// What `--device` accepts, for help texts and errors.
pub const SPECS: &str = "cpu, auto (the GPU when there is one), cuda or cuda:N";

/// The device named by `spec`: `cpu`, `auto`, `cuda` (= cuda:0) or `cuda:N`.
pub fn parse(spec: &str) -> Result<Device, DlError> {
    match spec.trim() {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(auto()),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ord: usize = match s.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse().map_err(|_| DlError::Usage(format!("bad device `{s}`; use {SPECS}")))?,
            };
            cuda(ord).map_err(DlError::Usage)
        }
        s => Err(DlError::Usage(format!("unknown device `{s}`; use {SPECS}"))),
    }
}

/// The first GPU when this build has CUDA and the machine has one, else the CPU.
pub fn auto() -> Device {
    cuda(0).unwrap_or(Device::Cpu)
}

/// `cuda:N` and its name (e.g. "cuda:0 (NVIDIA H100 80GB HBM3)"), or `cpu`.
pub fn describe(dev: &Device) -> String {
    match dev {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => {
            let ord = match dev.location() {
                candle_core::DeviceLocation::Cuda { gpu_id } => gpu_id,
                _ => 0,
            };
            match gpu_name(ord) {
                Some(n) => format!("cuda:{ord} ({n})"),
                None => format!("cuda:{ord}"),
            }
        }
        other => format!("{other:?}"),
    }
}

/// One line on what `--device auto` picks here and why (for `info` and `bench`).
pub fn availability() -> String {
    match cuda(0) {
        Ok(dev) => format!("{} (--device auto picks it; --device cpu for the CPU)", describe(&dev)),
        // the reason without its advice (which names --device cpu / auto)
        Err(why) => format!("cpu (--device auto picks the CPU here: {})", why.split(';').next().unwrap_or(&why)),
    }
}

/// GPU `ord`, or why there is none, in words that say what to do.
#[cfg(not(feature = "cuda"))]
pub fn cuda(ord: usize) -> Result<Device, String> {
    let _ = ord;
    Err("this dlhist was built without CUDA; rebuild with `cargo build --release --features cuda` on a machine with an NVIDIA GPU, or use --device cpu (or --device auto)".into())
}

/// GPU `ord`, or why there is none, in words that say what to do. (candle 0.11 links the CUDA
/// driver and libraries dynamically: a `--features cuda` binary needs libcuda.so.1, cuBLAS,
/// cuRAND and NVRTC to start at all; what is checked here is a driver without a usable GPU.)
#[cfg(feature = "cuda")]
pub fn cuda(ord: usize) -> Result<Device, String> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    let no_gpu = "use --device cpu (or --device auto, which falls back to the CPU)";
    let count = CudaContext::device_count()
        .map_err(|e| format!("this dlhist has CUDA, but the NVIDIA driver found no usable GPU ({e}); {no_gpu}"))?;
    if count <= 0 {
        return Err(format!("this dlhist has CUDA, but this machine has no NVIDIA GPU; {no_gpu}"));
    }
    if ord >= count as usize {
        return Err(format!(
            "cuda:{ord} was asked for, but this machine has {count} GPU(s): cuda:0..cuda:{}",
            count - 1
        ));
    }
    Device::new_cuda(ord).map_err(|e| format!("cuda:{ord} could not be opened: {e}; {no_gpu}"))
}

#[cfg(feature = "cuda")]
fn gpu_name(ord: usize) -> Option<String> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    CudaContext::new(ord).ok()?.name().ok()
}

#[cfg(not(feature = "cuda"))]
fn gpu_name(_ord: usize) -> Option<String> {
    None
}

/// For tests under `--features cuda`: GPU 0, or `None` after printing why the test skips.
#[cfg(feature = "cuda")]
pub fn gpu_or_skip(test: &str) -> Option<Device> {
    match cuda(0) {
        Ok(d) => Some(d),
        Err(why) => {
            println!("SKIPPED {test}: no GPU: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_parse_and_bad_specs_say_what_is_accepted() {
        assert!(matches!(parse("cpu"), Ok(Device::Cpu)));
        // auto is the CPU on a build or machine without a GPU
        let auto = parse("auto").unwrap();
        assert!(auto.is_cpu() || auto.is_cuda());
        for bad in ["gpu", "cuda:x", "cuda0", "tpu:1"] {
            let e = parse(bad).err().unwrap().to_string();
            assert!(e.contains("cpu, auto"), "{bad}: {e}");
        }
    }

    #[test]
    fn cuda_without_a_gpu_says_what_to_do() {
        match parse("cuda:0") {
            Ok(d) => assert!(d.is_cuda()),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains("--device cpu"), "{e}");
                if cfg!(not(feature = "cuda")) {
                    assert!(e.contains("built without CUDA") && e.contains("--features cuda"), "{e}");
                }
            }
        }
        assert_eq!(describe(&Device::Cpu), "cpu");
        assert!(availability().contains("--device"));
    }
}
