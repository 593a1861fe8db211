//! `dlhist train NAME`: train a milestone into a run directory.

use super::common::{self, print_json, resolve, ConfigArgs, Resolved, Ui};
use crate::config::{apply_set, diff_keys, merge, parse_toml, ScheduleKind};
use crate::engine::runner::{RunDir, Summary};
use crate::error::DlError;
use crate::registry;
use crate::report::fmt_metric;
use std::path::PathBuf;

/// Train a milestone; writes checkpoints/NAME/RUN_ID/ (config, metrics, checkpoints, weights, summary)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  dlhist train mlp\n  dlhist train mlp --steps 200 --set train.lr=3e-4\n  dlhist train relu -c my.toml --run-dir runs/relu-a\n  dlhist train mlp --resume                # continue the newest unfinished mlp run\n\nCtrl-C writes a checkpoint and exits with 130; --resume continues it exactly."
)]
pub struct Args {
    /// milestone name (see `dlhist list`)
    pub name: String,
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// where to write the run (default: checkpoints/NAME/<date-time-pid>)
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// continue from the run's ckpt/latest.safetensors (with --run-dir, or the newest unfinished run)
    #[arg(long)]
    pub resume: bool,
}

/// Keys `--resume` may change.
const RESUMABLE: [&str; 6] =
    ["train.lr", "train.min_lr", "train.clip_grad_norm", "train.eval_every", "train.ckpt_every", "train.log_every"];

fn resume_target(a: &Args) -> anyhow::Result<(Resolved, RunDir)> {
    let dir = match &a.run_dir {
        Some(d) => d.clone(),
        None => {
            crate::engine::runs::newest_unfinished(&a.name).map(|r| r.0).ok_or_else(|| DlError::MissingCheckpoint {
                path: common::runs_root().join(&a.name),
                hint: format!("no unfinished `{}` run with a checkpoint there; pass --run-dir DIR", a.name),
            })?
        }
    };
    let (res, rd) = common::resolve_run_dir(&dir)?;
    if res.entry.name != a.name {
        return Err(DlError::WrongMilestone {
            path: rd.config(),
            found: res.entry.name.into(),
            expected: a.name.clone(),
            path_dir: dir.display().to_string(),
        }
        .into());
    }
    // A resumed run keeps its config: -c FILE, --seed and --set may only restate it, except for
    // the budget and the step-size knobs that rescue a diverged run (changing those of course
    // ends bitwise equality with a straight run).
    let mut t = res.table.clone();
    if let Some(path) = &a.cfg.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DlError::Usage(format!("cannot read config file {}: {e}", path.display())))?;
        merge(&mut t, &parse_toml(&text, "config file", &path.display().to_string())?, res.entry.name)?;
    }
    for s in a.cfg.sets.iter().chain(a.cfg.flag_sets().iter()) {
        apply_set(&mut t, s, res.entry.name)?;
    }
    let budget = ["train.steps", "train.epochs"];
    let changed: Vec<String> = diff_keys(&res.table, &t)
        .into_iter()
        .filter(|(k, _, _)| !RESUMABLE.contains(&k.as_str()) && !budget.contains(&k.as_str()))
        .map(|(k, run, new)| format!("`{k}` is {run} in the run, {new} here"))
        .collect();
    if !changed.is_empty() {
        return Err(DlError::Usage(format!(
            "a resumed run keeps its config ({}): {}. Only --steps/--epochs and --set {} may change; drop the others, or start a new run",
            rd.config().display(),
            changed.join("; "),
            RESUMABLE.join("|")
        ))
        .into());
    }
    // the runner rewrites config.toml once the checkpoint has loaded and the new budget is valid
    let resolved = Resolved::from_table(res.entry, t)?;
    let budget_changed = diff_keys(&res.table, &resolved.table).iter().any(|(k, _, _)| budget.contains(&k.as_str()));
    // (said only where training goes on: a budget at or below the checkpoint's step is refused)
    let goes_on = match (resolved.train.steps, rd.ckpt_step()) {
        (steps, Some(at)) if steps > 0 => steps as u64 > at,
        _ => true,
    };
    if budget_changed && goes_on && resolved.train.schedule == ScheduleKind::Cosine {
        eprintln!(
            "note: this run's cosine schedule is laid over its whole budget, so a new budget changes the learning rate from the next step on (after a finished run, it rises again): the weights will differ from a straight run of the new length. For that, start a new run with --steps"
        );
    }
    Ok((resolved, rd))
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let entry = registry::get(&a.name)?;
    let device = common::device(&a.device)?;
    let (res, rd) = if a.resume {
        resume_target(&a)?
    } else {
        let res = resolve(entry, false, &a.cfg)?;
        let dir = a.run_dir.clone().unwrap_or_else(|| common::runs_root().join(entry.name).join(common::new_run_id()));
        let rd = RunDir(dir);
        if rd.config().exists() {
            return Err(DlError::Usage(format!(
                "{} already holds a run; continue it with --resume, or choose another --run-dir",
                rd.0.display()
            ))
            .into());
        }
        (res, rd)
    };
    // built before the announcement, so a bad value (`--set data.dataset=mnits`) fails first
    let exp = common::build_for_training(&res, &device)?;
    let t = &res.train;
    let budget = if t.steps > 0 { format!("{} steps", t.steps) } else { format!("{} epochs", t.epochs) };
    let from = match rd.ckpt_step() {
        Some(step) if a.resume => format!(" from step {step}"),
        _ => String::new(),
    };
    eprintln!(
        "{} {}{from} on {}: {budget}, batch {}, {} lr {} -> {}",
        if a.resume { "resuming" } else { "training" },
        entry.name,
        crate::device::describe(&device),
        t.batch_size,
        // as the config spells it (`adamw`)
        format!("{:?}", t.optimizer).to_lowercase(),
        fmt_number(t.lr),
        rd.0.display()
    );
    let s = common::train_built(&res, exp, rd, a.resume, &device, Ui { progress: !json, echo: !json })?;
    if let Some(w) = loss_rose(&s) {
        eprintln!("{w}");
    }
    if json {
        // summary.json as written, with the version, commit and data notice
        let file = std::fs::read_to_string(std::path::Path::new(&s.run_dir).join("summary.json")).ok();
        match file.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
            Some(v) => print_json(&v),
            None => print_json(&s),
        }
    } else {
        print_summary(&s);
    }
    Ok(())
}

/// A number as people read it: plain when moderate, scientific when tiny or huge (1e9, 3e-5).
pub fn fmt_number(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// A warning when the run ended with a higher validation loss than it started with: it did not
/// learn (a learning rate far too high diverges without a NaN).
pub fn loss_rose(s: &Summary) -> Option<String> {
    let (before, after) = (s.initial.get("val_loss").copied()?, s.metric("val_loss")?);
    let short = |x: f64| if x.abs() >= 1e5 { format!("{x:.2e}") } else { format!("{x:.4}") };
    (after > before).then(|| {
        format!(
            "warning: the validation loss rose during training, from {} at step 0 to {} at the end: the run did not learn. Try a lower learning rate (--set train.lr=...){}",
            short(before),
            short(after),
            // a few steps of a deep net can end anywhere, whatever its lr
            if s.steps < 100 { format!(", or more than {} steps", s.steps) } else { String::new() }
        )
    })
}

/// The end-of-run report: the run's key metric, then the test and validation metrics, timing
/// and where things are.
pub fn print_summary(s: &Summary) {
    let keys: Vec<&str> = s.final_metrics.keys().map(String::as_str).collect();
    let key = super::runs::key_metric(s);
    // the key metric leads, once; the lines below list the rest
    let pick = |prefix: &str| -> String {
        s.final_metrics
            .iter()
            .filter(|(k, _)| key.as_ref().is_none_or(|(kk, _)| kk != *k))
            .filter_map(|(k, v)| {
                let (heading, rest) = split_heading(k);
                (heading == prefix).then(|| format!("{} {}", metric_label(rest, &keys), fmt_metric(k, Some(*v))))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some((k, v)) = &key {
        let (split, rest) = split_heading(k);
        println!("{} on {}: {split} {} {}", s.name, s.data, metric_label(rest, &keys), fmt_metric(k, Some(*v)));
    }
    // a split the milestone has no metrics for (a text has no test split) prints no line
    for (label, heading) in [("test:", "test"), ("val: ", "val"), ("fit on training images (eval mode):", FIT)] {
        let line = pick(heading);
        if !line.is_empty() {
            println!("{label} {line}");
        }
    }
    // after a resume the time and rate are this session's: say how many of the steps it ran
    let session = match s.session_steps {
        0 => ", none now: its final evaluation".to_string(),
        n if n < s.steps => format!(", {n} of them now"),
        _ => String::new(),
    };
    println!(
        "train loss {:.4}; {} steps ({:.1} epochs{session}) in {:.1}s{}, {:.1} steps/s, {} params, {:.3} training GFLOP, {} threads",
        s.train_loss,
        s.steps,
        s.epochs,
        s.wall_s,
        if s.eval_s >= 1.0 { format!(" (+ {:.1}s of final evaluation)", s.eval_s) } else { String::new() },
        s.steps_per_s,
        s.params,
        s.flops / 1e9,
        s.threads
    );
    println!("run: {}", s.run_dir);
    println!("next: dlhist sample {0}   or   dlhist eval {0}", s.run_dir);
}

/// The heading of the metrics measured on training data, though logged with the validation
/// metrics (`val_fit_acc`: a classifier's accuracy on a fixed subset of its training images).
const FIT: &str = "training fit";

/// A final metric's key split into the heading it is shown under and its name: `test_acc` →
/// (test, acc), and `val_fit_acc` → (training fit, acc), since it is no validation measure.
fn split_heading(key: &str) -> (&str, &str) {
    match key.strip_prefix("val_").filter(|k| super::plot::on_training_data(k)) {
        Some(k) => (FIT, k.strip_prefix("fit_").unwrap_or(k)),
        None => key.split_once('_').unwrap_or(("", key)),
    }
}

/// A metric's name for people: `acc` is the pixel accuracy where the run also reports a mean
/// IoU (segmentation), `miou` the mean IoU, `bpc` bits per character.
fn metric_label(key: &str, all: &[&str]) -> String {
    match key {
        "acc" if all.iter().any(|k| k.ends_with("miou")) => "pixel accuracy".into(),
        "acc" => "accuracy".into(),
        "miou" => "mean IoU".into(),
        "bpc" => "bits/char".into(),
        "bleu" => "BLEU".into(),
        k => k.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_switch_to_scientific_notation_when_huge_or_tiny() {
        assert_eq!(fmt_number(1e30), "1e30");
        assert_eq!(fmt_number(3e-4), "3e-4");
        assert_eq!(fmt_number(0.001), "0.001");
        assert_eq!(fmt_number(0.5), "0.5");
        assert_eq!(fmt_number(2.0), "2");
    }

    #[test]
    fn segmentation_accuracy_is_named_pixel_accuracy() {
        assert_eq!(metric_label("acc", &["test_acc", "test_miou"]), "pixel accuracy");
        assert_eq!(metric_label("acc", &["test_acc"]), "accuracy");
        assert_eq!(metric_label("fit_acc", &["val_fit_acc"]), "fit acc");
    }

    #[test]
    fn the_fit_accuracy_is_not_shown_as_a_validation_metric() {
        assert_eq!(split_heading("val_fit_acc"), (FIT, "acc"));
        assert_eq!(split_heading("val_acc"), ("val", "acc"));
        assert_eq!(split_heading("test_string_acc"), ("test", "string_acc"));
        assert_eq!(split_heading("train_loss"), ("train", "loss"));
    }
}
