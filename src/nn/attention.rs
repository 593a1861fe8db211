//! Multi-head self-attention (Vaswani et al. 2017), causal for language models. The attention
//! itself is the fused flash-style op read straight from the packed q, k, v projection
//! (`crate::ops::attention_qkv`: online softmax, O(T) extra memory, blockwise recomputation in
//! the backward; tested there against the composed plumbing and softmax(q·kᵀ/√d)·v).

use super::linear::{linear, InitKind, Linear};
use super::lora::Lora;
use crate::ops::attention::KeyRange;
use crate::ops::attention_qkv::{attention_qkv, attention_qkv_keys, attention_qkv_ref};
use candle_core::Module;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// How the heads are computed: the fused op (`ops::attention_qkv`, always in training) or its
/// composed reference of candle ops, so that tests can compare the two inside whole models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttnImpl {
    #[default]
    Fused,
    Composed,
}

pub struct SelfAttention {
    /// x -> [q | k | v]: C -> 3C
    pub c_attn: Linear,
    /// heads concatenated -> C
    pub c_proj: Linear,
    pub n_head: usize,
    pub causal: bool,
    /// low-rank adapters beside `c_attn` (q, k and v at once) and `c_proj` (LoRA; `nn::lora`)
    pub lora: Option<(Lora, Lora)>,
}

/// Self-attention over `n_embd` features in `n_head` heads (`n_embd` must divide evenly).
pub fn self_attention(n_embd: usize, n_head: usize, causal: bool, vb: VarBuilder) -> Result<SelfAttention> {
    if n_head == 0 || !n_embd.is_multiple_of(n_head) {
        candle_core::bail!("attention: n_embd {n_embd} is not divisible by n_head {n_head}");
    }
    SelfAttention::new(
        linear(n_embd, 3 * n_embd, InitKind::Default, vb.pp("c_attn"))?,
        linear(n_embd, n_embd, InitKind::Default, vb.pp("c_proj"))?,
        n_head,
        causal,
    )
}

impl SelfAttention {
    /// Self-attention over ready-made projections: `c_attn` C -> 3C, `c_proj` C -> C, with C
    /// divisible by `n_head`.
    pub fn new(c_attn: Linear, c_proj: Linear, n_head: usize, causal: bool) -> Result<Self> {
        let (c3, c) = c_attn.weight.dims2()?;
        if n_head == 0 || !c.is_multiple_of(n_head) || c3 != 3 * c || c_proj.weight.dims() != [c, c] {
            candle_core::bail!(
                "attention: c_attn {:?} must be (3C, C) and c_proj {:?} (C, C), with C divisible by n_head {n_head}",
                c_attn.weight.dims(),
                c_proj.weight.dims()
            );
        }
        Ok(Self { c_attn, c_proj, n_head, causal, lora: None })
    }

    /// This attention with adapters on its input projection (`on_attn`) and output projection
    /// (`on_proj`).
    pub fn with_lora(self, on_attn: Lora, on_proj: Lora) -> Self {
        Self { lora: Some((on_attn, on_proj)), ..self }
    }

    /// The adapters folded into the projections' weights (`Lora::merge`): the same function
    /// with no adapter products.
    pub fn merged(&self) -> Result<Self> {
        let Some((a, p)) = &self.lora else {
            return Self::new(self.c_attn.clone(), self.c_proj.clone(), self.n_head, self.causal);
        };
        Self::new(a.merge(&self.c_attn)?, p.merge(&self.c_proj)?, self.n_head, self.causal)
    }

    fn project_in(&self, x: &Tensor) -> Result<Tensor> {
        match &self.lora {
            Some((a, _)) => a.forward(&self.c_attn, x),
            None => self.c_attn.forward(x),
        }
    }

    fn project_out(&self, y: &Tensor) -> Result<Tensor> {
        match &self.lora {
            Some((_, p)) => p.forward(&self.c_proj, y),
            None => self.c_proj.forward(y),
        }
    }
}

impl SelfAttention {
    /// (B, T, C) -> (B, T, C)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, AttnImpl::Fused)
    }

    /// `forward` with the heads computed by `imp`.
    pub fn forward_with(&self, x: &Tensor, imp: AttnImpl) -> Result<Tensor> {
        // (B, T, 3C), read straight from this packed projection: no per-head copies
        let qkv = self.project_in(x)?;
        let y = match imp {
            AttnImpl::Fused => attention_qkv(&qkv, self.n_head, self.causal)?, // (B, T, C), heads side by side
            AttnImpl::Composed => attention_qkv_ref(&qkv, self.n_head, self.causal)?,
        };
        self.project_out(&y)
    }

    /// As `forward`, batch row b attending only to the positions in `keys[b]` (a key-padding
    /// mask); `None` is `forward`.
    pub fn forward_keys(&self, x: &Tensor, keys: Option<&[KeyRange]>) -> Result<Tensor> {
        let Some(keys) = keys else { return self.forward(x) };
        let qkv = self.project_in(x)?;
        self.project_out(&attention_qkv_keys(&qkv, self.n_head, self.causal, keys)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Changing a later token must not change the outputs at earlier positions.
    #[test]
    fn causal_attention_does_not_look_ahead() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = crate::rng::Rng::new(3);
        let (b, h, t, dh) = (1, 2, 5, 3);
        let c = h * dh;
        let mut data: Vec<f32> = (0..b * t * 3 * c).map(|_| rng.normal() as f32).collect();
        let run = |d: &[f32]| -> Result<Vec<f32>> {
            let qkv = Tensor::from_slice(d, (b, t, 3 * c), &dev)?; // [q | k | v], heads side by side
            let y = attention_qkv(&qkv, h, true)?; // (B, T, C)
            y.narrow(1, 0, t - 1)?.flatten_all()?.to_vec1()
        };
        let before = run(&data)?;
        // perturb k and v of the last position in every head
        for which in 1..3 {
            for hh in 0..h {
                data[(t - 1) * 3 * c + which * c + hh * dh] += 10.0;
            }
        }
        assert_eq!(before, run(&data)?);
        Ok(())
    }
}
