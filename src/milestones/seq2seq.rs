//! The encoder–decoder of the translation milestones (Sutskever, Vinyals & Le 2014; Cho et al.
//! 2014): an LSTM reads the source, its final state (h_S, c_S) starts an LSTM that writes the
//! target, trained with teacher forcing. With `attention` the decoder's states attend over all
//! encoder states: Luong, Pham & Manning 2015's global attention with the "general" score,
//! applied to the decoder outputs so both LSTMs stay one fused whole-sequence op each (Bahdanau
//! et al. 2014 feed the context into every decoder step, which needs a per-step loop, about 3x
//! slower for the decoder here; `dlhist info attention` has the numbers).
//! The recipe (data, metrics) is in `translate.rs`, the claims in `src/claims/translate.rs`.

use crate::nn::activation::Activation;
use crate::nn::embedding::{embedding, Embedding};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::nn::lstm::{lstm, Lstm};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// width of the word embeddings (source and target each have their own)
    pub embed: usize,
    /// LSTM hidden units H, encoder and decoder
    pub hidden: usize,
    /// true: the decoder attends over the encoder states (Luong et al. 2015, global, general score)
    pub attention: bool,
}

/// Luong et al. 2015, §3.1: a_t(s) = softmax_s(h_tᵀ W_a h̄_s), c_t = Σ_s a_t(s) h̄_s,
/// h̃_t = tanh(W_c [c_t; h_t]); the output layer reads h̃_t.
pub struct GlobalAttention {
    /// W_a: (H, H), no bias (a bias would add the same h_t·b to every score of a row, which the
    /// softmax ignores, so it could not learn)
    pub w_a: Linear,
    /// W_c: 2H -> H
    pub w_c: Linear,
}

impl GlobalAttention {
    /// h (B, T, H) decoder states, hs (B, S, H) encoder states, mask (B, 1, S): 0 on tokens and
    /// a large negative number on padding -> (h̃ (B, T, H), a (B, T, S)).
    pub fn forward(&self, h: &Tensor, hs: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let keys = self.w_a.forward(hs)?; // W_a h̄_s for every s: (B, S, H)
        let scores = crate::ops::flops::matmul(h, &keys.transpose(1, 2)?.contiguous()?)?.broadcast_add(mask)?; // (B, T, S)
        let a = candle_nn::ops::softmax(&scores, D::Minus1)?; // composed: it has a backward
        let c = crate::ops::flops::matmul(&a, hs)?; // (B, T, H)
        let h_tilde = self.w_c.forward_act(&Tensor::cat(&[&c, h], 2)?, Activation::Tanh)?;
        Ok((h_tilde, a))
    }
}

pub struct Seq2Seq {
    pub src_embed: Embedding,
    pub tgt_embed: Embedding,
    pub encoder: Lstm,
    pub decoder: Lstm,
    pub attn: Option<GlobalAttention>,
    /// H -> target vocabulary
    pub head: Linear,
    pub hidden: usize,
}

/// Parameters: `src_embed.weight`, `tgt_embed.weight` (N(0, 0.1²)), `encoder.*`, `decoder.*`
/// (PyTorch's LSTM init), `attn.{w_a,w_c}.*`, `head.*`.
pub fn seq2seq(cfg: &ModelCfg, src_vocab: usize, tgt_vocab: usize, vb: VarBuilder) -> Result<Seq2Seq> {
    let (e, h) = (cfg.embed, cfg.hidden);
    let attn = if cfg.attention {
        let k = 1.0 / (h as f64).sqrt();
        let w_a =
            vb.pp("attn.w_a").get_with_hints((h, h), "weight", candle_nn::init::Init::Uniform { lo: -k, up: k })?;
        Some(GlobalAttention {
            w_a: Linear { weight: w_a, bias: None },
            w_c: linear(2 * h, h, InitKind::Default, vb.pp("attn.w_c"))?,
        })
    } else {
        None
    };
    Ok(Seq2Seq {
        src_embed: embedding(src_vocab, e, 0.1, vb.pp("src_embed"))?,
        tgt_embed: embedding(tgt_vocab, e, 0.1, vb.pp("tgt_embed"))?,
        encoder: lstm(e, h, true, vb.pp("encoder"))?,
        decoder: lstm(e, h, true, vb.pp("decoder"))?,
        attn,
        head: linear(h, tgt_vocab, InitKind::Default, vb.pp("head"))?,
        hidden: h,
    })
}

/// (B, 1, S): 0 where `src` (B, S) holds a token, −1e9 where it holds padding.
pub fn pad_mask(src: &[u32], b: usize, s: usize, dev: &Device) -> Result<Tensor> {
    let m: Vec<f32> = src.iter().map(|&id| if id == crate::data::pairs::PAD { -1e9 } else { 0.0 }).collect();
    Tensor::from_vec(m, (b, 1, s), dev)
}

/// One greedy translation: target ids (without <eos>) and, with attention, one row of weights
/// per output word over the source as fed (padded, and reversed if the source is): [t][s].
#[derive(Clone, Debug, Default)]
pub struct Translation {
    pub ids: Vec<u32>,
    pub attention: Vec<Vec<f32>>,
}

/// What the encoder hands the decoder.
pub struct Encoded {
    /// every encoder state h̄_s: (B, S, H)
    pub hs: Tensor,
    /// final state (h_S, c_S): (B, H) each
    pub h: Tensor,
    pub c: Tensor,
    /// (B, 1, S)
    pub mask: Tensor,
}

impl Seq2Seq {
    /// src (B, S) u32, left-padded.
    pub fn encode(&self, src: &Tensor, mask: Tensor) -> Result<Encoded> {
        let x = self.src_embed.forward(src)?; // (B, S, E)
        let z = Tensor::zeros((x.dim(0)?, self.hidden), DType::F32, x.device())?;
        let (hs, h, c) = self.encoder.forward_state(&x, &z, &z)?;
        Ok(Encoded { hs, h, c, mask })
    }

    /// Decoder inputs (B, T) from the state (h, c) -> (output states (B, T, H) that the head
    /// reads, attention (B, T, S) if any, h_T, c_T).
    pub fn decode(
        &self,
        enc: &Encoded,
        dec_in: &Tensor,
        h: &Tensor,
        c: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, Tensor, Tensor)> {
        let x = self.tgt_embed.forward(dec_in)?; // (B, T, E)
        let (out, h, c) = self.decoder.forward_state(&x, h, c)?; // (B, T, H)
        match &self.attn {
            Some(at) => {
                let (h_tilde, a) = at.forward(&out, &enc.hs, &enc.mask)?;
                Ok((h_tilde, Some(a), h, c))
            }
            None => Ok((out, None, h, c)),
        }
    }

    /// Teacher-forced cross-entropy, the mean over real target tokens only: the head runs on
    /// the rows whose target is not padding (`rows`, indices into B·T), so padding is neither
    /// computed nor counted. `targets` (N,) are those rows' target ids.
    pub fn loss(&self, src: &Tensor, mask: Tensor, dec_in: &Tensor, rows: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let enc = self.encode(src, mask)?;
        let (out, _, _, _) = self.decode(&enc, dec_in, &enc.h, &enc.c)?;
        let (b, t, h) = out.dims3()?;
        let kept = out.reshape((b * t, h))?.index_select(rows, 0)?; // (N, H)
        crate::nn::loss::cross_entropy(&self.head.forward(&kept)?, targets)
    }

    /// Greedy decoding of a batch, at most `max_len` tokens each (EOS excluded), one
    /// `Translation` per sentence.
    /// <pad>, <bos> and <unk> are never emitted (an <unk> can never match a reference word; with
    /// it allowed, an undertrained model writes little else). States are detached step to step:
    /// nothing here is trained.
    pub fn greedy(&self, src: &Tensor, mask: Tensor, max_len: usize) -> Result<Vec<Translation>> {
        use crate::data::pairs::{BOS, EOS, PAD, UNK};
        let v = self.head.weight.dim(0)?;
        let banned: Vec<f32> = (0..v as u32).map(|i| if [PAD, BOS, UNK].contains(&i) { -1e9 } else { 0.0 }).collect();
        let banned = Tensor::from_vec(banned, (1, v), src.device())?;
        let enc = self.encode(src, mask)?;
        let enc = Encoded { hs: enc.hs.detach(), h: enc.h.detach(), c: enc.c.detach(), mask: enc.mask };
        let b = enc.hs.dim(0)?;
        let (mut h, mut c) = (enc.h.clone(), enc.c.clone());
        let mut y = Tensor::from_vec(vec![BOS; b], (b, 1), src.device())?;
        let mut out = vec![Translation::default(); b];
        let mut done = vec![false; b];
        for _ in 0..max_len {
            let (o, a, h2, c2) = self.decode(&enc, &y, &h, &c)?;
            (h, c) = (h2.detach(), c2.detach());
            let logits = self.head.forward(&o.reshape((b, self.hidden))?)?.broadcast_add(&banned)?; // (B, V)
            let next: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            let rows: Option<Vec<Vec<f32>>> = a.map(|a| a.squeeze(1)?.to_vec2()).transpose()?;
            for i in 0..b {
                if done[i] {
                    continue;
                }
                if next[i] == EOS {
                    done[i] = true;
                    continue;
                }
                out[i].ids.push(next[i]);
                if let Some(r) = &rows {
                    out[i].attention.push(r[i].clone());
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            y = Tensor::from_vec(next, (b, 1), src.device())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pairs::{make_batch, Example, PAD};
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;

    fn batch_tensors(dev: &Device) -> Result<(Tensor, Tensor, Tensor, Tensor, Tensor)> {
        let ex =
            |s: &[u32], t: &[u32]| Example { src_tokens: vec![], tgt_tokens: vec![], src: s.to_vec(), tgt: t.to_vec() };
        let (a, b) = (ex(&[4, 5, 6, 7], &[4, 5]), ex(&[8, 9], &[6, 7, 8, 9]));
        let bt = make_batch(&[&a, &b], false);
        let rows: Vec<u32> = (0..bt.b * bt.t).filter(|&i| bt.dec_out[i] != PAD).map(|i| i as u32).collect();
        let targets: Vec<u32> = rows.iter().map(|&i| bt.dec_out[i as usize]).collect();
        Ok((
            Tensor::from_vec(bt.src.clone(), (bt.b, bt.s), dev)?,
            pad_mask(&bt.src, bt.b, bt.s, dev)?,
            Tensor::from_vec(bt.dec_in, (bt.b, bt.t), dev)?,
            Tensor::new(rows.as_slice(), dev)?,
            Tensor::new(targets.as_slice(), dev)?,
        ))
    }

    #[test]
    fn every_parameter_gets_a_gradient_with_and_without_attention() -> Result<()> {
        let dev = Device::Cpu;
        for attention in [false, true] {
            let p = Params::new(7);
            let net = seq2seq(&ModelCfg { embed: 8, hidden: 16, attention }, 12, 12, p.vb(&dev))?;
            let (src, mask, dec_in, rows, targets) = batch_tensors(&dev)?;
            let loss = net.loss(&src, mask, &dec_in, &rows, &targets)?;
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }

    /// Attention weights are a distribution over the real source tokens: rows sum to 1 and
    /// padded positions get (numerically) nothing.
    #[test]
    fn attention_ignores_source_padding() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(8);
        let net = seq2seq(&ModelCfg { embed: 8, hidden: 16, attention: true }, 12, 12, p.vb(&dev))?;
        let (src, mask, dec_in, _, _) = batch_tensors(&dev)?;
        let enc = net.encode(&src, mask)?;
        let (_, a, _, _) = net.decode(&enc, &dec_in, &enc.h, &enc.c)?;
        let a: Vec<Vec<Vec<f32>>> = a.expect("attention weights").to_vec3()?; // (B, T, S) = (2, 5, 4)
        assert_eq!((a.len(), a[0].len(), a[0][0].len()), (2, 5, 4));
        for row in a.iter().flatten() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
        // sentence 1's source [8, 9] is left-padded to [PAD, PAD, 8, 9]
        assert!(a[1].iter().all(|r| r[0] < 1e-12 && r[1] < 1e-12 && r[2] > 1e-3), "{:?}", a[1]);
        Ok(())
    }
}
