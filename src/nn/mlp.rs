//! A multilayer perceptron: `dims = [d_in, h1, ..., d_out]`, an activation after every layer
//! but the last. Layers are named `fc0`, `fc1`, ...

use super::activation::Activation;
use super::linear::{linear, InitKind, Linear};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

pub struct Mlp {
    layers: Vec<Linear>,
    act: Activation,
}

impl Mlp {
    pub fn new(dims: &[usize], act: Activation, init: InitKind, vb: VarBuilder) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| linear(d[0], d[1], init, vb.pp(format!("fc{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, act })
    }

    /// (B, d_in) -> (B, d_out) logits.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_trace(x, false)?.0)
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
