//! Resume exactness: N steps, stop, resume to 2N gives bitwise the weights of 2N
//! steps straight; and Ctrl-C writes a checkpoint, exits 130, and resuming it finishes the run
//! with the same weights as a run that was never interrupted.

mod common;

use common::{assert_same_tensors, line_count, looks_complete, smoke, Sandbox};
use std::time::{Duration, Instant};

#[test]
fn n_steps_then_resume_to_2n_gives_the_weights_of_2n_steps_straight() {
    let sb = Sandbox::new();
    let (a, b) = (sb.path("A"), sb.path("B"));
    let preset = smoke("mlp");
    // constant lr: a schedule over the budget would differ between a 20-step and a 40-step run
    let train = |dir: &std::path::Path, steps: &str| {
        sb.run(&[
            "train",
            "mlp",
            "-c",
            &preset,
            "--set",
            "train.schedule=constant",
            "--steps",
            steps,
            "--run-dir",
            dir.to_str().unwrap(),
        ])
        .ok();
    };
    train(&a, "40");
    train(&b, "20");
    let b_at_20 = common::read_tensors(&b.join("model.safetensors"));
    sb.run(&["train", "mlp", "--resume", "--run-dir", b.to_str().unwrap(), "--steps", "40"])
        .ok()
        .stderr_says(&["resuming mlp"]);

    assert!(looks_complete(&a) && looks_complete(&b));
    assert_ne!(
        b_at_20,
        common::read_tensors(&b.join("model.safetensors")),
        "the resumed run should have trained further"
    );
    assert_same_tensors(&a.join("model.safetensors"), &b.join("model.safetensors"));
    // the checkpoint (weights + optimizer state) agrees too
    assert_same_tensors(&a.join("ckpt/latest.safetensors"), &b.join("ckpt/latest.safetensors"));
    // the metrics log of the resumed run has no duplicate or missing steps
    let steps = |d: &std::path::Path| -> Vec<(u64, String)> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["split"] == "train")
            .map(|v| (v["step"].as_u64().unwrap(), v["loss"].to_string()))
            .collect()
    };
    assert_eq!(steps(&a), steps(&b));
    let sa: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let sbm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("summary.json")).unwrap()).unwrap();
    assert_eq!(sa["final"], sbm["final"]);
    assert_eq!(sbm["steps"], 40);
}

/// Sends SIGINT to `pid` the way a terminal's Ctrl-C does.
fn interrupt(pid: u32) {
    send("-INT", pid)
}

/// `kill SIGNAL pid`.
fn send(signal: &str, pid: u32) {
    let st = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill runs");
    assert!(st.success(), "kill {signal} {pid} failed");
}

/// The flags of the interrupted mlp runs: digits8, no periodic checkpoint.
fn stop_flags(steps: usize) -> Vec<String> {
    vec![
        "train".to_string(),
        "mlp".into(),
        "--steps".into(),
        steps.to_string(),
        "--set".into(),
        "data.dataset=digits8".into(),
        "--set".into(),
        "train.ckpt_every=100000".into(),
    ]
}

/// Starts mlp runs and sends `signal` (a `kill` flag) mid-training until one is stopped there;
/// asserts the exit code and the message, and returns the stopped run and its budget.
fn stop_mid_run(sb: &Sandbox, signal: &str, code: i32) -> (std::path::PathBuf, usize) {
    // digits8 trains at roughly 400 steps/s on an idle machine; interrupt after ~5 metrics
    // lines, and start over with a larger budget if the run finishes first
    let mut steps = 400;
    loop {
        let c = sb.path(&format!("C{steps}"));
        let mut args = stop_flags(steps);
        args.extend(["--run-dir".into(), c.to_str().unwrap().into()]);
        let mut child = sb
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dlhist starts");
        let metrics = c.join("metrics.jsonl");
        let t0 = Instant::now();
        let mut exited = None;
        while line_count(&metrics) < 5 {
            if let Some(st) = child.try_wait().unwrap() {
                exited = Some(st);
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "no progress in metrics.jsonl");
            std::thread::sleep(Duration::from_millis(2));
        }
        if exited.is_none() {
            send(signal, child.id());
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // finished, or in its final evaluation (which quits at once), before the interrupt
        // arrived: try a longer run
        if out.status.code() == Some(0) || stderr.contains("its final evaluation was cut short") {
            assert!(steps < 100_000, "could not interrupt a run in time");
            steps *= 4;
            continue;
        }
        assert_eq!(out.status.code(), Some(code), "kill {signal} should exit with {code}:\n{stderr}");
        assert!(
            stderr.contains("interrupted at step") && stderr.contains("--resume --run-dir"),
            "the message should say how to continue:\n{stderr}"
        );
        break (c, steps);
    }
}

#[test]
fn ctrl_c_checkpoints_exits_130_and_resume_matches_an_uninterrupted_run() {
    let sb = Sandbox::new();
    let (c, steps) = stop_mid_run(&sb, "-INT", 130);
    assert!(c.join("ckpt/latest.safetensors").is_file(), "Ctrl-C must write the checkpoint");
    assert!(
        !c.join("summary.json").exists() && !c.join("model.safetensors").exists(),
        "an interrupted run must not look complete"
    );

    sb.run(&["train", "mlp", "--resume", "--run-dir", c.to_str().unwrap()]).ok();
    assert!(looks_complete(&c));

    let d = sb.path("D");
    let mut args = stop_flags(steps);
    args.extend(["--run-dir".into(), d.to_str().unwrap().into()]);
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    assert_same_tensors(&d.join("model.safetensors"), &c.join("model.safetensors"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], steps);
}

/// Guards: SIGTERM (what process managers and `kill` send) stops a run as gracefully as Ctrl-C,
/// checkpoint and all, but exits 143 (128 + 15), not Ctrl-C's 130.
#[test]
fn sigterm_checkpoints_like_ctrl_c_and_exits_143() {
    let sb = Sandbox::new();
    let (c, _) = stop_mid_run(&sb, "-TERM", 143);
    assert!(c.join("ckpt/latest.safetensors").is_file(), "SIGTERM must write the checkpoint");
    sb.run(&["train", "mlp", "--resume", "--run-dir", c.to_str().unwrap()]).ok();
    assert!(looks_complete(&c));
}

#[test]
fn resume_without_run_dir_continues_the_newest_unfinished_run() {
    let sb = Sandbox::new();
    // an unfinished run under the runs root: train, then remove what marks it finished
    sb.run(&["train", "backprop", "-c", &smoke("backprop"), "--steps", "30"]).ok();
    let done = common::files_named(&sb.runs.join("backprop"), "summary.json");
    let dir = done[0].parent().unwrap().to_path_buf();
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let out = sb.run(&["train", "backprop", "--resume", "--steps", "60"]);
    out.ok();
    assert!(out.stderr.contains(&dir.display().to_string()), "{}", out.stderr);
    assert!(looks_complete(&dir));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["steps"], 60);
}

#[test]
fn a_run_stopped_in_its_final_evaluation_resumes_to_that_evaluation_alone() {
    // Ctrl-C during the final evaluation quits at once, leaving the last checkpoint at the end
    // of the budget and no summary or model; resuming it evaluates and writes them
    let sb = Sandbox::new();
    let (a, b) = (sb.path("A"), sb.path("B"));
    for d in [&a, &b] {
        sb.run(&["train", "mlp", "-c", &smoke("mlp"), "--steps", "20", "--run-dir", d.to_str().unwrap()]).ok();
    }
    std::fs::remove_file(b.join("summary.json")).unwrap();
    std::fs::remove_file(b.join("model.safetensors")).unwrap();
    let out = sb.run(&["train", "mlp", "--resume", "--run-dir", b.to_str().unwrap()]);
    out.ok();
    assert!(out.stdout.contains("none now: its final evaluation"), "{}", out.stdout);
    assert!(looks_complete(&b));
    assert_same_tensors(&a.join("model.safetensors"), &b.join("model.safetensors"));
    let summary = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap()
    };
    let (sa, sbm) = (summary(&a), summary(&b));
    assert_eq!(sa["final"], sbm["final"]);
    assert_eq!((sbm["steps"].as_u64(), sbm["session_steps"].as_u64()), (Some(20), Some(0)));
    // the loss of its last log line: there are no steps of this session to average
    assert!(sbm["train_loss"].as_f64().is_some_and(f64::is_finite), "{sbm}");
    // a finished run is not evaluated again
    sb.run(&["train", "mlp", "--resume", "--run-dir", b.to_str().unwrap()])
        .expect_code(2)
        .stderr_says(&["already at step 20", "--steps 40"]);
}

/// Starts `dlhist ARGS` (a replay) with its temporary folder under the sandbox's tmp/, and
/// returns it once a run whose path names `run` has logged a few lines, with that folder.
fn replay_started(sb: &Sandbox, args: &[&str], run: &str) -> (std::process::Child, std::path::PathBuf) {
    let tmp = sb.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = sb
        .cmd(args)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dlhist starts");
    let t0 = Instant::now();
    let logged = || {
        common::files_named(&tmp, "metrics.jsonl")
            .iter()
            .any(|m| m.to_string_lossy().contains(run) && line_count(m) >= 3)
    };
    while !logged() {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("the replay ended before it could be stopped:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no progress in the replay's metrics.jsonl");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, tmp)
}

/// What is left in `dir`.
fn left_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect()
}

/// Guards: a Ctrl-C in a plain replay once printed the runner's `--resume --run-dir` hint for a
/// run in the replay's temporary folder, which the replay then removes as it exits 130.
#[test]
fn ctrl_c_in_a_replay_names_no_folder_it_removes_and_says_how_to_check_the_claim_again() {
    let sb = Sandbox::new();
    // the full budget trains for minutes: interrupt once its run has logged a few lines
    let (child, tmp) = replay_started(&sb, &["replay", "mlp"], "mlp");
    interrupt(child.id());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "Ctrl-C should exit with 130:\n{stderr}");
    for says in ["INTERRUPTED mlp: stopped by Ctrl-C at step", "Check it again with: dlhist replay mlp"] {
        assert!(stderr.contains(says), "stderr should say {says:?}:\n{stderr}");
    }
    assert!(!stderr.contains("--resume"), "no hint to resume a run that is removed:\n{stderr}");
    assert!(left_in(&tmp).is_empty(), "the replay's temporary runs should be removed: {:?}", left_in(&tmp));
}

/// Guards: `kill PID` on a `replay --jobs` reaches the parent alone; its children once trained
/// on to the end of their claims (mlp's 5,000 steps, 10 s on the sandbox's built-in digits)
/// while the parent waited for them.
#[test]
fn sigterm_to_a_replay_with_jobs_stops_its_children_at_a_checkpoint_and_exits_143() {
    let sb = Sandbox::new();
    // stop it once mlp's run has logged a few lines (relu's ends sooner)
    let (child, tmp) = replay_started(&sb, &["replay", "--jobs", "2", "mlp", "relu"], "mlp");
    // the parent alone, as `kill PID` or a process manager sends it
    send("-TERM", child.id());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(143), "SIGTERM should exit with 143:\n{stderr}");
    assert!(stderr.contains("INTERRUPTED mlp: stopped by SIGTERM"), "mlp's study should stop:\n{stderr}");
    for verdict in ["PASS mlp", "FAIL mlp", "SKIP mlp"] {
        assert!(!stderr.contains(verdict), "mlp should not train on to its verdict:\n{stderr}");
    }
    // each child removed its temporary runs as it stopped, and the parent its verdict files
    assert!(left_in(&tmp).is_empty(), "the replay's temporary folders should be removed: {:?}", left_in(&tmp));
}

/// Guards: a Ctrl-C in a comparison once left only the stopped variant's `train --resume` hint;
/// the variants after it never trained, and a rerun trained the finished ones again.
#[test]
fn a_stopped_comparison_prints_the_command_that_resumes_it_keeping_the_finished_variants() {
    let sb = Sandbox::new();
    let mut steps = 2000;
    let (out, stderr) = loop {
        let out = sb.path(&format!("cmp{steps}"));
        let steps_s = steps.to_string();
        #[rustfmt::skip]
        let args = ["compare", "mlp", "mlp:model.hidden=[48]", "--set", "data.dataset=digits8", "--set", "train.ckpt_every=100000",
            "--steps", &steps_s, "--out", out.to_str().unwrap()];
        let mut child = sb
            .cmd(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dlhist starts");
        // stop the second variant once it has logged a few lines
        let second = out.join("mlp_model.hidden__48_").join("metrics.jsonl");
        let t0 = Instant::now();
        while line_count(&second) < 3 && child.try_wait().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(300), "no progress in {}", second.display());
            std::thread::sleep(Duration::from_millis(2));
        }
        interrupt(child.id());
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
        if done.status.code() == Some(130) && stderr.contains("in `mlp:model.hidden=[48]`") {
            break (out, stderr);
        }
        // it finished (or was in its final evaluation) before the interrupt came: a longer run
        assert!(steps < 200_000, "could not interrupt the second variant:\n{stderr}");
        steps *= 4;
    };
    let said = stderr.lines().find_map(|l| l.split_once("Continue it with: ")).map(|(_, c)| c.to_string());
    let command = said.unwrap_or_else(|| panic!("no command to continue with:\n{stderr}"));
    // the words as a POSIX shell reads them (the second variant's brackets need quoting)
    let split = std::process::Command::new("sh")
        .args(["-c", &format!("set -- {command}; printf '%s\\0' \"$@\"")])
        .output()
        .expect("sh runs");
    let words: Vec<String> =
        String::from_utf8(split.stdout).unwrap().split_terminator('\0').map(str::to_string).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(words[..4], ["dlhist", "--threads", "2", "compare"], "{command}");
    assert!(words.contains(&"mlp:model.hidden=[48]"), "{command}");
    assert!(command.ends_with(&format!("--out {} --resume", out.display())), "{command}");
    // (the sandbox gives --threads 2 itself)
    let resumed = sb.run(&words[3..]);
    resumed.ok().stderr_says(&["[1/2] mlp: finished in", "kept", "[2/2] mlp:model.hidden=[48]: resuming from step"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for v in summary["variants"].as_array().unwrap() {
        assert_eq!(v["summary"]["steps"], steps, "{v}");
    }
    // without --out, --resume looks under the runs root, which holds no comparison here
    sb.run(&["compare", "mlp", "mlp:model.hidden=[48]", "--resume"])
        .expect_code(1)
        .stderr_says(&["no unfinished comparison"]);
}
