//! `--trace FILE` across processes. `replay --jobs N` runs its studies in child processes; with
//! `--trace FILE` each child traces into its own part file (in `FILE.parts/`), and once the
//! parent's own trace is complete `merge_parts` folds the parts into FILE: one timeline, the
//! parent as process 1 and each study as a process of its own, named by its claims, its clock
//! shifted to when the parent started it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

/// When this process's trace began (set just before the trace layer is built).
static T0: OnceLock<Instant> = OnceLock::new();

/// Set by a parent on the children whose traces it will merge: they print no `trace:` line.
pub const PART_ENV: &str = "DLHIST_TRACE_PART";

/// Marks the start of this process's trace; its events' timestamps count from about here.
pub fn start() {
    let _ = T0.set(Instant::now());
}

/// Microseconds since `start` (0 before it).
pub fn now_us() -> f64 {
    T0.get().map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e6)
}

/// Where the children's part files of the trace `file` go.
pub fn parts_dir(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".parts");
    PathBuf::from(name)
}

/// One child's trace: its file, a label (the study's claims) and when it started (µs on the
/// parent's trace clock).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Part {
    pub file: PathBuf,
    pub label: String,
    pub start_us: f64,
}

/// Records the parts for `merge_parts` (the index sits in the parts folder).
pub fn write_index(file: &Path, parts: &[Part]) -> std::io::Result<()> {
    let dir = parts_dir(file);
    std::fs::write(dir.join("index.json"), serde_json::to_string(parts)?)
}

/// Folds the parts recorded beside `file` into it and removes them; returns how many were
/// merged (0 without a parts folder). A part that is missing or unreadable (a child killed
/// mid-run writes no closing bracket) is skipped and named in the error.
pub fn merge_parts(file: &Path) -> anyhow::Result<usize> {
    let dir = parts_dir(file);
    let Ok(index) = std::fs::read_to_string(dir.join("index.json")) else { return Ok(0) };
    let parts: Vec<Part> = serde_json::from_str(&index)?;
    let mut events: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    events.push(process_name(1, "dlhist replay --jobs (the parent)"));
    let (mut merged, mut bad) = (0, vec![]);
    for (i, p) in parts.iter().enumerate() {
        let pid = i as u64 + 2;
        let read =
            std::fs::read_to_string(&p.file).ok().and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok());
        let Some(child) = read else {
            bad.push(p.label.clone());
            continue;
        };
        events.push(process_name(pid, &format!("study: {}", p.label)));
        for mut e in child {
            e["pid"] = pid.into();
            if let Some(ts) = e["ts"].as_f64() {
                e["ts"] = (ts + p.start_us).into();
            }
            events.push(e);
        }
        merged += 1;
    }
    std::fs::write(file, serde_json::to_string(&events)?)?;
    if !bad.is_empty() {
        anyhow::bail!(
            "no complete trace from {} (the study did not finish); parts left in {}",
            bad.join(", "),
            dir.display()
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(merged)
}

/// Chrome's metadata event naming process `pid` in the timeline.
fn process_name(pid: u64, name: &str) -> serde_json::Value {
    serde_json::json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two parts fold into the parent's file as processes 2 and 3, shifted to their start, and
    /// the parts folder goes.
    #[test]
    fn parts_merge_into_one_timeline_as_their_own_processes() {
        let dir = std::env::temp_dir().join(format!("dlhist-trace-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.json");
        let ev = |ts: f64| serde_json::json!({"name": "step", "ph": "B", "pid": 1, "tid": 0, "ts": ts});
        std::fs::write(&file, serde_json::to_string(&vec![ev(5.0)]).unwrap()).unwrap();
        std::fs::create_dir_all(parts_dir(&file)).unwrap();
        let mut parts = vec![];
        for (i, start) in [100.0, 2000.0].into_iter().enumerate() {
            let f = parts_dir(&file).join(format!("study-{i}.json"));
            std::fs::write(&f, serde_json::to_string(&vec![ev(1.0), ev(2.0)]).unwrap()).unwrap();
            parts.push(Part { file: f, label: format!("s{i}"), start_us: start });
        }
        write_index(&file, &parts).unwrap();
        assert_eq!(merge_parts(&file).unwrap(), 2);
        let all: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let ts = |pid: u64| -> Vec<f64> {
            all.iter().filter(|e| e["pid"] == pid && e["ph"] == "B").map(|e| e["ts"].as_f64().unwrap()).collect()
        };
        assert_eq!((ts(1), ts(2), ts(3)), (vec![5.0], vec![101.0, 102.0], vec![2001.0, 2002.0]));
        assert!(all.iter().any(|e| e["pid"] == 3 && e["args"]["name"] == "study: s1"));
        assert!(!parts_dir(&file).exists());
        // without parts nothing changes
        assert_eq!(merge_parts(&file).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
