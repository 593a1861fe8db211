//! A multilayer perceptron: `dims = [d_in, h1, ..., d_out]`, an activation after every layer
//! but the last, and optional dropout after each hidden activation (training only). Layers are
//! named `fc0`, `fc1`, ...

use super::activation::Activation;
use super::dropout::Dropout;
use super::linear::{linear, InitKind, Linear};
use crate::rng::Rng;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

pub struct Mlp {
    layers: Vec<Linear>,
    act: Activation,
    dropout: Dropout,
}

impl Mlp {
    pub fn new(dims: &[usize], act: Activation, init: InitKind, vb: VarBuilder) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| linear(d[0], d[1], init, vb.pp(format!("fc{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, act, dropout: Dropout::new(0.0) })
    }

    /// An MLP of ready-made layers (e.g. initialised each its own way), `act` after every one
    /// but the last.
    pub fn from_layers(layers: Vec<Linear>, act: Activation) -> Self {
        Self { layers, act, dropout: Dropout::new(0.0) }
    }

    /// Drops hidden units with probability `p` in training (Srivastava et al. 2014).
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = Dropout::new(p);
        self
    }

    /// The weight matrices (not biases), e.g. for their norm.
    pub fn weights(&self) -> impl Iterator<Item = &Tensor> {
        self.layers.iter().map(|l| &l.weight)
    }

    /// (B, d_in) -> (B, d_out) logits.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_trace(x, false)?.0)
    }

    /// Training-mode forward: dropout (if any) after each hidden activation, masks from `rng`.
    pub fn forward_train(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = if i == last {
                l.forward(&h)?
            } else {
                self.dropout.forward(&l.forward_act(&h, self.act)?, true, rng)?
            };
        }
        Ok(h)
    }

    /// Like `forward`, also returning every hidden activation when `trace` is set.
    pub fn forward_trace(&self, x: &Tensor, trace: bool) -> Result<(Tensor, Vec<Tensor>)> {
        let mut h = x.clone();
        let mut hidden = vec![];
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            if i == last {
                h = l.forward(&h)?;
            } else {
                h = l.forward_act(&h, self.act)?;
                if trace {
                    hidden.push(h.clone());
                }
            }
        }
        Ok((h, hidden))
    }
}
