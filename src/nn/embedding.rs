//! A lookup table of learned vectors: token ids (…) u32 -> (…, dim). The gather and its
//! scatter-add backward are one fused op each way (`crate::ops::embedding`, tested there
//! against candle-nn's `Embedding`, an `index_select` whose backward is `index_add`).

use candle_core::{Module, Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

#[derive(Clone, Debug)]
pub struct Embedding {
    /// (vocab, dim)
    pub weight: Tensor,
}

/// `weight`: (vocab, dim) drawn from N(0, std²); PyTorch's nn.Embedding uses std 1, GPT-2 0.02.
pub fn embedding(vocab: usize, dim: usize, std: f64, vb: VarBuilder) -> Result<Embedding> {
    let weight = vb.get_with_hints((vocab, dim), "weight", Init::Randn { mean: 0.0, stdev: std })?;
    Ok(Embedding { weight })
}

impl Embedding {
    /// Token vectors plus learned positions, GPT's input: ids (B, T) -> (B, T, dim) with
    /// e[b, t] = self[ids[b, t]] + positions[t], in one fused op each way
    /// (`crate::ops::embedding::embedding_pos`). `positions` must hold at least T rows.
    pub fn forward_with_positions(&self, ids: &Tensor, positions: &Embedding) -> Result<Tensor> {
        let t = ids.dims().last().copied().unwrap_or(1);
        let pos = positions.weight.narrow(0, 0, t)?; // (T, dim)
        crate::ops::embedding::embedding_pos(ids, &self.weight, &pos)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        crate::ops::embedding::embedding(ids, &self.weight)
    }
}
