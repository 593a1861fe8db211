//! The one fake `ClaimCtx` of the claim tests: it hands out summaries chosen by the test (by the
//! variant's name and `--set`s), with a real run directory holding the metrics.jsonl lines a
//! claim reads (validation evaluations, update times) and, where asked, a config.toml. `both`
//! runs a registered claim by its catalogue name on a passing and a failing context; the test
//! in claims/mod.rs checks, by reading these sources, that every registered claim is run so.

use super::{check, is_not_checked, ClaimCtx, Verdict};
use crate::engine::runner::Summary;
use crate::experiment::Metrics;

/// A fake run: what its summary says, and what its run directory holds.
#[derive(Clone, Debug)]
pub struct Run {
    pub data: String,
    pub metrics: Metrics,
    pub initial: Metrics,
    pub steps: usize,
    pub epochs: f64,
    pub params: usize,
    pub wall_s: f64,
    /// metrics.jsonl's lines, without `split` (added: "val" for these)
    pub val: Vec<serde_json::Value>,
    /// every logged update took this many ms (metrics.jsonl's train lines, 10 of them)
    pub update_ms: Option<f64>,
    pub config: Option<String>,
}

/// A run on `data` with the final metrics `m`: 100 steps, 10 epochs, 1,000 parameters, 1 s.
pub fn run(data: &str, m: &[(&str, f64)]) -> Run {
    Run {
        data: data.into(),
        metrics: m.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        initial: Metrics::new(),
        steps: 100,
        epochs: 10.0,
        params: 1000,
        wall_s: 1.0,
        val: vec![],
        update_ms: None,
        config: None,
    }
}

impl Run {
    pub fn steps(self, steps: usize) -> Self {
        Run { steps, ..self }
    }
    pub fn params(self, params: usize) -> Self {
        Run { params, ..self }
    }
    pub fn wall(self, wall_s: f64) -> Self {
        Run { wall_s, ..self }
    }
    pub fn initial(mut self, m: &[(&str, f64)]) -> Self {
        self.initial = m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self
    }
    /// One validation line per (step, value) of `key`.
    pub fn curve(mut self, key: &str, pts: &[(usize, f64)]) -> Self {
        self.val.extend(pts.iter().map(|(s, v)| serde_json::json!({ "step": s, key: v })));
        self
    }
    pub fn update_ms(self, ms: f64) -> Self {
        Run { update_ms: Some(ms), ..self }
    }
    pub fn config(self, text: &str) -> Self {
        Run { config: Some(text.into()), ..self }
    }
}

/// What the fake is asked: the variant and its sets, giving the run to hand out.
type Pick = Box<dyn FnMut(&str, &[(&str, &str)]) -> Run>;

pub struct Fake {
    pick: Pick,
    dir: tempfile::TempDir,
    /// "NAME [sets]" of every run asked for, in order
    pub asked: Vec<String>,
    pub smoke: bool,
}

impl Fake {
    pub fn new(pick: impl FnMut(&str, &[(&str, &str)]) -> Run + 'static) -> Self {
        Fake { pick: Box::new(pick), dir: tempfile::tempdir().expect("a temp dir"), asked: vec![], smoke: false }
    }
}

/// The value of `key` among `sets`.
pub fn set<'a>(sets: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    sets.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl ClaimCtx for Fake {
    fn smoke(&self) -> bool {
        self.smoke
    }

    fn run(&mut self, name: &str, sets: &[(&str, &str)]) -> anyhow::Result<Summary> {
        let r = (self.pick)(name, sets);
        // one directory per call, ending in the name (as a replay's run directories do)
        let dir = self.dir.path().join(format!("{}-{name}", self.asked.len()));
        self.asked.push(format!("{name} {sets:?}"));
        std::fs::create_dir_all(&dir)?;
        let mut lines: Vec<String> = r
            .val
            .iter()
            .map(|v| {
                let mut v = v.clone();
                v["split"] = "val".into();
                v.to_string()
            })
            .collect();
        if let Some(ms) = r.update_ms {
            lines.extend((1..=10).map(|i| serde_json::json!({ "step": i, "split": "train", "ms": ms }).to_string()));
        }
        std::fs::write(dir.join("metrics.jsonl"), lines.join("\n"))?;
        if let Some(c) = &r.config {
            std::fs::write(dir.join("config.toml"), c)?;
        }
        Ok(Summary {
            name: name.into(),
            run_dir: dir.display().to_string(),
            data: r.data,
            steps: r.steps,
            session_steps: r.steps,
            eval_s: 0.0,
            epochs: r.epochs,
            wall_s: r.wall_s,
            steps_per_s: 1.0,
            params: r.params,
            flops: 0.0,
            threads: 2,
            train_loss: r.metrics.get("train_loss").copied().unwrap_or(1.0),
            initial: r.initial,
            final_metrics: r.metrics,
            config_hash: String::new(),
            frozen_params: 0,
            init_from: None,
        })
    }
}

/// The verdict of the claim registered as `name`, measured on `ctx`.
pub fn verdict(name: &str, ctx: &mut Fake) -> Verdict {
    let c = check(name).unwrap_or_else(|| panic!("`{name}` has no registered claim"));
    c(ctx).unwrap_or_else(|e| panic!("`{name}`: {e:#}"))
}

/// The claim registered as `name` passes on `pass` and fails (measured, not "not checked") on
/// `fail`; both verdicts, for further checks.
pub fn both(name: &str, mut pass: Fake, mut fail: Fake) -> (Verdict, Verdict) {
    let (p, f) = (verdict(name, &mut pass), verdict(name, &mut fail));
    assert!(p.pass && !is_not_checked(&p), "`{name}` should pass: {p:?}");
    assert!(!f.pass && !is_not_checked(&f), "`{name}` should fail: {f:?}");
    values_straddle_the_threshold(name, &p, &f);
    (p, f)
}

/// The two contexts of `both` sit just either side of the threshold, so the values the claim
/// reports must too: the passing value on or beyond it, the failing one on the other side.
/// Without this, a claim could decide right and report a wrong number (mutation testing found
/// the reported values unchecked).
fn values_straddle_the_threshold(name: &str, p: &Verdict, f: &Verdict) {
    let (dp, df) = (p.value - p.threshold, f.value - f.threshold);
    assert!(dp.is_finite() && df.is_finite(), "`{name}`: values and thresholds must be numbers: {p:?} {f:?}");
    // one of them may sit on the threshold (an inclusive claim passes there, a strict one fails)
    let straddle = (dp == 0.0) != (df == 0.0) || dp.signum() != df.signum();
    assert!(straddle, "`{name}`: the values do not straddle the threshold: {p:?} {f:?}");
}

/// The claim registered as `name` fails on each context of `fails` (the other ways to miss it).
pub fn fails(name: &str, fails: Vec<Fake>) {
    for (i, mut c) in fails.into_iter().enumerate() {
        let v = verdict(name, &mut c);
        assert!(!v.pass && !is_not_checked(&v), "`{name}` should fail (case {i}): {v:?}");
    }
}

/// A fake that hands out the run of each name in `runs`, whatever the sets.
pub fn by_name(runs: Vec<(&'static str, Run)>) -> Fake {
    let runs: std::collections::HashMap<&str, Run> = runs.into_iter().collect();
    Fake::new(move |n, _| runs.get(n).unwrap_or_else(|| panic!("no fake run `{n}`")).clone())
}
