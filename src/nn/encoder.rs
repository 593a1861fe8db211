//! A transformer encoder: a stack of pre-LN blocks (`nn::transformer`) whose self-attention is
//! not causal (every position sees every other), then a final LayerNorm, as in ViT (Dosovitskiy
//! et al. 2021) and pre-LN BERT-style encoders. What goes in (token or patch embeddings plus
//! positions) and what reads the output (heads on the `[CLS]` position or on masked tokens) is
//! the model's.

use super::norm::{norm, Norm, NormKind};
use super::transformer::{block, Block, BlockCfg};
use crate::params::Params;
use candle_core::{Device, Result, Tensor};

/// The sizes of an encoder stack.
#[derive(Clone, Copy, Debug)]
pub struct EncoderCfg {
    pub n_layer: usize,
    /// model width C
    pub n_embd: usize,
    /// attention heads (must divide n_embd)
    pub n_head: usize,
    /// the MLP's hidden width as a multiple of C
    pub mlp_ratio: usize,
}

pub struct Encoder {
    pub blocks: Vec<Block>,
    pub ln_f: Norm,
}

/// Parameters `h.{i}.*` (each block's ln1, attn, ln2, mlp) and `ln_f.*`.
pub fn encoder(cfg: &EncoderCfg, params: &Params, device: &Device) -> Result<Encoder> {
    let bcfg = BlockCfg {
        n_embd: cfg.n_embd,
        n_head: cfg.n_head,
        causal: false,
        norm: NormKind::Layer,
        mlp_ratio: cfg.mlp_ratio,
    };
    let blocks =
        (0..cfg.n_layer).map(|i| block(&bcfg, params, &format!("h.{i}"), device)).collect::<Result<Vec<_>>>()?;
    Ok(Encoder { blocks, ln_f: norm(NormKind::Layer, cfg.n_embd, params, "ln_f", device)? })
}

impl Encoder {
    /// (B, T, C) -> (B, T, C), every position attending to all T.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward_t(&x, false)?;
        }
        self.ln_f.forward_t(&x, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::rng::Rng;

    /// Names, shapes, gradients, and that the first position's output depends on the last
    /// position's input (an encoder looks both ways).
    #[test]
    fn an_encoder_sees_every_position_and_trains_every_parameter() -> Result<()> {
        let cfg = EncoderCfg { n_layer: 2, n_embd: 8, n_head: 2, mlp_ratio: 4 };
        let p = Params::new(1);
        let enc = encoder(&cfg, &p, &Device::Cpu)?;
        assert_eq!(p.trainable().len(), 2 * 12 + 2);
        assert!(p.trainable().iter().any(|(n, _)| n == "h.1.attn.c_attn.weight"));
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec((0..80).map(|_| rng.normal() as f32).collect::<Vec<_>>(), (2, 5, 8), &Device::Cpu)?;
        let y = enc.forward(&x)?;
        assert_eq!(y.dims(), &[2, 5, 8]);
        let x2 = Tensor::cat(&[&x.narrow(1, 0, 4)?, &(x.narrow(1, 4, 1)? + 1.0)?], 1)?;
        let first = |y: &Tensor| -> Result<Vec<f32>> { y.narrow(1, 0, 1)?.flatten_all()?.to_vec1() };
        assert_ne!(first(&y)?, first(&enc.forward(&x2)?)?);
        assert_every_param_gets_a_gradient(&p, &y.sqr()?.sum_all()?)
    }
}
