//! `dlhist replay --jobs N`: the selected claims as N shards (`--shard K/N`'s split: whole
//! studies, balanced by their recorded seconds) run at the same time, each by a child process of
//! this binary with its share of the math threads, then joined as `--merge` joins shard files.
//!
//! Why: most claims train small models whose ops are too short to keep two threads busy (a
//! 2-thread replay of `cnn` ran at 147% CPU and took 14.7 s, a 1-thread one 19.2 s), so on two
//! cores two claims at one thread each get through the list faster than one claim at two. The
//! ops sum in an order that does not depend on the thread count, so the values are the same.

use super::Args;
use crate::claims::plan;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The shards of `names` for `jobs` workers, empty ones left out (fewer studies than jobs).
pub fn shards(names: &[&'static str], jobs: usize) -> Vec<(usize, Vec<&'static str>)> {
    (1..=jobs).map(|k| (k, plan::shard(names, k, jobs))).filter(|(_, s)| !s.is_empty()).collect()
}

/// The children of a `--jobs` replay; those still running when it is dropped (an error before
/// they were all waited for) are killed, so none outlives the replay.
struct Children(Vec<(usize, std::process::Child, PathBuf, usize)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c, _, _) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the shards of `names` as child processes at once and returns their rows (catalogue
/// order), as `--merge` would read their --json files. `threads`: the math threads to share out.
pub fn run(
    a: &Args,
    names: &[&'static str],
    threads: usize,
    out: Option<&Path>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let jobs = a.jobs.max(1) as usize;
    let parts = shards(names, jobs);
    let per = (threads / jobs).max(1);
    let exe = std::env::current_exe()?;
    eprintln!(
        "replay --jobs {jobs}: {} claims in {} shards at once, {per} thread(s) each; each shard's lines are its own",
        names.len(),
        parts.len()
    );
    let dir = std::env::temp_dir().join(format!("dlhist-replay-jobs-{}", crate::cli::common::new_run_id()));
    std::fs::create_dir_all(&dir)?;
    let mut children = Children(vec![]);
    for (k, part) in &parts {
        let mut cmd = Command::new(&exe);
        cmd.arg("--threads").arg(per.to_string()).arg("replay").arg("--json").arg("--no-record");
        cmd.arg("--budget").arg(a.budget.name()).arg("--device").arg(&a.device);
        cmd.arg("--shard").arg(format!("{k}/{jobs}"));
        if let Some(n) = a.seeds {
            cmd.arg("--seeds").arg(n.to_string());
        }
        if let Some(o) = out {
            cmd.arg("--out").arg(o);
        }
        cmd.args(names);
        let file = dir.join(format!("shard-{k}.json"));
        cmd.stdout(Stdio::from(std::fs::File::create(&file)?)).stderr(Stdio::inherit());
        let child =
            cmd.spawn().map_err(|e| anyhow::anyhow!("could not start shard {k}/{jobs} ({}): {e}", exe.display()))?;
        children.0.push((*k, child, file, part.len()));
    }
    let (mut files, mut broken) = (vec![], vec![]);
    while let Some((k, mut child, file, n)) = children.0.pop() {
        let status = child.wait()?;
        // exit 1 is a shard whose claims ran and some failed: its JSON is complete
        match std::fs::read_to_string(&file).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
            Some(v) if v.as_array().is_some_and(|r| r.len() == n) => files.push(file),
            _ => broken
                .push(format!("shard {k}/{jobs} ({status}; `dlhist replay --shard {k}/{jobs} NAMES` runs it alone)")),
        }
    }
    if !broken.is_empty() {
        // the finished shards' verdicts stay on disk (an error is exit 1, not a usage error)
        let kept: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        anyhow::bail!(
            "{} ended without its verdicts (its errors are above); the other shards' are in {} (`dlhist replay --merge` reads them)",
            broken.join(", "),
            if kept.is_empty() { "none".to_string() } else { kept.join(" ") }
        );
    }
    files.reverse();
    let rows = super::merge::read(&files);
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every claim lands in exactly one shard, and a job count above the number of studies
    /// leaves no empty shard.
    #[test]
    fn shards_cover_each_claim_once_and_none_is_empty() {
        let names: Vec<&'static str> =
            crate::registry::entries().iter().filter(|e| e.claim.is_some()).map(|e| e.name).collect();
        for jobs in [1, 2, 3, 7] {
            let parts = shards(&names, jobs);
            let mut all: Vec<&str> = parts.iter().flat_map(|(_, s)| s.iter().copied()).collect();
            all.sort();
            let mut want = names.clone();
            want.sort();
            assert_eq!(all, want, "{jobs} jobs");
            assert!(parts.iter().all(|(_, s)| !s.is_empty()));
        }
        // two studies (perceptron + backprop share none with mlp): at most two non-empty shards
        assert_eq!(shards(&["mlp", "backprop"], 4).len(), 2);
    }
}
