//! Errors a user can act on. Each message says what went wrong and what to do about it.
//! Usage errors (bad names, keys, values, files) exit with 2; failures exit with 1;
//! an interrupted run exits with 128 + the signal's number like any program a signal stopped:
//! 130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use thiserror::Error;

/// The signal that asked us to stop: SIGINT (2) unless main.rs's handlers saw SIGTERM or SIGHUP.
pub static STOP_SIGNAL: AtomicI32 = AtomicI32::new(2);

/// 128 + the number of the signal that stopped the command (130 for Ctrl-C).
pub fn interrupted_exit_code() -> i32 {
    128 + STOP_SIGNAL.load(Ordering::SeqCst)
}

#[derive(Debug, Error)]
pub enum DlError {
    #[error("unknown {what} `{name}`{}. {hint}", did_you_mean(.suggestion))]
    UnknownName { what: &'static str, name: String, suggestion: Option<String>, hint: String },

    #[error("unknown config key `{key}`{}. Valid keys here: {valid}. See `dlhist info {milestone}` for the defaults.", did_you_mean(.suggestion))]
    UnknownKey { key: String, suggestion: Option<String>, valid: String, milestone: String },

    #[error("config key `{key}` expects {expected}, got {got}. Example: --set {key}={example}")]
    WrongType { key: String, expected: String, got: String, example: String },

    #[error("invalid config value for {context}: {message}")]
    BadValue { context: String, message: String },

    #[error("cannot parse {what} {path}: {message}")]
    Malformed { what: &'static str, path: String, message: String },

    #[error("bad argument: {0}")]
    Usage(String),

    #[error("no checkpoint at {path}: {hint}")]
    MissingCheckpoint { path: PathBuf, hint: String },

    #[error(
        "checkpoint {path} is corrupt or truncated ({message}). Delete it and retrain, or resume from another run"
    )]
    CorruptCheckpoint { path: PathBuf, message: String },

    #[error("checkpoint {path} belongs to milestone `{found}`, not `{expected}` (the milestone of the run in {path_dir}). Pass a run directory trained as `{expected}`, or train one: dlhist train {expected}")]
    WrongMilestone { path: PathBuf, found: String, expected: String, path_dir: String },

    #[error("checkpoint {path} does not fit this model: {message}. Was the config changed after training?")]
    IncompatibleCheckpoint { path: PathBuf, message: String },

    #[error("checkpoint {path} takes its frozen tensors from the base {base}, but {message}")]
    BaseChanged { path: PathBuf, base: PathBuf, message: String },

    #[error("cannot write the run directory {path}: {message}. Choose a writable location with --run-dir")]
    Unwritable { path: PathBuf, message: String },

    /// A file or folder that `--out` names (a plot, a picture, a comparison's folder).
    #[error("cannot write {path}: {message}. Choose another --out")]
    OutputUnwritable { path: PathBuf, message: String },

    #[error("training diverged at step {step}: {what} is not finite. The last good checkpoint is {ckpt} (step {ckpt_step}). Continue from it with a lower learning rate or clipping: dlhist train {name} --resume --run-dir {} --set train.lr=... (or --set train.clip_grad_norm=1.0)", shell_word(.run_dir))]
    Diverged { step: usize, what: String, ckpt: PathBuf, ckpt_step: usize, name: String, run_dir: String },

    #[error("interrupted at step {step}; checkpoint written to {ckpt}. Continue with: dlhist train {name} --resume --run-dir {}", shell_word(.run_dir))]
    Interrupted { step: usize, ckpt: PathBuf, name: String, run_dir: String },

    /// Ctrl-C during a comparison's training: the stopped variant has a checkpoint, the finished
    /// ones their results; `command` continues it (the same comparison with `--out DIR --resume`).
    #[error("comparison interrupted {at} ({done} variant(s) finished before it). Continue it with: {command}")]
    CompareInterrupted { at: String, done: usize, command: String },

    /// Ctrl-C during a replay: its verdicts so far are on stderr, none is recorded for `history`.
    #[error("replay interrupted after {done} of {total} claim(s) (their lines are above); no verdict was recorded. Run it again to check them all")]
    ReplayInterrupted { done: usize, total: usize },

    #[error("{0}")]
    Data(String),

    /// The results were already printed (the table, or the JSON array); only the exit code is left.
    #[error("{failed} of {total} claim(s) failed; the numbers are above")]
    ClaimsFailed { failed: usize, total: usize },

    /// `replay --strict`: claims that could not be checked (their data is not fetched) fail the run.
    #[error("{skipped} of {total} claim(s) were not checked (--strict): their data is not fetched. Fetch it with `{fetch}`, then replay them")]
    ClaimsSkipped { skipped: usize, total: usize, fetch: String },
}

/// `w` as a POSIX shell reads it back, for the commands the messages give: as it is when it
/// holds only safe characters, else single-quoted (a path with a space, `model.hidden=[64]`).
pub fn shell_word(w: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c);
    if !w.is_empty() && w.chars().all(safe) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// `shell_word` of a path (as `display` writes it), for the `--run-dir` of the resume commands.
pub fn shell_path(p: &std::path::Path) -> String {
    shell_word(&p.display().to_string())
}

fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

impl DlError {
    /// Writing `path`, an `--out` the user chose, failed with `message`; a folder that does not
    /// exist is named as the cause (the plotting crate words it as a backend error).
    pub fn output(path: &std::path::Path, message: String) -> Self {
        let missing = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists());
        let message = match missing {
            Some(dir) => format!("the folder {} does not exist", dir.display()),
            None => message,
        };
        DlError::OutputUnwritable { path: path.to_path_buf(), message }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            DlError::UnknownName { .. }
            | DlError::UnknownKey { .. }
            | DlError::WrongType { .. }
            | DlError::BadValue { .. }
            | DlError::Malformed { .. }
            | DlError::Usage(_) => 2,
            DlError::Interrupted { .. } | DlError::ReplayInterrupted { .. } | DlError::CompareInterrupted { .. } => {
                interrupted_exit_code()
            }
            _ => 1,
        }
    }
}

/// True when the error's content was already printed as the command's output (so `--json`
/// must not print a second document).
pub fn already_reported(err: &anyhow::Error) -> bool {
    matches!(err.downcast_ref::<DlError>(), Some(DlError::ClaimsFailed { .. } | DlError::ClaimsSkipped { .. }))
}

/// Exit code for any error: ours know theirs, everything else is a failure (1).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain().find_map(|e| e.downcast_ref::<DlError>()).map(DlError::exit_code).unwrap_or(1)
}

/// Edit distance for "did you mean" suggestions: insertions, deletions, substitutions and swaps
/// of two neighbouring characters ("gtp" is one edit from "gpt"), each costing 1 (the optimal
/// string alignment distance).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between the first i characters of a and the first j of b
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]) as usize;
            let mut best = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate, if it is close enough to be a plausible typo: case is ignored, and a
/// name may be a third of its length (at least one edit) away, or contain or be contained in it.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 1.max(c.chars().count() / 3) || c.contains(name.as_str()) || name.contains(*c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("lstn", ["lstm", "mlp", "gelu"]), Some("lstm".into()));
        assert_eq!(closest("zzzzzzzz", ["mlp"]), None);
        // a swap of neighbours is one edit, case does not count, and a short name must be close
        assert_eq!(edit_distance("gtp", "gpt"), 1);
        assert_eq!(closest("gtp", ["mlp", "gpt", "gan"]), Some("gpt".into()));
        assert_eq!(closest("GPT", ["mlp", "gpt", "gan"]), Some("gpt".into()));
        assert_eq!(closest("foo", ["moe", "mlp"]), None);
    }

    /// The commands in messages are pasted into a shell: a word comes back as it was.
    #[test]
    fn a_quoted_word_reads_back_as_itself_in_sh() {
        let words = ["runs/mlp/20261207-1", "my runs/a b", "it's", "mlp:model.hidden=[64]", "", "$HOME", "a\"b"];
        assert_eq!(shell_word(words[0]), words[0], "safe words stay bare");
        let line = words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("set -- {line}; printf '%s\\0' \"$@\"")])
            .output()
            .expect("sh runs");
        let back: Vec<String> =
            String::from_utf8(out.stdout).unwrap().split_terminator('\0').map(String::from).collect();
        assert_eq!(back, words, "{line}");
    }
}
