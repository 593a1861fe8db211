//! `dlhist runs [NAME]`: the run directories under the runs root (from `train`, `compare` and
//! `replay --keep`), and `dlhist runs prune`. How `eval`, `sample` and `plot` pick one of them is
//! in pick.rs.

use super::common::{print_json, resolve, resolve_run_dir, ConfigArgs, Resolved};
use crate::engine::runner::{RunDir, Summary};
use crate::engine::runs::{all_runs, parse_date, runs_root, utc, FoundRun};
use crate::error::DlError;
use crate::registry;
use crate::report::{fmt_metric, table::Table};
use std::collections::HashMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// delete runs: all but the newest N finished runs of each milestone and the unfinished runs
    /// newer than the Nth (--keep N), or those last written
    /// before a date (--older-than YYYY-MM-DD); with both, only runs that both select
    #[command(
        after_help = "Examples:\n  dlhist runs prune --keep 3 --dry-run          # list what would go\n  dlhist runs prune --keep 3\n  dlhist runs prune mlp --older-than 2026-11-01"
    )]
    Prune(PruneArgs),
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// only this milestone's runs
    pub name: Option<String>,
    /// keep the newest N finished runs of each milestone (and unfinished ones newer than the Nth)
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// delete runs last written before this day (UTC)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub older_than: Option<String>,
    /// only list what would be deleted
    #[arg(long)]
    pub dry_run: bool,
}

/// List run directories: id, milestone, state, steps, data, key metric, when, size
#[derive(clap::Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Runs live under $DLHIST_RUNS (default: ./checkpoints): NAME/ID from `train`, compare/ID/VARIANT from `compare`, replay/ID/… from `replay --keep`. An id (or its last part, or a unique start of it) is what `eval`, `sample` and `plot` take with --run.\n\nExamples:\n  dlhist runs\n  dlhist runs mlp --json\n  dlhist runs lenet diffusion\n  dlhist runs prune --keep 3 --dry-run\n  dlhist runs prune mlp --older-than 2026-11-01"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// only these milestones' runs
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// What `runs` says of one run directory.
pub struct RunInfo {
    pub found: FoundRun,
    pub summary: Option<Summary>,
    /// "preset", "smoke", "custom" (other keys or budget) or "?" (the config no longer fits)
    pub kind: &'static str,
    /// the step of the last checkpoint (unfinished runs)
    pub ckpt_step: Option<u64>,
    /// the budget in words, from the config: "5000 steps" or "2 epochs"
    pub budget: String,
    pub steps: Option<u64>,
}

impl RunInfo {
    pub fn finished(&self) -> bool {
        self.found.dir.is_complete() && self.summary.is_some()
    }

    pub fn state(&self) -> String {
        if self.finished() {
            "finished".into()
        } else {
            match self.ckpt_step {
                Some(s) => format!("interrupted at step {s}"),
                None => "not started".into(),
            }
        }
    }

    /// train, compare or replay: the command that made the run
    pub fn source(&self) -> &'static str {
        match self.found.id.split('/').next() {
            Some("compare") => "compare",
            Some("replay") => "replay",
            _ => "train",
        }
    }
}

/// The hashes of each milestone's preset and smoke configs, for telling a run's kind.
#[derive(Default)]
struct Kinds(HashMap<String, (String, String)>);

impl Kinds {
    fn kind(&mut self, res: &Resolved) -> &'static str {
        let e = res.entry;
        let (full, smoke) = self.0.entry(e.name.to_string()).or_insert_with(|| {
            let h = |smoke| resolve(e, smoke, &ConfigArgs::default()).map(|r| r.hash).unwrap_or_default();
            (h(false), h(true))
        });
        if &res.hash == full {
            "preset"
        } else if &res.hash == smoke {
            "smoke"
        } else {
            "custom"
        }
    }
}

fn info(found: FoundRun, kinds: &mut Kinds) -> RunInfo {
    let summary: Option<Summary> =
        std::fs::read_to_string(found.dir.summary()).ok().and_then(|t| serde_json::from_str(&t).ok());
    let (kind, budget) = match resolve_run_dir(&found.dir.0) {
        Ok((res, _)) => {
            let t = &res.train;
            let budget = if t.steps > 0 { format!("{} steps", t.steps) } else { format!("{} epochs", t.epochs) };
            (kinds.kind(&res), budget)
        }
        Err(_) => ("?", "?".into()),
    };
    let ckpt_step = found.dir.ckpt_step();
    let steps = summary.as_ref().map(|s| s.steps as u64).or(ckpt_step);
    RunInfo { found, summary, kind, ckpt_step, budget, steps }
}

/// Every run under the runs root (of `name` if given), newest first.
pub fn infos(name: Option<&str>) -> Vec<RunInfo> {
    let mut kinds = Kinds::default();
    all_runs().into_iter().filter(|f| name.is_none_or(|n| f.milestone == n)).map(|f| info(f, &mut kinds)).collect()
}

/// The metric a run is best known by: its claim's metric when the run reports it, else the first
/// of test mean IoU, test accuracy, test BLEU, val bits/char, … that it reports.
pub fn key_metric(s: &Summary) -> Option<(String, f64)> {
    let claim = registry::get(&s.name).ok().and_then(|e| e.claim.as_ref()).map(|c| c.metric);
    let prefs = ["test_miou", "test_acc", "test_bleu", "val_bpc", "test_string_acc", "test_mse", "val_acc", "val_loss"];
    claim.into_iter().chain(prefs).find_map(|k| s.final_metrics.get(k).map(|v| (k.to_string(), *v)))
}

/// "2026-11-29 10:15" (UTC).
pub fn when(t: std::time::SystemTime) -> String {
    let (y, m, d, h, mi, _) = utc(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}")
}

/// 1.2 MB, 340 kB, …
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.0} kB", (b as f64 / 1e3).ceil()),
    }
}

fn check_name(name: Option<&str>) -> anyhow::Result<()> {
    if let Some(n) = name {
        registry::get(n)?;
    }
    Ok(())
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    match a.action {
        Some(Action::Prune(p)) => prune(p, json),
        None => list(&a.names, json),
    }
}

fn list(names: &[String], json: bool) -> anyhow::Result<()> {
    for n in names {
        check_name(Some(n))?;
    }
    let mut runs = infos(None);
    runs.retain(|r| names.is_empty() || names.contains(&r.found.milestone));
    let rows: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let metric = r.summary.as_ref().and_then(key_metric);
            serde_json::json!({
                "id": r.found.id, "milestone": r.found.milestone, "dir": r.found.dir.0,
                "state": if r.finished() { "finished" } else if r.ckpt_step.is_some() { "interrupted" } else { "not started" },
                "step": r.steps, "budget": r.budget, "kind": r.kind, "source": r.source(),
                "data": r.found.dir.data_used(),
                "metric": metric.as_ref().map(|m| &m.0), "value": metric.as_ref().map(|m| m.1),
                "when": when(r.found.dir.modified()), "bytes": r.found.dir.size(),
            })
        })
        .collect();
    if json {
        print_json(&rows);
        return Ok(());
    }
    if rows.is_empty() {
        let what = if names.is_empty() {
            "runs".to_string()
        } else {
            format!("{} runs", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" or "))
        };
        let first = names.first().map_or("mlp", String::as_str);
        println!("no {what} under {} (train one: dlhist train {first})", runs_root().display());
        return Ok(());
    }
    let mut t = Table::new(&["id", "milestone", "state", "steps", "kind", "data", "metric", "when (UTC)", "size"]);
    let mut total = 0;
    for (r, row) in runs.iter().zip(&rows) {
        total += row["bytes"].as_u64().unwrap_or(0);
        let metric = match (row["metric"].as_str(), row["value"].as_f64()) {
            (Some(k), v) => format!("{k} {}", fmt_metric(k, v)),
            _ => "-".into(),
        };
        let state =
            if r.finished() { "finished".to_string() } else { r.state().replace("interrupted at step", "stopped at") };
        t.row(vec![
            r.found.id.clone(),
            r.found.milestone.clone(),
            state,
            format!("{}/{}", r.steps.map_or("-".into(), |s| s.to_string()), r.budget.trim_end_matches(" steps")),
            r.kind.into(),
            row["data"].as_str().unwrap_or("-").into(),
            metric,
            row["when"].as_str().unwrap_or("").into(),
            size(row["bytes"].as_u64().unwrap_or(0)),
        ]);
    }
    print!("{}", t.render());
    let plural = if rows.len() == 1 { "" } else { "s" };
    println!("{} run{plural}, {} under {}", rows.len(), size(total), runs_root().display());
    Ok(())
}

fn prune(p: PruneArgs, json: bool) -> anyhow::Result<()> {
    check_name(p.name.as_deref())?;
    let cutoff = match &p.older_than {
        Some(d) => Some(parse_date(d).ok_or_else(|| {
            DlError::Usage(format!("--older-than takes a date as YYYY-MM-DD (e.g. 2026-11-01), got `{d}`"))
        })?),
        None => None,
    };
    if p.keep.is_none() && cutoff.is_none() {
        return Err(DlError::Usage(
            "runs prune needs --keep N (the newest N finished runs of each milestone stay) or --older-than YYYY-MM-DD"
                .into(),
        )
        .into());
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (mut removed, mut kept, mut freed) = (vec![], 0, 0);
    for f in all_runs().into_iter().filter(|f| p.name.as_deref().is_none_or(|n| f.milestone == n)) {
        // finished runs count toward N; an unfinished one (stopped, resumable) stays unless N
        // finished runs of its milestone are newer
        let finished = seen.entry(f.milestone.clone()).or_default();
        let by_count = if f.dir.is_complete() {
            *finished += 1;
            p.keep.map(|k| *finished > k)
        } else {
            p.keep.map(|k| *finished >= k)
        };
        let age = f.dir.modified().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let by_date = cutoff.map(|c| age < c);
        if by_count.unwrap_or(true) && by_date.unwrap_or(true) {
            let bytes = f.dir.size();
            freed += bytes;
            if !p.dry_run {
                remove_run(&f.dir)?;
            }
            eprintln!(
                "{} {} ({}, {})",
                if p.dry_run { "would delete" } else { "deleted" },
                f.id,
                f.milestone,
                size(bytes)
            );
            removed.push(serde_json::json!({"id": f.id, "milestone": f.milestone, "dir": f.dir.0, "bytes": bytes}));
        } else {
            kept += 1;
        }
    }
    if json {
        print_json(&serde_json::json!({"removed": removed, "kept": kept, "freed_bytes": freed, "dry_run": p.dry_run}));
    } else {
        let verb = if p.dry_run { "would delete" } else { "deleted" };
        let plural = if removed.len() == 1 { "" } else { "s" };
        println!("{verb} {} run{plural} ({}); {kept} kept", removed.len(), size(freed));
    }
    Ok(())
}

/// Deletes a run directory, and the compare/replay folder that held it once it holds no run.
fn remove_run(dir: &RunDir) -> anyhow::Result<()> {
    std::fs::remove_dir_all(&dir.0).map_err(|e| DlError::Unwritable { path: dir.0.clone(), message: e.to_string() })?;
    let root = runs_root();
    if let Some(group) = dir.0.parent().filter(|g| g.parent().and_then(Path::parent) == Some(root.as_path())) {
        let holds_runs = std::fs::read_dir(group)
            .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().join("config.toml").is_file()))
            .unwrap_or(true);
        if !holds_runs
            && matches!(group.parent().and_then(Path::file_name).and_then(|n| n.to_str()), Some("compare" | "replay"))
        {
            let _ = std::fs::remove_dir_all(group);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(1), "1 kB");
        assert_eq!(size(340_000), "340 kB");
        assert_eq!(size(18_000_000), "18.0 MB");
    }
}
