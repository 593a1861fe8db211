//! The training loss of every classifier and language model: the fused softmax + cross-entropy
//! (`crate::ops::cross_entropy`, one pass per row, O(N) saved; tested there against candle-nn's
//! log_softmax + nll).

use candle_core::{Result, Tensor};

/// Mean cross-entropy of logits (N, K) against class ids (N,) u32: −mean log softmax(z)[y].
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    crate::ops::cross_entropy::softmax_cross_entropy(logits, targets)
}
