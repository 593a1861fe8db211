//! The pre-LN transformer block (GPT-2's arrangement; Radford et al. 2019): x + attn(ln1(x)),
//! then x + mlp(ln2(x)), with multi-head self-attention (causal for language models, not for
//! encoders such as ViT, BERT or CLIP's) and an MLP C -> ratio·C -> C with GELU (tanh) between.
//! The norm slots are LayerNorm as in GPT, or BatchNorm / none for the layer-norm study.

use super::activation::Activation;
use super::attention::{AttnImpl, SelfAttention};
use super::dropout::DropPass;
use super::linear::{linear, linear_normal, InitKind, Linear};
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

/// How a block's linears start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlockInit {
    /// PyTorch's nn.Linear default: weights and biases U(−1/√fan_in, 1/√fan_in)
    Torch,
    /// GPT-2's (Radford et al. 2019, as nanoGPT): weights N(0, std²), zero biases, and the two
    /// projections back into the residual stream (`attn.c_proj`, `mlp.fc1`) N(0, proj_std²),
    /// with proj_std = std/√(2·layers) so the stream's variance does not grow with depth
    Normal { std: f64, proj_std: f64 },
}

impl BlockInit {
    /// GPT-2's init for a stack of `n_layer` blocks: std 0.02, projections 0.02/√(2·n_layer).
    pub fn gpt2(n_layer: usize) -> Self {
        BlockInit::Normal { std: 0.02, proj_std: 0.02 / (2.0 * n_layer.max(1) as f64).sqrt() }
    }

    fn linear(self, d_in: usize, d_out: usize, proj: bool, vb: candle_nn::VarBuilder) -> Result<Linear> {
        match self {
            BlockInit::Torch => linear(d_in, d_out, InitKind::Default, vb),
            BlockInit::Normal { std, proj_std } => linear_normal(d_in, d_out, if proj { proj_std } else { std }, vb),
        }
    }
}

/// A block named `name` with PyTorch's default init of its linears (`block_init` chooses).
/// Parameters: `{name}.ln1.*`, `{name}.attn.c_attn.*`, `{name}.attn.c_proj.*`, `{name}.ln2.*`,
/// `{name}.mlp.fc0.*`, `{name}.mlp.fc1.*`; with batch norm also the running statistics buffers
/// of ln1 and ln2.
pub fn block(cfg: &BlockCfg, params: &Params, name: &str, device: &Device) -> Result<Block> {
    block_init(cfg, BlockInit::Torch, params, name, device)
}

/// A block named `name` (parameters as `block`'s) whose linears start as `init` says.
pub fn block_init(cfg: &BlockCfg, init: BlockInit, params: &Params, name: &str, device: &Device) -> Result<Block> {
    let c = cfg.n_embd;
    let vb = params.vb(device).pp(name);
    if cfg.n_head == 0 || !c.is_multiple_of(cfg.n_head) {
        candle_core::bail!("attention: n_embd {c} is not divisible by n_head {}", cfg.n_head);
    }
    let (va, vm) = (vb.pp("attn"), vb.pp("mlp"));
    let attn = SelfAttention::new(
        init.linear(c, 3 * c, false, va.pp("c_attn"))?,
        init.linear(c, c, true, va.pp("c_proj"))?,
        cfg.n_head,
        cfg.causal,
    )?;
    let hidden = cfg.mlp_ratio * c;
    let mlp = Mlp::from_layers(
        vec![init.linear(c, hidden, false, vm.pp("fc0"))?, init.linear(hidden, c, true, vm.pp("fc1"))?],
        Activation::GeluTanh,
    );
    Ok(Block {
        ln1: norm(cfg.norm, c, params, &format!("{name}.ln1"), device)?,
        attn,
        ln2: norm(cfg.norm, c, params, &format!("{name}.ln2"), device)?,
        mlp,
    })
}

impl Block {
    /// (B, T, C) -> (B, T, C); `train` selects BatchNorm's batch statistics. No reshapes: the
    /// norms, linears and attention take (B, T, ·) as it is (each reshape node would cost
    /// candle's backward a zero fill and an add).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_with(x, train, AttnImpl::Fused)
    }

    /// `forward_t` with the attention heads computed by `imp` (tests: fused against composed).
    pub fn forward_with(&self, x: &Tensor, train: bool, imp: AttnImpl) -> Result<Tensor> {
        let x = (x + self.attn.forward_with(&self.ln1.forward_t(x, train)?, imp)?)?;
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
