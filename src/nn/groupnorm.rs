//! Group normalisation (Wu & He 2018): each sample's channels split into groups, each group
//! normalised by its own mean and variance, then a per-channel gain and bias; independent of
//! the batch, so a diffusion U-Net behaves the same in training and sampling. Optionally fused
//! with the SiLU that follows it. On `crate::ops::groupnorm` (tested there against candle's
//! composed ops; PyTorch's `nn.GroupNorm(groups, C)` followed by `nn.SiLU()`).

use candle_core::{Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

pub struct GroupNorm {
    /// γ: (C,), starts at 1
    pub weight: Tensor,
    /// β: (C,), starts at 0
    pub bias: Tensor,
    pub groups: usize,
    pub eps: f64,
}

/// Group norm over `channels` in `groups` groups, eps 1e-5 (PyTorch's default). Parameters:
/// `weight`, `bias`.
pub fn group_norm(channels: usize, groups: usize, vb: VarBuilder) -> Result<GroupNorm> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        candle_core::bail!("group norm: {channels} channels do not split into {groups} groups");
    }
    let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
    let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
    Ok(GroupNorm { weight, bias, groups, eps: 1e-5 })
}

impl GroupNorm {
    /// (B, C, H, W) -> (B, C, H, W)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::groupnorm::group_norm(x, &self.weight, &self.bias, self.groups, self.eps, false)
    }

    /// SiLU(group norm(x)), in one op.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::groupnorm::group_norm(x, &self.weight, &self.bias, self.groups, self.eps, true)
    }
}
