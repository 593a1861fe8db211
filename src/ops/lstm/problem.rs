//! A seeded LSTM problem (inputs, loss weights) shared by the op's bench and tests.

use super::{lstm_seq, lstm_seq_ref};
use candle_core::{bail, DType, Device, Result, Tensor};

/// `shape`-sized tensor of N(0, scale²) from our seeded RNG, as a trainable variable.
fn random_var(rng: &mut crate::rng::Rng, shape: &[usize], scale: f64) -> Result<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
    Ok(candle_core::Var::from_vec(v, shape, &Device::Cpu)?.as_tensor().clone())
}

/// The inputs of one LSTM problem (all variables) and the random weights r_h, r_hT, r_cT of the
/// scalar loss Σ h⊙r_h + Σ h_T⊙r_hT + Σ c_T⊙r_cT, which sends a gradient into every output.
#[derive(Clone)]
pub(super) struct Problem {
    pub(super) x: Tensor,
    pub(super) w_ih: Tensor,
    pub(super) w_hh: Tensor,
    pub(super) b: Tensor,
    pub(super) h0: Tensor,
    pub(super) c0: Tensor,
    r: [Tensor; 3],
    /// x is held as (T, B, D) and passed transposed: a non-contiguous input
    time_major: bool,
    /// which of the terms with h, h_T and c_T the loss has
    loss_terms: [bool; 3],
}

type LstmFn<'a> =
    &'a dyn Fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, &Tensor, bool) -> Result<(Tensor, Tensor, Tensor)>;

impl Problem {
    pub(super) fn new(seed: u64, bsz: usize, t_len: usize, d: usize, hid: usize) -> Result<Self> {
        let mut rng = crate::rng::Rng::new(seed);
        // PyTorch's init scale 1/√H for the weights; unit inputs; a non-zero initial state
        let s = 1.0 / (hid as f64).sqrt();
        Ok(Self {
            x: random_var(&mut rng, &[bsz, t_len, d], 1.0)?,
            w_ih: random_var(&mut rng, &[4 * hid, d], s)?,
            w_hh: random_var(&mut rng, &[4 * hid, hid], s)?,
            b: random_var(&mut rng, &[4 * hid], s)?,
            h0: random_var(&mut rng, &[bsz, hid], 0.5)?,
            c0: random_var(&mut rng, &[bsz, hid], 0.5)?,
            r: [
                random_var(&mut rng, &[bsz, t_len, hid], 1.0)?.detach(),
                random_var(&mut rng, &[bsz, hid], 1.0)?.detach(),
                random_var(&mut rng, &[bsz, hid], 1.0)?.detach(),
            ],
            time_major: false,
            loss_terms: [true; 3],
        })
    }

    /// The same problem with a loss of only some of the outputs.
    #[cfg(test)]
    pub(super) fn with_loss_terms(mut self, loss_terms: [bool; 3]) -> Self {
        self.loss_terms = loss_terms;
        self
    }

    /// The same problem with x held as (T, B, D), so that the op sees a strided x.
    #[cfg(test)]
    pub(super) fn with_time_major_x(mut self) -> Result<Self> {
        let x_tbd = self.x.transpose(0, 1)?.contiguous()?;
        self.x = candle_core::Var::from_tensor(&x_tbd)?.as_tensor().clone();
        self.time_major = true;
        Ok(self)
    }

    /// Forward, loss, backward: the outputs and the gradients of (x, w_ih, w_hh, b, h0, c0).
    pub(super) fn run(&self, f: LstmFn, forget_gate: bool) -> Result<([Tensor; 3], Vec<Tensor>)> {
        let (out, g) = self.run_some(f, forget_gate)?;
        let g = g.into_iter().collect::<Option<Vec<_>>>();
        let Some(g) = g else { bail!("lstm_seq: no gradient reached an input") };
        Ok((out, g))
    }

    /// `run`, with None for an input no gradient reached.
    pub(super) fn run_some(&self, f: LstmFn, forget_gate: bool) -> Result<([Tensor; 3], Vec<Option<Tensor>>)> {
        let x = if self.time_major { self.x.transpose(0, 1)? } else { self.x.clone() };
        let (h, h_last, c_last) = f(&x, &self.w_ih, &self.w_hh, &self.b, &self.h0, &self.c0, forget_gate)?;
        let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu)?;
        for ((out, r), used) in [&h, &h_last, &c_last].into_iter().zip(&self.r).zip(self.loss_terms) {
            if used {
                loss = loss.add(&out.mul(r)?.sum_all()?)?;
            }
        }
        let grads = loss.backward()?;
        let g = [&self.x, &self.w_ih, &self.w_hh, &self.b, &self.h0, &self.c0].map(|v| grads.get(v).cloned());
        Ok(([h, h_last, c_last], g.to_vec()))
    }
}

/// The `lstm` workload's layer: B=32, T=64, D=64 (the embedding), H=256; both variants.
pub fn benches() -> Result<Vec<crate::ops::OpBench>> {
    let (bsz, t_len, d, hid) = (32, 64, 64, 256);
    let p = Problem::new(7, bsz, t_len, d, hid)?;
    let mut out = Vec::new();
    for forget_gate in [true, false] {
        let (pf, pr) = (p.clone(), p.clone());
        out.push(crate::ops::OpBench {
            name: if forget_gate { "lstm_seq" } else { "lstm_seq (no forget gate)" },
            shape: format!("B={bsz}, T={t_len}, D={d}, H={hid}"),
            fused: Box::new(move || pf.run(&lstm_seq, forget_gate).map(|_| ())),
            reference: Box::new(move || pr.run(&lstm_seq_ref, forget_gate).map(|_| ())),
        });
    }
    Ok(out)
}
