//! A one-layer LSTM over a whole sequence (Hochreiter & Schmidhuber 1997; the forget gate of
//! Gers, Schmidhuber & Cummins 2000), composed of candle ops that have a backward.
//! candle-nn's `rnn::lstm` recomputes the input projection at every step and has no switch for
//! the forget gate (DESIGN §7); here the projection of all T inputs is one matmul, and the
//! recurrence is one function, [`lstm_seq_ref`], so a fused kernel can take its place.
//!
//! Gates in PyTorch's order i, f, g, o; parameters named as PyTorch's nn.LSTM
//! (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`), with the same U(−1/√H, 1/√H) init.

use candle_core::{Result, Tensor, D};
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
    })
}

impl Lstm {
    /// x: (B, T, I), from zero state -> every hidden state h: (B, T, H).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, i) = x.dims3()?;
        // the input's share of every gate at every step, in one matmul: (B·T, I)·W_ihᵀ -> (B·T, 4H)
        let bias = (&self.bias_ih + &self.bias_hh)?;
        let xp = x.reshape((b * t, i))?.matmul(&self.weight_ih.t()?)?.broadcast_add(&bias)?;
        let xp = xp.reshape((b, t, 4 * self.hidden))?;
        let h0 = Tensor::zeros((b, self.hidden), x.dtype(), x.device())?;
        let (h, _, _) = lstm_seq_ref(&xp, &self.weight_hh, &h0, &h0, self.forget_gate)?;
        Ok(h)
    }
}

/// The recurrence, given the projected inputs xp = x·W_ihᵀ + b: (B, T, 4H), W_hh: (4H, H) and
/// the initial state h0, c0: (B, H). For t = 1..T:
///   [i f g o] = xp_t + h_{t−1}·W_hhᵀ
///   c_t = σ(f)⊙c_{t−1} + σ(i)⊙tanh(g)      (without the forget gate: c_{t−1} + σ(i)⊙tanh(g))
///   h_t = σ(o)⊙tanh(c_t)
/// Returns (every h_t: (B, T, H), h_T: (B, H), c_T: (B, H)).
pub fn lstm_seq_ref(
    xp: &Tensor,
    w_hh: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, t, four_h) = xp.dims3()?;
    let hd = four_h / 4;
    let xp = xp.transpose(0, 1)?.contiguous()?; // (T, B, 4H): each step's slice is contiguous
    let w_hh_t = w_hh.t()?; // (H, 4H)
    let (mut h, mut c) = (h0.clone(), c0.clone());
    let mut hs = Vec::with_capacity(t);
    for step in 0..t {
        let z = (xp.get(step)? + h.matmul(&w_hh_t)?)?; // (B, 4H)
        let gate = |k: usize| z.narrow(D::Minus1, k * hd, hd); // (B, H)
        let i = candle_nn::ops::sigmoid(&gate(0)?)?;
        let g = gate(2)?.tanh()?;
        let o = candle_nn::ops::sigmoid(&gate(3)?)?;
        c = if forget_gate {
            let f = candle_nn::ops::sigmoid(&gate(1)?)?;
            ((f * &c)? + (i * g)?)?
        } else {
            (&c + (i * g)?)?
        };
        h = (o * c.tanh()?)?;
        hs.push(h.clone());
    }
    Ok((Tensor::stack(&hs, 1)?, h, c)) // (B, T, H)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One step by hand, scalar: H = 1, all of xp's gates given, h0 = c0 = 0.5, W_hh = 0.
    #[test]
    fn one_step_matches_the_equations_with_and_without_the_forget_gate() -> Result<()> {
        let dev = Device::Cpu;
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        let (zi, zf, zg, zo) = (0.3f32, -0.2, 0.7, 1.1);
        let xp = Tensor::new(&[[[zi, zf, zg, zo]]], &dev)?; // (1, 1, 4)
        let w = Tensor::zeros((4, 1), candle_core::DType::F32, &dev)?;
        let s0 = Tensor::new(&[[0.5f32]], &dev)?;
        for forget in [true, false] {
            let (_, h, c) = lstm_seq_ref(&xp, &w, &s0, &s0, forget)?;
            let keep = if forget { sig(zf) } else { 1.0 };
            let c_want = keep * 0.5 + sig(zi) * zg.tanh();
            let h_want = sig(zo) * c_want.tanh();
            let (c, h) = (c.flatten_all()?.to_vec1::<f32>()?[0], h.flatten_all()?.to_vec1::<f32>()?[0]);
            assert!((c - c_want).abs() < 1e-6 && (h - h_want).abs() < 1e-6, "{forget}: {c} {h}");
        }
        Ok(())
    }
}
