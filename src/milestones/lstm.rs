//! `lstm`: a character-level language model with one LSTM layer (Hochreiter & Schmidhuber
//! 1997; with the forget gate of Gers, Schmidhuber & Cummins 2000, switchable for the
//! learning-to-forget study). Only the model is here for now (`dlhist bench` times it); its
//! recipe, data and claim come with the lstm milestone issue.

use crate::nn::embedding::embedding;
use crate::nn::embedding::Embedding;
use crate::nn::linear::Linear;
use crate::nn::linear::{linear, InitKind};
use crate::nn::lstm::{lstm, Lstm};
use candle_core::Module;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// distinct characters
    pub vocab: usize,
    /// width of the character embedding (the LSTM's input)
    pub embed: usize,
    /// LSTM hidden units H
    pub hidden: usize,
    /// false: the 1997 cell without a forget gate (c_t = c_{t−1} + i⊙g)
    pub forget_gate: bool,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { vocab: 65, embed: 64, hidden: 256, forget_gate: true }
    }
}

impl ModelCfg {
    /// Multiply-add FLOPs (2 per multiply-add) of one forward pass over `batch` sequences of
    /// `seq` characters: the input projection (2·E·4H per character), the recurrence
    /// (2·H·4H per character) and the head (2·H·V per character). Gate nonlinearities and the
    /// embedding lookup are not counted. Default sizes, 32 × 64 characters: 1.41 GFLOP.
    pub fn forward_flops(&self, batch: usize, seq: usize) -> f64 {
        let per_char =
            2 * self.embed * 4 * self.hidden + 2 * self.hidden * 4 * self.hidden + 2 * self.hidden * self.vocab;
        (batch * seq * per_char) as f64
    }
}

pub struct CharLstm {
    pub embed: Embedding,
    pub lstm: Lstm,
    pub head: Linear,
}

/// Embedding (N(0, 1), as PyTorch's nn.Embedding) -> one LSTM layer -> linear head.
/// Parameters: `embed.weight`, `lstm.{weight,bias}_{ih,hh}`, `head.*`.
pub fn char_lstm(cfg: &ModelCfg, vb: VarBuilder) -> Result<CharLstm> {
    Ok(CharLstm {
        embed: embedding(cfg.vocab, cfg.embed, 1.0, vb.pp("embed"))?,
        lstm: lstm(cfg.embed, cfg.hidden, cfg.forget_gate, vb.pp("lstm"))?,
        head: linear(cfg.hidden, cfg.vocab, InitKind::Default, vb.pp("head"))?,
    })
}

impl CharLstm {
    /// tokens (B, T) u32 -> logits (B·T, V), row b·T + t predicting the character after (b, t).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let x = self.embed.forward(tokens)?; // (B, T, E)
        let h = self.lstm.forward(&x)?; // (B, T, H)
        self.head.forward(&h.reshape((b * t, self.lstm.hidden))?) // (B·T, V)
    }

    /// Mean next-character cross-entropy; `targets` (B, T) are the inputs shifted by one.
    pub fn loss(&self, tokens: &Tensor, targets: &Tensor) -> Result<Tensor> {
        crate::nn::loss::cross_entropy(&self.forward(tokens)?, &targets.flatten_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::params::Params;
    use crate::engine::rng::Rng;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use candle_core::Device;

    #[test]
    fn every_parameter_gets_a_gradient_with_and_without_the_forget_gate() -> Result<()> {
        let dev = Device::Cpu;
        for forget_gate in [true, false] {
            let cfg = ModelCfg { forget_gate, ..Default::default() };
            let p = Params::new(3);
            let net = char_lstm(&cfg, p.vb(&dev))?;
            let mut rng = Rng::new(2);
            let ids: Vec<u32> = (0..2 * 9).map(|_| rng.below(cfg.vocab) as u32).collect();
            let ids = Tensor::from_vec(ids, (2, 9), &dev)?;
            let loss = net.loss(&ids.narrow(1, 0, 8)?, &ids.narrow(1, 1, 8)?)?;
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }

    #[test]
    fn flop_count_is_the_issues() {
        // issue 3: about 4.2 GFLOP per training step (×3 of the forward) at batch 32, seq 64
        let f = 3.0 * ModelCfg::default().forward_flops(32, 64);
        assert!((f / 1e9 - 4.23).abs() < 0.01, "{f}");
    }
}
