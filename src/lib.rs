//! dlhist: run the history of deep learning. See DESIGN.md for the rooms and the data flow:
//! cli -> engine/report -> milestones -> nn -> ops -> candle.

pub mod alloc;
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
