//! `dlhist history`: the history in one picture. Years across, the seven constraints down (hard
//! limits shaded), a mark per milestone in each row of a constraint it lifted, coloured by its
//! verdict in a replay: PASS green, FAIL red, not run (or not checked) grey.

use super::common::{print_json, runs_root};
use crate::error::DlError;
use crate::registry::constraints::{self, Constraint, Kind};
use crate::registry::entries;
use crate::report::history::{history_png, Mark, Row, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Draw the milestones by year against the seven constraints, coloured by their replay verdicts
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The verdicts come from a replay's JSON (`dlhist replay --json > replay.json`, or `--merge` of shards), else from the newest full-budget replay recorded under the runs root (every `dlhist replay` records its verdicts in <runs root>/replay/verdicts-<id>.json; a smoke replay's only where there is no full one, and the title says so: its PASS means the pipeline ran); with neither, every mark is grey. A milestone the replay did not check is grey.\n\nExamples:\n  dlhist history --out history.png\n  dlhist replay --budget smoke --json > r.json && dlhist history --replay r.json\n  dlhist history --replay r.json --json | jq '.rows[] | {constraint, n: (.milestones | length)}'"
)]
pub struct Args {
    /// the replay JSON whose verdicts colour the marks (default: the newest recorded replay)
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// the PNG to write
    #[arg(long, value_name = "FILE", default_value = "history.png")]
    pub out: PathBuf,
}

/// Where `dlhist replay` records its verdicts.
pub fn verdicts_dir() -> PathBuf {
    runs_root().join("replay")
}

/// The newest recorded replay at the full budget (the last `verdicts-<date-time-pid>.json` by
/// name whose claims were checked), else the newest one at all, if any.
fn newest_replay() -> Option<PathBuf> {
    let dir = verdicts_dir();
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    found.retain(|p| {
        let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        n.starts_with("verdicts-") && n.ends_with(".json")
    });
    found.sort();
    let full = found.iter().rev().find(|p| read_replay(p).is_ok_and(|r| !r.smoke));
    full.cloned().or_else(|| found.pop())
}

/// A replay's verdicts: name -> status ("pass", "fail", "skip"), and whether every row ran at
/// the smoke budget (the pipelines ran; no claim was checked).
pub struct Replay {
    pub statuses: BTreeMap<String, String>,
    pub smoke: bool,
}

/// The verdicts of a replay's JSON.
pub fn read_replay(path: &Path) -> Result<Replay, DlError> {
    let bad = |message: String| {
        DlError::Malformed {
        what: "replay JSON",
        path: path.display().to_string(),
        message: format!("{message}. Pass the output of `dlhist replay --json > replay.json` (an array of rows, each with `name` and `status`)"),
    }
    };
    if !path.is_file() {
        return Err(DlError::Usage(format!(
            "--replay {}: no such file. Pass the output of `dlhist replay --json > replay.json`, or leave --replay out for the newest recorded replay",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let rows = v.as_array().ok_or_else(|| bad("not an array".into()))?;
    let mut out = BTreeMap::new();
    let smoke = !rows.is_empty() && rows.iter().all(|r| r["budget"].as_str() == Some("smoke"));
    for (i, r) in rows.iter().enumerate() {
        let (Some(name), Some(status)) = (r["name"].as_str(), r["status"].as_str()) else {
            return Err(bad(format!("row {i} has no `name` and `status` strings")));
        };
        if !["pass", "fail", "skip"].contains(&status) {
            return Err(bad(format!("row {i} ({name}) has status `{status}`, not pass, fail or skip")));
        }
        out.insert(name.to_string(), status.to_string());
    }
    let known = out.keys().filter(|n| entries().iter().any(|e| e.name == n.as_str())).count();
    if known == 0 {
        return Err(bad("no row names a milestone of `dlhist list`".into()));
    }
    Ok(Replay { statuses: out, smoke })
}

fn verdict(status: Option<&String>) -> Verdict {
    match status.map(String::as_str) {
        Some("pass") => Verdict::Pass,
        Some("fail") => Verdict::Fail,
        _ => Verdict::NotRun,
    }
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    // No replay given and none recorded: the frame is still worth seeing, every mark grey.
    let replay = a.replay.clone().or_else(newest_replay);
    let (statuses, smoke) = match &replay {
        Some(p) => {
            let r = read_replay(p)?;
            (r.statuses, r.smoke)
        }
        None => {
            eprintln!(
                "note: no replay of this checkout is recorded in {}, so every mark is grey (not run). To colour them, run one (`dlhist replay`, or `dlhist replay --json > r.json` and then `dlhist history --replay r.json`)",
                verdicts_dir().display()
            );
            (BTreeMap::new(), false)
        }
    };
    let source = match (&replay, smoke) {
        (None, _) => "no replay (every mark grey)".to_string(),
        (Some(p), false) => p.display().to_string(),
        // a smoke replay's PASS says the pipeline ran, not that the claim held
        (Some(p), true) => format!("{}, at the smoke budget: PASS = the pipeline ran, no claim checked", p.display()),
    };
    let mut sorted: Vec<_> = entries().iter().collect();
    sorted.sort_by_key(|e| (e.year, e.name));
    let rows: Vec<Row> = Constraint::ALL
        .iter()
        .map(|&c| Row {
            name: c.name().into(),
            kind: c.kind().name().into(),
            hard: c.kind() == Kind::HardLimit,
            marks: sorted
                .iter()
                .filter(|e| constraints::of(e.name).iter().any(|(x, _)| *x == c))
                .map(|e| Mark { year: e.year, label: e.name.into(), verdict: verdict(statuses.get(e.name)) })
                .collect(),
        })
        .collect();
    let title = format!("The history against its seven constraints: verdicts of {source}");
    let (w, h) = history_png(&a.out, &title, &rows).map_err(|e| DlError::output(&a.out, format!("{e:#}")))?;
    let status_of = |name: &str| statuses.get(name).map(String::as_str).unwrap_or("not run").to_string();
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                let ms: Vec<_> = r
                    .marks
                    .iter()
                    .map(|m| serde_json::json!({"name": m.label, "year": m.year, "status": status_of(&m.label)}))
                    .collect();
                serde_json::json!({"constraint": r.name, "kind": r.kind, "milestones": ms})
            })
            .collect();
        print_json(
            &serde_json::json!({"replay": replay, "smoke": smoke, "plot": a.out, "width": w, "height": h, "rows": rows}),
        );
    } else {
        let count = |v: Verdict| rows.iter().flat_map(|r| &r.marks).filter(|m| m.verdict == v).count();
        println!(
            "wrote {} ({w}x{h}): marks PASS {}, FAIL {}, not run {}, from {}",
            a.out.display(),
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::NotRun),
            source
        );
    }
    Ok(())
}
