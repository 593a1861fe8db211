//! What a new user trips over, black-box: replays on the built-in data say why a claim was not
//! checked (SKIP); runs can be listed, picked (`--run`), found by variant name, plotted and
//! pruned; a run directory records the data it used and the dlhist that made it; and the
//! small things (positive budgets, config messages, warnings, class names, the end-of-run
//! report). The sandbox has no fetched data, so mnist milestones fall back to digits8.

mod common;

use common::{files_named, smoke, Out, Sandbox};
use std::path::{Path, PathBuf};

fn json_file(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// The one finished run of `name` under the runs root.
fn only_run(sb: &Sandbox, name: &str) -> PathBuf {
    let found = files_named(&sb.runs.join(name), "summary.json");
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].parent().unwrap().to_path_buf()
}

fn stdout_says(out: &Out, phrases: &[&str]) {
    for p in phrases {
        assert!(out.stdout.contains(p), "stdout should contain {p:?}\n--- stdout\n{}", out.stdout);
    }
}

// ---------------------------------------------------------------- 1. replay on the built-in data

#[test]
fn a_claim_whose_data_fell_back_is_skipped_not_failed_and_names_the_fetch_command() {
    let sb = Sandbox::new();
    let tmp = sb.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = sb.cmd(&["--json", "replay", "perceptron", "relu"]);
    let out = Out::from(cmd.env("TMPDIR", &tmp).output().unwrap());
    out.ok();
    let v = out.json();
    let rows = v.as_array().unwrap();
    assert_eq!(rows[0]["name"], "perceptron");
    assert_eq!((&rows[0]["status"], &rows[0]["pass"]), (&"pass".into(), &true.into()), "{}", rows[0]);
    let relu = &rows[1];
    assert_eq!(relu["status"], "skip", "{relu}");
    assert!(relu["pass"].is_null(), "{relu}");
    assert_eq!(relu["fetch"], "dlhist data fetch mnist", "{relu}");
    let detail = relu["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("not checked: relu trained on digits8") && detail.contains("measured there"),
        "{detail}"
    );
    // the runs went to a temporary folder, deleted at the end
    assert!(files_named(&sb.runs, "summary.json").is_empty());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the replay's temporary runs are gone");
}

#[test]
fn replay_strict_fails_on_a_skip_and_keep_leaves_runs_that_eval_finds() {
    let sb = Sandbox::new();
    let out = sb.run(&["replay", "relu", "--strict", "--keep"]);
    out.expect_code(1).stderr_says(&["not checked (--strict)", "dlhist data fetch mnist"]);
    stdout_says(&out, &["SKIP", "0 passed, 0 failed, 1 not checked, of 1 claims", "dlhist data fetch mnist", "runs: "]);
    for line in out.stdout.lines().filter(|l| !l.starts_with("0 passed") && !l.starts_with("runs: ")) {
        assert!(line.chars().count() <= 100, "table line over 100 columns: {line}");
    }
    let eval = sb.run(&["--json", "eval", "relu"]);
    eval.ok().stderr_says(&["made by `dlhist replay --keep`"]);
    assert!(eval.json()["run_dir"].as_str().unwrap().contains("/replay/"), "{}", eval.stdout);
}

#[test]
fn the_smoke_replay_table_shows_what_the_smoke_check_checked_within_100_columns() {
    let sb = Sandbox::new();
    let out = sb.run(&["replay", "--budget", "smoke", "backprop"]);
    out.ok();
    stdout_says(&out, &["checked (smoke budget", "val loss", "PASS", "1 passed, 0 failed, 0 not checked"]);
    assert!(!out.stdout.contains("solves XOR"), "the claim's words are not the smoke check:\n{}", out.stdout);
    for line in out.stdout.lines().filter(|l| !l.starts_with("1 passed")) {
        assert!(line.chars().count() <= 100, "over 100 columns: {line}");
    }
}

// ---------------------------------------------------------------- 2. runs you can find

#[test]
fn runs_lists_each_run_with_its_state_steps_data_metric_time_and_size() {
    let sb = Sandbox::new();
    sb.run(&["train", "mlp", "-c", &smoke("mlp")]).ok();
    let smoke_run = only_run(&sb, "mlp");
    sb.run(&["train", "mlp", "--steps", "12"]).ok();
    // an interrupted run: a checkpoint but no summary
    let stopped = sb.runs.join("mlp/20000101-000000-1");
    sb.run(&["train", "mlp", "-c", &smoke("mlp"), "--steps", "10", "--run-dir", stopped.to_str().unwrap()]).ok();
    std::fs::remove_file(stopped.join("summary.json")).unwrap();
    std::fs::remove_file(stopped.join("model.safetensors")).unwrap();

    let out = sb.run(&["--json", "runs", "mlp"]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    let by_kind = |k: &str| {
        rows.iter().find(|r| r["kind"] == k && r["state"] == "finished").unwrap_or_else(|| panic!("no {k} run: {v}"))
    };
    let s = by_kind("smoke");
    assert_eq!(s["state"], "finished");
    assert_eq!((&s["step"], &s["data"], &s["metric"]), (&40.into(), &"digits8".into(), &"test_acc".into()), "{s}");
    assert!(s["value"].as_f64().unwrap() > 0.3 && s["bytes"].as_u64().unwrap() > 10_000, "{s}");
    assert!(s["when"].as_str().unwrap().starts_with("20"), "{s}");
    assert_eq!(s["id"].as_str().unwrap(), format!("mlp/{}", smoke_run.file_name().unwrap().to_str().unwrap()));
    assert_eq!(by_kind("custom")["step"], 12);
    let stopped_row = rows.iter().find(|r| r["state"] == "interrupted").expect("the interrupted run");
    assert_eq!(stopped_row["step"], 10, "{stopped_row}");

    let text = sb.run(&["runs"]);
    text.ok();
    stdout_says(&text, &["finished", "stopped at 10", "test_acc", "3 runs"]);

    // by name: the newest finished run; neither is the preset's, so it says why it took the longer one
    let eval = sb.run(&["--json", "eval", "mlp"]);
    eval.ok().stderr_says(&["run: ", "none has the preset's config", "train.steps = 12"]);
    // --run takes an id, its last part, or a directory (and --run-dir is the same flag)
    let id = smoke_run.file_name().unwrap().to_str().unwrap();
    for arg in [format!("mlp/{id}"), id.to_string(), smoke_run.to_str().unwrap().to_string()] {
        let e = sb.run(&["--json", "eval", "--run", &arg]);
        e.ok();
        assert_eq!(Path::new(e.json()["run_dir"].as_str().unwrap()), smoke_run, "--run {arg}");
    }
    let s = sb.run(&["sample", "mlp", "--run-dir", id, "--n", "2"]);
    s.ok().stderr_says(&[&format!("run: {}", smoke_run.display())]);
    let e = sb.run(&["eval", "mlp", "--run", "nosuchrun"]);
    e.expect_code(1).stderr_says(&["no run `nosuchrun`", "dlhist runs mlp"]);
    let e = sb.run(&["eval", "relu", "--run", id]);
    e.expect_code(2).stderr_says(&["is a `mlp` run, not `relu`"]);
}

#[test]
fn runs_made_by_compare_are_found_by_their_variant_name_and_plot_draws_them() {
    let sb = Sandbox::new();
    sb.run(&["compare", "relu", "gelu", "--steps", "20"]).ok();
    let out = sb.run(&["--json", "eval", "relu"]);
    out.ok().stderr_says(&["made by `dlhist compare`"]);
    let dir = PathBuf::from(out.json()["run_dir"].as_str().unwrap());
    assert!(dir.ends_with("relu") && dir.parent().unwrap().parent().unwrap().ends_with("compare"), "{dir:?}");
    let listed = sb.run(&["--json", "runs", "gelu"]);
    listed.ok();
    assert_eq!(listed.json()[0]["source"], "compare");

    let one = sb.run(&["plot", "relu"]);
    one.ok();
    assert!(dir.join("curves.png").is_file(), "{}", one.stdout);
    let png = sb.path("both.png");
    let two = sb.run(&["--json", "plot", "relu", "gelu", "--out", png.to_str().unwrap()]);
    two.ok();
    assert_eq!(two.json()["metric"], "acc");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    let bad = sb.run(&["plot", "relu", "--metric", "nosuch"]);
    bad.expect_code(2).stderr_says(&["--metric nosuch", "acc"]);
}

/// A sandbox holding three finished smoke runs of backprop, about a second apart.
fn three_backprop_runs() -> Sandbox {
    let sb = Sandbox::new();
    for _ in 0..3 {
        sb.run(&["train", "backprop", "-c", &smoke("backprop")]).ok();
        std::thread::sleep(std::time::Duration::from_millis(1100)); // distinct run ids and times
    }
    sb
}

#[test]
fn runs_prune_keeps_the_newest_n_or_deletes_runs_older_than_a_date() {
    let sb = three_backprop_runs();
    let count = || files_named(&sb.runs.join("backprop"), "config.toml").len();
    let dry = sb.run(&["--json", "runs", "prune", "--keep", "1", "--dry-run"]);
    dry.ok();
    assert_eq!((dry.json()["removed"].as_array().unwrap().len(), count()), (2, 3));
    let newest = sb.run(&["--json", "runs", "backprop"]).json()[0]["id"].clone();
    sb.run(&["runs", "prune", "backprop", "--keep", "1"]).ok();
    assert_eq!(count(), 1);
    assert_eq!(sb.run(&["--json", "runs"]).json()[0]["id"], newest, "the newest run stays");
    sb.run(&["runs", "prune", "--older-than", "2000-01-01"]).ok();
    assert_eq!(count(), 1, "nothing is that old");
    sb.run(&["runs", "prune", "--older-than", "2999-01-01"]).ok();
    assert_eq!(count(), 0);
    sb.run(&["runs", "prune"]).expect_code(2).stderr_says(&["--keep N", "--older-than"]);
    sb.run(&["runs", "prune", "--older-than", "last week"]).expect_code(2).stderr_says(&["YYYY-MM-DD"]);
}

#[test]
fn runs_prune_counts_finished_runs_and_keeps_a_stopped_one_unless_n_finished_are_newer() {
    let sb = three_backprop_runs();
    // newest first: finished, stopped (a checkpoint, no summary or model), finished
    let runs = sb.run(&["--json", "runs", "backprop"]).json();
    let ids: Vec<String> = runs.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let stopped = sb.runs.join(&ids[1]);
    std::fs::remove_file(stopped.join("summary.json")).unwrap();
    std::fs::remove_file(stopped.join("model.safetensors")).unwrap();
    let removed = |keep: &str| -> Vec<String> {
        let dry = sb.run(&["--json", "runs", "prune", "--keep", keep, "--dry-run"]).json();
        dry["removed"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    assert!(removed("2").is_empty(), "two finished runs and the stopped one between them all stay");
    assert_eq!(removed("1"), [ids[1].clone(), ids[2].clone()], "one finished run is newer than the stopped one");
    sb.run(&["runs", "prune", "--keep", "0"]).ok();
    assert_eq!(files_named(&sb.runs.join("backprop"), "config.toml").len(), 0, "--keep 0 deletes every run");
}

// ---------------------------------------------------------------- 3. the run directory describes the run

#[test]
fn a_run_records_the_data_it_used_and_the_dlhist_that_trained_it() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.run(&["train", "mlp", "--steps", "5", "--run-dir", dir.to_str().unwrap()]).ok();
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let second = config.lines().nth(1).unwrap();
    assert!(second.starts_with("# data used: digits8 (mnist is not in"), "{config}");
    assert!(config.contains("dataset = \"mnist\""), "the config keeps what was asked for");
    let s = json_file(&dir.join("summary.json"));
    assert_eq!(s["data"], "digits8");
    assert!(s["data_notice"].as_str().unwrap().contains("dlhist data fetch mnist"), "{s}");
    assert_eq!(s["dlhist_version"], env!("CARGO_PKG_VERSION"));
    assert!(s["git_commit"].as_str().is_some_and(|c| !c.is_empty()), "{s}");
    for file in ["model.safetensors", "ckpt/latest.safetensors"] {
        let buf = std::fs::read(dir.join(file)).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&buf).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["dlhist.data"], "digits8", "{file}");
        assert_eq!(meta["dlhist.version"], env!("CARGO_PKG_VERSION"), "{file}");
        assert_eq!(meta["dlhist.git_commit"], s["git_commit"].as_str().unwrap(), "{file}");
    }
    // eval and sample of it repeat the data notice
    sb.run(&["eval", dir.to_str().unwrap()]).ok().stderr_says(&["using the built-in digits8"]);
    let v = sb.run(&["--json", "sample", dir.to_str().unwrap()]).json();
    assert!(v["data_notice"].as_str().unwrap().contains("dlhist data fetch mnist"), "{v}");
}

#[test]
fn info_says_which_of_steps_and_epochs_sets_the_budget() {
    let sb = Sandbox::new();
    let out = sb.run(&["info", "mlp"]);
    out.ok();
    stdout_says(&out, &["Budget: train.steps = 5000 updates", "train.epochs (= 1) applies only when steps = 0"]);
    let v = sb.run(&["--json", "info", "word2vec"]).json();
    assert!(v["budget"].as_str().unwrap().starts_with("train."), "{v}");
}

// ---------------------------------------------------------------- 5. small things

#[test]
fn budgets_must_be_positive_numbers_and_say_so() {
    let sb = Sandbox::new();
    for args in [
        &["train", "mlp", "--steps", "0"][..],
        &["train", "mlp", "--steps", "-5"],
        &["train", "mlp", "--steps=-5"],
        &["train", "mlp", "--epochs", "0"],
        &["compare", "relu", "gelu", "--steps", "0"],
    ] {
        let out = sb.run(args);
        assert!(out.code == 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains("--steps") || out.stderr.contains("--epochs"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("takes a positive number"), "{args:?}: {}", out.stderr);
    }
    assert!(files_named(&sb.runs, "config.toml").is_empty());
}

#[test]
fn config_mistakes_get_the_key_that_was_meant() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "--set", "data=fashion"]);
    out.expect_code(2).stderr_says(&["--set data.dataset=fashion"]);
    let out = sb.run(&["train", "mlp", "--set", "train.optimizer=adamm"]);
    out.expect_code(2).stderr_says(&[
        "train.optimizer",
        "did you mean `adam`?",
        "sgd, momentum, nesterov, adam, adamw",
    ]);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one line: {}", out.stderr);
}

#[test]
fn a_run_whose_loss_rose_ends_with_a_warning_and_a_huge_lr_prints_in_scientific_notation() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "-c", &smoke("mlp"), "--set", "train.lr=1000"]);
    out.ok().stderr_says(&["lr 1000", "warning: the validation loss rose", "lower learning rate"]);
    let out = sb.run(&["train", "mlp", "-c", &smoke("mlp"), "--set", "train.lr=1e-7"]);
    out.ok().stderr_says(&["adam lr 1e-7 ->"]);
    let out = sb.run(&["train", "mlp", "-c", &smoke("mlp")]);
    assert!(!out.ok().stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn the_end_of_run_report_names_the_key_metric_once_and_no_pipe() {
    let sb = Sandbox::new();
    let out = sb.run(&["train", "mlp", "-c", &smoke("mlp")]);
    out.ok();
    assert_eq!(out.stdout.matches("test accuracy").count(), 1, "{}", out.stdout);
    let test_line = out.stdout.lines().find(|l| l.starts_with("test:")).unwrap();
    assert!(!test_line.contains("acc"), "the test accuracy leads, and is not repeated: {test_line}");
    stdout_says(&out, &["mlp on digits8: test accuracy", "next: dlhist sample", "   or   dlhist eval"]);
    assert!(!out.stdout.contains(" | dlhist"), "{}", out.stdout);
}

#[test]
fn a_resumed_run_accepts_flags_that_restate_its_config_and_names_a_key_that_differs() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("mlp", &dir, &["--steps", "10"]);
    let d = dir.to_str().unwrap();
    let same =
        sb.run(&["train", "mlp", "--resume", "--run-dir", d, "-c", &smoke("mlp"), "--seed", "1234", "--steps", "20"]);
    same.ok();
    assert_eq!(json_file(&dir.join("summary.json"))["steps"], 20);
    let other = sb.run(&["train", "mlp", "--resume", "--run-dir", d, "--set", "model.hidden=[64]", "--steps", "30"]);
    other.expect_code(2).stderr_says(&["`model.hidden` is [512, 256] in the run, [64] here"]);
}

/// A tiny stand-in for MNIST or Fashion-MNIST in the idx format (5,010 training images, 10 test).
fn fake_idx_set(sb: &Sandbox, set: &str) {
    let idx = |dims: &[u32], n: usize, f: &dyn Fn(usize) -> u8| {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
        b.extend((0..n).map(f));
        b
    };
    let dir = sb.data.join(set);
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", 5010usize), ("t10k", 10)] {
        let images = idx(&[n as u32, 28, 28], n * 784, &|i| (i % 251) as u8);
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(&[n as u32], n, &|i| (i % 10) as u8))
            .unwrap();
    }
}

#[test]
fn a_run_trained_on_the_fallback_is_evaluated_on_it_after_the_set_is_fetched() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.run(&["train", "mlp", "--steps", "5", "--run-dir", dir.to_str().unwrap()]).ok();
    fake_idx_set(&sb, "mnist");
    let out = sb.run(&["--json", "eval", dir.to_str().unwrap()]);
    out.ok().stderr_says(&["this run trained on digits8 (mnist was not fetched then)"]);
    assert_eq!(out.json()["data"], "digits8");
    let out = sb.run(&["sample", dir.to_str().unwrap(), "--n", "2"]);
    out.ok().stderr_says(&["evaluated on digits8"]);
}

#[test]
fn fashion_samples_print_class_names() {
    let sb = Sandbox::new();
    fake_idx_set(&sb, "fashion");
    let run = sb.path("run");
    sb.run(&["train", "mlp", "--set", "data.dataset=fashion", "--steps", "3", "--run-dir", run.to_str().unwrap()]).ok();
    let out = sb.run(&["--json", "sample", run.to_str().unwrap(), "--n", "8"]);
    out.ok();
    let names = dlhist::data::vision::FASHION_CLASSES;
    for p in out.json()["sample"]["predictions"].as_array().unwrap() {
        let label = p["label"].as_u64().unwrap() as usize;
        assert_eq!(p["label_name"], names[label], "{p}");
    }
    let text = sb.run(&["sample", run.to_str().unwrap(), "--n", "8"]);
    text.ok();
    assert!(names.iter().any(|n| text.stdout.contains(&format!("true {n}"))), "{}", text.stdout);
}

#[test]
fn threads_help_says_what_the_default_is() {
    let out = Sandbox::new().run(&["--help"]);
    stdout_says(&out, &["physical cores"]);
}

// ---------------------------------------------------------------- 4. where data is looked for

#[test]
fn data_is_read_from_dlhist_data_then_the_source_tree_then_the_user_data_directory() {
    let sb = Sandbox::new();
    let xdg = sb.path("xdg");
    let mnist_path = |dir: &Path| -> String {
        let mut c = sb.cmd(&["--json", "data"]);
        let out = Out::from(c.current_dir(dir).env_remove("DLHIST_DATA").env("XDG_DATA_HOME", &xdg).output().unwrap());
        out.ok();
        let v = out.json();
        v.as_array().unwrap().iter().find(|r| r["name"] == "mnist").unwrap()["path"].as_str().unwrap().to_string()
    };
    // outside a source tree: the user's data directory
    let elsewhere = sb.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    assert_eq!(mnist_path(&elsewhere), xdg.join("dlhist/mnist").display().to_string());
    // inside a source tree (here a stand-in: the fetch script and the checksums), its data/fetched
    let tree = sb.path("clone");
    std::fs::create_dir_all(tree.join("scripts")).unwrap();
    std::fs::create_dir_all(tree.join("data/fetched")).unwrap();
    std::fs::write(tree.join("scripts/fetch-data.sh"), "").unwrap();
    std::fs::write(tree.join("data/checksums.sha256"), "").unwrap();
    std::fs::create_dir_all(tree.join("src")).unwrap();
    assert_eq!(mnist_path(&tree.join("src")), tree.join("data/fetched/mnist").display().to_string());
    // $DLHIST_DATA wins over both
    let out = sb.run(&["--json", "data"]);
    let v = out.json();
    let row = v.as_array().unwrap().iter().find(|r| r["name"] == "mnist").unwrap().clone();
    assert_eq!(row["path"], sb.data.join("mnist").display().to_string());
}
