//! Shared helpers of the integration tests: a sandbox per test (its own runs root and an empty
//! data folder, so mnist-default milestones deterministically fall back to the built-in
//! digits8), a way to run the binary in it, and readers for run directories and checkpoints.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The dlhist binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_dlhist");

/// Absolute path of a smoke preset, e.g. `smoke("mlp")`.
pub fn smoke(name: &str) -> String {
    format!("{}/experiments/smoke/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}

/// What one invocation left behind.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Panics unless stderr contains every phrase.
    pub fn stderr_says(&self, phrases: &[&str]) -> &Self {
        for p in phrases {
            assert!(self.stderr.contains(p), "stderr should contain {p:?}\n--- stderr\n{}", self.stderr);
        }
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
        })
    }
}

/// A sandbox: a temp dir holding `runs/` (DLHIST_RUNS), an empty `data/` (DLHIST_DATA) and
/// room for anything else a test makes. The binary runs with the sandbox as its cwd.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub runs: PathBuf,
    pub data: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let runs = tmp.path().join("runs");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        Self { tmp, runs, data }
    }

    /// A path inside the sandbox (not under the runs root).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `dlhist --threads 2 ARGS...` with the sandbox's environment, not yet started.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--threads")
            .arg("2")
            .args(args)
            .current_dir(self.tmp.path())
            .env("DLHIST_RUNS", &self.runs)
            .env("DLHIST_DATA", &self.data)
            .env_remove("DLHIST_LOG")
            .env_remove("RAYON_NUM_THREADS")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null());
        c
    }

    /// Runs `dlhist --threads 2 ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd(args).output().expect("dlhist starts"))
    }

    /// Trains `name` on its smoke preset into `dir` (plus any extra args); panics on failure.
    pub fn train_smoke(&self, name: &str, dir: &Path, extra: &[&str]) -> Out {
        let preset = smoke(name);
        let d = dir.to_str().unwrap();
        let mut args = vec!["train", name, "-c", &preset, "--run-dir", d];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.ok();
        assert!(looks_complete(dir), "{} should look complete after training", dir.display());
        out
    }

    /// Panics if a run directory that looks complete (it has summary.json) exists anywhere
    /// under the runs root.
    pub fn assert_no_complete_run(&self) {
        let found = files_named(&self.runs, "summary.json");
        assert!(found.is_empty(), "a failed command left run directories that look complete: {found:?}");
    }
}

/// A run "looks complete" iff summary.json and model.safetensors exist.
pub fn looks_complete(dir: &Path) -> bool {
    dir.join("summary.json").is_file() && dir.join("model.safetensors").is_file()
}

/// Every file called `name` under `root` (recursively); empty if root does not exist.
pub fn files_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Number of lines of a file (0 if it does not exist yet).
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// One tensor of a safetensors file: dtype, shape and raw little-endian bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct RawTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Every tensor of a safetensors file, by name.
pub fn read_tensors(path: &Path) -> BTreeMap<String, RawTensor> {
    let buf = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&buf).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            (name, RawTensor { dtype: format!("{:?}", v.dtype()), shape: v.shape().to_vec(), bytes: v.data().to_vec() })
        })
        .collect()
}

/// Panics, naming the first differing tensor, unless both files hold bitwise-identical tensors.
pub fn assert_same_tensors(a: &Path, b: &Path) {
    let (ta, tb) = (read_tensors(a), read_tensors(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "{} and {} hold different tensor names",
        a.display(),
        b.display()
    );
    assert!(!ta.is_empty(), "{} holds no tensors", a.display());
    for (name, x) in &ta {
        let y = &tb[name];
        assert_eq!((&x.dtype, &x.shape), (&y.dtype, &y.shape), "tensor {name}: dtype/shape differ");
        if x.bytes != y.bytes {
            let first = x.bytes.iter().zip(&y.bytes).position(|(p, q)| p != q).unwrap_or(0);
            panic!(
                "tensor {name} differs between {} and {} (first differing byte {first} of {})",
                a.display(),
                b.display(),
                x.bytes.len()
            );
        }
    }
}
