//! Build script.
//! - Records the git commit the binary is built from (`DLHIST_GIT_COMMIT`, read with
//!   `option_env!`), written into every run's summary.json and checkpoint metadata. Outside a git
//!   checkout (a crate tarball, `cargo install` from a registry) it sets nothing and the runs say
//!   "unknown".
//! - With `--features cuda`, compiles every kernels/*.cu to PTX with cudaforge (the kernel build
//!   crate candle 0.11 uses) and writes `$OUT_DIR/ptx.rs`, one `pub const NAME: &str` per file,
//!   which `src/ops/cuda.rs` includes. Without the feature it does nothing for CUDA: the default
//!   build needs no CUDA toolkit. nvcc comes from PATH (or $NVCC / $CUDA_HOME); the target from
//!   $CUDA_COMPUTE_CAP (e.g. 80) or else nvidia-smi. `make cuda-check` sets both up without a GPU.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    cuda::build();
    git_commit();
}

fn git_commit() {
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else { return };
    println!("cargo:rustc-env=DLHIST_GIT_COMMIT={commit}");
    // rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref (a commit), and
    // packed-refs (where a ref lives after `git gc`); `--git-path` finds them in a worktree too
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(r) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/")) {
        watch.push(git(&["rev-parse", "--git-path", &r]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in watch.into_iter().flatten() {
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
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
