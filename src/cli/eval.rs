//! `dlhist eval NAME|RUN_DIR`: metrics of a trained run.

use super::common::{self, print_json};
use crate::experiment::Split;
use crate::report::fmt_metric;

/// Evaluate a trained run on its validation and test splits
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  dlhist eval mlp                          # newest finished mlp run\n  dlhist eval checkpoints/mlp/20261129-101500-42 --json"
)]
pub struct Args {
    /// a milestone name (its newest finished run) or a run directory
    pub target: String,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let device = common::device(&a.device)?;
    let (res, rd) = common::find_run(&a.target)?;
    let mut exp = common::load_trained(&res, &rd, &device)?;
    let mut m = serde_json::Map::new();
    for (split, prefix) in [(Split::Val, "val"), (Split::Test, "test")] {
        let _span = tracing::debug_span!("eval", split = ?split).entered();
        for (k, v) in exp.evaluate(split)? {
            m.insert(format!("{prefix}_{k}"), v.into());
        }
    }
    if json {
        print_json(
            &serde_json::json!({"name": res.entry.name, "run_dir": rd.0, "data": exp.data_name(), "metrics": m}),
        );
    } else {
        println!("{} ({}) on {}:", res.entry.name, rd.0.display(), exp.data_name());
        for (k, v) in &m {
            println!("  {k:<16} {}", fmt_metric(k, v.as_f64()));
        }
    }
    Ok(())
}
