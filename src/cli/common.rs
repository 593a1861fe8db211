//! What several subcommands share: resolving a name to a config, building and training it,
//! and finding run directories.

use crate::config::TrainConfig;
use crate::config::{config_hash, layered, merge, parse_toml, Layer};
use crate::engine::runner::{self, RunDir, RunSpec, Summary};
use crate::engine::runs::also_searched;
use crate::error::DlError;
use crate::experiment::{Experiment, Need};
use crate::registry::{self, Entry};
use candle_core::Device;
use clap::Args;
use std::path::{Path, PathBuf};

/// Budget and config flags shared by `train` and `compare`.
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML file merged on top of the milestone's preset (only keys the milestone has)
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// override one config key, e.g. --set train.lr=0.01 --set model.hidden=[256]
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// number of optimizer updates (overrides train.steps)
    #[arg(long, conflicts_with = "epochs", value_parser = super::sample::positive, allow_hyphen_values = true)]
    pub steps: Option<usize>,
    /// passes over the training data (sets train.epochs and clears train.steps)
    #[arg(long, value_parser = super::sample::positive, allow_hyphen_values = true)]
    pub epochs: Option<usize>,
    /// seed for init, batching, dropout and sampling (overrides train.seed)
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ConfigArgs {
    /// The flags as `--set` assignments, applied last.
    pub fn flag_sets(&self) -> Vec<String> {
        let mut v = vec![];
        if let Some(s) = self.steps {
            v.push(format!("train.steps={s}"));
        }
        if let Some(e) = self.epochs {
            v.push("train.steps=0".into());
            v.push(format!("train.epochs={e}"));
        }
        if let Some(s) = self.seed {
            v.push(format!("train.seed={s}"));
        }
        v
    }
}

/// A fully resolved run configuration.
pub struct Resolved {
    pub entry: &'static Entry,
    pub table: toml::Table,
    pub text: String,
    pub hash: String,
    pub train: TrainConfig,
}

impl Resolved {
    pub fn from_table(entry: &'static Entry, table: toml::Table) -> Result<Self, DlError> {
        let train = crate::config::train_section(&table)?;
        let text = format!(
            "# dlhist {} — resolved config\n{}",
            entry.name,
            toml::to_string(&table).expect("tables serialise")
        );
        Ok(Self { entry, hash: config_hash(&table), text, table, train })
    }

    /// Builds the milestone's experiment (loads data; no files are written).
    pub fn build(&self, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
        let _span = tracing::debug_span!("data", milestone = self.entry.name).entered();
        (self.entry.family.build)(&self.table, device)
    }
}

/// defaults <- preset <- [smoke preset] <- -c FILE <- --set <- flags (`config::layered`).
pub fn resolve(entry: &'static Entry, smoke: bool, args: &ConfigArgs) -> Result<Resolved, DlError> {
    let mut layers =
        vec![Layer { text: entry.preset.into(), what: "preset", path: format!("experiments/{}.toml", entry.name) }];
    if smoke {
        layers.push(Layer {
            text: entry.smoke.into(),
            what: "preset",
            path: format!("experiments/smoke/{}.toml", entry.name),
        });
    }
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DlError::Usage(format!("cannot read config file {}: {e}", path.display())))?;
        layers.push(Layer { text: text.into(), what: "config file", path: path.display().to_string() });
    }
    let sets: Vec<String> = args.sets.iter().chain(args.flag_sets().iter()).cloned().collect();
    Resolved::from_table(entry, layered((entry.family.defaults)(), &layers, &sets, entry.name)?)
}

/// Reads a run directory's config.toml back into a `Resolved`.
pub fn resolve_run_dir(dir: &Path) -> anyhow::Result<(Resolved, RunDir)> {
    let rd = RunDir(dir.to_path_buf());
    let text = std::fs::read_to_string(rd.config()).map_err(|_| DlError::MissingCheckpoint {
        path: rd.config(),
        hint: format!(
            "{} is not a run directory (it has no config.toml). Pass a run directory (`dlhist runs` lists them)",
            dir.display()
        ),
    })?;
    let name = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# dlhist "))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| DlError::Malformed {
            what: "run config",
            path: rd.config().display().to_string(),
            message: "its first line does not name the milestone".into(),
        })?;
    let entry = registry::get(name)?;
    let table = parse_toml(&text, "run config", &rd.config().display().to_string())?;
    // the saved table must still fit the milestone (catches configs from other versions)
    let mut check = (entry.family.defaults)();
    merge(&mut check, &table, entry.name).map_err(|e| DlError::Malformed {
        what: "run config",
        path: rd.config().display().to_string(),
        message: format!(
            "it names milestone `{}` on its first line, but its keys do not fit that milestone ({e})",
            entry.name
        ),
    })?;
    Ok((Resolved::from_table(entry, check)?, rd))
}

/// A new run id: UTC date-time plus the process id, sortable and unique enough.
pub fn new_run_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}", rem / 3600, (rem % 3600) / 60, rem % 60, std::process::id())
}

pub use crate::engine::runs::{runs_of, runs_root};

/// A NAME (its newest finished run) or a RUN_DIR path.
pub fn find_run(target: &str) -> anyhow::Result<(Resolved, RunDir)> {
    let p = Path::new(target);
    if p.is_dir() {
        return resolve_run_dir(p);
    }
    // A path (it has a separator, or names a file that is no milestone) is a run that is not
    // there, like a folder without config.toml or a run id with no match: exit 1, not the usage
    // error of a mistyped milestone name (exit 2), so scripts see one code for every "no such run".
    if target.contains(['/', std::path::MAIN_SEPARATOR]) || (p.exists() && registry::get(target).is_err()) {
        let what = if p.exists() { "it is a file, not a run directory" } else { "there is no such folder" };
        return Err(DlError::MissingCheckpoint {
            path: p.to_path_buf(),
            hint: format!(
                "{what}. Pass a run directory (`dlhist runs` lists them) or a milestone name (`dlhist list`)"
            ),
        }
        .into());
    }
    let entry = registry::get(target).map_err(|e| match e {
        DlError::UnknownName { name, suggestion, .. } => DlError::UnknownName {
            what: "milestone or run directory",
            name,
            suggestion,
            hint: "Pass a milestone name (`dlhist list`) or the path of a run directory".into(),
        },
        other => other,
    })?;
    let runs = runs_of(entry.name);
    let done = runs.iter().find(|r| r.is_complete()).ok_or_else(|| DlError::MissingCheckpoint {
        path: runs_root().join(entry.name),
        hint: format!("no finished `{}` run there. {}", entry.name, train_hint(entry.name)),
    })?;
    resolve_run_dir(&done.0)
}

/// "Train one first: dlhist train NAME (about N on 2 cores)", with the duration where the
/// registry knows it; for a preset that starts from another milestone's newest run
/// (`train.init_from = "t5-pretrain"`) and finds none, both commands in order.
pub fn train_hint(name: &str) -> String {
    if let Some(base) = preset_base(name) {
        if !runs_of(&base).iter().any(RunDir::is_complete) {
            let took = registry::train_time(&base)
                .map(|t| format!("; `{base}` takes about {t} on 2 cores"))
                .unwrap_or_default();
            return format!(
                "Train them first: dlhist train {base} && dlhist train {name} (`{name}` starts from the newest finished `{base}` run, and there is none{took})"
            );
        }
    }
    // a run stopped by Ctrl-C (or a crash) is one --resume away from finishing
    let stopped = crate::engine::runs::newest_unfinished(name);
    let resume = match stopped.and_then(|r| r.ckpt_step().map(|step| (r, step))) {
        Some((r, step)) => {
            format!(
                ", or finish the run stopped at step {step}: dlhist train {name} --resume --run-dir {}",
                crate::error::shell_path(&r.0)
            )
        }
        None => String::new(),
    };
    format!("Train one first: dlhist train {name}{}{resume}", about_time(name))
}

/// " (about N on 2 cores)" where the registry knows how long `dlhist train NAME` takes, else "".
pub fn about_time(name: &str) -> String {
    registry::train_time(name).map(|t| format!(" (about {t} on 2 cores)")).unwrap_or_default()
}

/// The milestone whose newest run `name`'s preset starts from (its `train.init_from`, when that
/// names a milestone rather than a run directory).
fn preset_base(name: &str) -> Option<String> {
    let preset: toml::Table = registry::get(name).ok()?.preset.parse().ok()?;
    let base = preset.get("train")?.get("init_from")?.as_str()?;
    registry::get(base).ok().map(|e| e.name.to_string())
}

/// The run a milestone needs (`Experiment::needs`): the newest finished run of `need.milestone`
/// whose config is exactly its preset with `need.sets`, or else a new one, trained now and kept
/// under the runs root like any run.
fn needed_run(need: &Need, device: &Device, ui: Ui) -> anyhow::Result<RunDir> {
    let entry = registry::get(&need.milestone)?;
    let res = resolve(entry, false, &ConfigArgs { sets: need.sets.clone(), ..Default::default() })?;
    // a run's config.toml is the resolved text plus the line naming the data it used
    let body = |t: &str| t.lines().filter(|l| !l.starts_with("# data used:")).collect::<Vec<_>>().join("\n");
    let same = |rd: &RunDir| {
        rd.is_complete() && std::fs::read_to_string(rd.config()).is_ok_and(|t| body(&t) == body(&res.text))
    };
    // a replay's own runs first (this build trained them), then the runs root's
    if let Some(rd) = also_searched().into_iter().chain(runs_of(entry.name)).find(same) {
        return Ok(rd);
    }
    let rd = RunDir(runs_root().join(entry.name).join(new_run_id()));
    let sets: Vec<String> = need.sets.iter().map(|s| format!(" --set {s}")).collect();
    eprintln!(
        "training {} for {} (once; kept in {}): dlhist train {}{}",
        entry.name,
        need.why,
        rd.0.display(),
        entry.name,
        sets.concat()
    );
    train_run(&res, rd.clone(), false, device, Ui { progress: ui.progress, echo: false })?;
    Ok(rd)
}

/// Finds or trains the runs `exp` needs and hands it their weights.
pub fn attach_needs(exp: &mut dyn Experiment, device: &Device, ui: Ui) -> anyhow::Result<()> {
    for need in exp.needs() {
        let rd = needed_run(&need, device, ui)?;
        let (res, rd) = resolve_run_dir(&rd.0)?;
        let trained = load_trained(&res, &rd, device)?;
        exp.attach(need.key, trained.params())?;
    }
    Ok(())
}

/// The device of a `--device` flag (`crate::device::parse`: cpu, auto, cuda, cuda:N), with an
/// error that says what to do when CUDA is not in this build or not on this machine.
pub fn device(spec: &str) -> anyhow::Result<Device> {
    Ok(crate::device::parse(spec)?)
}

/// How a training run should talk to the user.
#[derive(Clone, Copy)]
pub struct Ui {
    pub progress: bool,
    pub echo: bool,
}

/// Builds and trains `res` into `dir`; prints the data notice once.
pub fn train_run(res: &Resolved, dir: RunDir, resume: bool, device: &Device, ui: Ui) -> anyhow::Result<Summary> {
    let exp = build_for_training(res, device)?;
    train_built(res, exp, dir, resume, device, ui)
}

/// The experiment of `res`, built (which checks the config's values, e.g. the dataset's name,
/// before anything is announced or written), with its data notice printed.
pub fn build_for_training(res: &Resolved, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let exp = res.build(device)?;
    if let Some(n) = exp.data_notice() {
        eprintln!("{n}");
    }
    Ok(exp)
}

/// Trains `exp` (from `build_for_training`) into `dir`, with the runs it needs.
pub fn train_built(
    res: &Resolved,
    mut exp: Box<dyn Experiment>,
    dir: RunDir,
    resume: bool,
    device: &Device,
    ui: Ui,
) -> anyhow::Result<Summary> {
    attach_needs(exp.as_mut(), device, ui)?;
    let spec = RunSpec {
        name: res.entry.name,
        config_text: &res.text,
        config_hash: &res.hash,
        train: &res.train,
        dir,
        resume,
        progress: ui.progress,
        echo: ui.echo,
    };
    runner::train(&spec, exp.as_mut(), device)
}

/// Rebuilds a finished run's experiment with its trained weights (model.safetensors, or the
/// latest checkpoint if the run did not finish, with a notice).
pub fn load_trained(res: &Resolved, rd: &RunDir, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let exp = super::pick::build_as_trained(res, rd, device)?;
    let path = if rd.model().is_file() {
        rd.model()
    } else if rd.ckpt().is_file() {
        eprintln!("note: {} did not finish; using its last checkpoint", rd.0.display());
        rd.ckpt()
    } else {
        return Err(DlError::MissingCheckpoint {
            path: rd.model(),
            hint: format!(
                "the run has no weights yet. Finish it with: dlhist train {} --resume --run-dir {}",
                res.entry.name,
                crate::error::shell_path(&rd.0)
            ),
        }
        .into());
    };
    // a run that keeps only its adapters takes its frozen base from the file it refers to
    let mut ck = crate::engine::checkpoint::load_full(&path, device)?;
    let found = ck.get("dlhist.milestone").unwrap_or("?");
    if found != res.entry.name {
        return Err(DlError::WrongMilestone {
            path,
            found: found.into(),
            expected: res.entry.name.into(),
            path_dir: rd.0.display().to_string(),
        }
        .into());
    }
    // an unfinished run's checkpoint holds the raw weights beside their EMA: use the averages,
    // as model.safetensors would
    let averaged: Vec<(String, candle_core::Tensor)> =
        ck.tensors.iter().filter_map(|(k, t)| k.strip_prefix("ema/").map(|n| (n.to_string(), t.clone()))).collect();
    ck.tensors.extend(averaged);
    exp.params().load(&ck.tensors).map_err(|m| DlError::IncompatibleCheckpoint { path, message: m })?;
    let mut exp = exp;
    attach_needs(exp.as_mut(), device, Ui { progress: true, echo: false })?;
    Ok(exp)
}

/// While a pager shows a page: a Ctrl-C is the pager's (less stops a search with it), so the
/// handler leaves this process alone rather than exit under it and leave it on the terminal.
pub static PAGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints `text` on stdout; on a terminal through a pager: $DLHIST_PAGER, else $PAGER, else
/// `less -FRX` (-F prints a page that fits the screen and quits, -X leaves it on the screen).
/// An empty pager, or one that cannot start, prints it straight.
pub fn page(text: &str) {
    use std::io::{IsTerminal, Write};
    use std::sync::atomic::Ordering;
    let pager =
        std::env::var("DLHIST_PAGER").or_else(|_| std::env::var("PAGER")).unwrap_or_else(|_| "less -FRX".into());
    let words: Vec<&str> = pager.split_whitespace().collect();
    let straight = !std::io::stdout().is_terminal() || words.is_empty();
    let child = (!straight).then(|| {
        std::process::Command::new(words[0]).args(&words[1..]).stdin(std::process::Stdio::piped()).spawn().ok()
    });
    match child.flatten() {
        Some(mut c) => {
            PAGING.store(true, Ordering::SeqCst);
            // (the page fits the pipe's buffer, so this returns before the reader could quit)
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.write_all(text.as_bytes());
            }
            let _ = c.wait();
            PAGING.store(false, Ordering::SeqCst);
        }
        None => print!("{text}"),
    }
}

/// Prints `value` as JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("serialisable"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A need is met by a finished run with the same resolved config in a folder a replay
    /// added (`also_search`), before anything is trained: `dalle` in a replay reuses the
    /// `vq-vae` and `clip` runs of their own claims.
    #[test]
    fn a_needed_run_is_found_among_a_replays_own_runs() {
        let root = std::env::temp_dir().join(format!("dlhist-also-{}", std::process::id()));
        let need =
            Need { key: "judge", milestone: "lenet".into(), sets: vec!["train.steps=7".into()], why: "a test".into() };
        let res = resolve(
            registry::get("lenet").unwrap(),
            false,
            &ConfigArgs { sets: need.sets.clone(), ..Default::default() },
        )
        .unwrap();
        let run = RunDir(root.join("lenet_train_steps_7"));
        std::fs::create_dir_all(&run.0).unwrap();
        std::fs::write(run.config(), runner::config_file_text(&res.text, "mnist", None)).unwrap();
        std::fs::write(run.summary(), "{}").unwrap();
        std::fs::write(run.model(), "").unwrap();
        crate::engine::runs::also_search(&root);
        let found = needed_run(&need, &Device::Cpu, Ui { progress: false, echo: false }).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found.0, run.0, "the replay's finished run, not a new one");
    }
}
