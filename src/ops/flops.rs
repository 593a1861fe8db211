//! The training-FLOP counter: the matmul and convolution FLOPs of forward passes, counted by
//! the ops that do them (linear, conv2d, self- and cross-attention, the LSTM, and [`matmul`] for
//! the few plain products models take outside the fused ops), 2 FLOPs per multiply-add. This is
//! the accounting of `dlhist bench` (milestones/workloads.rs): elementwise ops, norms, softmax,
//! embeddings and the optimizer are not counted, attention counts the full T×T scores even when
//! causal, and a run's training FLOPs are 3× the forward count (the backward pass computes two
//! products per forward one).
//!
//! The counter is per thread and counts only inside [`measure`] (the engine wraps each training
//! step's forward passes in it and pauses it for backward and the optimizer): evaluation,
//! sampling and other threads' work are not counted, and tests running side by side do not see
//! each other's FLOPs.

use candle_core::{Result, Tensor};
use std::cell::Cell;

thread_local! {
    /// (counting now, FLOPs counted so far)
    static STATE: Cell<(bool, u64)> = const { Cell::new((false, 0)) };
}

/// Adds `flops` to the count, if counting.
pub fn add(flops: u64) {
    STATE.with(|s| {
        let (on, n) = s.get();
        if on {
            s.set((on, n + flops));
        }
    });
}

/// Runs `f` with counting on and returns its result and the FLOPs counted inside (which also
/// count towards an enclosing `measure`).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let prev = STATE.with(|s| s.replace((true, 0)));
    let r = f();
    let (_, n) = STATE.with(|s| s.get());
    STATE.with(|s| s.set((prev.0, if prev.0 { prev.1 + n } else { prev.1 })));
    (r, n)
}

/// Runs `f` with counting off (the backward pass and the optimizer step inside a `measure`).
pub fn paused<R>(f: impl FnOnce() -> R) -> R {
    let (on, _) = STATE.with(|s| s.get());
    STATE.with(|s| s.set((false, s.get().1)));
    let r = f();
    STATE.with(|s| s.set((on, s.get().1)));
    r
}

/// 2·M·N·K: the FLOPs of an (M, K)·(K, N) product.
pub fn product(m: usize, k: usize, n: usize) -> u64 {
    2 * (m as u64) * (k as u64) * (n as u64)
}

/// Attention's two products (scores Q·Kᵀ and weights·V) over all heads: 2 · 2·B·Tq·Tk·C, where
/// C = H·Dh is the width of the queries.
pub fn attention(b: usize, tq: usize, tk: usize, c: usize) -> u64 {
    2 * product(b * tq, c, tk)
}

/// `a.matmul(b)` (candle's, batched over the leading dimensions), counted.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = a.matmul(b)?;
    let k = a.dims().last().copied().unwrap_or(1);
    add(2 * out.elem_count() as u64 * k as u64);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn counts_only_inside_measure_and_not_while_paused() -> Result<()> {
        let a = Tensor::ones((2, 3, 4), candle_core::DType::F32, &Device::Cpu)?;
        let b = Tensor::ones((2, 4, 5), candle_core::DType::F32, &Device::Cpu)?;
        matmul(&a, &b)?; // not counting: no effect
        let (_, n) = measure(|| -> Result<()> {
            matmul(&a, &b)?;
            paused(|| matmul(&a, &b))?;
            let (_, inner) = measure(|| add(7));
            assert_eq!(inner, 7);
            Ok(())
        });
        assert_eq!(n, 2 * 2 * 3 * 4 * 5 + 7);
        assert_eq!(measure(|| ()).1, 0);
        Ok(())
    }
}
