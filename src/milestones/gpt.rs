//! `gpt`: a small decoder-only transformer language model (Radford et al. 2018/2019): token
//! and learned position embeddings, pre-LN blocks x + attn(ln1(x)), x + mlp(ln2(x))
//! (`nn::transformer`) with causal multi-head attention and a GELU (tanh) MLP of 4x width, a
//! final LayerNorm and an untied linear head. Only the model is here for now (`dlhist bench` times it); its recipe,
//! data and claim come with the gpt milestone issue.

use crate::nn::embedding::embedding;
use crate::nn::embedding::Embedding;
use crate::nn::linear::Linear;
use crate::nn::linear::{linear, InitKind};
use crate::nn::norm::{norm, Norm, NormKind};
use crate::nn::transformer::{block, Block, BlockCfg};
use crate::params::Params;
use candle_core::Module;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// distinct tokens V
    pub vocab: usize,
    /// transformer blocks L
    pub n_layer: usize,
    /// attention heads H (must divide n_embd)
    pub n_head: usize,
    /// model width C
    pub n_embd: usize,
    /// longest context T (the number of learned positions)
    pub block: usize,
    /// the norm slots (ln1, ln2, ln_f): "layer" as GPT, or "batch"/"none" for the layer-norm study
    pub norm: NormKind,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { vocab: 65, n_layer: 4, n_head: 4, n_embd: 128, block: 64, norm: NormKind::Layer }
    }
}

impl ModelCfg {
    /// Multiply-add FLOPs (2 per multiply-add) of one forward pass over `batch` sequences of
    /// `seq` tokens. Per token and block: qkv 2·C·3C, attention output 2·C·C, MLP 2·(C·4C + 4C·C);
    /// per sequence, block and head: q·kᵀ and p·v, 2·T·T·Dh each (the full T×T, masked half
    /// included, as computed); per token: the head 2·C·V. LayerNorm, softmax, GELU, embeddings
    /// and residual adds are not counted. Default sizes, 32 × 64 tokens: 3.52 GFLOP.
    pub fn forward_flops(&self, batch: usize, seq: usize) -> f64 {
        let c = self.n_embd;
        let per_token = self.n_layer * (2 * c * 3 * c + 2 * c * c + 2 * 2 * c * 4 * c) + 2 * c * self.vocab;
        let attn = self.n_layer * 2 * (2 * seq * seq * c); // summed over heads: H·Dh = C
        (batch * (seq * per_token + attn)) as f64
    }
}

pub struct Gpt {
    /// token embedding wte: (V, C)
    pub wte: Embedding,
    /// position embedding wpe: (block, C)
    pub wpe: Embedding,
    pub blocks: Vec<Block>,
    pub ln_f: Norm,
    /// C -> V, not tied to wte
    pub head: Linear,
    pub block: usize,
}

/// Parameters: `wte.weight`, `wpe.weight` (N(0, 0.02²), as GPT-2), `h.{i}.{ln1,attn,ln2,mlp}.*`,
/// `ln_f.*`, `head.*` (linears with PyTorch's default init); with batch norm also the running
/// statistics buffers of each norm slot.
pub fn gpt(cfg: &ModelCfg, params: &Params, device: &Device) -> Result<Gpt> {
    let c = cfg.n_embd;
    let vb = params.vb(device);
    let bcfg = BlockCfg { n_embd: c, n_head: cfg.n_head, causal: true, norm: cfg.norm, mlp_ratio: 4 };
    let blocks =
        (0..cfg.n_layer).map(|i| block(&bcfg, params, &format!("h.{i}"), device)).collect::<Result<Vec<_>>>()?;
    Ok(Gpt {
        wte: embedding(cfg.vocab, c, 0.02, vb.pp("wte"))?,
        wpe: embedding(cfg.block, c, 0.02, vb.pp("wpe"))?,
        blocks,
        ln_f: norm(cfg.norm, c, params, "ln_f", device)?,
        head: linear(c, cfg.vocab, InitKind::Default, vb.pp("head"))?,
        block: cfg.block,
    })
}

impl Gpt {
    /// tokens (B, T) u32, T ≤ block -> logits (B·T, V), row b·T + t predicting the token after
    /// (b, t). Evaluation mode (BatchNorm's running statistics).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_t(tokens, false)
    }

    /// As `forward`; `train` selects BatchNorm's batch statistics (and updates the running ones).
    pub fn forward_t(&self, tokens: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if t > self.block {
            candle_core::bail!("gpt: a context of {t} tokens is longer than the {} learned positions", self.block);
        }
        let pos = self.wpe.weight.narrow(0, 0, t)?; // (T, C)
        let mut x = self.wte.forward(tokens)?.broadcast_add(&pos)?; // (B, T, C)
        for blk in &self.blocks {
            x = blk.forward_t(&x, train)?;
        }
        let logits = self.head.forward(&self.ln_f.forward_t(&x, train)?)?; // (B, T, V)
        logits.reshape((b * t, ()))
    }

    /// Mean next-token cross-entropy in training mode; `targets` (B, T) are the inputs shifted by one.
    pub fn loss(&self, tokens: &Tensor, targets: &Tensor) -> Result<Tensor> {
        crate::nn::loss::cross_entropy(&self.forward_t(tokens, true)?, &targets.flatten_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;
    use crate::rng::Rng;
    use candle_core::Device;

    #[test]
    fn every_parameter_gets_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        for norm in [NormKind::Layer, NormKind::Batch, NormKind::None] {
            let cfg = ModelCfg { norm, ..Default::default() };
            let p = Params::new(5);
            let net = gpt(&cfg, &p, &dev)?;
            let mut rng = Rng::new(4);
            let ids: Vec<u32> = (0..2 * 11).map(|_| rng.below(cfg.vocab) as u32).collect();
            let ids = Tensor::from_vec(ids, (2, 11), &dev)?;
            let loss = net.loss(&ids.narrow(1, 0, 10)?, &ids.narrow(1, 1, 10)?)?;
            // 4·(ln1 2 + attn 4 + ln2 2 + mlp 4) + wte, wpe, ln_f 2, head 2; no norm: 9 slots fewer
            let norms = if norm == NormKind::None { 0 } else { 2 };
            assert_eq!(p.trainable().len(), 4 * (8 + 2 * norms) + 4 + norms, "{norm:?}");
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }

    #[test]
    fn flop_count_is_the_issues() {
        // issue 3: about 10.6 GFLOP per training step (×3 of the forward) at batch 32, block 64
        let f = 3.0 * ModelCfg::default().forward_flops(32, 64);
        assert!((f / 1e9 - 10.57).abs() < 0.01, "{f}");
    }
}
