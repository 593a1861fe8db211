//! `dlhist eval NAME|RUN_DIR`: metrics of a trained run.

use super::common::{self, print_json};
use crate::experiment::Split;
use crate::report::fmt_metric;

/// Evaluate a trained run on its validation and test splits
#[derive(clap::Args, Debug)]
// TARGET is required unless --run names the run (clap would print it as optional, `[TARGET]`),
// so the usage shows both ways to call it
#[command(
    override_usage = "dlhist eval [OPTIONS] <TARGET>\n       dlhist eval [OPTIONS] [NAME] --run <ID|DIR>",
    after_help = "A name picks that milestone's newest finished run of the preset's config (else the newest finished run of another budget or config, else a smoke run), from `train`, `compare` or `replay --keep`, and says which. `dlhist runs NAME` lists them.\n\nExamples:\n  dlhist eval mlp                          # newest finished mlp run\n  dlhist eval mlp --run 20261129-101500-42\n  dlhist eval checkpoints/mlp/20261129-101500-42 --json"
)]
pub struct Args {
    /// a milestone name (its newest finished run) or a run directory
    #[arg(required_unless_present = "run")]
    pub target: Option<String>,
    /// the run: an id from `dlhist runs` (or its last part) or a run directory
    #[arg(long, visible_alias = "run-dir", value_name = "ID|DIR")]
    pub run: Option<String>,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let device = common::device(&a.device)?;
    let (res, rd) = super::pick::pick(a.target.as_deref(), a.run.as_deref())?;
    let mut exp = common::load_trained(&res, &rd, &device)?;
    let data_note = super::sample::data_note(exp.as_ref(), &rd);
    let mut m = serde_json::Map::new();
    for (split, prefix) in [(Split::Val, "val"), (Split::Test, "test")] {
        let _span = tracing::debug_span!("eval", split = ?split).entered();
        for (k, v) in crate::ops::no_grad(|| exp.evaluate(split))? {
            m.insert(format!("{prefix}_{k}"), v.into());
        }
    }
    if json {
        print_json(&serde_json::json!({
            "name": res.entry.name, "run_dir": rd.0, "data": exp.data_name(), "data_notice": data_note, "metrics": m,
        }));
    } else {
        if let Some(n) = &data_note {
            eprintln!("{n}");
        }
        println!("{} ({}) on {}:", res.entry.name, rd.0.display(), exp.data_name());
        for (k, v) in &m {
            // val_fit_* is logged beside the validation metrics but measured on training images
            let label =
                k.strip_prefix("val_").filter(|r| super::plot::on_training_data(r)).map(|r| format!("{r} (train)"));
            println!("  {:<16} {}", label.as_deref().unwrap_or(k), fmt_metric(k, v.as_f64()));
        }
    }
    Ok(())
}
