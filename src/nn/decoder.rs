//! The transformer's decoder block (Vaswani et al. 2017, §3.1), in the pre-LN arrangement of the
//! shared encoder block (`nn::transformer`): x + selfattn(ln1(x)) with causal self-attention,
//! then x + crossattn(ln2(x), memory) over the encoder's output, then x + mlp(ln3(x)). The 2017
//! paper puts the norm after each residual add (post-LN); pre-LN trains without the long
//! learning-rate warm-up post-LN needs (Xiong et al. 2020), which a budget of a few thousand
//! updates cannot spare. Same pieces as the encoder: `SelfAttention`, the MLP, LayerNorm, plus
//! `CrossAttention`.
//!
//! `step` runs one new position against a cache of the earlier positions' keys and values, so
//! greedy decoding costs one position per step instead of the whole prefix.

use super::activation::Activation;
use super::attention::{self_attention, SelfAttention};
use super::cross_attention::{cross_attention, CrossAttention};
use super::dropout::DropPass;
use super::linear::InitKind;
use super::mlp::Mlp;
use super::norm::{norm, Norm};
use super::transformer::BlockCfg;
use crate::ops::attention::KeyRange;
use crate::ops::attention_cross::attention_cross;
use crate::params::Params;
use candle_core::{Device, Module, Result, Tensor};

pub struct DecoderBlock {
    pub ln1: Norm,
    /// causal self-attention over the target prefix
    pub attn: SelfAttention,
    pub ln2: Norm,
    /// attention over the encoder's output
    pub cross: CrossAttention,
    pub ln3: Norm,
    /// C -> ratio·C -> C, GELU (tanh) between
    pub mlp: Mlp,
}

/// A decoder block named `name` (`cfg.causal` is ignored: the decoder's self-attention is always
/// causal). Parameters: `{name}.ln1.*`, `{name}.attn.{c_attn,c_proj}.*`, `{name}.ln2.*`,
/// `{name}.cross.{c_q,c_kv,c_proj}.*`, `{name}.ln3.*`, `{name}.mlp.{fc0,fc1}.*`.
pub fn decoder_block(cfg: &BlockCfg, params: &Params, name: &str, device: &Device) -> Result<DecoderBlock> {
    let c = cfg.n_embd;
    let vb = params.vb(device).pp(name);
    let ln = |i: usize| norm(cfg.norm, c, params, &format!("{name}.ln{i}"), device);
    Ok(DecoderBlock {
        ln1: ln(1)?,
        attn: self_attention(c, cfg.n_head, true, vb.pp("attn"))?,
        ln2: ln(2)?,
        cross: cross_attention(c, cfg.n_head, vb.pp("cross"))?,
        ln3: ln(3)?,
        mlp: Mlp::new(&[c, cfg.mlp_ratio * c, c], Activation::GeluTanh, InitKind::Default, vb.pp("mlp"))?,
    })
}

impl DecoderBlock {
    /// x (B, T, C) over the whole target; `memory_kv` (B, S, 2C) is `self.cross.kv(memory)`;
    /// batch row b sees the memory positions in `keys[b]`. `drop` drops units of each sublayer's
    /// output before its residual add.
    pub fn forward(
        &self,
        x: &Tensor,
        memory_kv: &Tensor,
        keys: Option<&[KeyRange]>,
        drop: &mut DropPass,
    ) -> Result<Tensor> {
        let x = (x + drop.apply(&self.attn.forward(&self.ln1.forward_t(x, false)?)?)?)?;
        let x = (&x + drop.apply(&self.cross.forward(&self.ln2.forward_t(&x, false)?, memory_kv, keys)?)?)?;
        &x + drop.apply(&self.mlp.forward(&self.ln3.forward_t(&x, false)?)?)?
    }

    /// One new position x (B, 1, C) after the positions whose self-attention keys and values
    /// (B, t, 2C) are in `cache` (None before the first); appends this position's to it. The
    /// same function as `forward` at the last position (tested in `nn::encdec`).
    pub fn step(
        &self,
        x: &Tensor,
        cache: &mut Option<Tensor>,
        memory_kv: &Tensor,
        keys: Option<&[KeyRange]>,
    ) -> Result<Tensor> {
        let c = x.dim(2)?;
        let qkv = self.attn.c_attn.forward(&self.ln1.forward_t(x, false)?)?; // (B, 1, 3C)
        let kv_new = qkv.narrow(2, c, 2 * c)?;
        let kv = match cache.take() {
            Some(prev) => Tensor::cat(&[&prev, &kv_new], 1)?,
            None => kv_new.contiguous()?,
        };
        // the newest position sees every earlier one: no causal mask needed
        let a = attention_cross(&qkv.narrow(2, 0, c)?.contiguous()?, &kv, self.attn.n_head, None)?;
        *cache = Some(kv);
        let x = (x + self.attn.c_proj.forward(&a)?)?;
        let x = (&x + self.cross.forward(&self.ln2.forward_t(&x, false)?, memory_kv, keys)?)?;
        &x + self.mlp.forward(&self.ln3.forward_t(&x, false)?)?
    }
}
