//! `dlhist plot RUN...`: the loss curves and a validation metric of one or more runs, as a PNG.

use super::common::print_json;
use super::pick::pick;
use crate::engine::runner::RunDir;
use crate::error::DlError;
use crate::report::plot::{panels_png, Panel, Series};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Draw the training and validation curves of runs: loss, and a validation metric
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A RUN is a milestone name (its newest finished run of the preset, as `eval` picks), a run id from `dlhist runs` (or its last part), or a run directory. The left panel shows the loss (training solid, validation dashed), the right one a validation metric the runs share (--metric, default the first of acc, bpc, bleu, miou, … they log; fit_acc, logged beside them, is the accuracy on training images and is drawn solid). Curves of at most 20 points mark each measurement.\n\nExamples:\n  dlhist plot mlp\n  dlhist plot relu gelu --out act.png\n  dlhist plot checkpoints/lstm/20261129-101500-42 --metric bpc"
)]
pub struct Args {
    /// runs: milestone names, run ids or run directories
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<String>,
    /// the validation metric of the right panel (a key of the runs' val lines in metrics.jsonl)
    #[arg(long, value_name = "KEY")]
    pub metric: Option<String>,
    /// the PNG to write (default: curves.png in the run directory, or for several runs
    /// plots/plot-<date-time-pid>.png under the runs root)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// One run's logged curves: (x, value) per key, for the train and the val lines.
#[derive(Default)]
pub(super) struct Curves {
    pub train: BTreeMap<String, Vec<(f64, f64)>>,
    pub val: BTreeMap<String, Vec<(f64, f64)>>,
}

/// The curves of a metrics.jsonl against its key `x` (step, flops or seconds), divided by
/// `scale`.
pub(super) fn read_curves(path: &Path, x: &str, scale: f64) -> anyhow::Result<Curves> {
    let text = std::fs::read_to_string(path).map_err(|e| DlError::MissingCheckpoint {
        path: path.to_path_buf(),
        hint: format!("{e}: the run has no metrics to plot"),
    })?;
    let mut c = Curves::default();
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let (Some(at), Some(obj)) = (v[x].as_f64(), v.as_object()) else { continue };
        let side = match v["split"].as_str() {
            Some("train") => &mut c.train,
            Some("val") => &mut c.val,
            _ => continue,
        };
        for (k, x) in obj {
            if let (false, Some(x)) =
                (["step", "split", "ms", "lr", "flops", "seconds"].contains(&k.as_str()), x.as_f64())
            {
                side.entry(k.clone()).or_default().push((at / scale, x));
            }
        }
    }
    Ok(c)
}

/// The metric of the right panel: the one asked for, else the first of the usual ones that every
/// run with curves logs on its val lines, else any val key (other than the loss) that they all share.
pub(super) fn choose_metric(all: &[Curves], asked: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(k) = asked {
        if !all.iter().all(|c| c.val.contains_key(k)) {
            let keys: Vec<&String> = all[0].val.keys().filter(|k| *k != "loss").collect();
            return Err(DlError::Usage(format!(
                "--metric {k}: not logged on the val lines of every run; the first run logs {}",
                keys.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
        return Ok(Some(k.to_string()));
    }
    // a run that logged nothing (compare's variant whose metrics are gone) has no say
    let with: Vec<&Curves> = all.iter().filter(|c| !c.train.is_empty() || !c.val.is_empty()).collect();
    let Some(first) = with.first() else { return Ok(None) };
    let shared = |k: &str| with.iter().all(|c| c.val.contains_key(k));
    let usual = ["acc", "bpc", "bleu", "miou", "string_acc", "mse"];
    Ok(usual
        .iter()
        .map(|k| k.to_string())
        .chain(first.val.keys().cloned())
        .find(|k| k != "loss" && !k.starts_with("loss_") && shared(k)))
}

/// Keys of the val lines that were measured on training data, not on the validation split: a
/// classifier's `fit_acc` (accuracy on a fixed subset of its training images, in eval mode)
/// is logged with the validation metrics but says how well the training set is fitted.
pub(super) fn on_training_data(key: &str) -> bool {
    key.starts_with("fit_")
}

/// The title of a metric's panel: `val acc`, or `fit_acc on training images`.
pub(super) fn metric_title(key: &str) -> String {
    if on_training_data(key) {
        format!("{key} on training images")
    } else {
        format!("val {key}")
    }
}

/// Writes the curves of runs (`labels[i]`'s are `curves[i]`) to `out`: the loss on the left
/// (training solid, validation dashed), and `metric`'s panel on the right where there is one;
/// titles start with `title`. `plot` and `compare` both draw this way.
pub(super) fn write_curves(
    out: &Path,
    title: &str,
    x_label: &str,
    labels: &[String],
    curves: &[Curves],
    metric: Option<&str>,
) -> anyhow::Result<()> {
    let (mut loss, mut other) = (vec![], vec![]);
    for (i, (label, c)) in labels.iter().zip(curves).enumerate() {
        let get = |m: &BTreeMap<String, Vec<(f64, f64)>>, k: &str| m.get(k).cloned().unwrap_or_default();
        loss.push(Series { name: format!("{label} train"), points: get(&c.train, "loss"), color: i, dashed: false });
        loss.push(Series { name: format!("{label} val"), points: get(&c.val, "loss"), color: i, dashed: true });
        if let Some(k) = metric {
            other.push(metric_series(label, k, get(&c.val, k), i));
        }
    }
    let loss_title = format!("{title}: loss");
    let mut panels = vec![Panel { title: &loss_title, x_label, y_label: "loss", series: &loss }];
    let metric_title = metric.map(|k| format!("{title}: {}", metric_title(k)));
    if let (Some(t), Some(k)) = (&metric_title, metric) {
        panels.push(Panel { title: t, x_label, y_label: k, series: &other });
    }
    panels_png(out, &panels)
}

/// One run's curve of a metric from its val lines, named and drawn as what it measures:
/// dashed for the validation split, solid for a fit on training images.
pub(super) fn metric_series(label: &str, key: &str, points: Vec<(f64, f64)>, color: usize) -> Series {
    let fit = on_training_data(key);
    Series { name: format!("{label} {}", if fit { "train fit" } else { "val" }), points, color, dashed: !fit }
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let mut picked: Vec<(String, RunDir)> = vec![];
    for r in &a.runs {
        let (res, rd) = pick(Some(r), None)?;
        picked.push((res.entry.name.to_string(), rd));
    }
    // label each run by its milestone, and by its run id where two share one
    let labels: Vec<String> = picked
        .iter()
        .map(|(name, rd)| {
            if picked.iter().filter(|(n, _)| n == name).count() > 1 {
                let id = rd.0.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
                format!("{name} {id}")
            } else {
                name.clone()
            }
        })
        .collect();
    let curves: Vec<Curves> =
        picked.iter().map(|(_, rd)| read_curves(&rd.metrics(), "step", 1.0)).collect::<anyhow::Result<_>>()?;
    let metric = choose_metric(&curves, a.metric.as_deref())?;
    let out = match &a.out {
        Some(p) => p.clone(),
        None if picked.len() == 1 => picked[0].1 .0.join("curves.png"),
        None => {
            let dir = super::common::runs_root().join("plots");
            std::fs::create_dir_all(&dir)
                .map_err(|e| DlError::Unwritable { path: dir.clone(), message: e.to_string() })?;
            dir.join(format!("plot-{}.png", super::common::new_run_id()))
        }
    };
    write_curves(&out, &labels.join(", "), "step", &labels, &curves, metric.as_deref())
        .map_err(|e| DlError::output(&out, format!("{e:#}")))?;
    if json {
        print_json(&serde_json::json!({
            "plot": out, "metric": metric,
            "runs": picked.iter().map(|(n, rd)| serde_json::json!({"name": n, "run_dir": rd.0})).collect::<Vec<_>>(),
        }));
    } else {
        println!("wrote {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_accuracy_is_drawn_as_a_training_measure_not_a_validation_one() {
        let fit = metric_series("mlp", "fit_acc", vec![], 0);
        assert_eq!((fit.name.as_str(), fit.dashed), ("mlp train fit", false));
        assert_eq!(metric_title("fit_acc"), "fit_acc on training images");
        let val = metric_series("mlp", "acc", vec![], 0);
        assert_eq!((val.name.as_str(), val.dashed), ("mlp val", true));
        assert_eq!(metric_title("acc"), "val acc");
    }

    /// compare once failed, after training every variant, when one had lost its metrics.jsonl;
    /// its curves are now empty, and they must not veto the panel the others share.
    #[test]
    fn a_run_without_curves_does_not_remove_the_metric_panel_of_the_others() {
        let logged = |keys: &[&str]| {
            let mut c = Curves::default();
            for k in keys {
                c.val.insert(k.to_string(), vec![(1.0, 0.5)]);
            }
            c
        };
        let runs = [logged(&["loss", "acc"]), Curves::default(), logged(&["loss", "acc", "bpc"])];
        assert_eq!(choose_metric(&runs, None).unwrap().as_deref(), Some("acc"));
        assert_eq!(choose_metric(&[Curves::default()], None).unwrap(), None);
        // asked for by name, it must be on every run's lines
        assert!(choose_metric(&runs, Some("acc")).is_err());
        assert_eq!(choose_metric(&runs[..1], Some("acc")).unwrap().as_deref(), Some("acc"));
    }
}
