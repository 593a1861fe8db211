//! `dlhist compare A B [C...]`: variants of one study, same data, seed and budget, side by side.

use super::common::{self, print_json, resolve, ConfigArgs, Ui};
use crate::engine::runner::{Hint, RunDir, Summary, CONTINUE_HINT};
use crate::error::{shell_word, DlError};
use crate::registry::{self, entries};
use crate::report::{fmt_metric, table::Table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Train variants of one study under the same data, seed and budget; print a table and plot the curves
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A variant is a name, optionally with overrides after colons: NAME:KEY=VALUE[:KEY=VALUE...]\n\nExamples:\n  dlhist compare relu gelu\n  dlhist compare sigmoid tanh relu gelu --steps 500\n  dlhist compare mlp mlp:model.hidden=[64] --steps 300\n  dlhist compare perceptron backprop --json\n  dlhist compare relu gelu --x flops          # the curves against training FLOPs (or --x seconds)\n  dlhist compare gpt-xs gpt-s gpt-m          # fits val loss = a·N^(−α); scaling.png\n  dlhist compare gpt-xs gpt-s gpt-m --resume # after a Ctrl-C: go on where it stopped\n\nCtrl-C stops the variant training at a checkpoint and prints the command that continues the comparison (the same one with --out DIR --resume)."
)]
pub struct Args {
    /// two or more variants of one study (see `dlhist list`)
    #[arg(required = true, num_args = 2.., value_name = "NAME")]
    pub variants: Vec<String>,
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// where to write the runs, curves.png (the loss, and a validation metric where the variants
    /// log one) and summary.json (default: checkpoints/compare/<date-time-pid>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// the x axis of curves.png: training steps, training FLOPs (3x the forward matmul/conv
    /// FLOPs, as `dlhist bench` counts them; plotted in GFLOP) or seconds since training began
    #[arg(long = "x", value_enum, default_value = "steps", value_name = "AXIS")]
    pub x: XAxis,
    /// continue a stopped comparison of the same variants and config, in --out DIR or else the
    /// newest unfinished one: finished variants are kept, a stopped one resumes from its
    /// checkpoint, the others train
    #[arg(long)]
    pub resume: bool,
}

/// What the curves are plotted against.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Steps,
    Flops,
    Seconds,
}

impl XAxis {
    /// The key of metrics.jsonl lines it reads, the scale it divides by, and the axis label.
    fn key(self) -> (&'static str, f64, &'static str) {
        match self {
            XAxis::Steps => ("step", 1.0, "step"),
            XAxis::Flops => ("flops", 1e9, "training GFLOP"),
            XAxis::Seconds => ("seconds", 1.0, "seconds"),
        }
    }
}

fn study_list() -> String {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in entries() {
        by.entry(e.study).or_default().push(e.name);
    }
    by.iter().map(|(s, v)| format!("{s}: {}", v.join(" "))).collect::<Vec<_>>().join("; ")
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let device = common::device(&a.device)?;
    // parse NAME[:k=v...] and check that every variant is of one study
    let mut parsed = vec![];
    for spec in &a.variants {
        let mut parts = spec.split(':');
        let entry = registry::get(parts.next().unwrap_or(""))?;
        let sets: Vec<String> = parts.map(str::to_string).collect();
        parsed.push((spec.clone(), entry, sets));
    }
    let study = parsed[0].1.study;
    if let Some((_, e, _)) = parsed.iter().find(|(_, e, _)| e.study != study) {
        return Err(DlError::Usage(format!(
            "`{}` is in study `{}` but `{}` is in `{}`; compare variants of one study. Studies: {}",
            parsed[0].1.name,
            study,
            e.name,
            e.study,
            study_list()
        ))
        .into());
    }
    let mut labels = BTreeMap::new();
    for (spec, _, _) in &parsed {
        if labels.insert(spec.clone(), ()).is_some() {
            return Err(DlError::Usage(format!("variant `{spec}` is listed twice")).into());
        }
    }
    // resolve all before training any, so a bad key fails at once
    let mut runs = vec![];
    for (spec, entry, sets) in &parsed {
        let mut cfg = a.cfg.clone();
        cfg.sets.extend(sets.iter().cloned());
        runs.push((spec.clone(), resolve(entry, false, &cfg)?));
    }
    let out = match (&a.out, a.resume) {
        (Some(d), _) => d.clone(),
        (None, true) => newest_unfinished(&runs)?,
        (None, false) => common::runs_root().join("compare").join(common::new_run_id()),
    };
    if a.resume && !runs.iter().any(|(label, _)| variant_dir(&out, label).config().is_file()) {
        eprintln!("note: {} holds none of these variants' runs yet; they all train", out.display());
    }
    std::fs::create_dir_all(&out)
        .map_err(|e| DlError::OutputUnwritable { path: out.clone(), message: e.to_string() })?;
    // with --resume, what each variant's folder holds; checked for all before any trains
    let states = runs
        .iter()
        .map(|(label, res)| if a.resume { state_of(&variant_dir(&out, label), label, res) } else { Ok(State::New) })
        .collect::<anyhow::Result<Vec<_>>>()?;

    // a Ctrl-C where nothing trains (between two variants, in one's final evaluation) quits at
    // once: the handler says how to continue the comparison
    let _hint =
        Hint::set(&CONTINUE_HINT, format!("continue the comparison with: {}", continue_command(&a, json, &out)));
    let mut results: Vec<(String, Summary)> = vec![];
    for (i, ((label, res), state)) in runs.iter().zip(states).enumerate() {
        let rd = variant_dir(&out, label);
        let n = runs.len();
        let resume = match state {
            State::Finished(s) => {
                eprintln!("[{}/{n}] {label}: finished in {}, kept", i + 1, rd.0.display());
                results.push((label.clone(), *s));
                continue;
            }
            State::Stopped(step) => {
                eprintln!("[{}/{n}] {label}: resuming from step {step}", i + 1);
                true
            }
            State::New => {
                eprintln!("[{}/{n}] {label}", i + 1);
                false
            }
        };
        let ui = Ui { progress: !json, echo: false };
        let s = common::train_run(res, rd, resume, &device, ui).map_err(|e| stopped_here(e, &a, json, res, i, &out))?;
        results.push((label.clone(), s));
    }
    drop(_hint);

    // the loss on the left; on the right the validation metric the variants share (as `plot`
    // chooses it), where they log one
    let (x_key, scale, x_label) = a.x.key();
    // a run without its metrics (removed while the others trained) loses its curve, not the
    // table of every variant's results
    let curves: Vec<_> = results
        .iter()
        .map(|(label, s)| {
            super::plot::read_curves(&Path::new(&s.run_dir).join("metrics.jsonl"), x_key, scale).unwrap_or_else(|e| {
                eprintln!("note: {label} is not drawn in curves.png: {e:#}");
                Default::default()
            })
        })
        .collect();
    let metric = super::plot::choose_metric(&curves, None)?;
    let png = out.join("curves.png");
    let labels: Vec<String> = results.iter().map(|(l, _)| l.clone()).collect();
    super::plot::write_curves(&png, study, x_label, &labels, &curves, metric.as_deref())?;

    let mut keys = vec!["val_loss", "val_acc", "test_acc"];
    // and the metric each variant's claim is measured by (e.g. test_bleu), where the runs report it
    for (_, e, _) in &parsed {
        if let Some(m) = e.claim.as_ref().map(|c| c.metric) {
            if m != "train_loss" && !keys.contains(&m) && results.iter().any(|(_, s)| s.metric(m).is_some()) {
                keys.push(m);
            }
        }
    }
    // the generative milestones' Fréchet distance, where the runs report it
    if !keys.contains(&"test_fd") && results.iter().any(|(_, s)| s.metric("test_fd").is_some()) {
        keys.push("test_fd");
    }
    // and what qualifies a codebook's usage, where the runs report it (the VQ-VAE study)
    for m in ["test_perplexity", "test_mse"] {
        if !keys.contains(&m) && results.iter().any(|(_, s)| s.metric(m).is_some()) {
            keys.push(m);
        }
    }
    let mut header = vec!["variant", "data", "train loss", "val loss", "val acc", "test acc"];
    header.extend(&keys[3..]);
    header.extend(["params", "GFLOP", "wall s", "steps/s"]);
    let mut t = Table::new(&header);
    for (label, s) in &results {
        let mut row = vec![label.clone(), s.data.clone(), format!("{:.4}", s.train_loss)];
        row.extend(keys.iter().map(|k| fmt_metric(k, s.metric(k))));
        row.extend([
            s.params.to_string(),
            format!("{:.3}", s.flops / 1e9),
            format!("{:.1}", s.wall_s),
            format!("{:.1}", s.steps_per_s),
        ]);
        t.row(row);
    }
    let mut summary = serde_json::json!({
        "study": study,
        "dir": out,
        "plot": png,
        "x": a.x.key().0,
        "variants": results.iter().map(|(l, s)| serde_json::json!({"variant": l, "summary": s})).collect::<Vec<_>>(),
    });
    // the study's own analysis, if it has one (e.g. the gpt ladder's power law)
    let mut extra = String::new();
    if let Some(analyse) = crate::claims::analysis(study) {
        let a = analyse(&results)?;
        let mut plots = vec![];
        for (stem, plot) in &a.plots {
            let path = out.join(format!("{stem}.png"));
            crate::report::plot::loglog_png(&path, plot)?;
            extra.push_str(&format!("{stem}: {}\n", path.display()));
            plots.push(path);
        }
        extra.insert_str(0, &format!("{}\n", a.text));
        summary["analysis"] = serde_json::json!({ "result": a.json, "text": a.text, "plots": plots });
    }
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    if json {
        print_json(&summary);
    } else {
        print!("{}{extra}", t.render());
        for (label, s) in results.iter().filter(|(_, s)| s.session_steps < s.steps) {
            println!(
                "({label} was resumed: its wall s and steps/s are of its last session, {} of its {} steps)",
                s.session_steps, s.steps
            );
        }
        println!("curves: {}\nsummary: {}", png.display(), out.join("summary.json").display());
    }
    Ok(())
}

/// A variant's folder in the comparison `out`: its label with what is not a name character as `_`.
fn variant_dir(out: &Path, label: &str) -> RunDir {
    let name: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    RunDir(out.join(name))
}

/// What `--resume` finds for a variant.
enum State {
    /// nothing yet (or a folder the run never got to checkpoint in): train it
    New,
    /// stopped at this step with a checkpoint: resume it
    Stopped(u64),
    /// finished: keep its results
    Finished(Box<Summary>),
}

/// The state of `label`'s folder `rd`; a run there of another config is an error (the results
/// would not be this comparison's).
fn state_of(rd: &RunDir, label: &str, res: &common::Resolved) -> anyhow::Result<State> {
    if !rd.config().is_file() {
        return Ok(State::New);
    }
    let (theirs, _) = common::resolve_run_dir(&rd.0)?;
    if theirs.hash != res.hash || theirs.entry.name != res.entry.name {
        let diff: Vec<String> = crate::config::diff_keys(&theirs.table, &res.table)
            .into_iter()
            .map(|(k, run, new)| format!("`{k}` is {run} there, {new} here"))
            .collect();
        return Err(DlError::Usage(format!(
            "{} holds a run of `{label}` with another config ({}). --resume continues the same comparison: give the same variants and flags, or drop --resume for a new one",
            rd.0.display(),
            if diff.is_empty() { format!("a `{}` run", theirs.entry.name) } else { diff.join("; ") }
        ))
        .into());
    }
    if rd.is_complete() {
        let text = std::fs::read_to_string(rd.summary())?;
        let s: Summary = serde_json::from_str(&text).map_err(|e| DlError::Malformed {
            what: "run summary",
            path: rd.summary().display().to_string(),
            message: e.to_string(),
        })?;
        return Ok(State::Finished(Box::new(s)));
    }
    Ok(rd.ckpt_step().map_or(State::New, State::Stopped))
}

/// The newest comparison under the runs root that did not finish (no summary.json of its own)
/// and holds a run of one of these variants: another comparison's folder is not this one's.
fn newest_unfinished(runs: &[(String, common::Resolved)]) -> anyhow::Result<PathBuf> {
    let root = common::runs_root().join("compare");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.join("summary.json").exists()).collect())
        .unwrap_or_default();
    // ids are date-time-pid: the newest sorts last
    dirs.sort();
    let ours = |d: &Path| {
        runs.iter().any(|(label, res)| {
            let rd = variant_dir(d, label);
            rd.config().is_file() && common::resolve_run_dir(&rd.0).is_ok_and(|(r, _)| r.hash == res.hash)
        })
    };
    dirs.into_iter().rev().find(|d| ours(d)).ok_or_else(|| {
        DlError::MissingCheckpoint {
            path: root,
            hint: "no unfinished comparison of these variants there to resume; drop --resume, or pass --out DIR".into(),
        }
        .into()
    })
}

/// A Ctrl-C that stopped variant `i` (`res`) becomes the comparison's, with the command that
/// continues it. Other errors pass unchanged, among them a stop inside a run the variant needs
/// (diffusion's lenet): its own hint resumes that run, which the variant then finds finished.
fn stopped_here(e: anyhow::Error, a: &Args, json: bool, res: &common::Resolved, i: usize, out: &Path) -> anyhow::Error {
    match e.downcast_ref::<DlError>() {
        Some(DlError::Interrupted { step, name, .. }) if name == res.entry.name => {
            let at = format!("in `{}` at step {step}, its checkpoint written", a.variants[i]);
            DlError::CompareInterrupted { at, done: i, command: continue_command(a, json, out) }.into()
        }
        _ => e,
    }
}

/// The command that continues this comparison in `out`: the same variants and flags (and the
/// thread count it ran at) with `--out OUT --resume`, quoted for a POSIX shell.
fn continue_command(a: &Args, json: bool, out: &Path) -> String {
    let mut words = vec!["dlhist".to_string(), "--threads".into(), rayon::current_num_threads().to_string()];
    if json {
        words.push("--json".into());
    }
    words.push("compare".into());
    words.extend(a.variants.iter().cloned());
    if let Some(c) = &a.cfg.config {
        words.extend(["-c".into(), c.display().to_string()]);
    }
    for s in &a.cfg.sets {
        words.extend(["--set".into(), s.clone()]);
    }
    for (flag, v) in [("--steps", a.cfg.steps), ("--epochs", a.cfg.epochs)] {
        if let Some(v) = v {
            words.extend([flag.into(), v.to_string()]);
        }
    }
    if let Some(s) = a.cfg.seed {
        words.extend(["--seed".into(), s.to_string()]);
    }
    if a.device != "cpu" {
        words.extend(["--device".into(), a.device.clone()]);
    }
    if a.x != XAxis::Steps {
        use clap::ValueEnum;
        let x = a.x.to_possible_value().expect("no variant is skipped");
        words.extend(["--x".into(), x.get_name().to_string()]);
    }
    words.extend(["--out".into(), out.display().to_string(), "--resume".into()]);
    words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ")
}
