//! How `eval`, `sample` and `plot` pick a run: `--run ID|DIR`, or by name the newest finished
//! run of the preset's config (runs.rs lists them), and how a picked run is rebuilt on the data it
//! trained on.

use super::common::{self, resolve, resolve_run_dir, ConfigArgs, Resolved};
use super::runs::{infos, RunInfo};
use crate::engine::runner::RunDir;
use crate::engine::runs::{all_runs, runs_root, FoundRun};
use crate::error::DlError;
use crate::registry;
use std::path::Path;

/// The run `eval`, `sample` and `plot` use: `--run ID|DIR` (an id of `dlhist runs`, its last
/// part, or a unique start of it), or the target: a run directory, or a milestone name meaning
/// its newest finished run of the preset's config (else the newest finished run with another
/// budget or keys, else the newest smoke run), from `train`, `compare` or `replay --keep` alike.
/// Says on stderr which run it took and why.
pub fn pick(target: Option<&str>, run: Option<&str>) -> anyhow::Result<(Resolved, RunDir)> {
    if let Some(r) = run {
        let (res, rd) = by_id(r, target)?;
        eprintln!("run: {}", rd.0.display());
        return Ok((res, rd));
    }
    let target = target.ok_or_else(|| DlError::Usage("name a milestone or pass --run ID|DIR".into()))?;
    if Path::new(target).is_dir() || registry::get(target).is_err() {
        // a run directory; else a run id; else the usual error for an unknown name
        let (res, rd) = match Path::new(target).is_dir() {
            false => match by_id(target, None) {
                Ok(found) => found,
                // a run id (they start with the date, 20261207-…) that matches no run: its own
                // error, exit 1 like every "no such run", not the unknown-milestone usage error
                Err(e) if target.starts_with(|c: char| c.is_ascii_digit()) => return Err(e),
                Err(_) => common::find_run(target)?,
            },
            true => common::find_run(target)?,
        };
        eprintln!("run: {}", rd.0.display());
        return Ok((res, rd));
    }
    let entry = registry::get(target)?;
    let runs = infos(Some(entry.name));
    let done: Vec<&RunInfo> = runs.iter().filter(|r| r.finished()).collect();
    let best = ["preset", "custom", "smoke"].iter().find_map(|k| done.iter().find(|r| r.kind == *k));
    let Some(best) = best else {
        // no finished run: the usual error (it says what to train)
        return common::find_run(target);
    };
    let (res, rd) = resolve_run_dir(&best.found.dir.0)?;
    let why = match best.kind {
        "preset" => "the newest finished run of the preset".to_string(),
        "custom" => {
            let preset = resolve(entry, false, &ConfigArgs::default())?;
            let diff: Vec<String> = crate::config::diff_keys(&res.table, &preset.table)
                .into_iter()
                .take(3)
                .map(|(k, run, pre)| format!("{k} = {run}, the preset's {pre}"))
                .collect();
            format!("the newest finished run; none has the preset's config, this one has {}", diff.join("; "))
        }
        _ => "a smoke run: there is no finished run of the preset or of another budget".to_string(),
    };
    let from = match best.source() {
        "compare" => ", made by `dlhist compare`",
        "replay" => ", made by `dlhist replay --keep`",
        _ => "",
    };
    let others = runs.len() - 1;
    let more = if others > 0 { format!("; {others} other run(s): dlhist runs {}", entry.name) } else { String::new() };
    eprintln!("run: {} ({why}{from}{more})", rd.0.display());
    Ok((res, rd))
}

/// `--run X`: a run directory, or the run whose id is X, ends with /X, or starts with X.
fn by_id(x: &str, name: Option<&str>) -> anyhow::Result<(Resolved, RunDir)> {
    let (res, rd) = if RunDir(x.into()).config().is_file() {
        resolve_run_dir(Path::new(x))?
    } else {
        let runs = all_runs();
        let last = |f: &FoundRun| f.id.rsplit('/').next().unwrap_or("").to_string();
        let exact: Vec<&FoundRun> = runs.iter().filter(|f| f.id == x || f.id.ends_with(&format!("/{x}"))).collect();
        let mut hits: Vec<&FoundRun> =
            if exact.is_empty() { runs.iter().filter(|f| last(f).starts_with(x)).collect() } else { exact };
        // with a name, its runs first (a run of another milestone is then an error below)
        if name.is_some_and(|n| hits.iter().any(|f| f.milestone == n)) {
            hits.retain(|f| Some(f.milestone.as_str()) == name);
        }
        match hits.as_slice() {
            [one] => resolve_run_dir(&one.dir.0)?,
            [] => {
                return Err(DlError::MissingCheckpoint {
                    path: runs_root().join(x),
                    hint: format!(
                        "no run `{x}`{} there: `dlhist runs{}` lists the run ids, or pass a run directory",
                        name.map(|n| format!(" of `{n}`")).unwrap_or_default(),
                        name.map(|n| format!(" {n}")).unwrap_or_default()
                    ),
                }
                .into())
            }
            many => {
                let ids: Vec<&str> = many.iter().take(6).map(|f| f.id.as_str()).collect();
                return Err(DlError::Usage(format!(
                    "--run {x} matches {} runs: {}{}; give more of the id",
                    many.len(),
                    ids.join(", "),
                    if many.len() > 6 { ", …" } else { "" }
                ))
                .into());
            }
        }
    };
    if let Some(n) = name.filter(|n| registry::get(n).is_ok_and(|e| e.name != res.entry.name)) {
        return Err(DlError::Usage(format!(
            "--run {x} is a `{}` run, not `{n}`; drop the name or pick a `{n}` run (dlhist runs {n})",
            res.entry.name
        ))
        .into());
    }
    Ok((res, rd))
}

/// A trained run's experiment, built on the data the run trained on: a run that fell back to a
/// built-in set (digits8 for mnist) is evaluated on that set even once the asked-for set has been
/// fetched, since its weights fit only that data. The config names the set it asked for; the
/// run directory records the one it used (`RunDir::data_used`).
pub fn build_as_trained(
    res: &Resolved,
    rd: &RunDir,
    device: &candle_core::Device,
) -> anyhow::Result<Box<dyn crate::experiment::Experiment>> {
    let exp = res.build(device)?;
    let now = exp.data_name();
    let Some(used) = rd.data_used().filter(|u| *u != now) else { return Ok(exp) };
    let mut table = res.table.clone();
    let section = match table.get_mut("data") {
        Some(toml::Value::Table(t)) => t,
        _ => &mut table,
    };
    let mut replaced = false;
    for (_, v) in section.iter_mut() {
        if v.as_str() == Some(now.as_str()) {
            *v = toml::Value::String(used.clone());
            replaced = true;
        }
    }
    if !replaced {
        return Ok(exp);
    }
    match Resolved::from_table(res.entry, table).map_err(anyhow::Error::from).and_then(|r| r.build(device)) {
        Ok(again) if again.data_name() == used => {
            eprintln!("note: this run trained on {used} ({now} was not fetched then), so it is evaluated on {used}");
            Ok(again)
        }
        _ => Ok(exp),
    }
}
