//! `dlhist data status|verify|fetch`: where each dataset comes from and whether it is here.

use super::common::print_json;
use crate::data::catalog::{fetched_dir, files_of, present, sha256_file, DATASETS};
use crate::error::DlError;
use crate::report::table::Table;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Action {
    /// what each dataset is, where it comes from, and whether it is present (default)
    Status,
    /// recompute the sha256 of every fetched file and compare with data/checksums.sha256
    Verify,
    /// fetch datasets with scripts/fetch-data.sh (the same as `make data`)
    Fetch {
        /// sets to fetch (default: all)
        sets: Vec<String>,
    },
}

/// Show, verify or fetch the datasets
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Fetched data lives in data/fetched/ (or $DLHIST_DATA).\n\nExamples:\n  dlhist data\n  dlhist data verify --json\n  dlhist data fetch mnist"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    match a.action.unwrap_or(Action::Status) {
        Action::Status => status(json),
        Action::Verify => verify(json),
        Action::Fetch { sets } => fetch(&sets),
    }
}

fn status(json: bool) -> anyhow::Result<()> {
    let dir = fetched_dir();
    let rows: Vec<serde_json::Value> = DATASETS
        .iter()
        .map(|d| {
            let here = d.builtin || present(d.name);
            serde_json::json!({
                "name": d.name, "what": d.what, "source": d.source, "license": d.license,
                "builtin": d.builtin, "present": here,
                "path": if d.builtin { "(built into the binary)".to_string() } else { dir.join(d.name).display().to_string() },
                "files": if d.builtin { 1 } else { files_of(d.name).len() },
            })
        })
        .collect();
    if json {
        print_json(&rows);
        return Ok(());
    }
    let mut t = Table::new(&["name", "status", "what", "source", "license"]);
    for r in &rows {
        let st = if r["builtin"] == true {
            "built-in"
        } else if r["present"] == true {
            "fetched"
        } else {
            "absent"
        };
        t.row(vec![
            r["name"].as_str().unwrap().into(),
            st.into(),
            r["what"].as_str().unwrap().into(),
            r["source"].as_str().unwrap().into(),
            r["license"].as_str().unwrap().into(),
        ]);
    }
    print!("{}", t.render());
    println!("fetched data folder: {}", dir.display());
    if rows.iter().any(|r| r["present"] != true) {
        println!("absent sets: run `make data` (or `dlhist data fetch`) to fetch them (about 90 MB).");
    }
    Ok(())
}

fn verify(json: bool) -> anyhow::Result<()> {
    let dir = fetched_dir();
    let mut rows = vec![];
    let mut bad = 0;
    for d in DATASETS.iter().filter(|d| !d.builtin) {
        let files = files_of(d.name);
        let mut state = "ok";
        let mut problems = vec![];
        if !files.iter().any(|(p, _)| dir.join(p).is_file()) {
            state = "absent";
        } else {
            for (p, want) in &files {
                match sha256_file(&dir.join(p)) {
                    Ok(got) if &got == want => {}
                    Ok(got) => problems.push(format!("{p}: sha256 {got}, expected {want}")),
                    Err(e) => problems.push(format!("{p}: {e}")),
                }
            }
            if !problems.is_empty() {
                state = "MISMATCH";
                bad += 1;
            }
        }
        eprintln!("{:<12} {state}{}", d.name, problems.iter().map(|p| format!("\n  {p}")).collect::<String>());
        rows.push(serde_json::json!({"name": d.name, "state": state, "problems": problems}));
    }
    if json {
        print_json(&rows);
    }
    if bad > 0 {
        return Err(DlError::Data(format!("{bad} dataset(s) do not match their checksums; fetch them again with `make data` (delete the bad folder under {} first)", dir.display())).into());
    }
    Ok(())
}

fn fetch(sets: &[String]) -> anyhow::Result<()> {
    let candidates = [
        PathBuf::from("scripts/fetch-data.sh"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-data.sh"),
    ];
    let script = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
        DlError::Data("scripts/fetch-data.sh not found; run `dlhist data fetch` from the dlhist source tree (or `make data` there)".into())
    })?;
    let status = std::process::Command::new("bash").arg(script).arg(fetched_dir()).args(sets).status()?;
    if !status.success() {
        return Err(
            DlError::Data(format!("fetching failed ({status}); the messages above say which set and why")).into()
        );
    }
    Ok(())
}
