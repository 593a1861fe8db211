//! `dlhist replay [NAME...]`: run the claims and print claim, measured value, threshold, verdict.

use super::common::{self, print_json, resolve, ConfigArgs, Ui};
use crate::claims::{self, ClaimCtx, Verdict};
use crate::engine::runner::{RunDir, Summary};
use crate::error::DlError;
use crate::registry::{self, entries};
use crate::report::table::Table;
use candle_core::Device;
use clap::ValueEnum;
use std::collections::HashMap;
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
    after_help = "Exits 1 if any claim fails.\n\nExamples:\n  dlhist replay                            # every claim, full budget\n  dlhist replay backprop mlp relu\n  dlhist replay --budget smoke --json"
)]
pub struct Args {
    /// milestones to check (default: all that have a claim)
    pub names: Vec<String>,
    #[arg(long, value_enum, default_value = "full")]
    pub budget: Budget,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// where to keep the runs (default: checkpoints/replay/<date-time-pid>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

struct Ctx {
    budget: Budget,
    device: Device,
    out: PathBuf,
    progress: bool,
    cache: HashMap<String, Summary>,
    /// summaries the current claim asked for
    used: Vec<Summary>,
}

impl ClaimCtx for Ctx {
    fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
        let key = std::iter::once(name.to_string())
            .chain(sets.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(":");
        if let Some(s) = self.cache.get(&key) {
            self.used.push(s.clone());
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
        self.cache.insert(key, s.clone());
        self.used.push(s.clone());
        Ok(s)
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
        Ok(v) => format!("claim metric at smoke budget {:.4} (not checked)", v.value),
        Err(e) => format!("claim check failed: {e}"),
    };
    Verdict { value: after, threshold: before, pass, detail: format!("pipeline: {}; {measured}", runs.join("; ")) }
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
    let out = a.out.clone().unwrap_or_else(|| common::runs_root().join("replay").join(common::new_run_id()));
    let mut ctx = Ctx { budget: a.budget, device, out, progress: !json, cache: HashMap::new(), used: vec![] };
    let mut rows = vec![];
    for e in selected {
        let claim = e.claim.as_ref().unwrap();
        eprintln!("replay {} ({:?} budget): {}", e.name, a.budget, claim.text);
        ctx.used.clear();
        let t0 = Instant::now();
        let result = match claims::check(e.name) {
            Some(check) => check(&mut ctx),
            None => Err(anyhow::anyhow!("`{}` has a claim but no check in src/claims/", e.name)),
        };
        let seconds = t0.elapsed().as_secs_f64();
        let (metric, v) = match a.budget {
            Budget::Smoke => ("val_loss (final < initial)", smoke_verdict(&ctx.used, &result)),
            Budget::Full => match result {
                Ok(v) => (claim.metric, v),
                Err(err) => (
                    claim.metric,
                    Verdict { value: f64::NAN, threshold: f64::NAN, pass: false, detail: format!("error: {err:#}") },
                ),
            },
        };
        let data: Vec<String> = ctx.used.iter().map(|s| s.data.clone()).collect();
        eprintln!("  {} {}: {}", if v.pass { "PASS" } else { "FAIL" }, e.name, v.detail);
        rows.push(serde_json::json!({
            "name": e.name, "claim": claim.text, "metric": metric, "value": v.value, "threshold": v.threshold,
            "pass": v.pass, "seconds": seconds, "budget": format!("{:?}", a.budget).to_lowercase(),
            "data": data, "detail": v.detail,
        }));
    }
    let failed = rows.iter().filter(|r| r["pass"] != true).count();
    if json {
        print_json(&rows);
    } else {
        let mut t = Table::new(&["name", "claim", "value", "threshold", "verdict", "seconds"]);
        for r in &rows {
            let num = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.4}")).unwrap_or("NaN".into());
            t.row(vec![
                r["name"].as_str().unwrap().into(),
                r["claim"].as_str().unwrap().into(),
                num(&r["value"]),
                num(&r["threshold"]),
                if r["pass"] == true { "PASS".into() } else { "FAIL".into() },
                format!("{:.1}", r["seconds"].as_f64().unwrap_or(0.0)),
            ]);
        }
        print!("{}", t.render());
        println!(
            "{} of {} claims passed ({} budget)",
            rows.len() - failed,
            rows.len(),
            format!("{:?}", a.budget).to_lowercase()
        );
    }
    if failed > 0 {
        return Err(DlError::ClaimsFailed { failed, total: rows.len() }.into());
    }
    Ok(())
}
