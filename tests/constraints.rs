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
