//! `dlhist replay [NAME...]`: run the claims and print claim, measured value, threshold, verdict.
//! A claim whose runs fell back to built-in data (the set it asks for is not fetched) is not
//! checked: SKIP, with the command that fetches its data.

mod verdict;

use super::common::{self, print_json, resolve, ConfigArgs, Ui};
use crate::claims::{self, ClaimCtx, Verdict};
use crate::data::catalog::fetch_command;
use crate::engine::runner::{RunDir, Summary};
use crate::error::DlError;
use crate::registry::{self, entries};
use candle_core::Device;
use clap::ValueEnum;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;
use verdict::{fallback, smoke_checked, smoke_verdict, status, table, Fallback};

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
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
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
