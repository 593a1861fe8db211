//! The training loop. For each update: schedule the lr, ask the experiment for the batch loss,
//! backprop, guard against NaN/inf, clip, step the optimizer, log; evaluate and checkpoint on
//! their intervals. Writes the run directory in order: config.toml first, model.safetensors
//! and summary.json last (a run directory without summary.json did not finish).

use super::checkpoint;
use super::optim::OptimHp;
use super::optim::Optimizer;
use super::progress::Progress;
use super::schedule::Schedule;
use super::step::{train_step, Step};
use super::threads;
use crate::config::TrainConfig;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, Split};
use anyhow::Context;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set by the Ctrl-C handler; the loop checkpoints and stops at the next step boundary.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The files of a run directory: config, metrics, checkpoint, weights, summary and samples.
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

/// What a finished run reports (summary.json).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Summary {
    pub name: String,
    pub run_dir: String,
    pub data: String,
    pub steps: usize,
    pub epochs: f64,
    pub wall_s: f64,
    pub steps_per_s: f64,
    pub params: usize,
    pub threads: usize,
    /// mean training loss over the last stretch of updates
    pub train_loss: f64,
    /// validation metrics before the first update
    pub initial: Metrics,
    /// validation and test metrics at the end
    #[serde(rename = "final")]
    pub final_metrics: Metrics,
    pub config_hash: String,
}

impl Summary {
    pub fn metric(&self, key: &str) -> Option<f64> {
        if key == "train_loss" {
            return Some(self.train_loss);
        }
        self.final_metrics.get(key).copied()
    }
}

pub struct RunSpec<'a> {
    pub name: &'a str,
    pub config_text: &'a str,
    pub config_hash: &'a str,
    pub train: &'a TrainConfig,
    pub dir: RunDir,
    pub resume: bool,
    /// show the progress bar (still only on a terminal)
    pub progress: bool,
    /// print eval lines to stderr
    pub echo: bool,
}

fn prefixed(prefix: &str, m: Metrics) -> Metrics {
    m.into_iter().map(|(k, v)| (format!("{prefix}_{k}"), v)).collect()
}

fn append_line(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{value}")?;
    Ok(())
}

fn unwritable(path: &Path, e: impl std::fmt::Display) -> DlError {
    DlError::Unwritable { path: path.to_path_buf(), message: e.to_string() }
}

/// Keeps only metrics lines at or before `step` (a resumed run rewrites what came after).
fn truncate_metrics(path: &Path, step: usize) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}

struct Saver<'a> {
    spec: &'a RunSpec<'a>,
    initial: &'a Metrics,
}

impl Saver<'_> {
    fn meta(&self, step: usize) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("dlhist.milestone".into(), self.spec.name.to_string()),
            ("dlhist.config_hash".into(), self.spec.config_hash.to_string()),
            ("dlhist.step".into(), step.to_string()),
            ("dlhist.seed".into(), self.spec.train.seed.to_string()),
            ("dlhist.initial".into(), serde_json::to_string(self.initial).unwrap()),
        ])
    }

    fn checkpoint(&self, exp: &dyn Experiment, opt: &Optimizer, step: usize) -> anyhow::Result<()> {
        let mut tensors = exp.params().tensors();
        tensors.extend(opt.state()?);
        let mut meta = self.meta(step);
        meta.insert("dlhist.optim_t".into(), opt.t.to_string());
        checkpoint::save(&self.spec.dir.ckpt(), &tensors, &meta)
    }
}

/// Trains `exp` per `spec`, returning the summary it also writes to summary.json.
pub fn train(spec: &RunSpec, exp: &mut dyn Experiment, device: &Device) -> anyhow::Result<Summary> {
    let tc = spec.train;
    let dir = &spec.dir;
    let total = tc.total_steps(exp.steps_per_epoch());
    let sched = Schedule::of(tc, total);
    let mut opt = Optimizer::new(exp.params(), OptimHp::of(tc));
    let (start, initial);
    if spec.resume {
        let ck = checkpoint::load(&dir.ckpt(), device)?;
        let found = ck.get("dlhist.milestone").unwrap_or("?");
        if found != spec.name {
            return Err(DlError::WrongMilestone {
                path: dir.ckpt(),
                found: found.into(),
                expected: spec.name.into(),
                path_dir: dir.0.display().to_string(),
            }
            .into());
        }
        exp.params().load(&ck.tensors).map_err(|m| DlError::IncompatibleCheckpoint { path: dir.ckpt(), message: m })?;
        opt.load_state(&ck.tensors, ck.get_u64("dlhist.optim_t"))?;
        start = ck.get_u64("dlhist.step") as usize;
        initial = ck.get("dlhist.initial").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        truncate_metrics(&dir.metrics(), start).map_err(|e| unwritable(&dir.metrics(), e))?;
        if start >= total {
            anyhow::bail!(DlError::Usage(format!(
                "the checkpoint is already at step {start}, and the budget is {total} steps; raise it above {start} to continue (e.g. --steps {})",
                start * 2
            )));
        }
        // the budget may have been raised (--steps): the run directory's config says so from now on
        std::fs::write(dir.config(), spec.config_text).map_err(|e| unwritable(&dir.config(), e))?;
    } else {
        std::fs::create_dir_all(&dir.0).map_err(|e| unwritable(&dir.0, e))?;
        std::fs::write(dir.config(), spec.config_text).map_err(|e| unwritable(&dir.config(), e))?;
        std::fs::write(dir.metrics(), "").map_err(|e| unwritable(&dir.metrics(), e))?;
        start = 0;
        initial = prefixed("val", exp.evaluate(Split::Val)?);
        let mut line = serde_json::json!({"step": 0, "split": "val"});
        for (k, v) in &initial {
            line[k.trim_start_matches("val_")] = (*v).into();
        }
        append_line(&dir.metrics(), &line)?;
    }
    let saver = Saver { spec, initial: &initial };
    // A checkpoint at the start means there is always a last good one to fall back to.
    if !spec.resume {
        saver.checkpoint(exp, &opt, start)?;
    }
    let mut last_ckpt = start;

    let bar = Progress::new(total as u64, start as u64, spec.name, spec.progress);
    let t0 = Instant::now();
    let mut recent: VecDeque<f64> = VecDeque::new();
    let window = (total / 10).clamp(1, 200);
    let mut window_sum = 0f64;
    let mut window_n = 0usize;
    let mut last_log = Instant::now();
    let mut step = start;
    while step < total {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bar.finish();
            saver.checkpoint(exp, &opt, step)?;
            return Err(DlError::Interrupted {
                step,
                ckpt: dir.ckpt(),
                name: spec.name.into(),
                run_dir: dir.0.display().to_string(),
            }
            .into());
        }
        let ts = Instant::now();
        let lr = sched.lr(step);
        let out = match train_step(exp, &mut opt, tc, step, lr)? {
            Step::Updated(out) => out,
            Step::NotFinite { what } => {
                bar.finish();
                // the weights that produced this are already bad: keep the last checkpoint as it is
                return Err(DlError::Diverged {
                    step,
                    what: what.into(),
                    ckpt: dir.ckpt(),
                    ckpt_step: last_ckpt,
                    name: spec.name.into(),
                    run_dir: dir.0.display().to_string(),
                }
                .into());
            }
        };
        let (loss, norm) = (out.loss, out.grad_norm);
        step += 1;

        recent.push_back(loss);
        if recent.len() > window {
            recent.pop_front();
        }
        window_sum += loss;
        window_n += 1;
        if step % tc.log_every.max(1) == 0 || step == total {
            let sps = window_n as f64 / last_log.elapsed().as_secs_f64().max(1e-9);
            let mut line = serde_json::json!({
                "step": step, "split": "train", "loss": window_sum / window_n as f64,
                "lr": lr, "ms": ts.elapsed().as_secs_f64() * 1e3, "grad_norm": norm,
            });
            for (k, v) in &out.metrics {
                line[k] = (*v).into();
            }
            append_line(&dir.metrics(), &line)?;
            bar.update(step as u64, window_sum / window_n as f64, lr, sps);
            window_sum = 0.0;
            window_n = 0;
            last_log = Instant::now();
        }
        if tc.eval_every > 0 && step % tc.eval_every == 0 && step < total {
            let m = exp.evaluate(Split::Val)?;
            let mut line = serde_json::json!({"step": step, "split": "val"});
            for (k, v) in &m {
                line[k] = (*v).into();
            }
            append_line(&dir.metrics(), &line)?;
            if spec.echo {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                bar.println(&format!("step {step:>6}  val {}", parts.join("  ")));
            }
        }
        if tc.ckpt_every > 0 && step % tc.ckpt_every == 0 && step < total {
            saver.checkpoint(exp, &opt, step)?;
            last_ckpt = step;
        }
    }
    bar.finish();
    let wall = t0.elapsed().as_secs_f64();
    saver.checkpoint(exp, &opt, step)?;

    let mut fin = prefixed("val", exp.evaluate(Split::Val)?);
    fin.extend(prefixed("test", exp.evaluate(Split::Test)?));
    let mut line = serde_json::json!({"step": step, "split": "val"});
    for (k, v) in fin.iter().filter(|(k, _)| k.starts_with("val_")) {
        line[k.trim_start_matches("val_")] = (*v).into();
    }
    append_line(&dir.metrics(), &line)?;

    let mut meta = saver.meta(step);
    meta.remove("dlhist.initial");
    checkpoint::save(&dir.model(), &exp.params().tensors(), &meta)?;
    let ran = (step - start).max(1);
    let summary = Summary {
        name: spec.name.into(),
        run_dir: dir.0.display().to_string(),
        data: exp.data_name(),
        steps: step,
        epochs: step as f64 / exp.steps_per_epoch().max(1) as f64,
        wall_s: wall,
        steps_per_s: ran as f64 / wall.max(1e-9),
        params: exp.params().count(),
        threads: threads(),
        train_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        initial,
        final_metrics: fin,
        config_hash: spec.config_hash.into(),
    };
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(dir.summary(), text).with_context(|| format!("writing {}", dir.summary().display()))?;
    Ok(summary)
}
