//! Build script.
//! - Records the git commit the binary is built from (`DLHIST_GIT_COMMIT`, read with
//!   `option_env!`), written into every run's summary.json and checkpoint metadata, with
//!   `-dirty` when the build's inputs (BUILD_INPUTS) differ from that commit; and the version
//!   `dlhist --version` prints (`DLHIST_VERSION`: "0.1.0 (COMMIT)"). Outside a git checkout (a
//!   crate tarball, `cargo install` from a registry) there is no commit: the runs say "unknown"
//!   and the version is the package's alone.
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

/// What the binary is built from: the sources, the vendored crates, and the files it compiles in
/// (presets, built-in data, the fetch script, the plot font). A change elsewhere (README,
/// kernels/README.md, the README's pictures in assets/, tests) neither marks the build dirty nor
/// reruns this script, which would recompile the crate. The CUDA kernels (kernels/*.cu) count
/// only in a `--features cuda` build, whose step below watches them.
const BUILD_INPUTS: [&str; 10] = [
    "src",
    "vendor",
    "experiments",
    "assets/fonts",
    "data/builtin",
    "data/checksums.sha256",
    "scripts/fetch-data.sh",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
];

fn git_commit() {
    // for the --version test, which checks the suffix against the same paths' status
    println!("cargo:rustc-env=DLHIST_BUILD_INPUTS={}", BUILD_INPUTS.join(":"));
    let package = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let Some(mut commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        println!("cargo:rustc-env=DLHIST_VERSION={package}");
        return;
    };
    // uncommitted or untracked changes to the inputs; --no-optional-locks: `git status` would
    // otherwise refresh the index, a write to the checkout during a build
    let mut status = vec!["--no-optional-locks", "status", "--porcelain", "--"];
    status.extend(BUILD_INPUTS);
    if git(&status).is_some() {
        commit.push_str("-dirty");
    }
    for p in BUILD_INPUTS.iter().filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rustc-env=DLHIST_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=DLHIST_VERSION={package} ({commit})");
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
