//! Build script: records the git commit the binary is built from (`DLHIST_GIT_COMMIT`, read with
//! `option_env!`), written into every run's summary.json and checkpoint metadata. Outside a git
//! checkout (a crate tarball, `cargo install` from a registry) it sets nothing and the runs say
//! "unknown".

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else { return };
    println!("cargo:rustc-env=DLHIST_GIT_COMMIT={commit}");
    // rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref (a commit), and
    // packed-refs (where a ref lives after `git gc`); `--git-path` finds them in a worktree too
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(r) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/")) {
        watch.push(git(&["rev-parse", "--git-path", &r]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in watch.into_iter().flatten() {
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
