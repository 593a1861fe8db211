//! A lookup table of learned vectors: token ids (…) -> (…, dim). candle-nn's `Embedding` is a
//! gather (`index_select`) whose backward scatters the gradient back (`index_add`), so it trains;
//! here it is only given our initialisation.

use candle_core::Result;
use candle_nn::init::Init;
use candle_nn::{Embedding, VarBuilder};

/// `weight`: (vocab, dim) drawn from N(0, std²); PyTorch's nn.Embedding uses std 1, GPT-2 0.02.
pub fn embedding(vocab: usize, dim: usize, std: f64, vb: VarBuilder) -> Result<Embedding> {
    let w = vb.get_with_hints((vocab, dim), "weight", Init::Randn { mean: 0.0, stdev: std })?;
    Ok(Embedding::new(w, dim))
}
