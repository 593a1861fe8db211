//! The text encoder of `bert` and `roberta` (both stages): token and learned position
//! embeddings, a stack of pre-LN blocks with bidirectional attention and a final LayerNorm
//! (`nn::encoder`). The heads are the stages': the masked-LM head (and BERT's next-sentence head)
//! in pretraining, the classifier in fine-tuning; they read the encoder's output at the masked
//! positions and at `[CLS]` (position 0).
//!
//! Left out of BERT: segment (token-type) embeddings (the `[SEP]` tokens mark BERT's two
//! segments), dropout, the pooler and the MLM head's extra dense layer; and post-LN: the blocks
//! are pre-LN, as GPT-2's and most encoders' since, which train without BERT's long warm-up.

use crate::nn::embedding::{embedding, Embedding};
use crate::nn::encoder::{encoder, Encoder, EncoderCfg};
use crate::params::Params;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// transformer blocks L
    pub n_layer: usize,
    /// attention heads H (must divide n_embd)
    pub n_head: usize,
    /// model width C
    pub n_embd: usize,
    /// the MLP's hidden width as a multiple of C
    pub mlp_ratio: usize,
    /// learned positions: the longest sequence, [CLS] and [SEP]s included
    pub positions: usize,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { n_layer: 4, n_head: 4, n_embd: 128, mlp_ratio: 4, positions: 64 }
    }
}

pub struct TextEncoder {
    /// token embedding (V, C), N(0, 0.02²) as BERT's
    pub wte: Embedding,
    /// position embedding (positions, C), N(0, 0.02²)
    pub wpe: Embedding,
    pub enc: Encoder,
    pub positions: usize,
}

/// Parameters: `wte.weight`, `wpe.weight`, `h.{i}.*`, `ln_f.*`.
pub fn text_encoder(cfg: &ModelCfg, vocab: usize, params: &Params, device: &Device) -> Result<TextEncoder> {
    let vb = params.vb(device);
    let ecfg = EncoderCfg { n_layer: cfg.n_layer, n_embd: cfg.n_embd, n_head: cfg.n_head, mlp_ratio: cfg.mlp_ratio };
    Ok(TextEncoder {
        wte: embedding(vocab, cfg.n_embd, 0.02, vb.pp("wte"))?,
        wpe: embedding(cfg.positions, cfg.n_embd, 0.02, vb.pp("wpe"))?,
        enc: encoder(&ecfg, params, device)?,
        positions: cfg.positions,
    })
}

impl TextEncoder {
    /// ids (B, T) u32, T ≤ positions -> hidden states (B, T, C) after the final LayerNorm.
    pub fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let t = ids.dim(1)?;
        if t > self.positions {
            candle_core::bail!(
                "encoder: a sequence of {t} tokens is longer than the {} learned positions",
                self.positions
            );
        }
        self.enc.forward(&self.wte.forward_with_positions(ids, &self.wpe)?)
    }
}

/// The `[CLS]` rows (position 0) of hidden states (B, T, C): (B, C).
pub fn cls_rows(h: &Tensor) -> Result<Tensor> {
    h.narrow(1, 0, 1)?.squeeze(1)
}

/// Rows `flat` (M,) u32, each b·T + t, of hidden states (B, T, C): (M, C). A row gather with a
/// scatter-add backward (the embedding op, with the flattened states as its table), so the MLM
/// head runs on the ~15% masked positions only.
pub fn gather_rows(h: &Tensor, flat: &Tensor) -> Result<Tensor> {
    let (b, t, c) = h.dims3()?;
    crate::ops::embedding::embedding(flat, &h.reshape((b * t, c))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::linear::{linear, InitKind};
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use candle_core::Module;

    #[test]
    fn the_heads_read_cls_and_the_gathered_rows_and_every_parameter_trains() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = ModelCfg { n_layer: 2, n_head: 2, n_embd: 8, mlp_ratio: 2, positions: 6 };
        let p = Params::new(1);
        let m = text_encoder(&cfg, 11, &p, &dev)?;
        let head = linear(8, 11, InitKind::Default, p.vb(&dev).pp("mlm"))?;
        let ids = Tensor::new(&[[1u32, 5, 3, 7, 2], [1, 9, 9, 3, 2]], &dev)?;
        let h = m.hidden(&ids)?;
        assert_eq!(h.dims(), &[2, 5, 8]);
        let rows = gather_rows(&h, &Tensor::new(&[2u32, 8], &dev)?)?; // (0, 2) and (1, 3)
        assert_eq!(rows.to_vec2::<f32>()?, vec![h.get(0)?.get(2)?.to_vec1::<f32>()?, h.get(1)?.get(3)?.to_vec1()?]);
        assert_eq!(cls_rows(&h)?.to_vec2::<f32>()?[1], h.get(1)?.get(0)?.to_vec1::<f32>()?);
        let logits = head.forward(&rows)?;
        let loss = crate::nn::loss::cross_entropy(&logits, &Tensor::new(&[3u32, 4], &dev)?)?;
        // every parameter (wpe through the rows at positions 2 and 3, the rest through attention)
        let loss = (loss + cls_rows(&h)?.sqr()?.sum_all()?)?;
        assert_every_param_gets_a_gradient(&p, &loss)?;
        assert!(m.hidden(&Tensor::zeros((1, 7), candle_core::DType::U32, &dev)?).is_err());
        Ok(())
    }
}
