//! Multi-head cross-attention (Vaswani et al. 2017, §3.2.3, "encoder–decoder attention"): the
//! decoder's positions query the encoder's output. Queries come from x (B, Tq, C) through
//! `c_q`, keys and values from the memory (B, Tk, C) through one packed projection `c_kv`
//! (C -> 2C), and the heads, concatenated, go through `c_proj`. The attention is the fused flash
//! op `crate::ops::attention_cross` (tested there against the composed softmax(q·kᵀ/√d)·v), with
//! a key-padding mask per batch row.

use super::linear::{linear, InitKind, Linear};
use crate::ops::attention::KeyRange;
use crate::ops::attention_cross::attention_cross;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

pub struct CrossAttention {
    /// x -> q: C -> C
    pub c_q: Linear,
    /// memory -> [k | v]: C -> 2C
    pub c_kv: Linear,
    /// heads concatenated -> C
    pub c_proj: Linear,
    pub n_head: usize,
}

/// Cross-attention over `n_embd` features in `n_head` heads. Parameters `c_q.*`, `c_kv.*`,
/// `c_proj.*` (PyTorch's default linear init).
pub fn cross_attention(n_embd: usize, n_head: usize, vb: VarBuilder) -> Result<CrossAttention> {
    if n_head == 0 || !n_embd.is_multiple_of(n_head) {
        candle_core::bail!("cross-attention: n_embd {n_embd} is not divisible by n_head {n_head}");
    }
    Ok(CrossAttention {
        c_q: linear(n_embd, n_embd, InitKind::Default, vb.pp("c_q"))?,
        c_kv: linear(n_embd, 2 * n_embd, InitKind::Default, vb.pp("c_kv"))?,
        c_proj: linear(n_embd, n_embd, InitKind::Default, vb.pp("c_proj"))?,
        n_head,
    })
}

impl CrossAttention {
    /// The packed keys and values of the memory (B, Tk, C) -> (B, Tk, 2C). Computed once per
    /// source: decoding reuses it at every step.
    pub fn kv(&self, memory: &Tensor) -> Result<Tensor> {
        self.c_kv.forward(memory)
    }

    /// x (B, Tq, C) attending over `kv` (B, Tk, 2C) from `kv()`; batch row b sees the memory
    /// positions in `keys[b]` (all when None) -> (B, Tq, C).
    pub fn forward(&self, x: &Tensor, kv: &Tensor, keys: Option<&[KeyRange]>) -> Result<Tensor> {
        let q = self.c_q.forward(x)?;
        self.c_proj.forward(&attention_cross(&q, kv, self.n_head, keys)?)
    }

    /// The attention weights themselves, (B, H, Tq, Tk), for pictures: composed from the same
    /// projections (the fused op never forms them); masked keys get 0.
    pub fn weights(&self, x: &Tensor, kv: &Tensor, keys: Option<&[KeyRange]>) -> Result<Tensor> {
        let (b, tq, c) = x.dims3()?;
        let tk = kv.dim(1)?;
        let (h, dh) = (self.n_head, c / self.n_head);
        let q = self.c_q.forward(x)?.reshape((b, tq, h, dh))?.transpose(1, 2)?.contiguous()?; // (B, H, Tq, Dh)
        let k = kv.narrow(2, 0, c)?.reshape((b, tk, h, dh))?.transpose(1, 2)?.contiguous()?; // (B, H, Tk, Dh)
        let s = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let mask: Vec<f32> = (0..b)
            .flat_map(|bi| {
                let r = keys.map_or(0..tk, |k| k[bi].clone());
                (0..tk).map(move |j| if r.contains(&j) { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, tk), x.device())?;
        candle_nn::ops::softmax(&s.broadcast_add(&mask)?, D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::ops::testutil::{randn, rel_err};
    use crate::params::Params;
    use crate::rng::Rng;
    use candle_core::Device;

    /// Every parameter learns, and the output is the weights (from `weights`) times the values,
    /// projected: the fused path and the composed one agree.
    #[test]
    fn fused_output_is_the_weights_times_the_values() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(2);
        let ca = cross_attention(12, 3, p.vb(&dev))?;
        let mut rng = Rng::new(5);
        let (x, mem) = (randn(&mut rng, &[2, 5, 12]), randn(&mut rng, &[2, 7, 12]));
        let keys = [2..7, 0..4];
        let kv = ca.kv(&mem)?;
        let y = ca.forward(&x, &kv, Some(&keys))?;
        let w = ca.weights(&x, &kv, Some(&keys))?; // (2, 3, 5, 7)
        let v = kv.narrow(2, 12, 12)?.reshape((2, 7, 3, 4))?.transpose(1, 2)?.contiguous()?;
        let heads = w.matmul(&v)?.transpose(1, 2)?.reshape((2, 5, 12))?;
        assert!(rel_err(&y, &ca.c_proj.forward(&heads)?)? < 1e-5);
        let w: Vec<f32> = w.flatten_all()?.to_vec1()?;
        assert!(w.chunks(7).take(15).all(|r| r[0] == 0.0 && r[1] == 0.0)); // row 0 masks keys 0, 1
        assert_every_param_gets_a_gradient(&p, &y.sqr()?.sum_all()?)
    }
}
