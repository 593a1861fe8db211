//! `train.init_from`: a new run starts from another run's weights, matched by name. When the
//! run also freezes parameters and every frozen tensor came from that run, its checkpoints keep
//! only its own tensors and refer to the source's weights file (path and sha256) for the rest.

use super::checkpoint;
use super::runs::{init_source, RunDir};
use crate::error::DlError;
use crate::params::{LoadReport, Params};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What `train.init_from` loaded (summary.json's `init_from`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct InitFrom {
    /// the source run directory
    pub run: String,
    #[serde(flatten)]
    pub report: LoadReport,
}

impl InitFrom {
    /// One line for the terminal: counts, and the names of what did not match.
    pub fn describe(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                String::new()
            } else if v.len() <= 6 {
                format!(" ({})", v.join(", "))
            } else {
                format!(" ({}, … {} more)", v[..6].join(", "), v.len() - 6)
            }
        };
        let r = &self.report;
        format!(
            "init from {}: {} tensors loaded, {} missing{}, {} unexpected{}",
            self.run,
            r.loaded.len(),
            r.missing.len(),
            list(&r.missing),
            r.unexpected.len(),
            list(&r.unexpected)
        )
    }
}

/// The weights file a run's checkpoints refer to for their frozen tensors, and its sha256.
#[derive(Clone, Debug)]
pub struct Base {
    pub path: PathBuf,
    pub sha256: String,
}

/// Loads the weights of the run `target` names into `params` by name. Returns the report and,
/// when parameters are frozen and all of them were loaded, the base the checkpoints refer to.
pub fn init_from(target: &str, params: &Params, device: &Device) -> anyhow::Result<(InitFrom, Option<Base>)> {
    let _span = tracing::debug_span!("init_from").entered();
    let src: RunDir = init_source(target, |n| crate::registry::get(n).is_ok())?;
    let file = src.model();
    let loaded = checkpoint::load_full(&file, device)?;
    let report = params.load_matching(&loaded.tensors).map_err(|message| DlError::IncompatibleCheckpoint {
        path: file.clone(),
        message: format!("train.init_from: {message}"),
    })?;
    let frozen: Vec<String> = params.frozen().into_iter().map(|(n, _)| n).collect();
    let base = if !frozen.is_empty() && frozen.iter().all(|n| report.loaded.contains(n)) {
        let path = std::fs::canonicalize(&file).unwrap_or(file.clone());
        Some(Base { sha256: checkpoint::sha256_file(&path)?, path })
    } else {
        None
    };
    Ok((InitFrom { run: src.0.display().to_string(), report }, base))
}
