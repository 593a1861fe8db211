//! Layers, written the candle-nn way (a constructor taking a `VarBuilder`), for what candle-nn
//! lacks or gets wrong for training (DESIGN §7).

pub mod activation;
pub mod batchnorm;
pub mod dropout;
pub mod linear;
pub mod mlp;
