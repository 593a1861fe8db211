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

    /// The milestone that config.toml's first line names (`# dlhist NAME — resolved config`).
    pub fn milestone(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.config()).ok()?;
        let first = text.lines().next()?.strip_prefix("# dlhist ")?;
        first.split_whitespace().next().map(str::to_string)
    }

    /// The step of ckpt/latest.safetensors, read from its header alone.
    pub fn ckpt_step(&self) -> Option<u64> {
        use std::io::Read;
        let mut f = std::fs::File::open(self.ckpt()).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let n = u64::from_le_bytes(len);
        if n > 100 << 20 {
            return None;
        }
        let mut head = vec![0u8; n as usize];
        f.read_exact(&mut head).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&head).ok()?;
        v["__metadata__"]["dlhist.step"].as_str()?.parse().ok()
    }

    /// The data the run used: summary.json's `data`, else the `# data used:` line of config.toml.
    pub fn data_used(&self) -> Option<String> {
        let from_summary = std::fs::read_to_string(self.summary())
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["data"].as_str().map(str::to_string));
        from_summary.or_else(|| {
            let text = std::fs::read_to_string(self.config()).ok()?;
            let line = text.lines().take(3).find_map(|l| l.strip_prefix("# data used: "))?;
            Some(line.split(" (").next().unwrap_or(line).to_string())
        })
    }

    /// When the run last wrote: summary.json when it finished, else its checkpoint, else config.toml.
    pub fn modified(&self) -> std::time::SystemTime {
        [self.summary(), self.ckpt(), self.config()]
            .iter()
            .find_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .unwrap_or(std::time::UNIX_EPOCH)
    }

    /// Bytes on disk of every file in the run directory.
    pub fn size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {
                    std::fs::read_dir(p).map(|rd| rd.filter_map(|e| e.ok()).map(|e| walk(&e.path())).sum()).unwrap_or(0)
                }
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        }
        walk(&self.0)
    }
}

/// A run directory under the runs root: its id (the path below the root, e.g.
/// `mlp/20261129-101500-42` or `compare/20261129-101500-43/relu`) and its milestone.
#[derive(Clone, Debug)]
pub struct FoundRun {
    pub id: String,
    pub milestone: String,
    pub dir: RunDir,
}

/// Every run directory under the runs root: `NAME/ID` from `train`, and the runs inside
/// `compare/ID/` and `replay/ID/` (a folder holding config.toml is a run). Newest first.
pub fn all_runs() -> Vec<FoundRun> {
    let root = runs_root();
    let mut found = vec![];
    let mut stack = vec![(root.clone(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            let run = RunDir(p.clone());
            if run.config().is_file() {
                if let Some(milestone) = run.milestone() {
                    let id = p.strip_prefix(&root).unwrap_or(&p).to_string_lossy().to_string();
                    found.push((run.modified(), FoundRun { id, milestone, dir: run }));
                }
            } else if depth < 2 {
                stack.push((p, depth + 1));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.id.cmp(&a.1.id)));
    found.into_iter().map(|(_, f)| f).collect()
}

/// (year, month, day, hour, minute, second) in UTC of `secs` since the Unix epoch (Howard
/// Hinnant's civil-from-days).
pub fn utc(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + (m <= 2) as i64;
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32)
}

/// Seconds since the Unix epoch at 00:00 UTC of a `YYYY-MM-DD` date (days-from-civil).
pub fn parse_date(s: &str) -> Option<u64> {
    let mut it = s.trim().split('-');
    let (y, m, d): (i64, i64, i64) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(((era * 146097 + doe - 719468) * 86400) as u64)
}

/// Root of run directories: $DLHIST_RUNS or ./checkpoints.
pub fn runs_root() -> PathBuf {
    std::env::var("DLHIST_RUNS").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("checkpoints"))
}

/// Folders of run directories searched besides the runs root for a needed run (`also_search`).
static ALSO: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Adds `dir`, a folder whose subfolders are run directories, to those searched for a run a
/// milestone needs: `replay` adds its own, so a need that a claim's run already met is not
/// trained again (`dalle` needs the `vq-vae` and `clip` runs that their own claims trained).
pub fn also_search(dir: &Path) {
    ALSO.lock().unwrap_or_else(|e| e.into_inner()).push(dir.to_path_buf());
}

/// The run directories of the folders `also_search` added, in order.
pub fn also_searched() -> Vec<RunDir> {
    let roots = ALSO.lock().unwrap_or_else(|e| e.into_inner()).clone();
    roots.iter().flat_map(|r| run_dirs_in(r)).map(RunDir).collect()
}

/// The subfolders of `root` that hold a config.toml, sorted by name (ids sort by time).
fn run_dirs_in(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("config.toml").is_file()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Run directories of milestone `name` under the runs root, newest first.
/// Writes `bytes` to `path` through a temporary file beside it (synced) and a rename, so that a
/// process stopped mid-write (Ctrl-C quits at once outside training) leaves the old file or the
/// new one: checkpoints, config.toml, metrics.jsonl, summary.json.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The newest run of `name` that stopped before its end with a checkpoint to resume from.
pub fn newest_unfinished(name: &str) -> Option<RunDir> {
    runs_of(name).into_iter().find(|r| !r.is_complete() && r.ckpt().is_file())
}

pub fn runs_of(name: &str) -> Vec<RunDir> {
    run_dirs_in(&runs_root().join(name)).into_iter().rev().map(RunDir).collect()
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
                hint: format!("train.init_from = \"{target}\": that run has not finished. Finish it (dlhist train NAME --resume --run-dir {}) or name another run", crate::error::shell_word(target)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_the_civil_calendar() {
        for date in ["1970-01-01", "2000-02-29", "2026-11-29", "2026-12-31"] {
            let secs = parse_date(date).unwrap();
            let (y, m, d, h, mi, s) = utc(secs + 3600 * 5 + 61);
            assert_eq!((format!("{y:04}-{m:02}-{d:02}"), h, mi, s), (date.to_string(), 5, 1, 1));
        }
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
