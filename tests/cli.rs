//! Black-box tests of the `dlhist` command line: every command's happy path, and for bad input
//! the exit code, a message that says what to do, and no run directory left that looks complete.
//!
//! Every test runs in its own sandbox (tests/common): DLHIST_RUNS and DLHIST_DATA point into a
//! temp dir (the data folder is empty, so mnist-default milestones use the built-in digits8).

mod common;

use common::{files_named, looks_complete, smoke, Out, Sandbox};
use std::path::Path;

/// A failed command: its exit code, key phrases on stderr, and no complete run left behind.
fn assert_failed(sb: &Sandbox, out: &Out, code: i32, phrases: &[&str]) {
    out.expect_code(code).stderr_says(phrases);
    sb.assert_no_complete_run();
}

const COMMANDS: [&str; 8] = ["list", "info", "train", "eval", "sample", "compare", "replay", "data"];

// ---------------------------------------------------------------- help and usage

#[test]
fn every_subcommand_help_shows_an_examples_section() {
    let sb = Sandbox::new();
    let top = sb.run(&["--help"]);
    top.ok();
    assert!(top.stdout.contains("Examples:"), "{}", top.stdout);
    for c in COMMANDS {
        let out = sb.run(&[c, "--help"]);
        out.ok();
        assert!(
            out.stdout.contains("Examples:") && out.stdout.contains(&format!("dlhist {c}")),
            "`dlhist {c} --help` should show an Examples section with a `dlhist {c}` line:\n{}",
            out.stdout
        );
    }
    for c in [["data", "status"], ["data", "verify"], ["data", "fetch"], ["runs", "prune"]] {
        let out = sb.run(&[c[0], c[1], "--help"]);
        out.ok();
        let line = format!("dlhist {} {}", c[0], c[1]);
        assert!(out.stdout.contains("Examples:") && out.stdout.contains(&line), "`{line} --help`:\n{}", out.stdout);
    }
}

/// Guards: `eval` and `sample` once showed `Usage: … [TARGET]`, optional, though they need a
/// target or --run, and some lists were named in the plural (`[NAMES]...`), others not.
#[test]
fn usage_lines_show_required_arguments_as_angle_brackets_and_optional_ones_as_square() {
    let sb = Sandbox::new();
    for c in ["eval", "sample"] {
        let help = sb.run(&[c, "--help"]);
        help.ok();
        for usage in
            [format!("Usage: dlhist {c} [OPTIONS] <TARGET>"), format!("dlhist {c} [OPTIONS] [NAME] --run <ID|DIR>")]
        {
            assert!(help.stdout.contains(&usage), "`dlhist {c} --help` should show {usage:?}:\n{}", help.stdout);
        }
        // as it says: neither a target nor --run is a usage error
        sb.run(&[c]).expect_code(2).stderr_says(&["<TARGET>"]);
    }
    for (args, usage) in [
        (&["info"][..], "info [OPTIONS] <NAME>"),
        (&["train"], "train [OPTIONS] <NAME>"),
        (&["replay"], "replay [OPTIONS] [NAME]..."),
        (&["runs"], "runs [OPTIONS] [NAME]..."),
        (&["bench"], "bench [OPTIONS] [WORKLOAD]..."),
        (&["data", "fetch"], "data fetch [OPTIONS] [SET]..."),
        (&["compare"], "compare [OPTIONS] <NAME> <NAME>..."),
        (&["plot"], "plot [OPTIONS] <RUN>..."),
    ] {
        let help = sb.run(&[args, &["--help"]].concat());
        help.ok();
        assert!(help.stdout.contains(&format!("Usage: dlhist {usage}")), "{args:?} --help:\n{}", help.stdout);
    }
}

/// Guards: `--version` once printed the package version alone; it now names the commit the
/// binary was built from, with `-dirty` when the sources had uncommitted changes.
#[test]
fn version_names_the_commit_built_from_and_marks_uncommitted_sources_dirty() {
    let sb = Sandbox::new();
    let out = sb.run(&["--version"]);
    out.ok();
    let version = out.stdout.trim();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git").current_dir(env!("CARGO_MANIFEST_DIR")).args(args).output().ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        // built outside a git checkout: the package version alone
        assert_eq!(version, format!("dlhist {}", env!("CARGO_PKG_VERSION")));
        return;
    };
    assert!(version.starts_with(&format!("dlhist {} ({head}", env!("CARGO_PKG_VERSION"))), "{version}");
    // (cargo rebuilt the binary for this test run, so the checkout is as it was built); the
    // build's inputs are build.rs's list, so either suffix is checked, the clean one in CI
    let inputs: Vec<&str> = env!("DLHIST_BUILD_INPUTS").split(':').collect();
    let changed =
        git(&[&["--no-optional-locks", "status", "--porcelain", "--"][..], &inputs].concat()).expect("git status");
    if changed.is_empty() {
        assert!(version.ends_with(&format!("({head})")), "the build's inputs are committed: {version}");
    } else {
        assert!(version.ends_with("-dirty)"), "the build's inputs have uncommitted changes:\n{changed}\n{version}");
    }
}

#[test]
fn command_line_errors_exit_with_2_and_point_to_help() {
    let sb = Sandbox::new();
    for args in [
        &["train"][..],
        &["train", "mlp", "--bogus"],
        &["compare", "relu"],
        &["train", "mlp", "--steps", "ten"],
        &["train", "mlp", "--steps", "5", "--epochs", "1"],
        &["replay", "--budget", "huge"],
        &["data", "bogus"],
        &["frobnicate"],
    ] {
        let out = sb.run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains("--help"), "{args:?}: {}", out.stderr);
    }
    sb.assert_no_complete_run();
}

#[test]
fn with_json_an_error_is_printed_as_json_on_stdout() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "train", "mlpp"]);
    assert_failed(&sb, &out, 2, &["did you mean `mlp`"]);
    let v = out.json();
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("mlpp"), "{v}");

    let out = sb.run(&["--json", "eval", "mlp"]);
    assert_failed(&sb, &out, 1, &["dlhist train mlp"]);
    assert_eq!(out.json()["exit_code"], 1);
}

/// Guards: clap's own usage errors also come as the `--json` error object on stdout (they once
/// bypassed it: clap printed and exited before `--json` was known, and a script got nothing).
#[test]
fn with_json_a_command_line_error_is_also_reported_as_json_on_stdout() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "compare", "relu"]);
    out.expect_code(2);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "with --json a usage error should print {{\"error\", \"exit_code\"}} on stdout ({e}); stdout was {:?}",
            out.stdout
        )
    });
    assert_eq!(v["exit_code"], 2);
}

/// Guards: writing to a closed pipe (`dlhist list --json | head -1`) ends quietly, without the
/// "failed printing to stdout: Broken pipe" panic and exit code 101 it once gave.
#[test]
fn printing_into_a_closed_pipe_does_not_panic() {
    let sb = Sandbox::new();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader); // the reader is gone before dlhist writes a byte, like `| head` that exited
    let out = sb
        .cmd(&["--json", "list"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("dlhist starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && out.status.code() != Some(101),
        "dlhist should exit quietly when its reader goes away, got {:?}:\n{stderr}",
        out.status
    );
}

// ---------------------------------------------------------------- unknown names

#[test]
fn an_unknown_milestone_name_suggests_the_closest_one() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlpp"]);
    assert_failed(&sb, &out, 2, &["unknown milestone `mlpp`", "did you mean `mlp`", "dlhist list"]);
    assert!(!sb.runs.join("mlpp").exists() && !sb.runs.join("mlp").exists());
}

#[test]
fn every_command_that_takes_a_name_suggests_the_closest_one() {
    let sb = Sandbox::new();
    let cases: [(&[&str], &str); 7] = [
        (&["info", "mlpp"], "mlp"),
        (&["eval", "mlpp"], "mlp"),
        (&["sample", "mlpp"], "mlp"),
        (&["replay", "--budget", "smoke", "mlpp"], "mlp"),
        (&["compare", "mlpp", "mlp"], "mlp"),
        (&["compare", "relu", "gelux"], "gelu"),
        (&["train", "backprob", "--steps", "5"], "backprop"),
    ];
    for (args, want) in cases {
        let out = sb.run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        let hint = format!("did you mean `{want}`");
        assert!(
            out.stderr.contains(&hint) && out.stderr.contains("dlhist list"),
            "{args:?} should suggest `{want}` and `dlhist list`:\n{}",
            out.stderr
        );
    }
    sb.assert_no_complete_run();
}

#[test]
fn a_name_nothing_like_any_milestone_gets_no_suggestion_but_the_list_command() {
    let sb = Sandbox::new();
    let out = sb.run(&["info", "zzzzzzzzzzzzzz"]);
    assert_failed(&sb, &out, 2, &["unknown milestone", "dlhist list"]);
    assert!(!out.stderr.contains("did you mean"), "{}", out.stderr);
}

// ---------------------------------------------------------------- list and info

#[test]
fn list_prints_the_timeline_of_every_milestone() {
    let sb = Sandbox::new();
    let out = sb.run(&["list"]);
    out.ok();
    for e in dlhist::registry::entries() {
        assert!(out.stdout.contains(e.name), "list lacks {}", e.name);
        assert!(out.stdout.contains(&e.year.to_string()));
    }
    assert!(out.stdout.contains("dlhist info NAME"));
}

#[test]
fn list_json_is_an_array_of_milestones_with_name_year_paper_and_study() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "list"]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), dlhist::registry::entries().len());
    for r in rows {
        assert!(r["name"].is_string(), "{r}");
        assert!(r["year"].is_u64(), "{r}");
        assert!(!r["paper"].as_str().unwrap_or("").is_empty(), "{r}");
        assert!(!r["study"].as_str().unwrap_or("").is_empty(), "{r}");
    }
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["backprop", "mlp", "relu", "gelu"] {
        assert!(names.contains(&n), "{names:?}");
    }
}

#[test]
fn info_explains_the_idea_the_claim_and_the_default_config() {
    let sb = Sandbox::new();
    let out = sb.run(&["info", "mlp"]);
    out.ok();
    for p in ["mlp (1986)", "Claim:", "Default config", "[train]", "dlhist replay mlp"] {
        assert!(out.stdout.contains(p), "info lacks {p:?}:\n{}", out.stdout);
    }
    let out = sb.run(&["--json", "info", "relu"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["name"], "relu");
    assert_eq!(v["study"], "activations");
    assert_eq!(v["config"]["model"]["act"], "relu");
    let variants: Vec<&str> = v["variants"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert!(variants.contains(&"gelu") && variants.contains(&"relu"));
}

// ---------------------------------------------------------------- train

#[test]
fn training_on_the_smoke_preset_writes_a_complete_run_directory() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    let out = sb.run(&["--json", "train", "mlp", "-c", &smoke("mlp"), "--run-dir", dir.to_str().unwrap()]);
    out.ok();
    assert!(looks_complete(&dir));
    assert!(dir.join("ckpt/latest.safetensors").is_file());
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.starts_with("# dlhist mlp"), "{config}");
    assert!(config.contains("dataset = \"digits8\""), "{config}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each metrics line is JSON"))
        .collect();
    assert!(lines.iter().any(|l| l["split"] == "train"));
    assert!(lines.iter().any(|l| l["split"] == "val"));
    assert!(lines.iter().all(|l| l["step"].is_u64()));
    assert_eq!(lines.last().unwrap()["step"], 40);
    // --json: the summary on stdout, the same as summary.json
    let s = out.json();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s, file);
    assert_eq!(s["name"], "mlp");
    assert_eq!(s["data"], "digits8");
    assert_eq!(s["steps"], 40);
    assert_eq!(s["threads"], 2);
    assert!(s["train_loss"].as_f64().unwrap().is_finite());
    assert!(s["final"]["test_acc"].as_f64().unwrap() > 0.5, "{s}");
}

#[test]
fn training_without_a_run_dir_writes_under_the_runs_root_and_falls_back_to_digits8() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "--steps", "10"]);
    out.ok();
    assert!(
        out.stderr.contains("using the built-in digits8"),
        "with no fetched mnist the notice should say so:\n{}",
        out.stderr
    );
    assert!(out.stdout.contains("test accuracy"), "{}", out.stdout);
    let done = files_named(&sb.runs.join("mlp"), "summary.json");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(looks_complete(done[0].parent().unwrap()));
}

#[test]
fn an_unknown_set_key_suggests_the_closest_key() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "--steps", "5", "--set", "train.lrr=1"]);
    assert_failed(&sb, &out, 2, &["unknown config key `train.lrr`", "did you mean `train.lr`", "dlhist info mlp"]);
    assert!(!sb.runs.exists() || files_named(&sb.runs, "config.toml").is_empty());
}

#[test]
fn a_set_value_of_the_wrong_type_is_rejected_with_an_example() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "--steps", "5", "--set", "train.steps=abc"]);
    assert_failed(&sb, &out, 2, &["`train.steps` expects an integer", "Example: --set train.steps="]);
    let out = sb.run(&["train", "mlp", "--set", "train.lr"]);
    assert_failed(&sb, &out, 2, &["key=value"]);
    let out = sb.run(&["train", "mlp", "--set", "train.optimizer=adamx"]);
    assert_failed(&sb, &out, 2, &["adamx", "adam"]);
    // a value the experiment rejects (an unknown dataset) fails before training is announced
    let out = sb.run(&["train", "mlp", "--set", "data.dataset=mnits"]);
    assert_failed(&sb, &out, 2, &["unknown image dataset `mnits`", "mnist"]);
    assert!(!out.stderr.contains("training mlp on"), "{}", out.stderr);
}

#[test]
fn shards_are_refused_where_the_batch_cannot_be_split() {
    let sb = Sandbox::new();
    // mlp's batches are not split
    let out = sb.run(&["train", "mlp", "--steps", "5", "--set", "train.shards=2"]);
    assert_failed(&sb, &out, 2, &["train.shards", "does not split its batches", "leave it at 1"]);
    // a char LM splits rows: no more shards than rows, and at least one
    for n in ["0", "13"] {
        let out = sb.run(&["train", "gpt", "-c", &smoke("gpt"), "--set", &format!("train.shards={n}")]);
        assert_failed(&sb, &out, 2, &["train.shards", &format!("{n} must be between 1 and train.batch_size (12)")]);
    }
}

#[test]
fn a_malformed_config_file_is_rejected_naming_the_file() {
    let sb = Sandbox::new();
    let bad = sb.path("bad.toml");
    std::fs::write(&bad, "[train\nsteps = \n").unwrap();
    let out = sb.run(&["train", "mlp", "-c", bad.to_str().unwrap()]);
    assert_failed(&sb, &out, 2, &["cannot parse config file", "bad.toml", "line 1"]);
}

#[test]
fn an_unknown_key_inside_a_config_file_suggests_the_closest_key() {
    let sb = Sandbox::new();
    let f = sb.path("typo.toml");
    std::fs::write(&f, "[train]\nstepz = 3\n").unwrap();
    let out = sb.run(&["train", "mlp", "-c", f.to_str().unwrap()]);
    assert_failed(&sb, &out, 2, &["`train.stepz`", "did you mean `train.steps`"]);
    std::fs::write(&f, "[trian]\nsteps = 3\n").unwrap();
    let out = sb.run(&["train", "mlp", "-c", f.to_str().unwrap()]);
    assert_failed(&sb, &out, 2, &["unknown config key `trian`"]);
    std::fs::write(&f, "[train]\nsteps = \"many\"\n").unwrap();
    let out = sb.run(&["train", "mlp", "-c", f.to_str().unwrap()]);
    assert_failed(&sb, &out, 2, &["`train.steps` expects an integer"]);
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "-c", "no-such-file.toml"]);
    assert_failed(&sb, &out, 2, &["cannot read config file", "no-such-file.toml"]);
}

#[test]
fn resuming_with_no_run_says_to_pass_a_run_dir() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "--resume"]);
    assert_failed(&sb, &out, 1, &["no unfinished `mlp` run", "--run-dir"]);
    let nowhere = sb.path("nowhere");
    let out = sb.run(&["train", "mlp", "--resume", "--run-dir", nowhere.to_str().unwrap()]);
    assert_failed(&sb, &out, 1, &["not a run directory", "config.toml"]);
    assert!(!nowhere.exists(), "a failed resume should not create the directory");
}

#[test]
fn an_unwritable_run_directory_fails_and_says_cannot_write() {
    let sb = Sandbox::new();
    // tests run as root, so permissions stop nothing: make the parent a regular file
    let f = sb.path("f");
    std::fs::write(&f, "a file, not a folder").unwrap();
    let target = f.join("run");
    let out = sb.run(&["train", "mlp", "--steps", "5", "--run-dir", target.to_str().unwrap()]);
    assert_failed(&sb, &out, 1, &["cannot write", "--run-dir"]);
    assert!(!looks_complete(&target));

    let out = sb.run(&["train", "mlp", "--steps", "5", "--run-dir", "/proc/dlhist-nope"]);
    assert_failed(&sb, &out, 1, &["cannot write", "/proc/dlhist-nope"]);

    // the runs root itself unwritable: DLHIST_RUNS under a file
    let out = sb.cmd(&["train", "backprop", "--steps", "5"]).env("DLHIST_RUNS", f.join("runs")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
}

#[test]
fn training_into_a_directory_that_holds_a_run_is_refused() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("backprop", &dir, &["--steps", "10"]);
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let out = sb.run(&["train", "backprop", "--steps", "10", "--run-dir", dir.to_str().unwrap()]);
    out.expect_code(2).stderr_says(&["already holds a run", "--resume"]);
    assert_eq!(before, std::fs::read(dir.join("model.safetensors")).unwrap());
}

#[test]
fn a_resumed_run_keeps_its_config() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("backprop", &dir, &["--steps", "10"]);
    let d = dir.to_str().unwrap();
    let out = sb.run(&["train", "backprop", "--resume", "--run-dir", d, "--set", "model.hidden=3"]);
    out.expect_code(2).stderr_says(&["keeps its config", "train.lr"]);
    let out = sb.run(&["train", "backprop", "--resume", "--run-dir", d, "--seed", "7"]);
    out.expect_code(2).stderr_says(&["keeps its config"]);
    let out = sb.run(&["train", "backprop", "--resume", "--run-dir", d]);
    out.expect_code(2).stderr_says(&["already at step 10", "--steps"]);
    let out = sb.run(&["train", "mlp", "--resume", "--run-dir", d, "--steps", "20"]);
    out.expect_code(1).stderr_says(&["belongs to milestone `backprop`, not `mlp`"]);
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_keeps_its_last_good_checkpoint_and_resumes_at_a_lower_lr() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    let d = dir.to_str().unwrap();
    let out = sb.run(&["train", "mlp", "-c", &smoke("mlp"), "--set", "train.lr=1e12", "--run-dir", d]);
    assert_failed(&sb, &out, 1, &["diverged at step", "not finite", "--resume", "train.lr"]);
    assert!(dir.join("ckpt/latest.safetensors").is_file(), "the last good checkpoint is kept");
    // the kept checkpoint holds finite weights: evaluating it gives finite metrics
    let ev = sb.run(&["--json", "eval", d]);
    ev.ok();
    let loss = ev.json()["metrics"]["val_loss"].as_f64().unwrap();
    assert!(loss.is_finite(), "the checkpoint kept after divergence has finite weights, val loss {loss}");
    let out = sb.run(&["train", "mlp", "--resume", "--run-dir", d, "--set", "train.lr=1e-3"]);
    out.ok();
    assert!(dir.join("summary.json").is_file());
    assert!(std::fs::read_to_string(dir.join("config.toml")).unwrap().contains("lr = 0.001"));
}

/// Guards: a resume asking for fewer steps than the checkpoint already has is refused and
/// leaves config.toml as it was, and the hint suggests a budget above the checkpoint's (once
/// the config was rewritten with the smaller budget and the hint stayed below it).
#[test]
fn a_resume_with_a_smaller_budget_is_refused_without_changing_the_run() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("backprop", &dir, &["--steps", "40"]);
    let config_before = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let out = sb.run(&["train", "backprop", "--resume", "--run-dir", dir.to_str().unwrap(), "--steps", "10"]);
    out.expect_code(2).stderr_says(&["already at step 40"]);
    assert_eq!(
        config_before,
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        "a refused resume must leave the run's config.toml as it was"
    );
    let suggested: usize = out
        .stderr
        .rsplit("--steps ")
        .next()
        .and_then(|s| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok())
        .expect("the error suggests a --steps value");
    assert!(
        suggested > 40,
        "the hint should suggest more steps than the checkpoint's 40, got --steps {suggested}:\n{}",
        out.stderr
    );
}

#[test]
fn a_corrupt_checkpoint_is_refused_when_resuming() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &["--steps", "10"]);
    let ck = dir.join("ckpt/latest.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let out = sb.run(&["train", "mlp", "--resume", "--run-dir", dir.to_str().unwrap(), "--steps", "20"]);
    out.expect_code(1).stderr_says(&["corrupt or truncated", "latest.safetensors"]);
}

// ---------------------------------------------------------------- eval

#[test]
fn eval_of_a_trained_run_gives_its_metrics() {
    let sb = Sandbox::new();
    // trained through the runs root, so eval can find it by name
    sb.run(&["train", "mlp", "-c", &smoke("mlp")]).ok();
    let dirs = files_named(&sb.runs.join("mlp"), "summary.json");
    let dir = dirs[0].parent().unwrap();

    let by_name = sb.run(&["--json", "eval", "mlp"]);
    by_name.ok();
    let v = by_name.json();
    assert_eq!(v["name"], "mlp");
    assert_eq!(v["data"], "digits8");
    for k in ["val_loss", "val_acc", "test_loss", "test_acc"] {
        let x = v["metrics"][k].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite(), "{k} = {x} in {v}");
    }
    // the same run by its directory gives the same numbers, and they match summary.json
    let by_dir = sb.run(&["--json", "eval", dir.to_str().unwrap()]);
    by_dir.ok();
    assert_eq!(by_dir.json()["metrics"], v["metrics"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["final"]["test_acc"], v["metrics"]["test_acc"]);

    let text = sb.run(&["eval", "mlp"]);
    text.ok();
    assert!(text.stdout.contains("test_acc") && text.stdout.contains('%'), "{}", text.stdout);
}

#[test]
fn eval_and_sample_of_a_name_never_trained_say_to_train_first() {
    let sb = Sandbox::new();
    for c in ["eval", "sample"] {
        let out = sb.run(&[c, "mlp"]);
        assert_failed(&sb, &out, 1, &["no finished `mlp` run", "dlhist train mlp"]);
    }
}

/// Guards: a run path that does not exist once exited 2 (the unknown-name usage error) while a
/// folder that is not a run exited 1; every "no such run" now exits 1, and only a mistyped
/// milestone name is a usage error.
#[test]
fn a_run_path_that_is_missing_or_not_a_run_exits_1_like_any_run_not_found() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("empty")).unwrap();
    std::fs::write(sb.path("notes.txt"), "not a run").unwrap();
    for c in ["eval", "sample", "plot"] {
        let out = sb.run(&[c, "./nonexist/run"]);
        assert_failed(&sb, &out, 1, &["./nonexist/run", "no such folder", "dlhist runs"]);
        let out = sb.run(&[c, "empty"]);
        assert_failed(&sb, &out, 1, &["not a run directory", "dlhist runs"]);
        let out = sb.run(&[c, "notes.txt"]);
        assert_failed(&sb, &out, 1, &["notes.txt", "not a run directory"]);
        let out = sb.run(&[c, "mlpp"]);
        assert_failed(&sb, &out, 2, &["did you mean `mlp`"]);
        // a run id that matches no run
        let out = sb.run(&[c, "20991231-000000-1"]);
        assert_failed(&sb, &out, 1, &["20991231-000000-1"]);
    }
}

#[test]
fn eval_of_a_run_that_did_not_finish_uses_its_last_checkpoint() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &[]);
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let out = sb.run(&["--json", "eval", dir.to_str().unwrap()]);
    out.ok().stderr_says(&["did not finish", "last checkpoint"]);
    assert!(out.json()["metrics"]["test_acc"].is_f64());
    // and with no weights at all it says how to finish the run
    std::fs::remove_dir_all(dir.join("ckpt")).unwrap();
    let out = sb.run(&["eval", dir.to_str().unwrap()]);
    out.expect_code(1).stderr_says(&["no weights yet", "--resume --run-dir"]);
}

#[test]
fn a_corrupt_checkpoint_is_reported_as_corrupt_or_truncated() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &["--steps", "10"]);
    let model = dir.join("model.safetensors");
    let good = std::fs::read(&model).unwrap();
    let d = dir.to_str().unwrap();

    // garbage
    let garbage: Vec<u8> = (0..good.len()).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&model, garbage).unwrap();
    for c in ["eval", "sample"] {
        sb.run(&[c, d]).expect_code(1).stderr_says(&["corrupt or truncated", "model.safetensors", "retrain"]);
    }
    // one flipped byte in the tensor data: caught by the checksum
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x40;
    std::fs::write(&model, flipped).unwrap();
    sb.run(&["eval", d]).expect_code(1).stderr_says(&["corrupt or truncated", "checksum"]);
    // empty file
    std::fs::write(&model, b"").unwrap();
    sb.run(&["eval", d]).expect_code(1).stderr_says(&["corrupt or truncated"]);
}

#[test]
fn a_truncated_checkpoint_is_reported_as_corrupt_or_truncated() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &["--steps", "10"]);
    let model = dir.join("model.safetensors");
    let good = std::fs::read(&model).unwrap();
    std::fs::write(&model, &good[..good.len() / 2]).unwrap();
    for c in ["eval", "sample"] {
        sb.run(&[c, dir.to_str().unwrap()]).expect_code(1).stderr_says(&["corrupt or truncated", "model.safetensors"]);
    }
    sb.assert_no_complete_run();
}

#[test]
fn a_checkpoint_of_another_milestone_is_refused() {
    let sb = Sandbox::new();
    let (mlp, bp) = (sb.path("mlp-run"), sb.path("bp-run"));
    sb.train_smoke("mlp", &mlp, &["--steps", "10"]);
    sb.train_smoke("backprop", &bp, &["--steps", "10"]);
    std::fs::copy(bp.join("model.safetensors"), mlp.join("model.safetensors")).unwrap();
    for c in ["eval", "sample"] {
        sb.run(&[c, mlp.to_str().unwrap()]).expect_code(1).stderr_says(&["belongs to milestone `backprop`, not `mlp`"]);
    }
    sb.assert_no_complete_run();
}

/// Guards: the wrong-milestone error (error.rs `WrongMilestone`) does not suggest the very
/// command that just failed (it once ended with "or use `dlhist eval <the same run dir>`").
#[test]
fn the_wrong_milestone_error_does_not_suggest_the_command_that_just_failed() {
    let sb = Sandbox::new();
    let (mlp, bp) = (sb.path("mlp-run"), sb.path("bp-run"));
    sb.train_smoke("mlp", &mlp, &["--steps", "10"]);
    sb.train_smoke("backprop", &bp, &["--steps", "10"]);
    std::fs::copy(bp.join("model.safetensors"), mlp.join("model.safetensors")).unwrap();
    let d = mlp.to_str().unwrap();
    let out = sb.run(&["eval", d]);
    out.expect_code(1);
    assert!(!out.stderr.contains(&format!("dlhist eval {d}")), "the hint repeats the failing command:\n{}", out.stderr);
}

#[test]
fn a_run_config_naming_another_milestone_of_the_family_is_refused() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &["--steps", "10"]);
    let cfg = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replacen("# dlhist mlp", "# dlhist relu", 1)).unwrap();
    sb.run(&["eval", dir.to_str().unwrap()]).expect_code(1).stderr_says(&["belongs to milestone `mlp`, not `relu`"]);
}

/// Guards: when config.toml's first line names a milestone of another family, the error names
/// the run directory's config.toml as what does not fit (it once said only "unknown config key
/// `data.dataset` ... See `dlhist info backprop`").
#[test]
fn a_run_config_naming_a_milestone_of_another_family_names_the_run_config() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &["--steps", "10"]);
    let cfg = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replacen("# dlhist mlp", "# dlhist backprop", 1)).unwrap();
    let out = sb.run(&["eval", dir.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    out.stderr_says(&["backprop", &cfg.display().to_string()]);
}

#[test]
fn a_run_config_without_the_milestone_line_is_reported() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("backprop", &dir, &["--steps", "10"]);
    let cfg = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.lines().skip(1).collect::<Vec<_>>().join("\n")).unwrap();
    sb.run(&["eval", dir.to_str().unwrap()])
        .expect_code(2)
        .stderr_says(&["config.toml", "does not name the milestone"]);
}

// ---------------------------------------------------------------- sample

#[test]
fn sample_of_a_trained_mlp_draws_test_digits_in_ascii_with_predictions() {
    let sb = Sandbox::new();
    sb.run(&["train", "mlp", "-c", &smoke("mlp")]).ok();
    let out_file = sb.path("preds.txt");
    let out = sb.run(&["sample", "mlp", "--n", "3", "--out", out_file.to_str().unwrap()]);
    out.ok();
    let text = &out.stdout;
    assert!(text.is_ascii(), "the drawing should be plain ASCII:\n{text}");
    assert!(text.contains("3 test images from digits8"), "{text}");
    assert_eq!(text.matches("pred ").count(), 3, "{text}");
    assert_eq!(text.matches("true ").count(), 3, "{text}");
    let art = text.lines().filter(|l| l.chars().any(|c| "@#%*+=".contains(c))).count();
    assert!(art >= 6, "expected an 8-row ASCII drawing of each digit:\n{text}");
    // --out has the same text, and a copy is kept under the run's samples/
    assert_eq!(&std::fs::read_to_string(&out_file).unwrap(), text);
    let dirs = files_named(&sb.runs.join("mlp"), "summary.json");
    let samples = dirs[0].parent().unwrap().join("samples");
    assert_eq!(std::fs::read_dir(samples).unwrap().count(), 1);

    let j = sb.run(&["--json", "sample", "mlp", "--n", "2"]);
    j.ok();
    let preds = j.json()["sample"]["predictions"].as_array().unwrap().clone();
    assert_eq!(preds.len(), 2);
    for p in preds {
        assert!(p["pred"].as_u64().unwrap() < 10 && p["label"].as_u64().unwrap() < 10);
    }
}

/// Guards: `--n` above a sampler's limit was cut to the limit without a word; now a note on
/// stderr names the cap and why, and `--json` stdout stays one document.
#[test]
fn a_sample_count_above_the_milestones_limit_is_capped_with_a_note_on_stderr() {
    let sb = Sandbox::new();
    sb.run(&["train", "mlp", "-c", &smoke("mlp")]).ok();
    let out = sb.run(&["sample", "mlp", "--n", "100000"]);
    out.ok().stderr_says(&["--n 100000 is capped at 12", "drawn in ASCII"]);
    assert_eq!(out.stdout.matches("pred ").count(), 12, "{}", out.stdout);
    let j = sb.run(&["--json", "sample", "mlp", "--n", "100000"]);
    j.ok().stderr_says(&["--n 100000 is capped at 12"]);
    assert_eq!(j.json()["sample"]["predictions"].as_array().map(Vec::len), Some(12), "{}", j.stdout);
    // within the limit: no note
    let few = sb.run(&["sample", "mlp", "--n", "12"]);
    few.ok();
    assert!(!few.stderr.contains("capped"), "{}", few.stderr);
    // a limit set by the data: backprop's truth table has 4 rows
    let dir = sb.path("xor");
    sb.train_smoke("backprop", &dir, &[]);
    sb.run(&["sample", dir.to_str().unwrap(), "--n", "9"]).ok().stderr_says(&["--n 9 is capped at 4", "truth table"]);
}

#[test]
fn sample_of_backprop_shows_what_the_net_learned() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("backprop", &dir, &[]);
    let out = sb.run(&["sample", dir.to_str().unwrap()]);
    out.ok();
    // the preset's task, XOR: a header and one line per pattern, each judged
    assert!(out.stdout.contains("xor (input -> output, target):"), "{}", out.stdout);
    let rows: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("  ") && l.contains("->")).collect();
    assert_eq!(rows.len(), 4, "{}", out.stdout);
    assert!(rows.iter().all(|l| l.ends_with(" ok") || l.ends_with(" WRONG")), "{}", out.stdout);
    let j = sb.run(&["--json", "sample", dir.to_str().unwrap()]);
    j.ok();
    let v = j.json();
    let pats = v["sample"]["patterns"].as_array().unwrap_or_else(|| panic!("no patterns: {v}"));
    assert_eq!((v["sample"]["task"].as_str(), pats.len()), (Some("xor"), 4), "{v}");
    let num = |x: &serde_json::Value| x.as_f64().unwrap();
    for p in pats {
        let (i, y, t) = (p["input"].as_array().unwrap(), num(&p["output"][0]), num(&p["target"][0]));
        assert_eq!(t, (num(&i[0]) + num(&i[1])) % 2.0, "the target is the XOR of the input: {p}");
        assert!((0.0..=1.0).contains(&y), "a sigmoid output: {p}");
        assert_eq!(p["correct"].as_bool(), Some((y > 0.5) == (t > 0.5)), "{p}");
    }
}

#[test]
fn sample_refuses_a_temperature_that_is_not_positive() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("backprop", &dir, &["--steps", "10"]);
    sb.run(&["sample", dir.to_str().unwrap(), "--temperature", "0"])
        .expect_code(2)
        .stderr_says(&["--temperature must be positive"]);
}

// ---------------------------------------------------------------- compare

#[test]
fn compare_of_different_studies_lists_the_studies() {
    let sb = Sandbox::new();
    let out = sb.run(&["compare", "relu", "mlp"]);
    assert_failed(
        &sb,
        &out,
        2,
        &[
            "compare variants of one study",
            "activations: sigmoid tanh relu gelu",
            "mnist: mlp lenet",
            "paper-tasks: perceptron backprop",
        ],
    );
}

#[test]
fn compare_refuses_bad_variants_before_training_any() {
    let sb = Sandbox::new();
    let out = sb.run(&["compare", "relu", "gelu", "--steps", "5", "--set", "train.lrr=1"]);
    assert_failed(&sb, &out, 2, &["did you mean `train.lr`"]);
    let out = sb.run(&["compare", "relu", "gelu:model.widht=3", "--steps", "5"]);
    assert_failed(&sb, &out, 2, &["unknown config key `model.widht`"]);
    let out = sb.run(&["compare", "relu", "relu", "--steps", "5"]);
    assert_failed(&sb, &out, 2, &["listed twice"]);
    assert!(files_named(&sb.runs, "config.toml").is_empty());
}

#[test]
fn compare_relu_gelu_json_has_both_variants_metrics_and_a_png_plot() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "compare", "relu", "gelu", "--steps", "20"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["study"], "activations");
    let variants = v["variants"].as_array().unwrap();
    let labels: Vec<&str> = variants.iter().map(|x| x["variant"].as_str().unwrap()).collect();
    assert_eq!(labels, ["relu", "gelu"]);
    for x in variants {
        let s = &x["summary"];
        assert_eq!(s["steps"], 20);
        assert_eq!(s["data"], "digits8");
        for k in ["val_loss", "val_acc", "test_acc"] {
            assert!(s["final"][k].as_f64().is_some_and(f64::is_finite), "{k}: {s}");
        }
        assert!(s["train_loss"].as_f64().is_some_and(f64::is_finite));
        assert!(looks_complete(Path::new(s["run_dir"].as_str().unwrap())));
    }
    let png = Path::new(v["plot"].as_str().unwrap());
    let bytes = std::fs::read(png).expect("the plot exists");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 100, "not a PNG");
    // two panels of 900 pixels (IHDR width, bytes 16..20): the loss and the val accuracy
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1800);
    let summary = Path::new(v["dir"].as_str().unwrap()).join("summary.json");
    let on_disk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    assert_eq!(on_disk, v);
}

#[test]
fn compare_prints_a_table_and_where_the_curves_are() {
    let sb = Sandbox::new();
    let out_dir = sb.path("cmp");
    let out = sb.run(&["compare", "perceptron", "backprop", "--steps", "20", "--out", out_dir.to_str().unwrap()]);
    out.ok();
    for p in ["variant", "perceptron", "backprop", "curves:"] {
        assert!(out.stdout.contains(p), "{p}:\n{}", out.stdout);
    }
    assert!(out_dir.join("curves.png").is_file());
}

// ---------------------------------------------------------------- replay

#[test]
fn replay_smoke_json_rows_have_the_claim_the_measure_and_the_verdict() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "replay", "--budget", "smoke", "backprop", "mlp"]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["backprop", "mlp"]);
    for r in rows {
        assert!(!r["claim"].as_str().unwrap().is_empty(), "{r}");
        assert!(r["metric"].is_string(), "{r}");
        assert!(r["value"].is_number(), "{r}");
        assert!(r["threshold"].is_number(), "{r}");
        assert!(r["pass"].is_boolean(), "{r}");
        assert!(r["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{r}");
    }
}

#[test]
fn replay_of_an_unknown_name_trains_nothing() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "replay", "--budget", "smoke", "backprop", "mlpp"]);
    assert_failed(&sb, &out, 2, &["did you mean `mlp`"]);
    assert_eq!(out.json()["exit_code"], 2);
}

// ---------------------------------------------------------------- data

#[test]
fn data_status_json_lists_the_builtin_sets_as_present() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "data", "status"]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().unwrap();
    let row = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("data status lacks {n}: {v}"));
    for n in ["digits8", "moby"] {
        assert_eq!(row(n)["builtin"], true, "{n}");
        assert_eq!(row(n)["present"], true, "{n}");
    }
    // DLHIST_DATA is an empty folder here
    assert_eq!(row("mnist")["builtin"], false);
    assert_eq!(row("mnist")["present"], false);

    let text = sb.run(&["data"]);
    text.ok();
    assert!(text.stdout.contains("built-in") && text.stdout.contains("absent"));
    assert!(text.stdout.contains("dlhist data fetch"), "{}", text.stdout);
}

#[test]
fn data_verify_with_nothing_fetched_reports_every_set_absent() {
    let sb = Sandbox::new();
    let out = sb.run(&["--json", "data", "verify"]);
    out.ok();
    // one row per fetched (not built-in) set, in catalogue order, every one absent
    let rows = out.json().as_array().unwrap().clone();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let fetched: Vec<&str> = dlhist::data::catalog::DATASETS.iter().filter(|d| !d.builtin).map(|d| d.name).collect();
    assert!(!fetched.is_empty() && names == fetched, "{names:?} vs {fetched:?}");
    for r in &rows {
        assert_eq!(r["state"], "absent", "{r}");
    }
}

#[test]
fn data_verify_catches_a_fetched_file_that_does_not_match_its_checksum() {
    let sb = Sandbox::new();
    let (path, _) = dlhist::data::catalog::files_of("mnist")[0];
    let p = sb.data.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"not mnist").unwrap();
    let out = sb.run(&["--json", "data", "verify"]);
    out.expect_code(1).stderr_says(&["MISMATCH", "dlhist data fetch"]);
}

#[test]
fn replaying_a_stage_without_a_claim_names_the_replay_that_uses_its_runs() {
    let sb = Sandbox::new();
    let out = sb.run(&["replay", "gpt-s"]);
    assert_failed(&sb, &out, 2, &["`gpt-s` has no claim of its own", "dlhist replay gpt-xs"]);
    let out = sb.run(&["replay", "t5-pretrain"]);
    assert_failed(&sb, &out, 2, &["study `text-to-text`", "dlhist replay t5"]);
}

#[test]
fn a_missing_replay_file_and_a_zero_trial_count_are_usage_errors_that_say_what_to_pass() {
    let sb = Sandbox::new();
    let out = sb.run(&["history", "--replay", sb.path("none.json").to_str().unwrap()]);
    assert_failed(&sb, &out, 2, &["no such file", "dlhist replay --json > replay.json"]);
    let out = sb.run(&["bench", "mlp", "--trials", "0"]);
    assert_failed(&sb, &out, 2, &["takes a positive number, got 0"]);
}
