//! `dlhist replay [NAME...]`: run the claims and print claim, measured value, threshold, verdict.
//! A claim whose runs fell back to built-in data (the set it asks for is not fetched) is not
//! checked: SKIP, with the command that fetches its data.

mod jobs;
pub use jobs::STOP_PIPE_ENV;
mod merge;
mod seeds;
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

/// A run's cache key: its name and the overrides it was trained with.
fn run_key(name: &str, sets: &[(String, String)]) -> String {
    std::iter::once(name.to_string()).chain(sets.iter().map(|(k, v)| format!("{k}={v}"))).collect::<Vec<_>>().join(":")
}

/// A key made safe as a folder name.
fn dir_name(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// seconds per claim: checks only that the pipeline runs and its loss falls
    Smoke,
    /// the preset budget (minutes): checks the paper's claim
    Full,
}

impl Budget {
    /// As `--budget` spells it, and as the rows' "budget" field.
    fn name(self) -> &'static str {
        match self {
            Budget::Smoke => "smoke",
            Budget::Full => "full",
        }
    }
}

/// Check milestones' claims: train at the budget, measure, compare with the threshold
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each claim ends PASS, FAIL, or SKIP: not checked, because a run it needs fell back to built-in data (the set it asks for is not fetched; the row names the command that fetches it). Exits 1 if any claim fails, and with --strict also if any was skipped; else 0.\n\nThe runs go to a temporary folder, deleted at the end, unless --keep (checkpoints/replay/<date-time-pid>) or --out DIR.\n\nSeeds: each claim runs at its own default number of seeds (`dlhist info NAME` says which and why); --seeds N runs every claim once per seed and decides on the means (seed 1 is the preset's train.seed, seed k adds 1000·(k−1)); the detail says whether the margin exceeds the spread across seeds.\n\nShards: --shard K/N runs a deterministic part of the claims (whole studies, balanced by recorded seconds), so N machines together run each claim once; --merge joins their --json files into one table and one exit code. --jobs N runs the studies (the claims that share runs) N at a time on this machine, longest first, each in a child process with 1/N of the threads, the next starting when one ends, and joins their verdicts the same way; with --trace FILE the children's traces join FILE, a process per study.\n\nExamples:\n  dlhist replay                            # every claim, full budget\n  dlhist replay backprop mlp relu\n  dlhist replay --budget smoke --json\n  dlhist replay --seeds 3 gelu seq2seq --json\n  dlhist replay --shard 2/3 --json > shard2.json\n  dlhist replay --merge shard1.json shard2.json shard3.json\n  dlhist replay --jobs 2                   # two studies at once, a thread each (2 cores)\n  dlhist replay --strict                   # CI: every claim must be checked"
)]
pub struct Args {
    /// milestones to check (default: all that have a claim)
    #[arg(value_name = "NAME")]
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
    /// run each claim at N seeds (default: the claim's own, from its calibration; see `dlhist info`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub seeds: Option<u32>,
    /// run only shard K of N: a deterministic part of the claims, balanced by their recorded time
    #[arg(long, value_name = "K/N", value_parser = claims::plan::parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// join the --json outputs of shards into one table and one exit code (trains nothing)
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["names", "shard", "seeds"])]
    pub merge: Vec<PathBuf>,
    /// run the claims' studies N at a time, each a child process with 1/N of the threads; on 2
    /// cores `--jobs 2` is the fastest replay (most claims' ops are too small for two threads)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64), conflicts_with_all = ["shard", "merge"])]
    pub jobs: u32,
    /// do not record the verdicts for `dlhist history` (the shards of --jobs: the whole is recorded)
    #[arg(long, hide = true)]
    pub no_record: bool,
}

struct Ctx {
    budget: Budget,
    device: Device,
    out: PathBuf,
    progress: bool,
    cache: HashMap<String, (Summary, Option<Fallback>)>,
    /// which seed the current pass of a claim runs (0: the presets' own)
    seed: usize,
    /// Some(N) in a claim's last pass: every run is the mean of its N seeded runs
    mean: Option<usize>,
    /// each mean run's folder -> its seeded runs' folders (a check may pass a run's folder on)
    mean_dirs: HashMap<String, Vec<String>>,
    /// whether the current claim set `train.seed` itself (it runs seeds of its own)
    own_seeds: bool,
    /// summaries the current claim asked for, in every seed's pass
    used: Vec<Summary>,
    /// runs of the current claim that fell back
    fallbacks: Vec<Fallback>,
}

impl Ctx {
    /// Trains (or finds in the cache) `name` with `sets` at seed index `k`.
    fn run_seed(&mut self, name: &str, sets: Vec<(String, String)>, k: usize) -> anyhow::Result<Summary> {
        let entry = registry::get(name)?;
        let smoke = self.budget == Budget::Smoke;
        let cfg = |sets: &[(String, String)]| ConfigArgs {
            sets: sets.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ..Default::default()
        };
        let mut sets = sets;
        if k > 0 {
            match sets.iter_mut().find(|(key, _)| key == "train.seed") {
                Some((_, v)) => *v = seeds::seed_of(v.parse()?, k).to_string(),
                None => {
                    let base = resolve(entry, smoke, &cfg(&sets))?.train.seed;
                    sets.push(("train.seed".into(), seeds::seed_of(base, k).to_string()));
                }
            }
        }
        let key = run_key(name, &sets);
        if let Some((s, fb)) = self.cache.get(&key) {
            self.used.push(s.clone());
            self.fallbacks.extend(fb.clone());
            return Ok(s.clone());
        }
        let res = resolve(entry, smoke, &cfg(&sets))?;
        let s = common::train_run(
            &res,
            RunDir(self.out.join(dir_name(&key))),
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

impl ClaimCtx for Ctx {
    fn smoke(&self) -> bool {
        self.budget == Budget::Smoke
    }

    fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
        let owned: Vec<(String, String)> = sets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.own_seeds |= owned.iter().any(|(k, _)| k == "train.seed");
        let Some(n) = self.mean else { return self.run_seed(name, owned, self.seed) };
        // the last pass: the seeded runs were trained by the passes before; this one averages them
        let used = self.used.len();
        let mut runs = vec![];
        for k in 0..n {
            let sets_k = owned
                .iter()
                .map(|(key, v)| (key.clone(), self.mean_dirs.get(v).map_or(v.clone(), |dirs| dirs[k].clone())))
                .collect();
            runs.push(self.run_seed(name, sets_k, k)?);
        }
        self.used.truncate(used);
        let dir = self.out.join("mean").join(dir_name(&run_key(name, &owned)));
        let m = seeds::mean_summary(&runs, &dir)?;
        self.mean_dirs.insert(m.run_dir.clone(), runs.into_iter().map(|s| s.run_dir).collect());
        Ok(m)
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

/// `trace`: the global `--trace FILE`, which `--jobs` hands on to its children.
pub fn run(a: Args, json: bool, trace: Option<&std::path::Path>) -> anyhow::Result<()> {
    if !a.merge.is_empty() {
        let rows = merge::read(&a.merge)?;
        return finish(&rows, json, a.strict, None, true);
    }
    // a first Ctrl-C stops the claims' runs at a checkpoint and the replay cleans up after them
    // (its temporary runs, its --jobs children) rather than quitting at once
    let _graceful = crate::engine::runner::TrainingLoop::start();
    // a --jobs child: its parent's stop comes on stdin
    jobs::watch_parent();
    let device = common::device(&a.device)?;
    let mut selected: Vec<_> = if a.names.is_empty() {
        entries().iter().filter(|e| e.claim.is_some()).collect()
    } else {
        let mut v = vec![];
        for n in &a.names {
            let e = registry::get(n)?;
            if e.claim.is_none() {
                // a stage or variant (gpt-s, t5-pretrain, sft, diffusion-cfg): name its study's claims
                let checked: Vec<&str> =
                    entries().iter().filter(|x| x.study == e.study && x.claim.is_some()).map(|x| x.name).collect();
                let why = if checked.is_empty() {
                    format!("`{n}` has no claim to replay; see `dlhist info {n}`")
                } else {
                    format!(
                        "`{n}` has no claim of its own; the claims of its study `{}` are checked by `dlhist replay {}` (see `dlhist info {n}`)",
                        e.study,
                        checked.join(" ")
                    )
                };
                return Err(DlError::Usage(why).into());
            }
            v.push(e);
        }
        v
    };
    let id = common::new_run_id();
    // where the runs are kept (--out, or --keep's folder); None: a temporary folder
    let kept = match (&a.out, a.keep) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => Some(common::runs_root().join("replay").join(&id)),
        (None, false) => None,
    };
    if a.jobs > 1 {
        // each claim once (a plain replay would run a repeated name twice)
        let mut names: Vec<&'static str> = vec![];
        for e in &selected {
            if !names.contains(&e.name) {
                names.push(e.name);
            }
        }
        let rows = jobs::run(&a, &names, rayon::current_num_threads(), kept.as_deref(), trace)?;
        if crate::engine::runner::interrupted_now() {
            return Err(DlError::ReplayInterrupted { done: rows.len(), total: names.len() }.into());
        }
        return finish(&rows, json, a.strict, kept.as_ref(), true);
    }
    if let Some((k, n)) = a.shard {
        let names: Vec<&'static str> = selected.iter().map(|e| e.name).collect();
        let mine = claims::plan::shard(&names, k, n);
        selected.retain(|e| mine.contains(&e.name));
        eprintln!("replay shard {k}/{n}: {} of {} claims: {}", mine.len(), names.len(), mine.join(" "));
    }
    let (out, _cleanup) = match &kept {
        Some(d) => (d.clone(), TempRuns(None)),
        None => {
            let d = std::env::temp_dir().join(format!("dlhist-replay-{id}"));
            (d.clone(), TempRuns(Some(d)))
        }
    };
    // a need of a claim (dalle's vq-vae and clip) reuses a run an earlier claim trained here
    crate::engine::runs::also_search(&out);
    let budget_name = a.budget.name();
    let mut ctx = Ctx {
        budget: a.budget,
        device,
        out: out.clone(),
        progress: !json,
        cache: HashMap::new(),
        seed: 0,
        mean: None,
        mean_dirs: HashMap::new(),
        own_seeds: false,
        used: vec![],
        fallbacks: vec![],
    };
    let mut rows = vec![];
    let total = selected.len();
    for e in selected {
        // a Ctrl-C after the last claim's verdict: the claims left are not started (one during
        // a claim ends the replay below, where the claim stops)
        if crate::engine::runner::interrupted_now() {
            return Err(DlError::ReplayInterrupted { done: rows.len(), total }.into());
        }
        let claim = e.claim.as_ref().unwrap();
        // smoke checks the pipeline: one seed unless asked
        let n = match (a.seeds, a.budget) {
            (Some(n), _) => n as usize,
            (None, Budget::Smoke) => 1,
            (None, Budget::Full) => claims::plan::default_seeds(e.name),
        };
        let seeds_note = if n > 1 { format!(", {n} seeds") } else { String::new() };
        eprintln!("replay {} ({budget_name} budget{seeds_note}): {}", e.name, claim.text);
        ctx.used.clear();
        ctx.fallbacks.clear();
        ctx.own_seeds = false;
        let t0 = Instant::now();
        let Some(check) = claims::check(e.name) else {
            return Err(anyhow::anyhow!("`{}` has a claim but no check in src/claims/", e.name));
        };
        // one pass per seed, then (at several seeds) the verdict on the mean runs
        let mut per_seed = vec![];
        let mut passes: Vec<Vec<Summary>> = vec![];
        let mut result = Ok(claims::not_checked("no seed ran"));
        for k in 0..n {
            ctx.seed = k;
            let before = ctx.used.len();
            result = check(&mut ctx);
            passes.push(ctx.used[before..].to_vec());
            match &result {
                Ok(v) => per_seed.push(v.clone()),
                Err(_) => break,
            }
        }
        if n > 1 && result.is_ok() {
            if ctx.own_seeds {
                // a claim over seeds of its own (e.g. the fraction of seeds that solve XOR):
                // averaging its runs would blur them, so the verdict averages its values
                result = Ok(seeds::mean_of_values(&per_seed));
            } else {
                ctx.mean = Some(n);
                result = check(&mut ctx);
                ctx.mean = None;
            }
        }
        ctx.seed = 0;
        if crate::engine::runner::interrupted_now() {
            eprintln!("  INTERRUPTED {}: {}", e.name, interrupted_line(&a, e.name, &result, kept.is_some()));
            return Err(DlError::ReplayInterrupted { done: rows.len(), total }.into());
        }
        let seconds = t0.elapsed().as_secs_f64();
        // a real check on the real data: a caveat about its seeds applies
        let measured = result.as_ref().is_ok_and(|v| !claims::is_not_checked(v)) && ctx.fallbacks.is_empty();
        let (metric, mut v) = match a.budget {
            Budget::Smoke => ("val_loss (final < initial)", smoke_verdict(&ctx.used, &result)),
            Budget::Full => match result {
                Ok(v) => (claim.metric, v),
                Err(err) => (
                    claim.metric,
                    Verdict {
                        value: f64::NAN,
                        threshold: f64::NAN,
                        pass: false,
                        detail: format!("{}{err:#}", verdict::ERROR),
                    },
                ),
            },
        };
        let spread = seeds::Spread::of(&per_seed, &passes, &v, n);
        if n > 1 && a.budget == Budget::Full {
            v.detail = format!("{}; {}", v.detail, spread.words());
        } else if let (1, Budget::Full, true, Some(caveat)) =
            (n, a.budget, measured, claims::plan::one_seed_caveat(e.name))
        {
            v.detail = format!("{}; {caveat}", v.detail);
        }
        let st = status(a.budget, &mut v, &ctx.fallbacks);
        let sets: BTreeSet<&str> = ctx.fallbacks.iter().flat_map(|f| f.sets.iter().map(String::as_str)).collect();
        let fetch = (st == "skip").then(|| fetch_command(&sets.iter().copied().collect::<Vec<_>>()));
        let data: Vec<String> = passes.first().map(|p| p.iter().map(|s| s.data.clone()).collect()).unwrap_or_default();
        eprintln!("  {} {}: {}", st.to_uppercase(), e.name, v.detail);
        let checked = match a.budget {
            Budget::Smoke => smoke_checked(&ctx.used),
            Budget::Full => metric.to_string(),
        };
        let mut row = serde_json::json!({
            "name": e.name, "claim": claim.text, "metric": metric, "checked": checked, "value": v.value,
            "threshold": v.threshold, "status": st, "pass": if st == "skip" { serde_json::Value::Null } else { (st == "pass").into() },
            "seconds": seconds, "budget": budget_name, "data": data, "fetch": fetch, "fetch_sets": sets, "detail": v.detail,
        });
        spread.write(&mut row);
        if let Some((k, n)) = a.shard {
            row["shard"] = format!("{k}/{n}").into();
        }
        rows.push(row);
    }
    if crate::engine::runner::interrupted_now() {
        return Err(DlError::ReplayInterrupted { done: rows.len(), total }.into());
    }
    finish(&rows, json, a.strict, kept.as_ref(), !a.no_record)
}

/// The line of a claim a Ctrl-C stopped (it gets no verdict). Kept runs (--keep, --out) stay,
/// so the runner's `--resume` hint holds; a plain replay's runs are in its temporary folder,
/// removed as it exits, so the line says how to check the claim again instead.
fn interrupted_line(a: &Args, name: &str, result: &anyhow::Result<Verdict>, kept: bool) -> String {
    let err = result.as_ref().err();
    let step = err.and_then(|e| {
        e.chain().find_map(|c| match c.downcast_ref::<DlError>() {
            Some(DlError::Interrupted { step, .. }) => Some(*step),
            _ => None,
        })
    });
    if let (Some(err), true) = (err, kept) {
        return format!("{err:#}");
    }
    let at = step.map(|s| format!(" at step {s}")).unwrap_or_default();
    let gone = if kept { "" } else { "; its runs were in the replay's temporary folder, which is removed" };
    let budget = if a.budget == Budget::Smoke { " --budget smoke" } else { "" };
    let seeds = a.seeds.map(|n| format!(" --seeds {n}")).unwrap_or_default();
    let by = match crate::error::STOP_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        15 => "SIGTERM",
        1 => "SIGHUP",
        _ => "Ctrl-C",
    };
    format!("stopped by {by}{at}{gone}. Check it again with: dlhist replay {name}{budget}{seeds}")
}

/// Records the verdicts where `dlhist history` looks for the newest replay
/// (<runs root>/replay/verdicts-<id>.json); failing to only warns.
fn record(rows: &[serde_json::Value]) {
    if rows.is_empty() {
        return;
    }
    let dir = super::history::verdicts_dir();
    let path = dir.join(format!("verdicts-{}.json", common::new_run_id()));
    let text = serde_json::to_string_pretty(rows).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, text)) {
        eprintln!("note: could not record the verdicts for `dlhist history` in {}: {e}", path.display());
    }
}

/// Prints the rows (a table, or --json) and the tally; the exit code: failures, then (--strict)
/// skips.
fn finish(
    rows: &[serde_json::Value],
    json: bool,
    strict: bool,
    kept: Option<&PathBuf>,
    recorded: bool,
) -> anyhow::Result<()> {
    let count = |s: &str| rows.iter().filter(|r| r["status"] == s).count();
    let (passed, failed, skipped) = (count("pass"), count("fail"), count("skip"));
    let fetch_sets: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r["status"] == "skip")
        .flat_map(|r| r["fetch_sets"].as_array().into_iter().flatten().filter_map(|s| s.as_str()))
        .collect();
    let fetch = fetch_command(&fetch_sets.into_iter().collect::<Vec<_>>());
    let budget =
        if rows.iter().all(|r| r["budget"] == "smoke") && !rows.is_empty() { Budget::Smoke } else { Budget::Full };
    if recorded {
        record(rows);
    }
    if json {
        print_json(&rows);
    } else {
        print!("{}", table(rows, budget));
        let budget_name = rows.first().and_then(|r| r["budget"].as_str()).unwrap_or("full");
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
        if let Some(out) = kept {
            println!("runs: {}", out.display());
        }
    }
    if failed > 0 {
        return Err(DlError::ClaimsFailed { failed, total: rows.len() }.into());
    }
    if skipped > 0 && strict {
        return Err(DlError::ClaimsSkipped { skipped, total: rows.len(), fetch }.into());
    }
    Ok(())
}
