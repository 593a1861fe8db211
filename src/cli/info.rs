//! `dlhist info NAME`: the idea, the paper, the default config and the claim.

use super::common::{print_json, resolve, ConfigArgs};
use crate::registry;

/// Explain a milestone: the idea, the paper, its default config and how its claim is measured
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  dlhist info mlp\n  dlhist info relu --json")]
pub struct Args {
    /// milestone name (see `dlhist list`)
    pub name: String,
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let e = registry::get(&a.name)?;
    let full = resolve(e, false, &ConfigArgs::default())?;
    let variants: Vec<&str> = registry::entries().iter().filter(|x| x.study == e.study).map(|x| x.name).collect();
    let budget = budget(&full.train);
    let plan = crate::claims::plan::plan(e.name);
    let seeds_text = seeds(&plan);
    if json {
        print_json(&serde_json::json!({
            "name": e.name, "year": e.year, "paper": e.paper, "study": e.study,
            "variants": variants, "constraints": registry::constraints::json(e.name), "idea": e.info, "claim": e.claim.as_ref().map(|c| c.text),
            "metric": e.claim.as_ref().map(|c| c.metric), "budget": budget, "config": full.table,
            "device": crate::device::availability(),
            "seeds": e.claim.as_ref().map(|_| plan.seeds), "seed_calibration": e.claim.as_ref().map(|_| &seeds_text),
        }));
        return Ok(());
    }
    println!("{} ({})\n{}\n", e.name, e.year, e.paper);
    println!("{}\n", textwrap(e.info, 96));
    // the history's frame: which of the seven constraints this milestone lifted, and how
    for (c, how) in registry::constraints::of(e.name) {
        println!("Lifted {} ({}): {}.", c.name(), c.kind().name(), how);
    }
    println!();
    if let Some(c) = &e.claim {
        println!("Claim: {}.\nMetric: {}. `dlhist replay {}` checks it (full budget; --budget smoke only checks the pipeline).", c.text, c.metric, e.name);
        println!("{}\n", textwrap(&seeds_text, 96));
    }
    if variants.len() > 1 {
        println!(
            "Study `{}`: {}. `dlhist compare {}` runs them side by side.\n",
            e.study,
            variants.join(", "),
            variants.join(" ")
        );
    } else {
        // `compare` needs two variants: a study of one has nothing to set beside it
        println!(
            "Study `{}`: {} alone; `dlhist compare {} {}:KEY=VALUE` sets it beside a variant with overrides.\n",
            e.study, e.name, e.name, e.name
        );
    }
    println!(
        "Default config (experiments/{}.toml over the milestone defaults; change any key with --set KEY=VALUE):\n",
        e.name
    );
    println!("{}", full.text.lines().skip(1).collect::<Vec<_>>().join("\n"));
    println!("\nBudget: {budget}.");
    println!("Device: {}", crate::device::availability());
    Ok(())
}

/// How many seeds the claim's replay runs by default, and the calibration that chose it.
fn seeds(p: &crate::claims::plan::Plan) -> String {
    let runs = match p.seeds {
        1 if p.over_cap => "one, because three take longer than the claim's time cap (5 minutes on 2 cores, a diffusion claim 10), although the margin below is under 3 seed sd, so one seed may not decide it (`--seeds 3` compares the means)".to_string(),
        1 => "one".to_string(),
        n => format!("{n} (the verdict compares the means)"),
    };
    let why = if p.calibration.is_empty() {
        "not calibrated across seeds yet (`dlhist replay --seeds 3 NAME` measures the spread)".to_string()
    } else {
        format!("calibration (`dlhist replay --seeds 3`, 2026-12-05 unless it names another day): {}", p.calibration)
    };
    format!("Seeds in `replay`: {runs} by default; {why}. `--seeds N` overrides.")
}

/// Which of train.steps and train.epochs sets the budget, in words.
fn budget(t: &crate::config::TrainConfig) -> String {
    if t.steps > 0 {
        format!(
            "train.steps = {} updates of {} examples; train.epochs (= {}) applies only when steps = 0 (--epochs N sets it and clears steps)",
            t.steps, t.batch_size, t.epochs
        )
    } else {
        format!(
            "train.epochs = {} pass(es) over the training set in batches of {} (train.steps = 0; --steps N overrides)",
            t.epochs, t.batch_size
        )
    }
}

fn textwrap(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for w in s.split_whitespace() {
        if line > 0 && line + 1 + w.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(w);
        line += w.chars().count();
    }
    out
}
