//! `dlhist replay [NAME...]`: run the claims and print claim, measured value, threshold, verdict.
//! A claim whose runs fell back to built-in data (the set it asks for is not fetched) is not
//! checked: SKIP, with the command that fetches its data.

use super::common::{self, print_json, resolve, ConfigArgs, Ui};
use crate::claims::{self, is_not_checked, ClaimCtx, Verdict};
use crate::data::catalog::{fetch_command, present, DATASETS};
use crate::engine::runner::{RunDir, Summary};
use crate::error::DlError;
use crate::registry::{self, entries};
use crate::report::table::Table;
use candle_core::Device;
use clap::ValueEnum;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// seconds per claim: checks only that the pipeline runs and its loss falls
    Smoke,
    /// the preset budget (minutes): checks the paper's claim
    Full,
}

/// Check milestones' claims: train at the budget, measure, compare with the threshold
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each claim ends PASS, FAIL, or SKIP: not checked, because a run it needs fell back to built-in data (the set it asks for is not fetched; the row names the command that fetches it). Exits 1 if any claim fails, and with --strict also if any was skipped; else 0.\n\nThe runs go to a temporary folder, deleted at the end, unless --keep (checkpoints/replay/<date-time-pid>) or --out DIR.\n\nExamples:\n  dlhist replay                            # every claim, full budget\n  dlhist replay backprop mlp relu\n  dlhist replay --budget smoke --json\n  dlhist replay --strict                   # CI: every claim must be checked"
)]
pub struct Args {
    /// milestones to check (default: all that have a claim)
    pub names: Vec<String>,
    #[arg(long, value_enum, default_value = "full")]
    pub budget: Budget,
    /// cpu, or cuda:N when built with --features cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// keep the runs in checkpoints/replay/<date-time-pid> (`dlhist runs` lists them)
    #[arg(long)]
    pub keep: bool,
    /// keep the runs in DIR
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// a claim that could not be checked (its data is not fetched) makes the exit code 1
    #[arg(long)]
    pub strict: bool,
}

/// A run that fell back to built-in data.
#[derive(Clone, Debug)]
struct Fallback {
    run: String,
    data: String,
    /// the fetched sets the run asked for that are absent
    sets: Vec<String>,
}

struct Ctx {
    budget: Budget,
    device: Device,
    out: PathBuf,
    progress: bool,
    cache: HashMap<String, (Summary, Option<Fallback>)>,
    /// summaries the current claim asked for
    used: Vec<Summary>,
    /// runs of the current claim that fell back
    fallbacks: Vec<Fallback>,
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
fn fallback(res: &common::Resolved, s: &Summary) -> Option<Fallback> {
    let path = std::path::Path::new(&s.run_dir).join("summary.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let notice = v["data_notice"].as_str()?;
    let mut sets = BTreeSet::new();
    named_sets(&toml::Value::Table(res.table.clone()), &mut sets);
    sets.extend(sets_in_notice(notice));
    let sets = sets.into_iter().filter(|s| !present(s)).collect();
    Some(Fallback { run: s.name.clone(), data: s.data.clone(), sets })
}

impl ClaimCtx for Ctx {
    fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
        let key = std::iter::once(name.to_string())
            .chain(sets.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(":");
        if let Some((s, fb)) = self.cache.get(&key) {
            self.used.push(s.clone());
            self.fallbacks.extend(fb.clone());
            return Ok(s.clone());
        }
        let entry = registry::get(name)?;
        let cfg = ConfigArgs { sets: sets.iter().map(|(k, v)| format!("{k}={v}")).collect(), ..Default::default() };
        let res = resolve(entry, self.budget == Budget::Smoke, &cfg)?;
        let dir: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let s = common::train_run(
            &res,
            RunDir(self.out.join(dir)),
            false,
            &self.device,
            Ui { progress: self.progress, echo: false },
        )?;
        let fb = fallback(&res, &s);
        self.cache.insert(key, (s.clone(), fb.clone()));
        self.used.push(s.clone());
        self.fallbacks.extend(fb);
        Ok(s)
    }
}

/// What the smoke check checked, in a few words: the validation loss of each run, before -> after.
fn smoke_checked(used: &[Summary]) -> String {
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
fn smoke_verdict(used: &[Summary], claim: &anyhow::Result<Verdict>) -> Verdict {
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

/// PASS, FAIL or SKIP: a claim whose runs fell back (or that says it was not checked) is skipped.
fn status(budget: Budget, v: &mut Verdict, fallbacks: &[Fallback]) -> &'static str {
    if budget == Budget::Full && !fallbacks.is_empty() && !is_not_checked(v) {
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

/// Deletes the replay's temporary run folder when the replay ends, however it ends.
struct TempRuns(Option<PathBuf>);

impl Drop for TempRuns {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let device = common::device(&a.device)?;
    let selected: Vec<_> = if a.names.is_empty() {
        entries().iter().filter(|e| e.claim.is_some()).collect()
    } else {
        let mut v = vec![];
        for n in &a.names {
            let e = registry::get(n)?;
            if e.claim.is_none() {
                return Err(DlError::Usage(format!("`{n}` has no claim to replay yet; see `dlhist info {n}`")).into());
            }
            v.push(e);
        }
        v
    };
    let id = common::new_run_id();
    let (out, _cleanup) = match (&a.out, a.keep) {
        (Some(d), _) => (d.clone(), TempRuns(None)),
        (None, true) => (common::runs_root().join("replay").join(&id), TempRuns(None)),
        (None, false) => {
            let d = std::env::temp_dir().join(format!("dlhist-replay-{id}"));
            (d.clone(), TempRuns(Some(d)))
        }
    };
    let budget_name = format!("{:?}", a.budget).to_lowercase();
    let mut ctx = Ctx {
        budget: a.budget,
        device,
        out: out.clone(),
        progress: !json,
        cache: HashMap::new(),
        used: vec![],
        fallbacks: vec![],
    };
    let mut rows = vec![];
    let mut fetch_sets: BTreeSet<String> = BTreeSet::new();
    for e in selected {
        let claim = e.claim.as_ref().unwrap();
        eprintln!("replay {} ({budget_name} budget): {}", e.name, claim.text);
        ctx.used.clear();
        ctx.fallbacks.clear();
        let t0 = Instant::now();
        let result = match claims::check(e.name) {
            Some(check) => check(&mut ctx),
            None => Err(anyhow::anyhow!("`{}` has a claim but no check in src/claims/", e.name)),
        };
        let seconds = t0.elapsed().as_secs_f64();
        let (metric, mut v) = match a.budget {
            Budget::Smoke => ("val_loss (final < initial)", smoke_verdict(&ctx.used, &result)),
            Budget::Full => match result {
                Ok(v) => (claim.metric, v),
                Err(err) => (
                    claim.metric,
                    Verdict { value: f64::NAN, threshold: f64::NAN, pass: false, detail: format!("error: {err:#}") },
                ),
            },
        };
        let st = status(a.budget, &mut v, &ctx.fallbacks);
        let sets: BTreeSet<&str> = ctx.fallbacks.iter().flat_map(|f| f.sets.iter().map(String::as_str)).collect();
        let fetch = (st == "skip").then(|| fetch_command(&sets.iter().copied().collect::<Vec<_>>()));
        if st == "skip" {
            fetch_sets.extend(sets.iter().map(|s| s.to_string()));
        }
        let data: Vec<String> = ctx.used.iter().map(|s| s.data.clone()).collect();
        eprintln!("  {} {}: {}", st.to_uppercase(), e.name, v.detail);
        let checked = match a.budget {
            Budget::Smoke => smoke_checked(&ctx.used),
            Budget::Full => metric.to_string(),
        };
        rows.push(serde_json::json!({
            "name": e.name, "claim": claim.text, "metric": metric, "checked": checked, "value": v.value,
            "threshold": v.threshold, "status": st, "pass": if st == "skip" { serde_json::Value::Null } else { (st == "pass").into() },
            "seconds": seconds, "budget": budget_name, "data": data, "fetch": fetch, "detail": v.detail,
        }));
    }
    let count = |s: &str| rows.iter().filter(|r| r["status"] == s).count();
    let (passed, failed, skipped) = (count("pass"), count("fail"), count("skip"));
    let fetch = fetch_command(&fetch_sets.iter().map(String::as_str).collect::<Vec<_>>());
    if json {
        print_json(&rows);
    } else {
        print!("{}", table(&rows, a.budget));
        let mut line = format!(
            "{passed} passed, {failed} failed, {skipped} not checked, of {} claims ({budget_name} budget)",
            rows.len()
        );
        if skipped > 0 {
            line.push_str(&format!(
                "; not checked: their runs fell back to built-in data. Fetch it with `{fetch}` (or `make data` in the source tree) and replay them"
            ));
        }
        println!("{line}");
        if a.keep || a.out.is_some() {
            println!("runs: {}", out.display());
        }
    }
    if failed > 0 {
        return Err(DlError::ClaimsFailed { failed, total: rows.len() }.into());
    }
    if skipped > 0 && a.strict {
        return Err(DlError::ClaimsSkipped { skipped, total: rows.len(), fetch }.into());
    }
    Ok(())
}

/// The human table, within 100 columns; the claim's words and the details are in `--json` (and
/// on stderr as each claim finishes).
fn table(rows: &[serde_json::Value], budget: Budget) -> String {
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
        // at smoke budget the data does not matter: only the pipeline is checked
        let mut v = Verdict { value: 1.0, threshold: 2.0, pass: true, detail: String::new() };
        assert_eq!(status(Budget::Smoke, &mut v, &[fb]), "pass");
        let mut v = claims::not_checked("the analogy questions are not fetched");
        assert_eq!(status(Budget::Full, &mut v, &[]), "skip");
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
