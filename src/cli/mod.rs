//! The command line: one file per subcommand, each with its `Args` and `run`.

pub mod bench;
pub mod common;
pub mod compare;
pub mod data;
pub mod eval;
pub mod history;
pub mod info;
pub mod list;
pub mod pick;
pub mod plot;
pub mod replay;
pub mod runs;
pub mod sample;
pub mod trace;
pub mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "dlhist",
    // the package version and the git commit it was built from (build.rs)
    version = env!("DLHIST_VERSION"),
    about = "Run the history of deep learning: each milestone paper as a small experiment that checks its claim",
    long_about = "Run the history of deep learning. Every milestone, from SGD (1951) to DALL·E 2 (2022), is an experiment that trains on a CPU in minutes, on real data, and checks its paper's headline claim with a measured number.\n\nThe defaults need no download (built-in 8x8 digits and Moby-Dick); `make data` fetches MNIST and the other full datasets.",
    after_help = "Examples:\n  dlhist list\n  dlhist train mlp\n  dlhist sample mlp --n 4\n  dlhist compare relu gelu\n  dlhist replay backprop mlp --budget smoke\n  dlhist bench gpt\n  dlhist history --out history.png\n\nExit codes: 0 success; 1 failure (a claim failed, no such run: a run directory, id or path that is not there, a corrupt checkpoint); 2 bad usage (an unknown milestone name, key or value); 130 interrupted by Ctrl-C (143 by SIGTERM, 129 by SIGHUP)."
)]
pub struct Cli {
    /// machine-readable JSON on stdout (human text goes to stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// worker threads for the math (default: $RAYON_NUM_THREADS if set, else the physical cores)
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// write a Chrome/Perfetto trace of the run's phases (data, forward, backward, update, eval,
    /// checkpoint, sample) to FILE; open it at ui.perfetto.dev or chrome://tracing
    #[arg(long, global = true, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    List(list::Args),
    Info(info::Args),
    Train(train::Args),
    Eval(eval::Args),
    Sample(sample::Args),
    Compare(compare::Args),
    Replay(replay::Args),
    Runs(runs::Args),
    Plot(plot::Args),
    Data(data::Args),
    Bench(bench::Args),
    History(history::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let (json, trace) = (cli.json, cli.trace);
    match cli.command {
        Command::List(a) => list::run(a, json),
        Command::Info(a) => info::run(a, json),
        Command::Train(a) => train::run(a, json),
        Command::Eval(a) => eval::run(a, json),
        Command::Sample(a) => sample::run(a, json),
        Command::Compare(a) => compare::run(a, json),
        Command::Replay(a) => replay::run(a, json, trace.as_deref()),
        Command::Runs(a) => runs::run(a, json),
        Command::Plot(a) => plot::run(a, json),
        Command::Data(a) => data::run(a, json),
        Command::Bench(a) => bench::run(a, json),
        Command::History(a) => history::run(a, json),
    }
}
