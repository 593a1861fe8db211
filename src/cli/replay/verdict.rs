//! The replay's verdicts: which runs fell back to built-in data (their claim is SKIP), what the
//! smoke check checked, and the human table within 100 columns.

use super::Budget;
use crate::claims::{self, is_not_checked, Verdict};
use crate::cli::common;
use crate::data::catalog::{fetch_command, present, DATASETS};
use crate::engine::runner::Summary;
use crate::report::table::Table;
use std::collections::BTreeSet;

/// A run that fell back to built-in data.
#[derive(Clone, Debug)]
pub struct Fallback {
    pub run: String,
    pub data: String,
    /// the fetched sets the run asked for that are absent
    pub sets: Vec<String>,
}

/// The fetched (not built-in) datasets a config names anywhere among its string values.
fn named_sets(v: &toml::Value, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::String(s) if DATASETS.iter().any(|d| !d.builtin && d.name == s) => {
            out.insert(s.clone());
        }
        toml::Value::Table(t) => t.values().for_each(|x| named_sets(x, out)),
        toml::Value::Array(a) => a.iter().for_each(|x| named_sets(x, out)),
        _ => {}
    }
}

/// The sets a data notice says to fetch (it names them as `dlhist data fetch SET`).
fn sets_in_notice(notice: &str) -> Vec<String> {
    notice
        .split("dlhist data fetch ")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_alphanumeric()).next())
        .filter(|s| DATASETS.iter().any(|d| d.name == *s))
        .map(str::to_string)
        .collect()
}

/// Whether a run fell back: it reported a data notice (the milestone's own word, written to
/// summary.json), and which absent sets it asked for (in its config or its notice).
pub fn fallback(res: &common::Resolved, s: &Summary) -> Option<Fallback> {
    let path = std::path::Path::new(&s.run_dir).join("summary.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let notice = v["data_notice"].as_str()?;
    let mut sets = BTreeSet::new();
    named_sets(&toml::Value::Table(res.table.clone()), &mut sets);
    sets.extend(sets_in_notice(notice));
    let sets = sets.into_iter().filter(|s| !present(s)).collect();
    Some(Fallback { run: s.name.clone(), data: s.data.clone(), sets })
}

/// What the smoke check checked, in a few words: the validation loss of each run, before -> after.
pub fn smoke_checked(used: &[Summary]) -> String {
    let val = |s: &Summary| {
        (s.initial.get("val_loss").copied().unwrap_or(f64::NAN), s.metric("val_loss").unwrap_or(f64::NAN))
    };
    match used {
        [] => "no run".into(),
        [s] => format!("val loss {:.3} -> {:.3}", val(s).0, val(s).1),
        many => {
            let fell = many.iter().filter(|s| val(s).1 < val(s).0).count();
            format!("val loss fell in {fell} of {} runs", many.len())
        }
    }
}

/// At smoke budget: every run's losses are finite and its validation loss fell.
pub fn smoke_verdict(used: &[Summary], claim: &anyhow::Result<Verdict>) -> Verdict {
    let first = used.first();
    let before = first.and_then(|s| s.initial.get("val_loss").copied()).unwrap_or(f64::NAN);
    let after = first.and_then(|s| s.metric("val_loss")).unwrap_or(f64::NAN);
    let fell = |s: &Summary| {
        let (b, a) = (s.initial.get("val_loss").copied().unwrap_or(f64::NAN), s.metric("val_loss").unwrap_or(f64::NAN));
        a.is_finite() && b.is_finite() && s.train_loss.is_finite() && a < b
    };
    let pass = !used.is_empty() && used.iter().all(fell) && claim.is_ok();
    let runs: Vec<String> = used
        .iter()
        .map(|s| {
            format!(
                "{} val loss {:.3} -> {:.3}",
                s.name,
                s.initial.get("val_loss").copied().unwrap_or(f64::NAN),
                s.metric("val_loss").unwrap_or(f64::NAN)
            )
        })
        .collect();
    let measured = match claim {
        Ok(v) => format!("the claim's metric at this budget {:.4} (not checked at smoke budget)", v.value),
        Err(e) => format!("claim check failed: {e}"),
    };
    Verdict { value: after, threshold: before, pass, detail: format!("pipeline: {}; {measured}", runs.join("; ")) }
}

/// How the detail of a claim whose check returned an error begins.
pub const ERROR: &str = "error: ";

/// PASS, FAIL or SKIP: a claim whose runs fell back (or that says it was not checked) is skipped;
/// one whose check failed with an error stays a FAIL even then, so a crash is not hidden as SKIP.
pub fn status(budget: Budget, v: &mut Verdict, fallbacks: &[Fallback]) -> &'static str {
    let errored = v.detail.starts_with(ERROR);
    if budget == Budget::Full && !fallbacks.is_empty() && !is_not_checked(v) && !errored {
        let fb = &fallbacks[0];
        let sets: BTreeSet<&str> = fallbacks.iter().flat_map(|f| f.sets.iter().map(String::as_str)).collect();
        let sets: Vec<&str> = sets.into_iter().collect();
        let asked = if sets.is_empty() { "its data".to_string() } else { sets.join(" and ") };
        v.detail = claims::not_checked(format!(
            "{} trained on {}, not on {asked}, which is not fetched (`{}`); measured there: {}",
            fb.run,
            fb.data,
            fetch_command(&sets),
            v.detail
        ))
        .detail;
    }
    if is_not_checked(v) && budget == Budget::Full {
        "skip"
    } else if v.pass {
        "pass"
    } else {
        "fail"
    }
}

/// A cell cut to `width` characters, with an ellipsis.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        s.chars().take(width.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// The human table, within 100 columns; the claim's words and the details are in `--json` (and
/// on stderr as each claim finishes).
pub fn table(rows: &[serde_json::Value], budget: Budget) -> String {
    let num =
        |v: &serde_json::Value| v.as_f64().filter(|x| x.is_finite()).map(|x| format!("{x:.4}")).unwrap_or("-".into());
    let name = |r: &serde_json::Value| fit(r["name"].as_str().unwrap_or(""), 18);
    let verdict = |r: &serde_json::Value| r["status"].as_str().unwrap_or("").to_uppercase();
    let secs = |r: &serde_json::Value| format!("{:.1}", r["seconds"].as_f64().unwrap_or(0.0));
    let mut t = match budget {
        Budget::Smoke => {
            Table::new(&["name", "checked (smoke budget: the pipeline runs, its loss falls)", "verdict", "seconds"])
        }
        Budget::Full => Table::new(&["name", "metric", "value", "threshold", "verdict", "seconds"]),
    };
    for r in rows {
        let checked = r["checked"].as_str().unwrap_or("");
        t.row(match budget {
            Budget::Smoke => vec![name(r), fit(checked, 58), verdict(r), secs(r)],
            Budget::Full => {
                vec![name(r), fit(checked, 32), num(&r["value"]), num(&r["threshold"]), verdict(r), secs(r)]
            }
        });
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims;

    fn row(name: &str, status: &str, checked: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "status": status, "checked": checked, "value": 0.98765, "threshold": 0.98, "seconds": 123.4})
    }

    #[test]
    fn the_tables_keep_within_100_columns() {
        let long = "x".repeat(300);
        let rows = vec![row("seq2seq-reversed-and-more", "skip", &long), row("mlp", "pass", "test_acc")];
        for b in [Budget::Smoke, Budget::Full] {
            let text = table(&rows, b);
            for line in text.lines() {
                assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
            }
            assert!(text.contains("SKIP") && text.contains("PASS"), "{text}");
        }
    }

    #[test]
    fn a_claim_whose_runs_fell_back_is_skipped_naming_the_fetch_command() {
        let fb = Fallback { run: "mlp".into(), data: "digits8".into(), sets: vec!["mnist".into()] };
        let mut v = Verdict { value: 0.96, threshold: 0.98, pass: false, detail: "test accuracy 96%".into() };
        assert_eq!(status(Budget::Full, &mut v, std::slice::from_ref(&fb)), "skip");
        assert!(v.detail.contains("dlhist data fetch mnist") && v.detail.contains("digits8"), "{}", v.detail);
        // a claim that would pass on the fallback is not checked either, and keeps its numbers
        let mut v = Verdict { value: 0.99, threshold: 0.98, pass: true, detail: "test accuracy 99%".into() };
        assert_eq!(status(Budget::Full, &mut v, std::slice::from_ref(&fb)), "skip");
        assert!(claims::is_not_checked(&v) && v.detail.contains("measured there: test accuracy 99%"), "{}", v.detail);
        // at smoke budget the data does not matter: only the pipeline is checked
        let mut v = Verdict { value: 1.0, threshold: 2.0, pass: true, detail: String::new() };
        assert_eq!(status(Budget::Smoke, &mut v, std::slice::from_ref(&fb)), "pass");
        let mut v = claims::not_checked("the analogy questions are not fetched");
        assert_eq!(status(Budget::Full, &mut v, &[]), "skip");
        // a check that errored on fallback data is a FAIL with its error, not a SKIP
        let mut v = Verdict { value: f64::NAN, threshold: f64::NAN, pass: false, detail: format!("{ERROR}no val_fd") };
        assert_eq!(status(Budget::Full, &mut v, std::slice::from_ref(&fb)), "fail");
        assert_eq!(v.detail, "error: no val_fd");
    }

    #[test]
    fn the_sets_to_fetch_are_read_from_a_notice() {
        assert_eq!(
            sets_in_notice(
                "note: sotu is absent (fetch it with `dlhist data fetch sotu`)\nnote: … (`dlhist data fetch analogy`)"
            ),
            vec!["sotu", "analogy"]
        );
        let mut out = BTreeSet::new();
        named_sets(
            &toml::from_str::<toml::Value>("[data]\ndataset = \"mnist\"\nother = \"digits8\"").unwrap(),
            &mut out,
        );
        assert_eq!(out.into_iter().collect::<Vec<_>>(), vec!["mnist"]);
    }
}
