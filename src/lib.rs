//! dlhist: run the history of deep learning. The crate is built in rooms, stacked so that each
//! imports only rooms below it (dependencies point down):
//!
//! - `cli`: the subcommands (parse, resolve the config, run, print);
//! - `claims`: each catalogue entry's claim check, which trains what it needs through the replay
//!   and compares the runs' measured metrics with its threshold;
//! - `engine`: the training loop, optimizers, schedules, checkpoints and progress, running any
//!   `Experiment` and returning its summary;
//! - `registry` and `milestones`: the catalogue (names, papers, studies, claim texts, presets) and
//!   each milestone's model and recipe (config, data, metrics) as an `Experiment`;
//! - `nn`: layers written the candle-nn way (a function that builds each from the parameter
//!   store), from linear and conv up to the transformer block and the U-Net;
//! - `ops` and `data`: fused CPU ops with a backward; datasets, fixed splits and generated tasks
//!   (beside them `report`: tables, plots, BLEU, ASCII images, which imports no other room);
//! - the ground floor: `error`, `config` (layering and the `[train]` section), `params` (the
//!   parameter store), `rng` and `experiment` (the `Experiment` trait between milestones and the
//!   engine);
//! - candle.
//!
//! So ops/, nn/ and data/ never import engine/, milestones/ or claims/; milestones/ and registry/
//! never import engine/ (a claim that reads a run's summary lives in claims/).

pub mod alloc;
pub mod claims;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod engine;
pub mod error;
pub mod experiment;
pub mod milestones;
pub mod nn;
pub mod ops;
pub mod params;
pub mod picture;
pub mod registry;
pub mod report;
pub mod rng;
