//! `dlhist list`: the timeline.

use super::common::print_json;
use crate::registry::entries;
use crate::report::table::Table;

/// List every milestone: year, name, study and what its claim checks
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  dlhist list\n  dlhist list --json | jq '.[].name'")]
pub struct Args {}

pub fn run(_a: Args, json: bool) -> anyhow::Result<()> {
    // the timeline: by year, catalogue order within a year
    let mut sorted: Vec<_> = entries().iter().collect();
    sorted.sort_by_key(|e| e.year);
    if json {
        let v: Vec<serde_json::Value> = sorted
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name, "year": e.year, "paper": e.paper, "study": e.study,
                    "claim": e.summary, "has_claim": e.claim.is_some(),
                })
            })
            .collect();
        print_json(&v);
        return Ok(());
    }
    let mut t = Table::new(&["year", "name", "study", "claim"]);
    for e in &sorted {
        t.row(vec![e.year.to_string(), e.name.into(), e.study.into(), e.summary.into()]);
    }
    print!("{}", t.render());
    println!("\n`dlhist info NAME` explains one; `dlhist train NAME` runs it; `dlhist replay NAME` checks its claim.");
    Ok(())
}
