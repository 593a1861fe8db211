//! The pre-LN transformer block (GPT-2's arrangement; Radford et al. 2019): x + attn(ln1(x)),
//! then x + mlp(ln2(x)), with multi-head self-attention (causal for language models, not for
//! encoders such as ViT, BERT or CLIP's) and an MLP C -> ratio·C -> C with GELU (tanh) between.
//! The norm slots are LayerNorm as in GPT, or BatchNorm / none for the layer-norm study.

use super::activation::Activation;
use super::attention::{self_attention, SelfAttention};
use super::dropout::DropPass;
use super::linear::InitKind;
use super::mlp::Mlp;
use super::norm::{norm, Norm, NormKind};
use crate::ops::attention::KeyRange;
use crate::params::Params;
use candle_core::{Device, Result, Tensor};

/// The sizes and kinds of one block.
#[derive(Clone, Copy, Debug)]
pub struct BlockCfg {
    /// model width C
    pub n_embd: usize,
    /// attention heads (must divide n_embd)
    pub n_head: usize,
    /// causal self-attention: a position sees only itself and earlier ones
    pub causal: bool,
    /// the norm slots ln1 and ln2
    pub norm: NormKind,
    /// the MLP's hidden width as a multiple of C (4 in GPT)
    pub mlp_ratio: usize,
}

pub struct Block {
    pub ln1: Norm,
    pub attn: SelfAttention,
    pub ln2: Norm,
    /// C -> ratio·C -> C, GELU (tanh) between
    pub mlp: Mlp,
}

/// A block named `name`. Parameters: `{name}.ln1.*`, `{name}.attn.c_attn.*`, `{name}.attn.c_proj.*`,
/// `{name}.ln2.*`, `{name}.mlp.fc0.*`, `{name}.mlp.fc1.*` (linears with PyTorch's default init);
/// with batch norm also the running statistics buffers of ln1 and ln2.
pub fn block(cfg: &BlockCfg, params: &Params, name: &str, device: &Device) -> Result<Block> {
    let c = cfg.n_embd;
    let vb = params.vb(device).pp(name);
    Ok(Block {
        ln1: norm(cfg.norm, c, params, &format!("{name}.ln1"), device)?,
        attn: self_attention(c, cfg.n_head, cfg.causal, vb.pp("attn"))?,
        ln2: norm(cfg.norm, c, params, &format!("{name}.ln2"), device)?,
        mlp: Mlp::new(&[c, cfg.mlp_ratio * c, c], Activation::GeluTanh, InitKind::Default, vb.pp("mlp"))?,
    })
}

impl Block {
    /// (B, T, C) -> (B, T, C); `train` selects BatchNorm's batch statistics. No reshapes: the
    /// norms, linears and attention take (B, T, ·) as it is (each reshape node would cost
    /// candle's backward a zero fill and an add).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward_t(x, train)?)?)?;
        &x + self.mlp.forward(&self.ln2.forward_t(&x, train)?)?
    }

    /// As `forward_t` for an encoder over padded sequences: batch row b attends only to the
    /// positions in `keys[b]`, and `drop` drops units of each sublayer's output before its
    /// residual add (Vaswani et al. 2017, §5.4). LayerNorm or no norm only (no batch statistics).
    pub fn forward_masked(&self, x: &Tensor, keys: Option<&[KeyRange]>, drop: &mut DropPass) -> Result<Tensor> {
        let x = (x + drop.apply(&self.attn.forward_keys(&self.ln1.forward_t(x, false)?, keys)?)?)?;
        &x + drop.apply(&self.mlp.forward(&self.ln2.forward_t(&x, false)?)?)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::tests::assert_every_param_gets_a_gradient;
    use crate::rng::Rng;

    fn input(rng: &mut Rng, dims: (usize, usize, usize)) -> Result<Tensor> {
        let x: Vec<f32> = (0..dims.0 * dims.1 * dims.2).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(x, dims, &Device::Cpu)
    }

    #[test]
    fn names_and_every_parameter_gets_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        for (norm, causal) in [(NormKind::Layer, true), (NormKind::Batch, false), (NormKind::None, true)] {
            let cfg = BlockCfg { n_embd: 8, n_head: 2, causal, norm, mlp_ratio: 4 };
            let p = Params::new(3);
            let blk = block(&cfg, &p, "h.0", &dev)?;
            let names: Vec<String> = p.trainable().into_iter().map(|(n, _)| n).collect();
            let mut want = vec![
                "h.0.attn.c_attn.bias",
                "h.0.attn.c_attn.weight",
                "h.0.attn.c_proj.bias",
                "h.0.attn.c_proj.weight",
            ];
            if norm != NormKind::None {
                want.extend(["h.0.ln1.bias", "h.0.ln1.weight", "h.0.ln2.bias", "h.0.ln2.weight"]);
            }
            want.extend(["h.0.mlp.fc0.bias", "h.0.mlp.fc0.weight", "h.0.mlp.fc1.bias", "h.0.mlp.fc1.weight"]);
            want.sort();
            assert_eq!(names, want, "{norm:?}");
            let fc0 = p.trainable().into_iter().find(|(n, _)| n == "h.0.mlp.fc0.weight").unwrap().1;
            assert_eq!(fc0.dims(), &[32, 8]);
            let y = blk.forward_t(&input(&mut Rng::new(1), (2, 5, 8))?, true)?;
            assert_eq!(y.dims(), &[2, 5, 8]);
            assert_every_param_gets_a_gradient(&p, &y.sqr()?.sum_all()?)?;
        }
        Ok(())
    }

    /// Changing the last position changes the earlier outputs only when the block is not causal.
    #[test]
    fn only_a_non_causal_block_looks_ahead() -> Result<()> {
        for causal in [true, false] {
            let cfg = BlockCfg { n_embd: 8, n_head: 2, causal, norm: NormKind::Layer, mlp_ratio: 4 };
            let blk = block(&cfg, &Params::new(4), "b", &Device::Cpu)?;
            let x = input(&mut Rng::new(2), (1, 5, 8))?;
            let x2 = Tensor::cat(&[&x.narrow(1, 0, 4)?, &(x.narrow(1, 4, 1)? + 1.0)?], 1)?;
            let early =
                |x: &Tensor| -> Result<Vec<f32>> { blk.forward_t(x, false)?.narrow(1, 0, 4)?.flatten_all()?.to_vec1() };
            assert_eq!(early(&x)? == early(&x2)?, causal, "causal {causal}");
        }
        Ok(())
    }
}
