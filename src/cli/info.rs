//! `dlhist info NAME`: the idea, the paper, the default config and the claim.

use super::common::{print_json, resolve, ConfigArgs};
use crate::registry;
use std::fmt::Write;

/// Explain a milestone: the idea, the paper, its default config and how its claim is measured
#[derive(clap::Args, Debug)]
#[command(
    after_help = "On a terminal a long page goes through $DLHIST_PAGER, else $PAGER, else `less -FRX` (which prints a page that fits and quits); PAGER=cat prints it straight.\n\nExamples:\n  dlhist info mlp\n  dlhist info relu --json\n  dlhist info diffusion | grep -A3 CALIBRATION"
)]
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
    // the page is long (the protocol, the calibration runs, the config): a terminal gets it
    // through a pager, as git and man do
    let mut page = String::new();
    writeln!(page, "{} ({})\n{}\n", e.name, e.year, e.paper)?;
    writeln!(page, "{}\n", textwrap(e.info, 96))?;
    // the history's frame: which of the seven constraints this milestone lifted, and how
    for (c, how) in registry::constraints::of(e.name) {
        writeln!(page, "Lifted {} ({}): {}.", c.name(), c.kind().name(), how)?;
    }
    writeln!(page)?;
    if let Some(c) = &e.claim {
        writeln!(page, "Claim: {}.\nMetric: {}. `dlhist replay {}` checks it (full budget; --budget smoke only checks the pipeline).", c.text, c.metric, e.name)?;
        writeln!(page, "{}\n", textwrap(&seeds_text, 96))?;
    }
    if variants.len() > 1 {
        writeln!(
            page,
            "Study `{}`: {}. `dlhist compare {}` runs them side by side.\n",
            e.study,
            variants.join(", "),
            variants.join(" ")
        )?;
    } else {
        // `compare` needs two variants: a study of one has nothing to set beside it
        writeln!(
            page,
            "Study `{}`: {} alone; `dlhist compare {} {}:KEY=VALUE` sets it beside a variant with overrides.\n",
            e.study, e.name, e.name, e.name
        )?;
    }
    writeln!(
        page,
        "Default config (experiments/{}.toml over the milestone defaults; change any key with --set KEY=VALUE):\n",
        e.name
    )?;
    writeln!(page, "{}", full.text.lines().skip(1).collect::<Vec<_>>().join("\n"))?;
    writeln!(page, "\nBudget: {budget}.")?;
    writeln!(page, "Device: {}", crate::device::availability())?;
    super::common::page(&page);
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

/// `s` wrapped at `width` columns; its paragraphs (blank-line separated: a protocol, the
/// calibration runs, an older result) stay apart.
fn textwrap(s: &str, width: usize) -> String {
    s.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).map(|p| wrap(p, width)).collect::<Vec<_>>().join("\n\n")
}

fn wrap(s: &str, width: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The info texts' sections (a protocol, the calibration runs, an older result) are
    /// paragraphs: wrapping once ran them all into one block of 170 lines.
    #[test]
    fn wrapping_keeps_the_paragraphs_apart() {
        assert_eq!(textwrap("one two\n\n  three four five\n\n", 9), "one two\n\nthree\nfour five");
        let diffusion = crate::registry::get("diffusion").unwrap();
        let page = textwrap(diffusion.info, 96);
        for section in ["CLAIM PROTOCOL", "CALIBRATION RUNS", "SEEDS"] {
            assert!(page.contains(&format!("\n\n{section}")), "{section} should start a paragraph:\n{page}");
        }
        assert!(page.lines().all(|l| l.chars().count() <= 96 || !l.contains(' ')), "{page}");
    }
}
