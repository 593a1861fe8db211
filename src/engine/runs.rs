//! Where runs live: the run directory's files, the root that holds every milestone's runs, and
//! how a name such as `gpt` (in `train.init_from`, `eval`, `sample`) finds its newest run.

use crate::error::DlError;
use std::path::{Path, PathBuf};

/// The files of a run directory: config.toml first, model.safetensors and summary.json last.
#[derive(Clone, Debug)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }
    pub fn ckpt(&self) -> PathBuf {
        self.0.join("ckpt").join("latest.safetensors")
    }
    pub fn model(&self) -> PathBuf {
        self.0.join("model.safetensors")
    }
    pub fn summary(&self) -> PathBuf {
        self.0.join("summary.json")
    }
    pub fn samples(&self) -> PathBuf {
        self.0.join("samples")
    }
    pub fn is_complete(&self) -> bool {
        self.summary().is_file() && self.model().is_file()
    }
}

/// Root of run directories: $DLHIST_RUNS or ./checkpoints.
pub fn runs_root() -> PathBuf {
    std::env::var("DLHIST_RUNS").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("checkpoints"))
}

/// Run directories of milestone `name` under the runs root, newest first.
pub fn runs_of(name: &str) -> Vec<RunDir> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs_root().join(name))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("config.toml").is_file()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter().rev().map(RunDir).collect()
}

/// The run that `train.init_from = "<target>"` names: a run directory, or a milestone name
/// meaning that milestone's newest finished run. Either must have finished (model.safetensors).
pub fn init_source(target: &str, is_milestone: impl Fn(&str) -> bool) -> Result<RunDir, DlError> {
    let p = Path::new(target);
    if p.join("config.toml").is_file() {
        let rd = RunDir(p.to_path_buf());
        if !rd.model().is_file() {
            return Err(DlError::MissingCheckpoint {
                path: rd.model(),
                hint: format!("train.init_from = \"{target}\": that run has not finished. Finish it (dlhist train NAME --resume --run-dir {target}) or name another run"),
            });
        }
        return Ok(rd);
    }
    if is_milestone(target) {
        return runs_of(target).into_iter().find(|r| r.is_complete()).ok_or_else(|| DlError::MissingCheckpoint {
            path: runs_root().join(target),
            hint: format!(
                "train.init_from = \"{target}\" starts from the newest finished `{target}` run, and there is none. Make one first: dlhist train {target}"
            ),
        });
    }
    Err(DlError::Usage(format!(
        "train.init_from = \"{target}\" is neither a run directory (no {}) nor a milestone name; pass the path of a finished run or a name from `dlhist list`",
        p.join("config.toml").display()
    )))
}
