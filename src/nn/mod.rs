//! Layers, written the candle-nn way (a constructor taking a `VarBuilder`), for what candle-nn
//! lacks or gets wrong for training (DESIGN §7). Each layer's math is one `*_ref` function
//! composed of candle ops with a backward, so a fused op (src/ops) can replace it in one place.

pub mod activation;
pub mod attention;
pub mod batchnorm;
pub mod bce;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod linear;
pub mod loss;
pub mod lstm;
pub mod mlp;
pub mod moe;
pub mod norm;
pub mod skipgram;
