//! The catalogue: every runnable name, its paper, its study, its claim, and its presets.
//! Presets are compiled in (experiments/NAME.toml and experiments/smoke/NAME.toml), so the
//! binary runs from any directory.

use crate::error::{closest, DlError};
use crate::milestones::Family;

mod autoencoders;
mod cnn;
pub mod constraints;
mod depth;
mod dnn;
mod encdec;
mod encoders;
mod experts;
mod generative;
mod imagetext;
mod rlhf;
mod segment;
mod sequence;
mod times;
mod toolbox;
mod transformers;
mod translate;
mod words;

pub use times::train_time;

/// An entry's claim: its words and what its value measures. The check that measures it lives
/// in src/claims/ (`claims::check`).
pub struct Claim {
    /// the paper's headline result, restated for a small run
    pub text: &'static str,
    /// what `value` measures
    pub metric: &'static str,
}

pub struct Entry {
    pub name: &'static str,
    pub year: u16,
    pub paper: &'static str,
    /// variants of one study can be compared side by side
    pub study: &'static str,
    pub family: &'static Family,
    /// one line: what the claim says
    pub summary: &'static str,
    /// the idea in a paragraph, and why the claim is measured the way it is
    pub info: &'static str,
    /// experiments/NAME.toml: what differs from the family defaults (the full budget)
    pub preset: &'static str,
    /// experiments/smoke/NAME.toml: on top of the preset, a seconds-long budget
    pub smoke: &'static str,
    pub claim: Option<Claim>,
}

/// experiments/NAME.toml, compiled in.
macro_rules! preset {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/", $name, ".toml"))
    };
}
/// experiments/smoke/NAME.toml, compiled in.
macro_rules! smoke {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/smoke/", $name, ".toml"))
    };
}
pub(crate) use {preset, smoke};

/// Every entry, in catalogue order (one file per catalogue section).
pub fn entries() -> &'static [Entry] {
    static ENTRIES: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(|| {
        let sections = [
            dnn::entries(),
            cnn::entries(),
            segment::entries(),
            toolbox::entries(),
            depth::entries(),
            sequence::entries(),
            experts::entries(),
            words::entries(),
            translate::entries(),
            encdec::entries(),
            transformers::entries(),
            encoders::entries(),
            autoencoders::entries(),
            generative::entries(),
            imagetext::entries(),
            rlhf::entries(),
        ];
        sections.into_iter().flatten().collect()
    })
}

pub fn names() -> Vec<&'static str> {
    entries().iter().map(|e| e.name).collect()
}

pub fn get(name: &str) -> Result<&'static Entry, DlError> {
    entries().iter().find(|e| e.name == name).ok_or_else(|| DlError::UnknownName {
        what: "milestone",
        name: name.to_string(),
        suggestion: closest(name, names()),
        hint: "Run `dlhist list` to see every milestone".into(),
    })
}
