//! The training loss of every classifier and language model, in one place so a fused
//! softmax + cross-entropy can replace it.

use candle_core::{Result, Tensor};

/// Mean cross-entropy of logits (N, K) against class ids (N,) u32: −mean log softmax(z)[y].
/// candle-nn's version is log_softmax + nll, composed of ops with a backward.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, targets)
}
