//! `dlhist list`: the timeline, or with `--by constraint` the milestones grouped by the
//! constraint(s) they lifted (registry/constraints.rs).

use super::common::print_json;
use crate::registry::constraints::{self, Constraint};
use crate::registry::{entries, Entry};
use crate::report::table::Table;

/// List every milestone: year, name, study, the constraint(s) it lifted and what its claim checks
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The seven constraints: data, compute and energy are hard limits; parameters, optimization & regularization, architecture and compute efficiency are levers. `--by constraint` lists every milestone under each constraint it names, with one sentence on how.\n\nExamples:\n  dlhist list\n  dlhist list --by constraint\n  dlhist list --json | jq '.[].name'\n  dlhist list --by constraint --json | jq '.[] | {constraint, n: (.milestones | length)}'"
)]
pub struct Args {
    /// group the milestones: `constraint` lists them under each constraint they lifted
    #[arg(long, value_name = "WHAT", value_parser = ["constraint"])]
    pub by: Option<String>,
}

/// The short form of an entry's constraints for the table: `architecture, parameters`.
fn constraint_names(name: &str) -> String {
    constraints::of(name).iter().map(|(c, _)| c.name()).collect::<Vec<_>>().join(", ")
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    // the timeline: by year, catalogue order within a year
    let mut sorted: Vec<&Entry> = entries().iter().collect();
    sorted.sort_by_key(|e| e.year);
    if a.by.is_some() {
        return by_constraint(&sorted, json);
    }
    if json {
        let v: Vec<serde_json::Value> = sorted
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name, "year": e.year, "paper": e.paper, "study": e.study,
                    "claim": e.summary, "has_claim": e.claim.is_some(),
                    "constraints": constraints::json(e.name),
                })
            })
            .collect();
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new(&["year", "name", "study", "constraints", "claim"]);
    for e in &sorted {
        t.row(vec![e.year.to_string(), e.name.into(), e.study.into(), constraint_names(e.name), e.summary.into()]);
    }
    print!("{}", t.render());
    println!("\n`dlhist info NAME` explains one; `dlhist train NAME` runs it; `dlhist replay NAME` checks its claim.");
    println!("`dlhist list --by constraint` groups them by the constraint they lifted.");
    Ok(())
}

/// The milestones of `sorted` that name `c`, each with its sentence on how.
fn under<'a>(sorted: &[&'a Entry], c: Constraint) -> Vec<(&'a Entry, &'static str)> {
    sorted
        .iter()
        .filter_map(|e| constraints::of(e.name).iter().find(|(x, _)| *x == c).map(|(_, how)| (*e, *how)))
        .collect()
}

fn by_constraint(sorted: &[&Entry], json: bool) -> anyhow::Result<()> {
    if json {
        let v: Vec<serde_json::Value> = Constraint::ALL
            .iter()
            .map(|&c| {
                let ms: Vec<_> = under(sorted, c)
                    .iter()
                    .map(|(e, how)| serde_json::json!({"name": e.name, "year": e.year, "how": how}))
                    .collect();
                serde_json::json!({"constraint": c.name(), "kind": c.kind().name(), "milestones": ms})
            })
            .collect();
        print_json(&v);
        return Ok(());
    }
    for c in Constraint::ALL {
        let rows = under(sorted, c);
        println!("{} ({}): {} milestone(s)", c.name(), c.kind().name(), rows.len());
        if rows.is_empty() {
            println!("  (none of the milestones lifted it)");
        }
        for (e, how) in rows {
            println!("  {:<5} {:<17} {how}", e.year, e.name);
        }
        println!();
    }
    println!("Data, compute and energy are hard limits; the others are levers. `dlhist info NAME` says more.");
    Ok(())
}
