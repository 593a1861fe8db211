//! `dlhist replay --jobs N`: the selected claims' studies (the claims that share runs) run N at
//! a time, each by a child process of this binary with its share of the math threads, longest
//! first by recorded seconds, the next starting as soon as one ends; then their verdicts are
//! joined as `--merge` joins shard files.
//!
//! Why: most claims train small models whose ops are too short to keep two threads busy (a
//! 2-thread replay of `cnn` ran at 147% CPU and took 14.7 s, a 1-thread one 19.2 s), so on two
//! cores two claims at one thread each get through the list faster than one claim at two. The
//! ops sum in an order that does not depend on the thread count, so the values are the same.
//! Why a queue rather than N fixed shards: a study's time at one thread, beside another job,
//! is not its recorded 2-thread time times a constant (it was 1.7x for one, 2.9x for another),
//! so fixed shards balanced on recorded seconds ended minutes apart; a queue only waits on its
//! last study. With `--trace FILE` each child traces into a part file that the parent folds
//! into FILE at its end (`cli::trace`), one process per study on the timeline.

use super::Args;
use crate::claims::plan;
use crate::cli::trace::{self, Part};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One study's child: its claims, and where its --json went.
struct Done {
    claims: Vec<&'static str>,
    file: PathBuf,
    /// None: it could not start
    status: Option<std::process::ExitStatus>,
}

/// Runs the studies of `names` as child processes, `a.jobs` at a time, and returns their rows
/// (catalogue order), as `--merge` would read their --json files. `threads`: the math threads
/// to share out; `traced`: the parent's `--trace FILE`, whose parts the children write.
pub fn run(
    a: &Args,
    names: &[&'static str],
    threads: usize,
    out: Option<&Path>,
    traced: Option<&Path>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let queue: VecDeque<(usize, Vec<&'static str>)> =
        plan::studies(names).into_iter().map(|(c, _)| c).enumerate().collect();
    let jobs = (a.jobs.max(1) as usize).min(queue.len().max(1));
    let per = (threads / jobs).max(1);
    let exe = std::env::current_exe()?;
    eprintln!(
        "replay --jobs {jobs}: {} claims in {} studies, {jobs} at once (longest first), {per} thread(s) each; each study's lines are its own",
        names.len(),
        queue.len()
    );
    let dir = std::env::temp_dir().join(format!("dlhist-replay-jobs-{}", crate::cli::common::new_run_id()));
    std::fs::create_dir_all(&dir)?;
    if let Some(t) = traced {
        std::fs::create_dir_all(trace::parts_dir(t))?;
    }
    let queue = Mutex::new(queue);
    let done = Mutex::new(Vec::<Done>::new());
    let parts = Mutex::new(Vec::<Part>::new());
    // one worker per job: each takes the next study when its child has ended (a child killed by
    // Ctrl-C ends its worker's loop with the rest of the process group).
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                // after a Ctrl-C no new study starts (the running children checkpoint and stop)
                if crate::engine::runner::interrupted_now() {
                    break;
                }
                let Some((i, claims)) = queue.lock().expect("queue").pop_front() else { break };
                let file = dir.join(format!("study-{i}.json"));
                let part = traced.map(|t| trace::parts_dir(t).join(format!("study-{i}.json")));
                if let Some(f) = &part {
                    let p = Part { file: f.clone(), label: claims.join(" + "), start_us: trace::now_us() };
                    parts.lock().expect("parts").push(p);
                }
                let status = child(a, &exe, per, out, &claims, &file, part.as_deref()).and_then(|mut c| c.wait()).ok();
                done.lock().expect("done").push(Done { claims, file, status });
            });
        }
    });
    if let Some(t) = traced {
        trace::write_index(t, &parts.into_inner().expect("parts"))?;
    }
    let done = done.into_inner().expect("done");
    let (mut files, mut broken) = (vec![], vec![]);
    for d in done {
        // exit 1 is a study whose claims ran and some failed: its JSON is complete
        let rows =
            std::fs::read_to_string(&d.file).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        match rows {
            Some(v) if v.as_array().is_some_and(|r| r.len() == d.claims.len()) => files.push(d.file),
            _ => broken.push(format!(
                "{} ({}; `dlhist replay {}` runs it alone)",
                d.claims.join(" + "),
                d.status.map_or("did not start".to_string(), |s| s.to_string()),
                d.claims.join(" ")
            )),
        }
    }
    if !broken.is_empty() {
        // the finished studies' verdicts stay on disk (an error is exit 1, not a usage error)
        let kept: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        anyhow::bail!(
            "{} ended without verdicts (the errors are above); the other studies' are in {} (`dlhist replay --merge` reads them)",
            broken.join(", "),
            if kept.is_empty() { "none".to_string() } else { kept.join(" ") }
        );
    }
    let rows = super::merge::read(&files);
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

/// Starts the child replaying `claims` at `per` threads, its --json into `file`, its trace (if
/// any) into `part`.
fn child(
    a: &Args,
    exe: &Path,
    per: usize,
    out: Option<&Path>,
    claims: &[&'static str],
    file: &Path,
    part: Option<&Path>,
) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("--threads").arg(per.to_string());
    if let Some(p) = part {
        cmd.arg("--trace").arg(p).env(trace::PART_ENV, "1");
    }
    cmd.arg("replay").arg("--json").arg("--no-record");
    cmd.arg("--budget").arg(a.budget.name()).arg("--device").arg(&a.device);
    if let Some(n) = a.seeds {
        cmd.arg("--seeds").arg(n.to_string());
    }
    if let Some(o) = out {
        cmd.arg("--out").arg(o);
    }
    cmd.args(claims);
    cmd.stdout(Stdio::from(std::fs::File::create(file)?)).stderr(Stdio::inherit());
    cmd.spawn().inspect_err(|e| eprintln!("could not start `{} replay {}`: {e}", exe.display(), claims.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue holds every claim exactly once, claims that share runs in one study, longest
    /// study first.
    #[test]
    fn the_studies_hold_each_claim_once_longest_first() {
        let names: Vec<&'static str> =
            crate::registry::entries().iter().filter(|e| e.claim.is_some()).map(|e| e.name).collect();
        let studies = plan::studies(&names);
        let mut all: Vec<&str> = studies.iter().flat_map(|(s, _)| s.iter().copied()).collect();
        all.sort();
        let mut want = names.clone();
        want.sort();
        assert_eq!(all, want);
        assert!(studies.windows(2).all(|w| w[0].1 >= w[1].1), "longest first");
        let home = |n: &str| studies.iter().position(|(s, _)| s.contains(&n)).unwrap();
        assert_eq!(home("alexnet"), home("alexnet-tanh"));
        assert_ne!(home("mlp"), home("backprop"));
    }
}
