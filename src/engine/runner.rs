//! The training loop. For each step: the experiment's updates (each scheduled, backpropagated,
//! guarded against NaN/inf, clipped and applied by its parameter group's optimizer; see
//! step.rs), the EMA of the weights if kept, a log line; evaluation and checkpoints on their
//! intervals. Writes the run directory in order: config.toml first, model.safetensors and
//! summary.json last (a run directory without summary.json did not finish).

use super::checkpoint;
use super::ema::Ema;
use super::init::{init_from, Base, InitFrom};
use super::progress::Progress;
use super::step::{train_step, Groups, Step, StepOut};
use super::threads;
use crate::config::TrainConfig;
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, Split};
use anyhow::Context;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Set by the Ctrl-C handler; the loop checkpoints and stops at the next step boundary.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether a Ctrl-C has asked the process to stop (for the loops above training: a replay's
/// claims, its --jobs studies).
pub fn interrupted_now() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How many training loops run now, counting a replay as one for its whole length (it cleans up
/// its temporary runs at the end, and waits for the children of `--jobs`): while any does, a
/// first Ctrl-C lets them checkpoint and stop; when none does, the handler quits at once.
pub static TRAINING: AtomicUsize = AtomicUsize::new(0);

/// Counts in `TRAINING` while it lives.
pub struct TrainingLoop;

impl TrainingLoop {
    pub fn start() -> Self {
        TRAINING.fetch_add(1, Ordering::SeqCst);
        TrainingLoop
    }
}

impl Drop for TrainingLoop {
    fn drop(&mut self) {
        TRAINING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// While a run's final evaluation runs (its training done and checkpointed), how to finish it:
/// the Ctrl-C handler then quits at once with this hint instead of waiting for the evaluation
/// (the diffusion models' FD samples for a minute or more). None otherwise.
pub static FINAL_EVALUATION: Mutex<Option<String>> = Mutex::new(None);

/// How to continue a command after a Ctrl-C that quits at once, set by the command around
/// the stretch where nothing trains (between a comparison's variants, or in one's final
/// evaluation); the handler prints it before FINAL_EVALUATION's. None otherwise.
pub static CONTINUE_HINT: Mutex<Option<String>> = Mutex::new(None);

/// Holds a hint in one of the handler's slots (FINAL_EVALUATION, CONTINUE_HINT) while it lives.
pub struct Hint(&'static Mutex<Option<String>>);

impl Hint {
    pub fn set(slot: &'static Mutex<Option<String>>, hint: String) -> Self {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(hint);
        Hint(slot)
    }
}

impl Drop for Hint {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Marks the final evaluation of a run for the Ctrl-C handler while the hint lives.
fn final_evaluation(step: usize, name: &str, dir: &Path) -> Hint {
    let hint = format!(
        "training had finished (step {step}, checkpoint written); its final evaluation was cut short. Evaluate it and write the model with: dlhist train {name} --resume --run-dir {}",
        crate::error::shell_path(dir)
    );
    Hint::set(&FINAL_EVALUATION, hint)
}

use super::runs::write_atomic;
pub use super::runs::RunDir;

/// What a finished run reports (summary.json).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Summary {
    pub name: String,
    pub run_dir: String,
    pub data: String,
    pub steps: usize,
    /// the steps this session ran: `steps` less where a resume started (`wall_s` and
    /// `steps_per_s` are this session's)
    #[serde(default)]
    pub session_steps: usize,
    /// seconds of the final evaluation, after `wall_s`
    #[serde(default)]
    pub eval_s: f64,
    pub epochs: f64,
    pub wall_s: f64,
    pub steps_per_s: f64,
    pub params: usize,
    /// estimated training FLOPs: per step 3× the forward pass's matmul and conv FLOPs (the
    /// accounting of `dlhist bench`, counted by `ops::flops`), summed over every step of the run
    #[serde(default)]
    pub flops: f64,
    pub threads: usize,
    /// mean training loss over the last stretch of updates
    pub train_loss: f64,
    /// validation metrics before the first update
    pub initial: Metrics,
    /// validation and test metrics at the end
    #[serde(rename = "final")]
    pub final_metrics: Metrics,
    pub config_hash: String,
    /// parameters frozen by `train.freeze` (not counted in `params`)
    #[serde(default)]
    pub frozen_params: usize,
    /// what `train.init_from` loaded, if it was set
    #[serde(default)]
    pub init_from: Option<InitFrom>,
}

/// summary.json: the summary, and where it came from (the dlhist version and git commit of the
/// binary that trained it) and the data notice, if the run's data fell back to a built-in set.
pub fn summary_file(s: &Summary, data_notice: Option<String>) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("a summary serialises");
    v["data_notice"] = data_notice.into();
    v["dlhist_version"] = super::VERSION.into();
    v["git_commit"] = super::git_commit().into();
    v
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
fn truncate_metrics(path: &Path, step: usize, final_val: bool) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| !(final_val && v["split"] == "val" && v["step"].as_u64() == Some(step as u64)))
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())?;
    Ok(())
}

/// The loss of the last train line of metrics.jsonl: a run resumed only for its final
/// evaluation has no steps of its own to average.
fn last_train_loss(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["split"] == "train")
        .and_then(|v| v["loss"].as_f64())
}

/// What a run keeps besides its weights: optimizer groups, the EMA, where its frozen base
/// lives, what `init_from` loaded, the metrics before training.
struct State {
    groups: Groups,
    ema: Option<Ema>,
    base: Option<Base>,
    init: Option<InitFrom>,
    initial: Metrics,
    /// training FLOPs so far (`Summary::flops`), kept in checkpoints so a resumed run goes on counting
    flops: f64,
}

struct Saver<'a> {
    spec: &'a RunSpec<'a>,
    /// the data the run trains on (`Experiment::data_name`)
    data: String,
}

impl Saver<'_> {
    fn meta(&self, st: &State, step: usize) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            ("dlhist.milestone".into(), self.spec.name.to_string()),
            ("dlhist.config_hash".into(), self.spec.config_hash.to_string()),
            ("dlhist.step".into(), step.to_string()),
            ("dlhist.seed".into(), self.spec.train.seed.to_string()),
            ("dlhist.data".into(), self.data.clone()),
            ("dlhist.version".into(), super::VERSION.to_string()),
            ("dlhist.git_commit".into(), super::git_commit().to_string()),
        ]);
        if let Some(b) = &st.base {
            m.insert(checkpoint::BASE.into(), b.path.display().to_string());
            m.insert(checkpoint::BASE_SHA256.into(), b.sha256.clone());
        }
        m
    }

    /// The model's tensors, less the frozen ones a base file holds.
    fn model_tensors(&self, exp: &dyn Experiment, st: &State) -> Vec<(String, candle_core::Tensor)> {
        let mut t = exp.params().tensors();
        if st.base.is_some() {
            let frozen: Vec<String> = exp.params().frozen().into_iter().map(|(n, _)| n).collect();
            t.retain(|(n, _)| !frozen.contains(n));
        }
        t
    }

    fn checkpoint(&self, exp: &dyn Experiment, st: &State, step: usize) -> anyhow::Result<()> {
        let _span = tracing::debug_span!("checkpoint", step).entered();
        let mut tensors = self.model_tensors(exp, st);
        tensors.extend(st.groups.state()?);
        if let Some(e) = &st.ema {
            tensors.extend(e.state()?);
        }
        let mut meta = self.meta(st, step);
        for g in &st.groups.0 {
            meta.insert(st.groups.t_key(&g.name), g.opt.t.to_string());
        }
        meta.insert("dlhist.initial".into(), serde_json::to_string(&st.initial)?);
        meta.insert("dlhist.flops".into(), st.flops.to_string());
        if let Some(i) = &st.init {
            meta.insert("dlhist.init_from".into(), serde_json::to_string(i)?);
        }
        checkpoint::save(&self.spec.dir.ckpt(), &tensors, &meta)
    }

    /// model.safetensors: the weights to use (the averages when an EMA is kept).
    fn model(&self, exp: &dyn Experiment, st: &State, step: usize) -> anyhow::Result<()> {
        let save = || checkpoint::save(&self.spec.dir.model(), &self.model_tensors(exp, st), &self.meta(st, step));
        match &st.ema {
            Some(e) => e.with_average(save),
            None => save(),
        }
    }
}

/// Metrics on `split` (only the training-data ones when `heldout` is false: `train.eval_heldout`),
/// with the EMA's averages in place of the weights when one is kept.
fn evaluate(exp: &mut dyn Experiment, ema: Option<&Ema>, split: Split, heldout: bool) -> anyhow::Result<Metrics> {
    let _span = tracing::debug_span!("eval", split = ?split, heldout).entered();
    let mut eval = || if heldout { exp.evaluate(split) } else { exp.evaluate_fit() };
    // no backward graph: evaluation only runs forward passes (`ops::no_grad`)
    crate::ops::no_grad(|| match ema {
        Some(e) => e.with_average(|| Ok(eval()?)),
        None => Ok(eval()?),
    })
}

/// config.toml: the resolved config, with a comment under its first line that names the data
/// the run actually uses (a fetched set that is absent falls back to a built-in one, while the
/// config still names the set it asked for).
pub fn config_file_text(config_text: &str, data: &str, notice: Option<&str>) -> String {
    let (head, rest) = config_text.split_once('\n').unwrap_or((config_text, ""));
    let note = notice.map(|n| format!(" ({})", n.trim_start_matches("note: ").replace('\n', "; "))).unwrap_or_default();
    format!("{head}\n# data used: {data}{note}\n{rest}")
}

/// Freezes `train.freeze`, then restores a checkpoint (resume) or applies `train.init_from`
/// and measures the starting point (a new run).
fn prepare(spec: &RunSpec, exp: &mut dyn Experiment, device: &Device, total: usize) -> anyhow::Result<(State, usize)> {
    let (tc, dir) = (spec.train, &spec.dir);
    if !tc.eval_heldout && !exp.evaluates_fit() {
        return Err(DlError::BadValue {
            context: "train.eval_heldout".into(),
            message: format!(
                "`{}` measures nothing on its training data (classifiers do: fit_acc), so with false its evaluations would be empty; leave it true",
                spec.name
            ),
        }
        .into());
    }
    if tc.shards > 1 && !exp.takes_shards() {
        return Err(DlError::BadValue {
            context: "train.shards".into(),
            message: format!(
                "`{}` does not split its batches (the char-LM milestones do: gpt, lstm, rnn, …); leave it at 1",
                spec.name
            ),
        }
        .into());
    }
    if !tc.freeze.is_empty() {
        exp.params()
            .freeze(&tc.freeze)
            .map_err(|m| DlError::BadValue { context: "train.freeze".into(), message: m })?;
    }
    let groups = Groups::new(exp, tc, total)?;
    let ema = (tc.ema > 0.0).then(|| Ema::new(exp.params(), tc.ema));
    let mut st = State { groups, ema, base: None, init: None, initial: Metrics::new(), flops: 0.0 };
    if spec.resume {
        let ck = checkpoint::load_full(&dir.ckpt(), device)?;
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
        let incompatible = |m: String| DlError::IncompatibleCheckpoint { path: dir.ckpt(), message: m };
        exp.params().load(&ck.tensors).map_err(incompatible)?;
        let keys: Vec<String> = st.groups.0.iter().map(|g| st.groups.t_key(&g.name)).collect();
        for (g, key) in st.groups.0.iter_mut().zip(keys) {
            g.opt.load_state(&ck.tensors, ck.get_u64(&key))?;
        }
        if let Some(e) = st.ema.as_mut() {
            e.load_state(&ck.tensors).map_err(incompatible)?;
        }
        if let (Some(path), Some(sha256)) = (ck.get(checkpoint::BASE), ck.get(checkpoint::BASE_SHA256)) {
            st.base = Some(Base { path: path.into(), sha256: sha256.into() });
        }
        st.init = ck.get("dlhist.init_from").and_then(|s| serde_json::from_str(s).ok());
        st.initial = ck.get("dlhist.initial").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        st.flops = ck.get("dlhist.flops").and_then(|s| s.parse().ok()).unwrap_or(0.0);
        let start = ck.get_u64("dlhist.step") as usize;
        // a run stopped in its final evaluation may have written that evaluation's line: it runs again
        truncate_metrics(&dir.metrics(), start, start == total).map_err(|e| unwritable(&dir.metrics(), e))?;
        // at its last step but not finished: stopped in its final evaluation, which runs now
        if start > total || (start == total && dir.is_complete()) {
            anyhow::bail!(DlError::Usage(format!(
                "the checkpoint is already at step {start}, and the budget is {total} steps; raise it above {start} to continue (e.g. --steps {})",
                start * 2
            )));
        }
        // the budget may have been raised (--steps): the run directory's config says so from now
        // on, and a finished run's summary, of the old budget, goes (its model is rewritten at
        // the end), so that the run reads as unfinished until then
        write_atomic(
            &dir.config(),
            config_file_text(spec.config_text, &exp.data_name(), exp.data_notice().as_deref()).as_bytes(),
        )
        .map_err(|e| unwritable(&dir.config(), e))?;
        if dir.summary().exists() {
            std::fs::remove_file(dir.summary()).map_err(|e| unwritable(&dir.summary(), e))?;
        }
        return Ok((st, start));
    }
    std::fs::create_dir_all(&dir.0).map_err(|e| unwritable(&dir.0, e))?;
    std::fs::write(dir.config(), config_file_text(spec.config_text, &exp.data_name(), exp.data_notice().as_deref()))
        .map_err(|e| unwritable(&dir.config(), e))?;
    std::fs::write(dir.metrics(), "").map_err(|e| unwritable(&dir.metrics(), e))?;
    if !tc.init_from.is_empty() {
        let (init, base) = init_from(&tc.init_from, exp.params(), device)?;
        if spec.echo {
            eprintln!("{}", init.describe());
        }
        st.init = Some(init);
        st.base = base;
    }
    st.initial = prefixed("val", evaluate(exp, st.ema.as_ref(), Split::Val, tc.eval_heldout)?);
    let mut line = serde_json::json!({"step": 0, "split": "val", "flops": 0.0, "seconds": 0.0});
    for (k, v) in &st.initial {
        line[k.trim_start_matches("val_")] = (*v).into();
    }
    append_line(&dir.metrics(), &line)?;
    Ok((st, 0))
}

/// Running sums of the logged losses between two log lines.
#[derive(Default)]
struct Window {
    sums: BTreeMap<String, f64>,
    n: usize,
}

impl Window {
    fn add(&mut self, out: &StepOut, single: bool) {
        *self.sums.entry("loss".into()).or_default() += out.loss();
        if !single {
            for u in &out.updates {
                *self.sums.entry(format!("loss_{}", u.group)).or_default() += u.loss;
            }
        }
        self.n += 1;
    }

    fn mean(&self, key: &str) -> f64 {
        self.sums.get(key).copied().unwrap_or(f64::NAN) / self.n.max(1) as f64
    }
}

/// The train line of metrics.jsonl: window means of the losses; the last step's lr, gradient
/// norm and milestone metrics (per group, with the group's name, when there are several).
fn train_line(step: usize, w: &Window, out: &StepOut, single: bool, ms: f64) -> serde_json::Value {
    let first = &out.updates[0];
    let mut line = serde_json::json!({
        "step": step, "split": "train", "loss": w.mean("loss"), "lr": first.lr, "ms": ms,
    });
    if single {
        line["grad_norm"] = first.grad_norm.into();
    } else {
        for u in &out.updates {
            line[format!("loss_{}", u.group)] = w.mean(&format!("loss_{}", u.group)).into();
            line[format!("lr_{}", u.group)] = u.lr.into();
            line[format!("grad_norm_{}", u.group)] = u.grad_norm.into();
        }
    }
    for (k, v) in &out.metrics {
        line[k] = (*v).into();
    }
    line
}

/// The error of a run that a Ctrl-C stopped at `step`, its checkpoint written.
fn interrupted(spec: &RunSpec, step: usize) -> anyhow::Error {
    DlError::Interrupted {
        step,
        ckpt: spec.dir.ckpt(),
        name: spec.name.into(),
        run_dir: spec.dir.0.display().to_string(),
    }
    .into()
}

/// Trains `exp` per `spec`, returning the summary it also writes to summary.json.
pub fn train(spec: &RunSpec, exp: &mut dyn Experiment, device: &Device) -> anyhow::Result<Summary> {
    let tc = spec.train;
    let dir = &spec.dir;
    let total = tc.total_steps(exp.steps_per_epoch());
    let (mut st, start) = prepare(spec, exp, device, total)?;
    let saver = Saver { spec, data: exp.data_name() };
    // A checkpoint at the start means there is always a last good one to fall back to.
    if !spec.resume {
        saver.checkpoint(exp, &st, start)?;
    }
    let mut last_ckpt = start;
    let single = st.groups.is_single();

    let bar = Progress::new(total as u64, start as u64, spec.name, spec.progress);
    let t0 = Instant::now();
    let mut recent: VecDeque<f64> = VecDeque::new();
    let window = (total / 10).clamp(1, 200);
    let mut win = Window::default();
    let mut last_log = Instant::now();
    let mut step = start;
    let training_loop = TrainingLoop::start();
    while step < total {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bar.finish();
            saver.checkpoint(exp, &st, step)?;
            return Err(interrupted(spec, step));
        }
        let ts = Instant::now();
        let out = match train_step(exp, &mut st.groups, st.ema.as_mut(), tc, step)? {
            Step::Updated(out) => out,
            Step::NotFinite { what } => {
                bar.finish();
                // the weights that produced this are already bad: keep the last checkpoint as it is
                return Err(DlError::Diverged {
                    step,
                    what,
                    ckpt: dir.ckpt(),
                    ckpt_step: last_ckpt,
                    name: spec.name.into(),
                    run_dir: dir.0.display().to_string(),
                }
                .into());
            }
        };
        step += 1;
        st.flops += 3.0 * out.forward_flops as f64;
        // where each metrics line stands: training FLOPs so far and seconds since training began
        let at = serde_json::json!({"flops": st.flops, "seconds": t0.elapsed().as_secs_f64()});

        recent.push_back(out.loss());
        if recent.len() > window {
            recent.pop_front();
        }
        win.add(&out, single);
        if step % tc.log_every.max(1) == 0 || step == total {
            let sps = win.n as f64 / last_log.elapsed().as_secs_f64().max(1e-9);
            let mut line = train_line(step, &win, &out, single, ts.elapsed().as_secs_f64() * 1e3);
            line["flops"] = at["flops"].clone();
            line["seconds"] = at["seconds"].clone();
            append_line(&dir.metrics(), &line)?;
            bar.update(step as u64, win.mean("loss"), out.updates[0].lr, sps);
            win = Window::default();
            last_log = Instant::now();
        }
        if tc.eval_every > 0 && step % tc.eval_every == 0 && step < total {
            let m = evaluate(exp, st.ema.as_ref(), Split::Val, tc.eval_heldout)?;
            let mut line =
                serde_json::json!({"step": step, "split": "val", "flops": at["flops"], "seconds": at["seconds"]});
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
            saver.checkpoint(exp, &st, step)?;
            last_ckpt = step;
        }
    }
    bar.finish();
    let wall = t0.elapsed().as_secs_f64();
    saver.checkpoint(exp, &st, step)?;
    drop(training_loop);
    // a Ctrl-C during that last checkpoint: stop before the evaluation, as the hint below says
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(interrupted(spec, step));
    }

    let final_evaluation = final_evaluation(step, spec.name, &dir.0);
    if spec.echo {
        // some take a minute (the diffusion models' FD samples 1,000 images)
        eprintln!("training done in {wall:.1}s; final evaluation (Ctrl-C stops it, --resume runs it later)");
    }
    let t_eval = Instant::now();
    let mut fin = prefixed("val", evaluate(exp, st.ema.as_ref(), Split::Val, tc.eval_heldout)?);
    if tc.eval_heldout {
        fin.extend(prefixed("test", evaluate(exp, st.ema.as_ref(), Split::Test, true)?));
    }
    let mut line = serde_json::json!({"step": step, "split": "val", "flops": st.flops, "seconds": wall});
    for (k, v) in fin.iter().filter(|(k, _)| k.starts_with("val_")) {
        line[k.trim_start_matches("val_")] = (*v).into();
    }
    append_line(&dir.metrics(), &line)?;

    let eval_s = t_eval.elapsed().as_secs_f64();
    saver.model(exp, &st, step)?;
    let ran = (step - start).max(1);
    let summary = Summary {
        name: spec.name.into(),
        run_dir: dir.0.display().to_string(),
        data: exp.data_name(),
        steps: step,
        session_steps: step - start,
        eval_s,
        epochs: step as f64 / exp.steps_per_epoch().max(1) as f64,
        wall_s: wall,
        steps_per_s: if step > start { ran as f64 / wall.max(1e-9) } else { 0.0 },
        params: exp.params().count(),
        flops: st.flops,
        threads: threads(),
        train_loss: if recent.is_empty() {
            last_train_loss(&dir.metrics()).unwrap_or(f64::NAN)
        } else {
            recent.iter().sum::<f64>() / recent.len() as f64
        },
        initial: st.initial,
        final_metrics: fin,
        config_hash: spec.config_hash.into(),
        frozen_params: exp.params().count_frozen(),
        init_from: st.init,
    };
    let text = serde_json::to_string_pretty(&summary_file(&summary, exp.data_notice()))?;
    write_atomic(&dir.summary(), text.as_bytes()).with_context(|| format!("writing {}", dir.summary().display()))?;
    // until summary.json is there the run reads as unfinished, so a Ctrl-C until now could point
    // at --resume
    drop(final_evaluation);
    Ok(summary)
}
