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
//!
//! Stopping: a signal sent to this process alone (`kill PID`, a process manager's SIGTERM) does
//! not reach the children, and one sent to the whole group (a terminal's Ctrl-C, `timeout`,
//! systemd) reaches them too. So each child reads its stdin, a pipe from here: when this process
//! is asked to stop it writes the signal's number there, and the child stops at a checkpoint as
//! if it had been signalled. A child already stopping ignores it, so a signal that came both ways
//! still counts once (a second one would quit without a checkpoint). If this process dies, the
//! pipe ends and the children stop too (as for a hang-up) rather than train for no one.
//! Their stderr comes back through this process a whole line at a time (`pass_lines`).

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
                let status = child(a, &exe, per, out, &claims, &file, part.as_deref())
                    .and_then(|mut c| {
                        let lines = c.stderr.take().map(|e| std::thread::spawn(move || pass_lines(e)));
                        let status = wait_passing_stop(c);
                        // its last lines are out before its study counts as done
                        lines.map(|l| l.join());
                        status
                    })
                    .ok();
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
    if !broken.is_empty() && crate::engine::runner::interrupted_now() {
        // the stopped studies said so themselves (their INTERRUPTED lines); the caller reports
        // how many claims were decided, and records no verdict
        let rows = super::merge::read(&files);
        let _ = std::fs::remove_dir_all(&dir);
        return rows;
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
    cmd.stdout(Stdio::from(std::fs::File::create(file)?)).stderr(Stdio::piped());
    cmd.stdin(Stdio::piped()).env(STOP_PIPE_ENV, "1");
    cmd.spawn().inspect_err(|e| eprintln!("could not start `{} replay {}`: {e}", exe.display(), claims.join(" ")))
}

/// Copies a child's stderr to ours a whole line per write. Rust's stderr is unbuffered, so a
/// child's `eprintln!` is a write per piece of its format, and two children writing at once
/// interleaved mid-line ("  INTERRUPTED   INTERRUPTED relu: …"); whole lines from one writer
/// do not. The children run with --json, so they draw no progress bars: their stderr is lines.
fn pass_lines(from: std::process::ChildStderr) {
    use std::io::{BufRead, Write};
    let mut from = std::io::BufReader::new(from);
    let mut line = Vec::new();
    while from.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let _ = std::io::stderr().lock().write_all(&line);
        line.clear();
    }
}

/// Set for a `--jobs` child: its stdin is the pipe on which the parent says stop.
pub const STOP_PIPE_ENV: &str = "DLHIST_STOP_PIPE";

/// Waits for the child, writing the parent's stop signal to its stdin once the parent is asked
/// to stop (polled: a study takes seconds to minutes, 50 ms is nothing to wait at its end).
fn wait_passing_stop(mut c: std::process::Child) -> std::io::Result<std::process::ExitStatus> {
    use std::io::Write;
    // held open while the child lives: its end closing would read as this process gone
    let mut pipe = c.stdin.take();
    // a child that ends just before the write has closed its end: the write must fail with
    // EPIPE here, not raise SIGPIPE, which main sets to kill the process (blocked in this
    // thread only: the signal is directed at the writing thread)
    #[cfg(unix)]
    // SAFETY: a signal set built by sigemptyset/sigaddset, applied to this thread's mask
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mut told = false;
    loop {
        if let Some(status) = c.try_wait()? {
            return Ok(status);
        }
        if !told && crate::engine::runner::interrupted_now() {
            told = true;
            let sig = crate::error::STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst);
            // (a child that has just ended has nothing to be told)
            let _ = pipe.as_mut().map(|p| p.write_all(&[sig as u8]));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// In a `--jobs` child: a thread that waits on stdin for the parent's word and then stops this
/// process's runs as the signal would have (checkpoint, exit 128 + the signal). The parent
/// holds the pipe open while we live, so its end means the parent is gone: the runs stop as for
/// a hang-up, if nothing stopped them yet. Nothing outside `--jobs` sets the variable.
pub(super) fn watch_parent() {
    if std::env::var_os(STOP_PIPE_ENV).is_none() {
        return;
    }
    std::thread::spawn(|| {
        use std::io::Read;
        let mut byte = [0u8; 1];
        loop {
            match std::io::stdin().read(&mut byte) {
                Ok(1) => stop(byte[0] as i32, "passed on by `replay --jobs`"),
                Ok(_) => {
                    stderr_to_null();
                    stop(1, "the `replay --jobs` that started this study is gone");
                    return;
                }
                Err(_) => return,
            }
        }
    });
}

/// Stops this process's runs at their next step as `sig` would; a process already stopping
/// (the same signal also reached the whole group) is left as it is, so it counts once.
fn stop(sig: i32, why: &str) {
    use crate::engine::runner::INTERRUPTED;
    use std::sync::atomic::Ordering;
    if INTERRUPTED.load(Ordering::SeqCst) {
        return;
    }
    // the signal first: a run that sees INTERRUPTED exits with 128 + it
    crate::error::STOP_SIGNAL.store(sig, Ordering::SeqCst);
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        return;
    }
    eprintln!("\ninterrupt ({why}): finishing this step and writing a checkpoint");
}

/// Points stderr at /dev/null. It was a pipe to the parent, which is gone: a write there would
/// raise SIGPIPE, whose default action (main sets it) kills the process, and the stopping runs
/// still print as they clean up their temporary folder. (A write in the moment between the
/// parent's death and this call can still kill the child, leaving its temporary folder.)
fn stderr_to_null() {
    #[cfg(unix)]
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 2 of a file we hold open; fd 2 stays valid throughout
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
    }
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
