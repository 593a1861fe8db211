//! `dlhist data status|verify|fetch`: where each dataset comes from and whether it is here.

use super::common::print_json;
use crate::data::catalog::{fetch_dir, fetched_dir, files_of, present, sha256_file, CHECKSUMS, DATASETS};
use crate::error::DlError;
use crate::report::table::Table;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Action {
    /// what each dataset is, where it comes from, and whether it is present (default)
    #[command(after_help = "Examples:\n  dlhist data status\n  dlhist data status --json")]
    Status,
    /// recompute the sha256 of every fetched file and compare with data/checksums.sha256
    #[command(
        after_help = "Examples:\n  dlhist data verify\n  dlhist data verify --json   # one row per dataset: name, state (ok, absent, MISMATCH), problems"
    )]
    Verify,
    /// fetch datasets with scripts/fetch-data.sh (compiled in; the same as `make data`)
    #[command(
        after_help = "The sets: mnist, fashion, shakespeare, sotu, verses, emoji, analogy (`dlhist data` says what each is and where it comes from; digits8 and moby are built in).\n\nExamples:\n  dlhist data fetch               # all of them, about 90 MB\n  dlhist data fetch mnist fashion"
    )]
    Fetch {
        /// sets to fetch (default: all): mnist, fashion, shakespeare, sotu, verses, emoji, analogy
        #[arg(value_name = "SET")]
        sets: Vec<String>,
    },
}

/// Show, verify or fetch the datasets
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Fetched data is read from $DLHIST_DATA if set; else from data/fetched/ of the dlhist source tree the command runs in; else from the user's data directory ($XDG_DATA_HOME/dlhist, by default ~/.local/share/dlhist). `dlhist data fetch` fills the first of these that applies: $DLHIST_DATA, the source tree's data/fetched/ when run inside one, else the user's data directory. It needs bash and the package clients npm, pip and apt-get/dpkg-deb (a Debian-like system); data/README.md says how to fetch by hand.\n\nExamples:\n  dlhist data\n  dlhist data verify --json\n  dlhist data fetch mnist"
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
    let absent = if dir.is_dir() { "" } else { " (absent)" };
    println!("fetched data folder: {}{absent}", dir.display());
    if rows.iter().any(|r| r["present"] != true) {
        let into = if fetch_dir() == dir { String::new() } else { format!(" into {}", fetch_dir().display()) };
        println!("absent sets: `dlhist data fetch` fetches them{into} (about 90 MB; `make data` in the source tree).");
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
        return Err(DlError::Data(format!("{bad} dataset(s) do not match their checksums; fetch them again with `dlhist data fetch` (delete the bad folder under {} first)", dir.display())).into());
    }
    Ok(())
}

/// scripts/fetch-data.sh, compiled in, so that `dlhist data fetch` works from any directory
/// (a `cargo install`ed binary has no source tree beside it).
const FETCH_SCRIPT: &str = include_str!("../../scripts/fetch-data.sh");

fn fetch(sets: &[String]) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let dest = cwd.join(fetch_dir());
    // inside a source tree, its own script; elsewhere the compiled-in copy, laid out as in the
    // tree (the script reads ../data/checksums.sha256 beside itself)
    let tmp;
    let script = match crate::data::catalog::project_root(&cwd) {
        Some(root) => root.join("scripts/fetch-data.sh"),
        None => {
            tmp = std::env::temp_dir().join(format!("dlhist-fetch-{}", std::process::id()));
            let write = |rel: &str, text: &str| -> std::io::Result<()> {
                let p = tmp.join(rel);
                std::fs::create_dir_all(p.parent().expect("has a parent"))?;
                std::fs::write(p, text)
            };
            write("scripts/fetch-data.sh", FETCH_SCRIPT)
                .and_then(|_| write("data/checksums.sha256", CHECKSUMS))
                .map_err(|e| DlError::Unwritable { path: tmp.clone(), message: e.to_string() })?;
            tmp.join("scripts/fetch-data.sh")
        }
    };
    eprintln!("fetching into {}", dest.display());
    let status = std::process::Command::new("bash").arg(&script).arg(&dest).args(sets).status();
    if script.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_dir_all(script.parent().and_then(|p| p.parent()).expect("tmp/scripts/.."));
    }
    let status = status.map_err(|e| DlError::Data(format!("cannot run bash: {e}; dlhist data fetch needs bash")))?;
    if !status.success() {
        return Err(DlError::Data(format!(
            "fetching failed ({status}); the messages above say which set and why. The data README (data/README.md in the source tree) says how to fetch each set by hand"
        ))
        .into());
    }
    Ok(())
}
