//! Our own optimizers, with state we can save and restore exactly (candle's AdamW keeps its
//! moments private and defaults weight_decay to 0.01; DESIGN §7).
//!
//! Weight decay is always explicit (`train.weight_decay`, default 0) and applies to weight
//! matrices and kernels (rank ≥ 2) only, never to biases or norm gains:
//! - SGD, momentum, Nesterov and Adam use L2 decay: g ← g + λ·w (Krogh & Hertz 1991).
//! - AdamW decouples it: w ← w − lr·λ·w, outside the adaptive step (Loshchilov & Hutter 2019).

use super::params::Params;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug)]
pub struct OptimHp {
    pub kind: OptimKind,
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    /// momentum buffer (SGD family) or first moment m (Adam family)
    m: Option<Tensor>,
    /// second moment v (Adam family)
    v: Option<Tensor>,
}

pub struct Optimizer {
    hp: OptimHp,
    slots: Vec<Slot>,
    /// number of updates applied so far (Adam's bias correction uses it)
    pub t: u64,
}

impl Optimizer {
    pub fn new(params: &Params, hp: OptimHp) -> Self {
        let slots = params
            .trainable()
            .into_iter()
            .map(|(name, var)| {
                let decay = var.rank() >= 2;
                Slot { name, var, decay, m: None, v: None }
            })
            .collect();
        Self { hp, slots, t: 0 }
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let hp = self.hp;
        let t = self.t as i32;
        for s in self.slots.iter_mut() {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let w = s.var.as_tensor();
            let l2 = s.decay && hp.weight_decay > 0.0 && hp.kind != OptimKind::Adamw;
            let g = if l2 { (g + (w * hp.weight_decay)?)? } else { g.clone() };
            let update = match hp.kind {
                OptimKind::Sgd => g,
                OptimKind::Momentum | OptimKind::Nesterov => {
                    // PyTorch's form: b ← μ·b + g; step along b (or g + μ·b for Nesterov).
                    let b = match &s.m {
                        Some(b) => ((b * hp.momentum)? + &g)?,
                        None => g.clone(),
                    };
                    let u = if hp.kind == OptimKind::Nesterov { (&g + (&b * hp.momentum)?)? } else { b.clone() };
                    s.m = Some(b);
                    u
                }
                OptimKind::Adam | OptimKind::Adamw => {
                    let m = match &s.m {
                        Some(m) => ((m * hp.beta1)? + (&g * (1.0 - hp.beta1))?)?,
                        None => (&g * (1.0 - hp.beta1))?,
                    };
                    let g2 = g.sqr()?;
                    let v = match &s.v {
                        Some(v) => ((v * hp.beta2)? + (g2 * (1.0 - hp.beta2))?)?,
                        None => (g2 * (1.0 - hp.beta2))?,
                    };
                    let mhat = (&m / (1.0 - hp.beta1.powi(t)))?;
                    let vhat = (&v / (1.0 - hp.beta2.powi(t)))?;
                    let u = (mhat / (vhat.sqrt()? + hp.eps)?)?;
                    s.m = Some(m);
                    s.v = Some(v);
                    u
                }
            };
            let mut next = (w - (update * lr)?)?;
            if hp.kind == OptimKind::Adamw && s.decay && hp.weight_decay > 0.0 {
                next = (next - (w * (lr * hp.weight_decay))?)?;
            }
            s.var.set(&next)?;
        }
        Ok(())
    }

    /// State tensors named `optim/<param>/m` and `optim/<param>/v`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        for s in &self.slots {
            if let Some(m) = &s.m {
                out.push((format!("optim/{}/m", s.name), m.clone()));
            }
            if let Some(v) = &s.v {
                out.push((format!("optim/{}/v", s.name), v.clone()));
            }
        }
        out
    }

    pub fn load_state(&mut self, map: &BTreeMap<String, Tensor>, t: u64) {
        self.t = t;
        for s in self.slots.iter_mut() {
            s.m = map.get(&format!("optim/{}/m", s.name)).cloned();
            s.v = map.get(&format!("optim/{}/v", s.name)).cloned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One Adam step from PyTorch's update rule, written out by hand:
    /// m = (1-β1)g, v = (1-β2)g², w ← w − lr·(m/(1-β1))/(sqrt(v/(1-β2))+ε) = w − lr·g/(|g|+ε).
    #[test]
    fn first_adam_step_moves_each_weight_by_lr_times_sign_of_grad() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let w = p.vb(&dev).get_with_hints((2, 2), "w", candle_nn::init::ZERO)?;
        let mut opt = Optimizer::new(
            &p,
            OptimHp { kind: OptimKind::Adam, momentum: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
        );
        let target = Tensor::new(&[[1f32, -2.], [3., -4.]], &dev)?;
        let loss = (w.clone() - &target)?.sqr()?.sum_all()?;
        opt.step(&loss.backward()?, 0.1)?;
        let got = p.trainable()[0].1.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        for (g, want) in got.iter().zip([0.1f32, -0.1, 0.1, -0.1]) {
            assert!((g - want).abs() < 1e-6, "{got:?}");
        }
        Ok(())
    }

    #[test]
    fn adamw_decays_matrices_but_not_biases() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let vb = p.vb(&dev);
        let w = vb.get_with_hints((1, 1), "w", candle_nn::init::ONE)?;
        let b = vb.get_with_hints(1, "b", candle_nn::init::ONE)?;
        let mut opt = Optimizer::new(
            &p,
            OptimHp { kind: OptimKind::Adamw, momentum: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.5 },
        );
        // (x − 1)² at x = 1 has an exact zero gradient, so only decay can move the weights
        // (candle prunes `x * 0.0` from the graph, which would leave no gradient at all)
        let loss = ((w - 1.0)?.sqr()?.sum_all()? + (b - 1.0)?.sqr()?.sum_all()?)?;
        opt.step(&loss.backward()?, 0.1)?;
        let vals: Vec<f32> = p
            .trainable()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0])
            .collect();
        // sorted by name: b, w
        assert!((vals[0] - 1.0).abs() < 1e-6 && (vals[1] - 0.95).abs() < 1e-6, "{vals:?}");
        Ok(())
    }
}
