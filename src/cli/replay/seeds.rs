//! Seeds in a replay. A claim at N seeds is checked once per seed (seed 1 is the preset's own
//! `train.seed`; seed k adds 1000·(k−1) to every run's seed, the data split stays), then once
//! more on "mean runs": each run the check asks for stands for its N seeded runs, with their
//! final metrics averaged and their metrics.jsonl averaged line by line (curves too), so the
//! verdict is the check's own comparison, on the means.

use crate::claims::Verdict;
use crate::engine::runner::Summary;
use crate::experiment::Metrics;
use std::path::Path;

/// The `train.seed` of seed index `k` (0-based) of a run whose own seed is `base`.
pub fn seed_of(base: u64, k: usize) -> u64 {
    base + 1000 * k as u64
}

/// Mean, sample standard deviation, min and max of `xs`.
pub fn stats(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 { (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, sd, min, max)
}

/// Means of the keys every map has.
fn mean_metrics(ms: &[&Metrics]) -> Metrics {
    let mut out = Metrics::new();
    for (k, _) in ms[0].iter() {
        let xs: Vec<f64> = ms.iter().filter_map(|m| m.get(k).copied()).collect();
        if xs.len() == ms.len() {
            out.insert(k.clone(), xs.iter().sum::<f64>() / xs.len() as f64);
        }
    }
    out
}

/// The mean run of `runs` (the same run at several seeds): means of every number, the rest from
/// the first; `dir` holds its averaged metrics.jsonl and the first run's config.toml and
/// model.safetensors.
pub fn mean_summary(runs: &[Summary], dir: &Path) -> anyhow::Result<Summary> {
    let avg = |f: fn(&Summary) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
    std::fs::create_dir_all(dir)?;
    let first = &runs[0];
    let _ = std::fs::copy(Path::new(&first.run_dir).join("config.toml"), dir.join("config.toml"));
    // the first seed's weights, linked: every seed's checkpoint holds the same tensors, so a
    // claim that reports its size (lora's checkpoint bytes) reports the real one, not 0
    let (weights, linked) = (Path::new(&first.run_dir).join("model.safetensors"), dir.join("model.safetensors"));
    if weights.exists() && std::fs::hard_link(&weights, &linked).is_err() {
        let _ = std::fs::copy(&weights, &linked);
    }
    let curves: Vec<String> = runs
        .iter()
        .map(|s| std::fs::read_to_string(Path::new(&s.run_dir).join("metrics.jsonl")).unwrap_or_default())
        .collect();
    std::fs::write(dir.join("metrics.jsonl"), mean_curve(&curves)?)?;
    Ok(Summary {
        run_dir: dir.display().to_string(),
        epochs: avg(|s| s.epochs),
        wall_s: avg(|s| s.wall_s),
        flops: avg(|s| s.flops),
        steps_per_s: avg(|s| s.steps_per_s),
        train_loss: avg(|s| s.train_loss),
        initial: mean_metrics(&runs.iter().map(|s| &s.initial).collect::<Vec<_>>()),
        final_metrics: mean_metrics(&runs.iter().map(|s| &s.final_metrics).collect::<Vec<_>>()),
        ..first.clone()
    })
}

/// metrics.jsonl files of one run at several seeds, averaged line by line: the n-th line with a
/// given (split, step) in each file is one line of the mean; numbers present in every file are
/// averaged, everything else comes from the first file.
pub fn mean_curve(files: &[String]) -> anyhow::Result<String> {
    let parse = |t: &String| -> anyhow::Result<Vec<serde_json::Value>> {
        t.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
    };
    let all: Vec<Vec<serde_json::Value>> = files.iter().map(parse).collect::<anyhow::Result<_>>()?;
    let key = |v: &serde_json::Value| (v["split"].to_string(), v["step"].to_string());
    // the k-th occurrence of a (split, step) in every file
    let nth = |lines: &[serde_json::Value], want: &(String, String), k: usize| {
        lines.iter().filter(|v| key(v) == *want).nth(k).cloned()
    };
    let mut out = String::new();
    let mut seen: std::collections::HashMap<(String, String), usize> = Default::default();
    for line in all.first().map(Vec::as_slice).unwrap_or(&[]) {
        let want = key(line);
        let k = *seen.entry(want.clone()).and_modify(|c| *c += 1).or_insert(0);
        let others: Vec<serde_json::Value> = all.iter().filter_map(|f| nth(f, &want, k)).collect();
        let mut mean = line.clone();
        if let Some(obj) = mean.as_object_mut() {
            for (field, v) in obj.iter_mut() {
                if field == "step" || !v.is_number() {
                    continue;
                }
                let xs: Vec<f64> = others.iter().filter_map(|o| o[field.as_str()].as_f64()).collect();
                if xs.len() == all.len() {
                    *v = (xs.iter().sum::<f64>() / xs.len() as f64).into();
                }
            }
        }
        out.push_str(&serde_json::to_string(&mean)?);
        out.push('\n');
    }
    Ok(out)
}

/// Whether the margin of a claim (its mean value minus its threshold) stands out of the spread
/// of that margin across seeds, in words.
pub fn spread_words(margin: f64, sd: f64, n: usize) -> String {
    let verdict = if !margin.is_finite() || !sd.is_finite() {
        "not measurable"
    } else if margin.abs() > sd {
        "the margin exceeds the spread"
    } else {
        "within noise"
    };
    format!("margin {:+.4}, seed sd {sd:.4} over {n} seeds: {verdict}", margin)
}

/// The verdict at several seeds of a claim that runs seeds of its own: the mean of the seeds'
/// values against the mean of their thresholds, in the direction the seeds' verdicts show
/// (value ≥ threshold passes, or ≤); a claim whose verdicts follow neither (several conditions)
/// passes only if every seed passes.
pub fn mean_of_values(per_seed: &[Verdict]) -> Verdict {
    let (value, threshold) = (
        stats(&per_seed.iter().map(|v| v.value).collect::<Vec<_>>()).0,
        stats(&per_seed.iter().map(|v| v.threshold).collect::<Vec<_>>()).0,
    );
    let higher = per_seed.iter().all(|v| v.pass == (v.value >= v.threshold));
    let lower = per_seed.iter().all(|v| v.pass == (v.value <= v.threshold));
    let (pass, rule) = match (higher, lower) {
        (true, false) => (value >= threshold, "mean value ≥ mean threshold"),
        (false, true) => (value <= threshold, "mean value ≤ mean threshold"),
        _ => (per_seed.iter().all(|v| v.pass), "several conditions: every seed must pass"),
    };
    Verdict {
        value,
        threshold,
        pass,
        detail: format!(
            "at the first of the replay's seeds: {}; the check runs seeds of its own, so the verdict averages its values over the replay's seeds ({rule})",
            per_seed[0].detail
        ),
    }
}

/// A compared run: its name, its folder's name at the first seed, and (metric, value at each seed).
type RunSeeds = (String, String, Vec<(String, Vec<f64>)>);

/// A claim's values across its seeds, and the metrics of each run it compared.
pub struct Spread {
    n: usize,
    /// (value, threshold, pass) of each seed's pass
    per_seed: Vec<(f64, f64, bool)>,
    /// the verdict's margin (value − threshold, on the mean runs)
    margin: f64,
    /// each compared run: name, its folder's name at the first seed, (metric, value at each seed)
    runs: Vec<RunSeeds>,
}

impl Spread {
    /// `per_seed`: each seed's verdict; `passes`: the runs each seed's pass asked for, in order.
    pub fn of(per_seed: &[Verdict], passes: &[Vec<Summary>], v: &Verdict, n: usize) -> Self {
        let mut runs = vec![];
        let first = passes.first().map(Vec::as_slice).unwrap_or(&[]);
        for (i, s) in first.iter().enumerate() {
            if first[..i].iter().any(|o| o.run_dir == s.run_dir) {
                continue;
            }
            let at: Vec<&Summary> = passes.iter().filter_map(|p| p.get(i)).collect();
            let mut keys: Vec<String> = s.final_metrics.keys().cloned().collect();
            keys.push("train_loss".into());
            let metrics = keys
                .into_iter()
                .map(|k| {
                    let xs = at.iter().map(|r| r.metric(&k).unwrap_or(f64::NAN)).collect();
                    (k, xs)
                })
                .collect();
            let dir = Path::new(&s.run_dir).file_name().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
            runs.push((s.name.clone(), dir, metrics));
        }
        Spread {
            n,
            per_seed: per_seed.iter().map(|v| (v.value, v.threshold, v.pass)).collect(),
            margin: v.value - v.threshold,
            runs,
        }
    }

    /// The standard deviation of the margin (value − threshold) across seeds.
    fn margin_sd(&self) -> f64 {
        stats(&self.per_seed.iter().map(|(v, t, _)| v - t).collect::<Vec<_>>()).1
    }

    /// The line a verdict at several seeds ends with: the seeds' values and whether the margin
    /// stands out of their spread.
    pub fn words(&self) -> String {
        let values: Vec<String> = self.per_seed.iter().map(|(v, _, _)| format!("{v:.4}")).collect();
        let (mean, sd, lo, hi) = stats(&self.per_seed.iter().map(|p| p.0).collect::<Vec<_>>());
        format!(
            "verdict on the mean of {} seeds; value per seed {} (mean {mean:.4}, sd {sd:.4}, {lo:.4}–{hi:.4}); {}",
            self.n,
            values.join(", "),
            spread_words(self.margin, self.margin_sd(), self.n)
        )
    }

    /// The --json fields: seeds, mean, sd, min, max, per_seed, margin, margin_sd, runs.
    pub fn write(&self, row: &mut serde_json::Value) {
        let values: Vec<f64> = self.per_seed.iter().map(|p| p.0).collect();
        let num = |x: f64| if x.is_finite() { x.into() } else { serde_json::Value::Null };
        let (mean, sd, lo, hi) =
            if values.is_empty() { (f64::NAN, f64::NAN, f64::NAN, f64::NAN) } else { stats(&values) };
        row["seeds"] = self.n.into();
        row["mean"] = num(mean);
        row["sd"] = num(sd);
        row["min"] = num(lo);
        row["max"] = num(hi);
        row["per_seed"] = self
            .per_seed
            .iter()
            .enumerate()
            .map(|(k, (v, t, p))| serde_json::json!({"seed": k + 1, "value": num(*v), "threshold": num(*t), "pass": p}))
            .collect();
        row["margin"] = num(self.margin);
        row["margin_sd"] = num(if self.n > 1 { self.margin_sd() } else { f64::NAN });
        row["runs"] = self
            .runs
            .iter()
            .map(|(name, dir, metrics)| {
                let m: serde_json::Map<String, serde_json::Value> = metrics
                    .iter()
                    .map(|(k, xs)| {
                        let (mean, sd, lo, hi) = stats(xs);
                        let per: Vec<serde_json::Value> = xs.iter().map(|x| num(*x)).collect();
                        (k.clone(), serde_json::json!({"mean": num(mean), "sd": num(sd), "min": num(lo), "max": num(hi), "per_seed": per}))
                    })
                    .collect();
                serde_json::json!({"name": name, "dir": dir, "metrics": m})
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_a_hand_computed_case() {
        let (m, sd, lo, hi) = stats(&[1.0, 2.0, 4.0]);
        assert!((m - 7.0 / 3.0).abs() < 1e-12);
        // sample variance: ((4/3)² + (1/3)² + (5/3)²) / 2 = 7/3
        assert!((sd - (7.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((lo, hi), (1.0, 4.0));
        assert_eq!(stats(&[5.0]).1, 0.0);
    }

    #[test]
    fn curves_average_line_by_line_and_keep_what_is_not_a_number() {
        let a =
            "{\"split\":\"val\",\"step\":0,\"acc\":0.5,\"tag\":\"x\"}\n{\"split\":\"val\",\"step\":10,\"acc\":0.7}\n";
        let b =
            "{\"split\":\"val\",\"step\":0,\"acc\":0.7,\"tag\":\"y\"}\n{\"split\":\"val\",\"step\":10,\"acc\":0.9}\n";
        let m = mean_curve(&[a.into(), b.into()]).unwrap();
        let lines: Vec<serde_json::Value> = m.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert!((lines[0]["acc"].as_f64().unwrap() - 0.6).abs() < 1e-12);
        assert!((lines[1]["acc"].as_f64().unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(lines[0]["tag"], "x");
        assert_eq!(lines[1]["step"], 10);
    }

    #[test]
    fn a_mean_run_averages_the_metrics_and_keeps_the_first_seeds_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let seeded: Vec<Summary> = [(1.0, 10), (3.0, 10)]
            .iter()
            .enumerate()
            .map(|(i, &(loss, bytes))| {
                let dir = tmp.path().join(format!("seed{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("metrics.jsonl"), "").unwrap();
                std::fs::write(dir.join("model.safetensors"), vec![0u8; bytes]).unwrap();
                serde_json::from_value(serde_json::json!({
                    "name": "lora", "run_dir": dir.display().to_string(), "data": "sotu", "steps": 5,
                    "epochs": 1.0, "wall_s": 2.0, "steps_per_s": 1.0, "params": 7, "threads": 1,
                    "train_loss": loss, "initial": {}, "final": {"val_loss": loss}, "config_hash": "h"
                }))
                .unwrap()
            })
            .collect();
        let mean = mean_summary(&seeded, &tmp.path().join("mean")).unwrap();
        assert_eq!(mean.metric("val_loss"), Some(2.0));
        let weights = std::path::Path::new(&mean.run_dir).join("model.safetensors");
        assert_eq!(
            std::fs::metadata(weights).unwrap().len(),
            10,
            "a claim reading checkpoint bytes sees the real size"
        );
    }

    #[test]
    fn a_claim_with_its_own_seeds_is_decided_on_the_mean_of_its_values() {
        let v = |value, threshold, pass| Verdict { value, threshold, pass, detail: String::new() };
        // higher is better: 0.5 fails, 0.9 passes against 0.6; the mean 0.7 passes
        assert!(mean_of_values(&[v(0.5, 0.6, false), v(0.9, 0.6, true)]).pass);
        // lower is better: the mean 0.65 is above 0.6
        assert!(!mean_of_values(&[v(0.5, 0.6, true), v(0.8, 0.6, false)]).pass);
        // passes that follow neither direction: every seed must pass
        assert!(!mean_of_values(&[v(0.9, 0.6, false), v(0.9, 0.6, true)]).pass);
    }

    #[test]
    fn the_words_say_whether_the_margin_stands_out_of_the_noise() {
        assert!(spread_words(0.15, 0.4, 3).ends_with("within noise"), "{}", spread_words(0.15, 0.4, 3));
        assert!(spread_words(-0.9, 0.1, 3).ends_with("exceeds the spread"));
        assert!(spread_words(f64::NAN, 0.1, 3).ends_with("not measurable"));
    }
}
