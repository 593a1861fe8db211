//! `rnn`: the simple recurrent network (Elman 1990; trained by gradient through time, Williams &
//! Zipser 1989): one layer of tanh units that see the current input and their own previous
//! state,
//!
//!   h_t = tanh(W_ih·x_t + b + W_hh·h_{t−1}),   h_0 = 0,
//!
//! and a linear read-out of h_t. As a char-LM the input x_t is one-hot, so W_ih·x_t + b is one
//! row of a (V, H) table, looked up per step. Composed candle ops per step (the recurrence is a
//! chain of small (B, H)·(H, H) products); backprop through time is candle's autograd.
//! Tasks (`data.task`): the char-LM (default) and the adding problem, for the `lstm` claim.

use super::adding::{build_task, SeqRegressor};
use super::charlm::CharModel;
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::nn::embedding::Embedding;
use crate::nn::linear::{linear, InitKind, Linear};
use candle_core::{Module, Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// tanh hidden units H
    pub hidden: usize,
}

pub type Config = super::Config<super::adding::DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 2000,
            batch_size: 32,
            lr: 2e-3,
            clip_grad_norm: 1.0,
            eval_every: 250,
            ..Default::default()
        },
        data: Default::default(),
        model: ModelCfg { hidden: 128 },
    }
}

/// What feeds the recurrence at step t: W_ih·x_t + b, (B, H).
pub enum RnnInput {
    /// one-hot characters: row v of this (V, H) table is W_ih·onehot(v) + b
    Chars(Embedding),
    /// real-valued inputs (B, T, I): x_t·W_ihᵀ + b
    Real(Linear),
}

pub struct ElmanRnn {
    pub input: RnnInput,
    /// W_hh: (H, H)
    pub weight_hh: Tensor,
    /// H -> outputs (V logits, or one value)
    pub head: Linear,
    pub hidden: usize,
}

/// U(−1/√H, 1/√H), PyTorch's nn.RNN init for every recurrent weight.
fn uniform(hidden: usize) -> Init {
    let k = 1.0 / (hidden as f64).sqrt();
    Init::Uniform { lo: -k, up: k }
}

/// A char-LM: V one-hot characters in, V logits out. Parameters `rnn.input.weight` (V, H),
/// `rnn.weight_hh`, `head.*`.
pub fn char_rnn(vocab: usize, hidden: usize, vb: VarBuilder) -> Result<ElmanRnn> {
    let table = vb.pp("rnn.input").get_with_hints((vocab, hidden), "weight", uniform(hidden))?;
    elman(RnnInput::Chars(Embedding { weight: table }), hidden, vocab, vb)
}

/// `inputs` real values per step in, one value out (read at the last step).
pub fn real_rnn(inputs: usize, hidden: usize, vb: VarBuilder) -> Result<ElmanRnn> {
    let v = vb.pp("rnn.input");
    let weight = v.get_with_hints((hidden, inputs), "weight", uniform(hidden))?;
    let bias = Some(v.get_with_hints(hidden, "bias", uniform(hidden))?);
    elman(RnnInput::Real(Linear { weight, bias }), hidden, 1, vb)
}

fn elman(input: RnnInput, hidden: usize, out: usize, vb: VarBuilder) -> Result<ElmanRnn> {
    let weight_hh = vb.pp("rnn").get_with_hints((hidden, hidden), "weight_hh", uniform(hidden))?;
    Ok(ElmanRnn { input, weight_hh, head: linear(hidden, out, InitKind::Default, vb.pp("head"))?, hidden })
}

impl ElmanRnn {
    /// The input terms W_ih·x_t + b of every step, each (B, H). Computed per step from the
    /// step's own input (not sliced from one (B, T, H) product, whose slices' backward would
    /// each write a full (B, T, H) gradient).
    fn input_terms(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let t_len = x.dim(1)?;
        let x = x.transpose(0, 1)?.contiguous()?; // (T, B) ids or (T, B, I) values; no gradient
        (0..t_len)
            .map(|t| match &self.input {
                RnnInput::Chars(table) => table.forward(&x.get(t)?),
                RnnInput::Real(lin) => lin.forward(&x.get(t)?),
            })
            .collect()
    }

    /// h_1..h_T, each (B, H), from h_0 = 0.
    pub fn hidden_states(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let w_hh_t = self.weight_hh.t()?;
        let mut hs: Vec<Tensor> = Vec::new();
        for a in self.input_terms(x)? {
            let z = match hs.last() {
                None => a,
                Some(h) => (a + crate::ops::flops::matmul(h, &w_hh_t)?)?,
            };
            hs.push(z.tanh()?);
        }
        Ok(hs)
    }
}

impl CharModel for ElmanRnn {
    fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let h = Tensor::stack(&self.hidden_states(tokens)?, 1)?; // (B, T, H)
        self.head.forward(&h.reshape((b * t, self.hidden))?) // (B·T, V)
    }
}

impl SeqRegressor for ElmanRnn {
    fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let hs = self.hidden_states(x)?;
        let h_last = hs.last().ok_or_else(|| candle_core::Error::Msg("rnn: an empty sequence".into()))?;
        self.head.forward(h_last)?.squeeze(1) // (B,)
    }
}

fn build(c: &Config, device: &candle_core::Device) -> anyhow::Result<Box<dyn crate::experiment::Experiment>> {
    if c.model.hidden == 0 {
        anyhow::bail!(crate::error::DlError::BadValue {
            context: "model.hidden".into(),
            message: "the rnn needs at least one hidden unit".into()
        });
    }
    let h = c.model.hidden;
    build_task(&c.data, &c.train, device, |v, vb| char_rnn(v, h, vb), |i, vb| real_rnn(i, h, vb))
}

pub static FAMILY: Family =
    Family { id: "rnn", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;
    use candle_core::Device;

    /// h_2 by hand for H = 1: h_1 = tanh(u[x_1]), h_2 = tanh(u[x_2] + w·h_1).
    #[test]
    fn two_steps_match_the_equations() -> Result<()> {
        let dev = Device::Cpu;
        let (u, w) = ([0.3f32, -0.8], 0.5f32);
        let net = ElmanRnn {
            input: RnnInput::Chars(Embedding { weight: Tensor::new(&[[u[0]], [u[1]]], &dev)? }),
            weight_hh: Tensor::new(&[[w]], &dev)?,
            head: Linear { weight: Tensor::new(&[[1f32]], &dev)?, bias: None },
            hidden: 1,
        };
        let hs = net.hidden_states(&Tensor::new(&[[0u32, 1]], &dev)?)?;
        let h1 = u[0].tanh();
        let h2 = (u[1] + w * h1).tanh();
        assert!((hs[0].flatten_all()?.to_vec1::<f32>()?[0] - h1).abs() < 1e-6);
        assert!((hs[1].flatten_all()?.to_vec1::<f32>()?[0] - h2).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn every_parameter_gets_a_gradient_in_both_tasks() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(1);
        let net = char_rnn(7, 8, p.vb(&dev))?;
        let ids = Tensor::new(&[[1u32, 2, 3, 4], [6, 5, 0, 1]], &dev)?;
        let loss =
            crate::nn::loss::cross_entropy(&net.logits(&ids.narrow(1, 0, 3)?)?, &ids.narrow(1, 1, 3)?.flatten_all()?)?;
        assert_every_param_gets_a_gradient(&p, &loss)?;
        let p = Params::new(2);
        let net = real_rnn(2, 8, p.vb(&dev))?;
        let x = Tensor::new(&[[[0.5f32, 1.0], [-0.2, 0.0], [0.1, -1.0]]], &dev)?;
        assert_every_param_gets_a_gradient(&p, &net.predict(&x)?.sqr()?.sum_all()?)
    }
}
