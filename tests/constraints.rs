//! Black-box tests of the seven constraints (issue 16): `list` shows them and groups by them,
//! runs report their training FLOPs, `compare --x` plots against them, and `history` draws
//! them.

mod common;

use common::Sandbox;
use std::collections::BTreeSet;

const SEVEN: [&str; 7] =
    ["data", "parameters", "optimization & regularization", "architecture", "compute", "compute efficiency", "energy"];

#[test]
fn list_by_constraint_json_groups_every_milestone_and_none_lacks_a_constraint() {
    let sb = Sandbox::new();
    let flat = sb.run(&["--json", "list"]);
    flat.ok();
    let flat = flat.json();
    let names: BTreeSet<String> =
        flat.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect();
    assert!(names.len() > 40, "the timeline lists every milestone: {names:?}");
    for m in flat.as_array().unwrap() {
        let cs = m["constraints"].as_array().unwrap();
        assert!(!cs.is_empty(), "{} names no constraint in `list --json`", m["name"]);
        assert!(cs.iter().all(|c| c["how"].as_str().is_some_and(|h| !h.is_empty())), "{m}");
    }

    let grouped = sb.run(&["--json", "list", "--by", "constraint"]);
    grouped.ok();
    let grouped = grouped.json();
    let groups = grouped.as_array().unwrap();
    let order: Vec<&str> = groups.iter().map(|g| g["constraint"].as_str().unwrap()).collect();
    assert_eq!(order, SEVEN);
    let hard: Vec<&str> =
        groups.iter().filter(|g| g["kind"] == "hard limit").map(|g| g["constraint"].as_str().unwrap()).collect();
    assert_eq!(hard, ["data", "compute", "energy"]);
    let mut seen = BTreeSet::new();
    for g in groups {
        for m in g["milestones"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap().to_string();
            assert!(names.contains(&name), "grouped output names an unknown milestone {name}");
            seen.insert(name);
        }
    }
    let missing: Vec<_> = names.difference(&seen).collect();
    assert!(missing.is_empty(), "milestones in no group: {missing:?}");
    // a milestone appears under each constraint it names: residual lifted two
    let under = |c: &str| -> Vec<String> {
        let g = groups.iter().find(|g| g["constraint"] == c).unwrap();
        g["milestones"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    assert!(under("architecture").contains(&"residual".to_string()));
    assert!(under("parameters").contains(&"residual".to_string()));
}

#[test]
fn list_shows_a_constraints_column_and_groups_in_text() {
    let sb = Sandbox::new();
    let out = sb.run(&["list"]);
    out.ok();
    let header = out.stdout.lines().next().unwrap();
    assert!(header.contains("constraints"), "{header}");
    let grouped = sb.run(&["list", "--by", "constraint"]);
    grouped.ok();
    for c in SEVEN {
        assert!(grouped.stdout.contains(&format!("\n{c} (")) || grouped.stdout.starts_with(&format!("{c} (")), "{c}");
    }
    assert!(grouped.stdout.contains("(hard limit)") && grouped.stdout.contains("(lever)"));
    let bad = sb.run(&["list", "--by", "year"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

/// The metrics.jsonl lines of a run directory, parsed.
fn metric_lines(run_dir: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_finished_run_records_its_training_flops_in_summary_json_and_along_its_curves() {
    let sb = Sandbox::new();
    let dir = sb.path("mlp-run");
    sb.train_smoke("mlp", &dir, &[]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let flops = s["flops"].as_f64().unwrap();
    assert!(flops > 0.0, "{s}");
    let steps = s["steps"].as_f64().unwrap();
    // every step of the mlp does the same products, so the FLOPs are steps × one step's
    let lines = metric_lines(&dir);
    let train: Vec<&serde_json::Value> = lines.iter().filter(|l| l["split"] == "train").collect();
    let per_step = flops / steps;
    for l in &train {
        let at = l["flops"].as_f64().unwrap();
        assert!((at - per_step * l["step"].as_f64().unwrap()).abs() <= 1e-9 * flops, "{l}");
        assert!(l["seconds"].as_f64().is_some_and(|x| x >= 0.0), "{l}");
    }
    assert_eq!(lines.last().unwrap()["flops"].as_f64(), Some(flops), "the last val line stands at the run's FLOPs");
}

#[test]
fn compare_relu_gelu_against_flops_writes_its_plot() {
    let sb = Sandbox::new();
    let out_dir = sb.path("cmp");
    let out = sb.run(&[
        "--json",
        "compare",
        "relu",
        "gelu",
        "--steps",
        "20",
        "--x",
        "flops",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    out.ok();
    let v = out.json();
    assert_eq!(v["x"], "flops");
    for x in v["variants"].as_array().unwrap() {
        assert!(x["summary"]["flops"].as_f64().is_some_and(|f| f > 0.0), "{x}");
    }
    let png = std::fs::read(out_dir.join("curves.png")).expect("curves.png is written");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let info = decoder.read_info().expect("a PNG").info().clone();
    assert!(info.width >= 400 && info.height >= 300, "{}x{}", info.width, info.height);
    let bad = sb.run(&["compare", "relu", "gelu", "--steps", "5", "--x", "joules"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("steps") && bad.stderr.contains("flops") && bad.stderr.contains("seconds"),
        "{}",
        bad.stderr
    );
}

#[test]
fn history_draws_the_newest_replay_as_a_png_of_the_seven_rows() {
    let sb = Sandbox::new();
    let replay = sb.run(&["--json", "replay", "perceptron", "--budget", "smoke"]);
    let rows = replay.json();
    let status = rows[0]["status"].as_str().unwrap().to_string();
    let png_path = sb.path("h.png");
    // no --replay: the replay just run is the newest recorded one
    let out = sb.run(&["--json", "history", "--out", png_path.to_str().unwrap()]);
    out.ok();
    let v = out.json();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png_path).expect("h.png is written")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).expect("its pixels decode");
    assert_eq!(
        (frame.width, frame.height),
        (v["width"].as_u64().unwrap() as u32, v["height"].as_u64().unwrap() as u32)
    );
    assert!(frame.width >= 1200 && frame.height >= 500, "{}x{}", frame.width, frame.height);
    assert!(buf.iter().any(|&b| b < 128), "something is drawn on the white");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["constraint"].as_str().unwrap()).collect::<Vec<_>>(), SEVEN);
    let marks: Vec<&serde_json::Value> = rows.iter().flat_map(|r| r["milestones"].as_array().unwrap()).collect();
    let perceptron: Vec<_> = marks.iter().filter(|m| m["name"] == "perceptron").collect();
    assert!(!perceptron.is_empty() && perceptron.iter().all(|m| m["status"] == status.as_str()), "{perceptron:?}");
    assert!(marks.iter().filter(|m| m["name"] != "perceptron").all(|m| m["status"] == "not run"));
    // the same file passed explicitly gives the same data
    let again =
        sb.run(&["--json", "history", "--replay", v["replay"].as_str().unwrap(), "--out", png_path.to_str().unwrap()]);
    assert_eq!(again.json()["rows"], v["rows"]);
}

#[test]
fn history_without_a_replay_draws_every_mark_grey_and_says_how_to_colour_them() {
    let sb = Sandbox::new();
    let grey = sb.path("grey.png");
    let out = sb.run(&["--json", "history", "--out", grey.to_str().unwrap()]);
    out.ok().stderr_says(&["no replay", "grey", "dlhist replay --json > r.json", "--replay"]);
    let v = out.json();
    assert!(v["replay"].is_null(), "{v}");
    let marks: Vec<&serde_json::Value> =
        v["rows"].as_array().unwrap().iter().flat_map(|r| r["milestones"].as_array().unwrap()).collect();
    assert!(marks.len() >= 36 && marks.iter().all(|m| m["status"] == "not run"), "{marks:?}");
    assert!(std::fs::metadata(&grey).unwrap().len() > 0);
}

#[test]
fn history_from_a_bad_replay_says_how_to_make_one() {
    let sb = Sandbox::new();
    let bad = sb.path("bad.json");
    for (text, says) in
        [("not json", "not JSON"), ("{\"name\": \"mlp\"}", "not an array"), ("[{\"name\": \"mlp\"}]", "status")]
    {
        std::fs::write(&bad, text).unwrap();
        let out = sb.run(&["history", "--replay", bad.to_str().unwrap(), "--out", sb.path("h.png").to_str().unwrap()]);
        out.expect_code(2).stderr_says(&["replay JSON", says, "dlhist replay --json > replay.json"]);
    }
    let out = sb.run(&["history", "--replay", sb.path("missing.json").to_str().unwrap()]);
    out.expect_code(2).stderr_says(&["missing.json", "dlhist replay --json"]);
    assert!(!sb.path("h.png").exists(), "no picture is written from a bad replay");
}
