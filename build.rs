//! With `--features cuda`, compiles every kernels/*.cu to PTX with cudaforge (the kernel build
//! crate candle 0.11 uses) and writes `$OUT_DIR/ptx.rs`, one `pub const NAME: &str` per file,
//! which `src/ops/cuda.rs` includes. Without the feature it does nothing: the default build
//! needs no CUDA toolkit.
//!
//! nvcc comes from PATH (or $NVCC / $CUDA_HOME); the target from $CUDA_COMPUTE_CAP (e.g. 80) or
//! else nvidia-smi. `make cuda-check` sets both up without a GPU.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    cuda::build();
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::path::PathBuf;

    pub fn build() {
        println!("cargo:rerun-if-changed=kernels");
        println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
        println!("cargo:rerun-if-env-changed=NVCC");
        let mut sources = vec![];
        for entry in std::fs::read_dir("kernels").expect("kernels/ is readable") {
            let path = entry.expect("kernels/ entry").path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "cu" || ext == "cuh" {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            if ext == "cu" {
                sources.push(path);
            }
        }
        sources.sort();
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let ptx = cudaforge::KernelBuilder::new()
            .source_files(sources)
            .watch(["kernels/common.cuh"])
            .arg("-std=c++17")
            .arg("-O3")
            .arg("--expt-relaxed-constexpr")
            .arg("-Ikernels")
            .build_ptx()
            .unwrap_or_else(|e| panic!("compiling kernels/*.cu to PTX failed: {e}"));
        ptx.write(out.join("ptx.rs")).expect("write ptx.rs");
    }
}
