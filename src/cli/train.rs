//! `dlhist train NAME`: train a milestone into a run directory.

use super::common::{self, print_json, resolve, ConfigArgs, Resolved, Ui};
use crate::config::apply_set;
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
    // A resumed run keeps its config; only the budget and the step-size knobs that rescue a
    // diverged run may change (changing them of course ends bitwise equality with a straight run).
    let fixed = a.cfg.config.is_some()
        || a.cfg.seed.is_some()
        || a.cfg.sets.iter().any(|s| !RESUMABLE.contains(&s.split('=').next().unwrap_or("").trim()));
    if fixed {
        return Err(DlError::Usage(format!(
            "a resumed run keeps its config (config.toml in its run directory); only --steps/--epochs and --set {} may change. Drop -c/--seed/other --set keys, or start a new run",
            RESUMABLE.join("|")
        ))
        .into());
    }
    let dir = match &a.run_dir {
        Some(d) => d.clone(),
        None => common::runs_of(&a.name)
            .into_iter()
            .find(|r| !r.is_complete() && r.ckpt().is_file())
            .map(|r| r.0)
            .ok_or_else(|| DlError::MissingCheckpoint {
                path: common::runs_root().join(&a.name),
                hint: format!("no unfinished `{}` run with a checkpoint there; pass --run-dir DIR", a.name),
            })?,
    };
    let (mut res, rd) = common::resolve_run_dir(&dir)?;
    if res.entry.name != a.name {
        return Err(DlError::WrongMilestone {
            path: rd.config(),
            found: res.entry.name.into(),
            expected: a.name.clone(),
            path_dir: dir.display().to_string(),
        }
        .into());
    }
    if !a.cfg.sets.is_empty() || a.cfg.steps.is_some() || a.cfg.epochs.is_some() {
        let mut t = res.table.clone();
        for s in a.cfg.sets.iter().chain(a.cfg.flag_sets().iter()) {
            apply_set(&mut t, s, res.entry.name)?;
        }
        // the runner rewrites config.toml once the checkpoint has loaded and the new budget is valid
        res = Resolved::from_table(res.entry, t)?;
    }
    Ok((res, rd))
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
    let t = &res.train;
    let budget = if t.steps > 0 { format!("{} steps", t.steps) } else { format!("{} epochs", t.epochs) };
    eprintln!(
        "{} {} on {}: {budget}, batch {}, {:?} lr {} -> {}",
        if a.resume { "resuming" } else { "training" },
        entry.name,
        crate::device::describe(&device),
        t.batch_size,
        t.optimizer,
        t.lr,
        rd.0.display()
    );
    let s = common::train_run(&res, rd, a.resume, &device, Ui { progress: !json, echo: !json })?;
    if json {
        print_json(&s);
    } else {
        print_summary(&s);
    }
    Ok(())
}

/// The end-of-run report: test metrics first, then validation, timing and where things are.
pub fn print_summary(s: &Summary) {
    let pick = |prefix: &str| -> String {
        s.final_metrics
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| format!("{} {}", k.trim_start_matches(prefix), fmt_metric(k, Some(*v))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(acc) = s.final_metrics.get("test_acc") {
        println!("test accuracy: {:.2}% ({} on {})", acc * 100.0, s.name, s.data);
    }
    // a split the milestone has no metrics for (a text has no test split) prints no line
    for (label, prefix) in [("test:", "test_"), ("val: ", "val_")] {
        let line = pick(prefix);
        if !line.is_empty() {
            println!("{label} {line}");
        }
    }
    println!(
        "train loss {:.4}; {} steps ({:.1} epochs) in {:.1}s, {:.1} steps/s, {} params, {} threads",
        s.train_loss, s.steps, s.epochs, s.wall_s, s.steps_per_s, s.params, s.threads
    );
    println!("run: {}  (dlhist sample {} | dlhist eval {})", s.run_dir, s.run_dir, s.run_dir);
}
