//! The transformer encoder–decoder (Vaswani et al. 2017): token embeddings scaled by √C plus
//! sinusoidal positions (§3.5), a stack of encoder blocks (`nn::transformer::Block`, non-causal
//! self-attention with a key-padding mask) and a final LayerNorm, a stack of decoder blocks
//! (`nn::decoder`: causal self-attention, cross-attention over the encoder's output, MLP) and a
//! final LayerNorm, and an output layer tied to the target embedding (§3.4). Pre-LN throughout
//! (see `nn::decoder` for why). With `shared_vocab` (T5, Raffel et al. 2019) source and target
//! share one embedding.
//!
//! Sources may be padded on either side: batch row b's real tokens are the positions in
//! `keys[b]`; positions count from the first real token, so a sentence encodes the same
//! whatever its padding (tested below). Targets are right-padded, which the causal mask
//! already hides from the real positions.

use super::decoder::{decoder_block, DecoderBlock};
use super::dropout::DropPass;
use super::embedding::{embedding, Embedding};
use super::linear::Linear;
use super::norm::{norm, Norm, NormKind};
use super::transformer::{block, Block, BlockCfg};
use crate::ops::attention::KeyRange;
use crate::params::Params;
use candle_core::{Device, Module, Result, Tensor, D};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncDecCfg {
    /// model width C
    pub n_embd: usize,
    /// attention heads H (must divide n_embd)
    pub n_head: usize,
    /// encoder blocks
    pub n_enc: usize,
    /// decoder blocks
    pub n_dec: usize,
    /// the MLP's hidden width as a multiple of C (4 in the paper)
    pub mlp_ratio: usize,
    /// dropout on the embeddings and on every sublayer's output before its residual add (0.1 in
    /// the paper)
    pub dropout: f64,
}

pub struct EncoderDecoder {
    /// (source vocabulary, C); None when source and target share `tgt_embed`
    pub src_embed: Option<Embedding>,
    /// (target vocabulary, C), also the output layer's weight
    pub tgt_embed: Embedding,
    pub enc: Vec<Block>,
    pub ln_enc: Norm,
    pub dec: Vec<DecoderBlock>,
    pub ln_dec: Norm,
    pub cfg: EncDecCfg,
    /// the sinusoids of positions 0..MAX_POS: (MAX_POS, C), not trained
    pe: Tensor,
}

/// The longest source or target the position table covers.
pub const MAX_POS: usize = 1024;

/// Parameters: `src_embed.weight` and `tgt_embed.weight` (or only `embed.weight` when
/// `src_vocab` is None: one shared vocabulary), N(0, 1/C) as the embeddings are scaled by √C;
/// `enc.{i}.*` (the shared block's names), `ln_enc.*`, `dec.{i}.*` (`nn::decoder`'s names),
/// `ln_dec.*`. The output layer is the target embedding (no parameters of its own).
pub fn encoder_decoder(
    cfg: &EncDecCfg,
    src_vocab: Option<usize>,
    tgt_vocab: usize,
    params: &Params,
    device: &Device,
) -> Result<EncoderDecoder> {
    let c = cfg.n_embd;
    if c == 0 || cfg.n_head == 0 || !c.is_multiple_of(cfg.n_head) || cfg.n_enc == 0 || cfg.n_dec == 0 {
        candle_core::bail!(
            "encoder-decoder: need n_embd divisible by n_head and at least one block each, got C {c}, H {}, {} + {} blocks",
            cfg.n_head,
            cfg.n_enc,
            cfg.n_dec
        )
    }
    let vb = params.vb(device);
    let std = 1.0 / (c as f64).sqrt();
    let bcfg =
        BlockCfg { n_embd: c, n_head: cfg.n_head, causal: false, norm: NormKind::Layer, mlp_ratio: cfg.mlp_ratio };
    let (src_embed, tgt_embed) = match src_vocab {
        Some(v) => (Some(embedding(v, c, std, vb.pp("src_embed"))?), embedding(tgt_vocab, c, std, vb.pp("tgt_embed"))?),
        None => (None, embedding(tgt_vocab, c, std, vb.pp("embed"))?),
    };
    Ok(EncoderDecoder {
        src_embed,
        tgt_embed,
        enc: (0..cfg.n_enc).map(|i| block(&bcfg, params, &format!("enc.{i}"), device)).collect::<Result<_>>()?,
        ln_enc: norm(NormKind::Layer, c, params, "ln_enc", device)?,
        dec: (0..cfg.n_dec)
            .map(|i| decoder_block(&bcfg, params, &format!("dec.{i}"), device))
            .collect::<Result<_>>()?,
        ln_dec: norm(NormKind::Layer, c, params, "ln_dec", device)?,
        cfg: cfg.clone(),
        pe: sinusoids(&(0..MAX_POS).collect::<Vec<_>>(), c, device)?,
    })
}

/// Sinusoidal position encodings (§3.5) of the positions `pos`: (len, C) with
/// PE(p, 2i) = sin(p / 10000^{2i/C}), PE(p, 2i+1) = cos(p / 10000^{2i/C}).
pub fn sinusoids(pos: &[usize], c: usize, device: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; pos.len() * c];
    for (row, &p) in v.chunks_exact_mut(c).zip(pos) {
        for (i, x) in row.iter_mut().enumerate() {
            let angle = p as f64 / 10000f64.powf((i / 2 * 2) as f64 / c as f64);
            *x = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Tensor::from_vec(v, (pos.len(), c), device)
}

/// What the encoder hands the decoder: each decoder block's packed cross-attention keys and
/// values of the encoder's output, and the source's key ranges.
pub struct Memory {
    pub kv: Vec<Tensor>,
    pub keys: Vec<KeyRange>,
}

impl Memory {
    fn detach(self) -> Self {
        Self { kv: self.kv.iter().map(Tensor::detach).collect(), keys: self.keys }
    }
}

impl EncoderDecoder {
    fn embed_scaled(&self, emb: &Embedding, ids: &Tensor) -> Result<Tensor> {
        emb.forward(ids)? * (self.cfg.n_embd as f64).sqrt()
    }

    /// The position encodings of positions 0..t: (t, C).
    fn positions(&self, t: usize) -> Result<Tensor> {
        if t > MAX_POS {
            candle_core::bail!("encoder-decoder: a sequence of {t} tokens is longer than the {MAX_POS} positions")
        }
        self.pe.narrow(0, 0, t)
    }

    /// src (B, S) u32 whose row b holds real tokens at `keys[b]` -> the decoder's memory.
    pub fn encode(&self, src: &Tensor, keys: &[KeyRange], drop: &mut DropPass) -> Result<Memory> {
        let (b, s) = src.dims2()?;
        let c = self.cfg.n_embd;
        // each row's positions count from its first real token (padding gets position 0)
        self.positions(s)?;
        let pos: Vec<u32> =
            (0..b).flat_map(|bi| (0..s).map(move |j| j.saturating_sub(keys[bi].start) as u32)).collect();
        let pos = Tensor::from_vec(pos, b * s, src.device())?;
        let pe = self.pe.index_select(&pos, 0)?.reshape((b, s, c))?;
        let emb = self.src_embed.as_ref().unwrap_or(&self.tgt_embed);
        let mut x = drop.apply(&(self.embed_scaled(emb, src)? + pe)?)?;
        for blk in &self.enc {
            x = blk.forward_masked(&x, Some(keys), drop)?;
        }
        let memory = self.ln_enc.forward_t(&x, false)?;
        let kv = self.dec.iter().map(|d| d.cross.kv(&memory)).collect::<Result<_>>()?;
        Ok(Memory { kv, keys: keys.to_vec() })
    }

    /// Decoder inputs (B, T) u32 (right-padded) -> the final hidden states (B, T, C).
    pub fn decode(&self, mem: &Memory, dec_in: &Tensor, drop: &mut DropPass) -> Result<Tensor> {
        let pe = self.positions(dec_in.dim(1)?)?;
        let mut x = drop.apply(&self.embed_scaled(&self.tgt_embed, dec_in)?.broadcast_add(&pe)?)?;
        for (blk, kv) in self.dec.iter().zip(&mem.kv) {
            x = blk.forward(&x, kv, Some(&mem.keys), drop)?;
        }
        self.ln_dec.forward_t(&x, false)
    }

    /// Hidden states (…, C) -> logits (…, V) through the tied output layer.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        Linear { weight: self.tgt_embed.weight.clone(), bias: None }.forward(h)
    }

    /// Teacher-forced cross-entropy, the mean over real target tokens: `rows` (N,) index the
    /// B·T decoder positions whose target is not padding, `targets` (N,) their target ids.
    pub fn loss(
        &self,
        src: &Tensor,
        keys: &[KeyRange],
        dec_in: &Tensor,
        (rows, targets): (&Tensor, &Tensor),
        drop: &mut DropPass,
    ) -> Result<Tensor> {
        let mem = self.encode(src, keys, drop)?;
        let h = self.decode(&mem, dec_in, drop)?;
        let (b, t, c) = h.dims3()?;
        let kept = h.reshape((b * t, c))?.index_select(rows, 0)?;
        crate::nn::loss::cross_entropy(&self.logits(&kept)?, targets)
    }

    /// Greedy decoding with cached keys and values: starts every row from `bos`, stops a row at
    /// `eos` (not included) or after `max_len` tokens; tokens in `banned` are never emitted.
    pub fn greedy(
        &self,
        src: &Tensor,
        keys: &[KeyRange],
        (bos, eos): (u32, u32),
        banned: &[u32],
        max_len: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let dev = src.device();
        let b = src.dim(0)?;
        let v = self.tgt_embed.weight.dim(0)?;
        let mask: Vec<f32> = (0..v as u32).map(|i| if banned.contains(&i) { -1e9 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (1, v), dev)?;
        let mem = self.encode(src, keys, &mut DropPass::eval())?.detach();
        let mut caches: Vec<Option<Tensor>> = vec![None; self.dec.len()];
        let mut y = Tensor::from_vec(vec![bos; b], (b, 1), dev)?;
        let mut out = vec![vec![]; b];
        let mut done = vec![false; b];
        for t in 0..max_len {
            let pe = self.positions(t + 1)?.narrow(0, t, 1)?;
            let mut x = self.embed_scaled(&self.tgt_embed, &y)?.broadcast_add(&pe)?.detach();
            for ((blk, kv), cache) in self.dec.iter().zip(&mem.kv).zip(caches.iter_mut()) {
                x = blk.step(&x, cache, kv, Some(&mem.keys))?.detach();
                *cache = cache.as_ref().map(Tensor::detach);
            }
            let logits = self.logits(&self.ln_dec.forward_t(&x.squeeze(1)?, false)?)?.broadcast_add(&mask)?;
            let next: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            for i in 0..b {
                if done[i] {
                    continue;
                }
                if next[i] == eos {
                    done[i] = true;
                } else {
                    out[i].push(next[i]);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            y = Tensor::from_vec(next, (b, 1), dev)?;
        }
        Ok(out)
    }

    /// The cross-attention weights of the decoder reading `dec_in` (B, T): (B, T, S), the mean
    /// over every decoder block and head; row t is what the position predicting token t+1 read.
    pub fn cross_attention_map(&self, src: &Tensor, keys: &[KeyRange], dec_in: &Tensor) -> Result<Tensor> {
        let mut drop = DropPass::eval();
        let mem = self.encode(src, keys, &mut drop)?;
        let pe = self.positions(dec_in.dim(1)?)?;
        let mut x = self.embed_scaled(&self.tgt_embed, dec_in)?.broadcast_add(&pe)?;
        let mut sum: Option<Tensor> = None;
        for (blk, kv) in self.dec.iter().zip(&mem.kv) {
            let w = blk.cross.weights(&blk.ln2.forward_t(&blk_after_self(blk, &x)?, false)?, kv, Some(keys))?;
            let w = w.mean(1)?; // over heads: (B, T, S)
            sum = Some(match sum {
                Some(s) => (s + w)?,
                None => w,
            });
            x = blk.forward(&x, kv, Some(keys), &mut drop)?;
        }
        sum.expect("at least one decoder block") / self.dec.len() as f64
    }
}

/// x after a decoder block's self-attention sublayer (the input its cross-attention normalises).
fn blk_after_self(blk: &DecoderBlock, x: &Tensor) -> Result<Tensor> {
    x + blk.attn.forward(&blk.ln1.forward_t(x, false)?)?
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one batch row: a slice of one key range
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::ops::testutil::rel_err;
    use crate::rng::Rng;

    const CFG: EncDecCfg = EncDecCfg { n_embd: 12, n_head: 3, n_enc: 2, n_dec: 2, mlp_ratio: 2, dropout: 0.1 };

    fn ids(v: &[u32], dims: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn every_parameter_gets_a_gradient_shared_or_separate_vocabularies() -> Result<()> {
        for src_vocab in [Some(9), None] {
            let p = Params::new(3);
            let m = encoder_decoder(&CFG, src_vocab, 11, &p, &Device::Cpu)?;
            // row 0 left-padded (real tokens 2..5), row 1 full
            let src = ids(&[0, 0, 4, 5, 6, 7, 8, 4, 5, 6], (2, 5));
            let dec_in = ids(&[2, 5, 6, 0, 2, 7, 8, 9], (2, 4));
            let rows = Tensor::new(&[0u32, 1, 2, 4, 5, 6, 7], &Device::Cpu)?;
            let targets = Tensor::new(&[5u32, 6, 3, 7, 8, 9, 3], &Device::Cpu)?;
            let mut rng = Rng::new(1);
            let loss = m.loss(&src, &[2..5, 0..5], &dec_in, (&rows, &targets), &mut DropPass::train(0.1, &mut rng))?;
            let names: Vec<String> = p.trainable().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names.iter().any(|n| n == "embed.weight"), src_vocab.is_none());
            assert!(
                names.contains(&"dec.1.cross.c_kv.weight".to_string()) && names.contains(&"enc.0.ln1.weight".into())
            );
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }

    /// Causal masking in the decoder: changing a later target token changes no earlier output.
    #[test]
    fn a_future_target_token_cannot_change_earlier_outputs() -> Result<()> {
        let m = encoder_decoder(&CFG, Some(9), 11, &Params::new(4), &Device::Cpu)?;
        let src = ids(&[4, 5, 6, 7, 8], (1, 5));
        let mem = m.encode(&src, &[0..5], &mut DropPass::eval())?;
        let run =
            |last: u32| -> Result<Tensor> { m.decode(&mem, &ids(&[2, 5, 6, 7, last], (1, 5)), &mut DropPass::eval()) };
        let (a, b) = (run(8)?, run(10)?);
        assert_eq!(
            a.narrow(1, 0, 4)?.flatten_all()?.to_vec1::<f32>()?,
            b.narrow(1, 0, 4)?.flatten_all()?.to_vec1::<f32>()?
        );
        assert!(rel_err(&a.narrow(1, 4, 1)?, &b.narrow(1, 4, 1)?)? > 1e-3, "the last position does see its own token");
        Ok(())
    }

    /// A left-padded source encodes and decodes as the same source without padding, and
    /// greedy decoding with the key/value cache equals running the whole prefix each step.
    #[test]
    fn padding_changes_nothing_and_cached_decoding_equals_the_full_pass() -> Result<()> {
        let m = encoder_decoder(&CFG, None, 11, &Params::new(5), &Device::Cpu)?;
        let mut e = DropPass::eval();
        let dec_in = ids(&[2, 7, 9, 4, 2, 7, 9, 4], (2, 4));
        let padded = m.decode(
            &m.encode(&ids(&[0, 0, 5, 6, 8, 5, 6, 8, 0, 0], (2, 5)), &[2..5, 0..3], &mut e)?,
            &dec_in,
            &mut e,
        )?;
        let plain =
            m.decode(&m.encode(&ids(&[5, 6, 8], (1, 3)), &[0..3], &mut e)?, &dec_in.narrow(0, 0, 1)?, &mut e)?;
        assert!(rel_err(&padded.narrow(0, 0, 1)?, &plain)? < 1e-5);
        assert!(rel_err(&padded.narrow(0, 1, 1)?, &plain)? < 1e-5);
        // greedy: every step's argmax from the cache equals the argmax of the full pass
        let src = ids(&[0, 4, 5, 6, 7, 8, 4, 5, 6, 7], (2, 5));
        let keys = [1..5, 0..5];
        let out = m.greedy(&src, &keys, (2, 3), &[0, 1, 2, 3], 6)?;
        let mem = m.encode(&src, &keys, &mut e)?;
        for (i, seq) in out.iter().enumerate() {
            assert_eq!(seq.len(), 6, "eos is banned, so every row runs to max_len");
            let mut prefix = vec![2u32];
            for &tok in seq {
                let row_mem = Memory {
                    kv: mem.kv.iter().map(|t| t.narrow(0, i, 1)).collect::<Result<_>>()?,
                    keys: vec![keys[i].clone()],
                };
                let h = m.decode(&row_mem, &ids(&prefix, (1, prefix.len())), &mut e)?;
                let logits = m.logits(&h.narrow(1, prefix.len() - 1, 1)?.flatten_all()?.unsqueeze(0)?)?;
                let v: Vec<f32> = logits.flatten_all()?.to_vec1()?;
                let best = (4..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32;
                assert_eq!(best, tok, "row {i} prefix {prefix:?}");
                prefix.push(tok);
            }
        }
        Ok(())
    }

    #[test]
    fn cross_attention_map_rows_are_distributions_over_the_real_source() -> Result<()> {
        let m = encoder_decoder(&CFG, Some(9), 11, &Params::new(6), &Device::Cpu)?;
        let a = m.cross_attention_map(&ids(&[0, 0, 4, 5, 6], (1, 5)), &[2..5], &ids(&[2, 5, 6], (1, 3)))?;
        for row in a.squeeze(0)?.to_vec2::<f32>()? {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5 && row[0] == 0.0 && row[1] == 0.0, "{row:?}");
        }
        Ok(())
    }
}
