//! A one-layer LSTM over a whole sequence (Hochreiter & Schmidhuber 1997; the forget gate of
//! Gers, Schmidhuber & Cummins 2000). candle-nn's `rnn::lstm` recomputes the input projection at
//! every step and has no switch for the forget gate; this layer runs the fused
//! whole-sequence op (`crate::ops::lstm::lstm_seq`: the batch in the vector lanes, each step one
//! register-tiled product W·[x_t; h_{t-1}] with the input projection folded in, followed by the
//! gate math; BPTT the same way, then one gemm for dW and one for dx; tested there against a
//! composed per-step reference).
//!
//! Gates in PyTorch's order i, f, g, o; parameters named as PyTorch's nn.LSTM
//! (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`), with the same U(−1/√H, 1/√H) init.

use crate::ops::lstm::{lstm_seq, lstm_seq_truncated};
use candle_core::{Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

pub struct Lstm {
    /// W_ih: (4H, I)
    pub weight_ih: Tensor,
    /// W_hh: (4H, H)
    pub weight_hh: Tensor,
    /// b_ih, b_hh: (4H,) each (two biases, as PyTorch, so parameter counts match)
    pub bias_ih: Tensor,
    pub bias_hh: Tensor,
    pub hidden: usize,
    /// false: the 1997 cell, c_t = c_{t−1} + i⊙g. The weights keep all four gates either way
    /// (the f rows then get no gradient), so a checkpoint's shapes do not depend on the switch.
    pub forget_gate: bool,
    /// true: the 1997 truncated gradient (error through time only along the cell state; see
    /// `ops::lstm::lstm_seq_truncated`); false: full backprop through time
    pub truncated: bool,
}

pub fn lstm(input: usize, hidden: usize, forget_gate: bool, vb: VarBuilder) -> Result<Lstm> {
    let k = 1.0 / (hidden as f64).sqrt();
    let u = Init::Uniform { lo: -k, up: k };
    Ok(Lstm {
        weight_ih: vb.get_with_hints((4 * hidden, input), "weight_ih", u)?,
        weight_hh: vb.get_with_hints((4 * hidden, hidden), "weight_hh", u)?,
        bias_ih: vb.get_with_hints(4 * hidden, "bias_ih", u)?,
        bias_hh: vb.get_with_hints(4 * hidden, "bias_hh", u)?,
        hidden,
        forget_gate,
        truncated: false,
    })
}

impl Lstm {
    /// The same layer trained with the 1997 truncated gradient when `truncated`.
    pub fn with_truncation(mut self, truncated: bool) -> Self {
        self.truncated = truncated;
        self
    }

    /// x: (B, T, I), from zero state -> every hidden state h: (B, T, H).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, _) = x.dims3()?;
        let s0 = Tensor::zeros((b, self.hidden), x.dtype(), x.device())?;
        Ok(self.forward_state(x, &s0, &s0)?.0)
    }

    /// x: (B, T, I) from the state (h0, c0), each (B, H) -> (h (B, T, H), h_T (B, H), c_T (B, H)).
    /// Gradients flow into h0 and c0 (an encoder's final state feeding a decoder; truncated BPTT
    /// carrying the state across batches with `detach`).
    pub fn forward_state(&self, x: &Tensor, h0: &Tensor, c0: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let bias = (&self.bias_ih + &self.bias_hh)?; // (4H,): both biases train, as in PyTorch
        let f = if self.truncated { lstm_seq_truncated } else { lstm_seq };
        f(x, &self.weight_ih, &self.weight_hh, &bias, h0, c0, self.forget_gate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One step by hand, scalar: H = 1, I = 1, x = 1 so the gates' pre-activations are W_ih's
    /// entries (biases and W_hh zero), from h0 = c0 = 0.
    #[test]
    fn one_step_matches_the_equations_with_and_without_the_forget_gate() -> Result<()> {
        let dev = Device::Cpu;
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        let (zi, zf, zg, zo) = (0.3f32, -0.2, 0.7, 1.1);
        for forget in [true, false] {
            let cell = Lstm {
                weight_ih: Tensor::new(&[[zi], [zf], [zg], [zo]], &dev)?,
                weight_hh: Tensor::zeros((4, 1), candle_core::DType::F32, &dev)?,
                bias_ih: Tensor::zeros(4, candle_core::DType::F32, &dev)?,
                bias_hh: Tensor::zeros(4, candle_core::DType::F32, &dev)?,
                hidden: 1,
                forget_gate: forget,
                truncated: false,
            };
            let h = cell.forward(&Tensor::new(&[[[1f32]]], &dev)?)?.flatten_all()?.to_vec1::<f32>()?[0];
            // c0 = 0, so the forget gate has nothing to keep: c1 = σ(i)·tanh(g) either way
            let h_want = sig(zo) * (sig(zi) * zg.tanh()).tanh();
            assert!((h - h_want).abs() < 1e-6, "{forget}: {h} vs {h_want}");
        }
        Ok(())
    }
}
