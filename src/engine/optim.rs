//! Our own optimizers, with state we can save and restore exactly (candle's AdamW keeps its
//! moments private and defaults weight_decay to 0.01). Each update is one fused,
//! in-place pass per parameter (`crate::ops::optim`), bitwise equal to the composed tensor-op
//! formulas it replaced (`adamw_update_ref`, `sgd_update_ref`, tested there).
//!
//! Weight decay is always explicit (`train.weight_decay`, default 0) and applies to weight
//! matrices and kernels (rank ≥ 2) only, never to biases or norm gains:
//! - SGD, momentum, Nesterov and Adam use L2 decay: g ← g + λ·w (Krogh & Hertz 1991).
//! - AdamW decouples it: w ← w − lr·λ·w, outside the adaptive step (Loshchilov & Hutter 2019).

pub use crate::config::OptimKind;
use crate::config::TrainConfig;
use crate::ops::optim::{adamw_step, sgd_step, AdamHp, StateBuf};
use crate::params::Params;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug)]
pub struct OptimHp {
    pub kind: OptimKind,
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl OptimHp {
    /// The optimizer settings of a `[train]` section.
    pub fn of(tc: &TrainConfig) -> Self {
        Self {
            kind: tc.optimizer,
            momentum: tc.momentum,
            beta1: tc.beta1,
            beta2: tc.beta2,
            eps: tc.eps,
            weight_decay: tc.weight_decay,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    /// momentum buffer (SGD family) or first moment m (Adam family), on the parameter's device;
    /// empty = no state yet
    m: StateBuf,
    /// second moment v (Adam family)
    v: StateBuf,
}

pub struct Optimizer {
    hp: OptimHp,
    slots: Vec<Slot>,
    /// number of updates applied so far (Adam's bias correction uses it)
    pub t: u64,
}

impl Optimizer {
    /// An optimizer of every trainable parameter of `params`.
    pub fn new(params: &Params, hp: OptimHp) -> Self {
        Self::over(params.trainable(), hp)
    }

    /// An optimizer of the named variables `vars` (a parameter group).
    pub fn over(vars: Vec<(String, Var)>, hp: OptimHp) -> Self {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let (m, v) = (StateBuf::new(var.device()), StateBuf::new(var.device()));
                Slot { name, var, m, v }
            })
            .collect();
        Self { hp, slots, t: 0 }
    }

    /// One update of every parameter that has a gradient in `grads`, each gradient taken as
    /// `g * s` when `grad_scale` is `Some(s)`: the step's gradient clipping, done inside the
    /// update's pass over each parameter on the CPU (bitwise as scaling the gradients first,
    /// without writing them again).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: Option<f64>) -> Result<()> {
        self.t += 1;
        let hp = self.hp;
        let adam = AdamHp {
            beta1: hp.beta1,
            beta2: hp.beta2,
            eps: hp.eps,
            weight_decay: hp.weight_decay,
            decoupled: hp.kind == OptimKind::Adamw,
        };
        for s in self.slots.iter_mut() {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            let w = &s.var;
            match hp.kind {
                OptimKind::Sgd => sgd_step(w, g, grad_scale, None, 0.0, false, hp.weight_decay, lr)?,
                OptimKind::Momentum | OptimKind::Nesterov => {
                    let nesterov = hp.kind == OptimKind::Nesterov;
                    sgd_step(w, g, grad_scale, Some(&mut s.m), hp.momentum, nesterov, hp.weight_decay, lr)?
                }
                OptimKind::Adam | OptimKind::Adamw => {
                    adamw_step(w, g, grad_scale, &mut s.m, &mut s.v, &adam, self.t, lr)?
                }
            }
        }
        Ok(())
    }

    /// State tensors named `optim/<param>/m` and `optim/<param>/v`, shaped like the parameter.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![];
        for s in &self.slots {
            for (key, buf) in [("m", &s.m), ("v", &s.v)] {
                if let Some(t) = buf.to_tensor(s.var.shape(), s.var.device())? {
                    out.push((format!("optim/{}/{key}", s.name), t));
                }
            }
        }
        Ok(out)
    }

    pub fn load_state(&mut self, map: &BTreeMap<String, Tensor>, t: u64) -> Result<()> {
        self.t = t;
        for s in self.slots.iter_mut() {
            let read = |key: &str| -> Result<StateBuf> {
                StateBuf::from_tensor(map.get(&format!("optim/{}/{key}", s.name)), s.var.device())
            };
            s.m = read("m")?;
            s.v = read("v")?;
        }
        Ok(())
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
        opt.step(&loss.backward()?, 0.1, None)?;
        let got = p.trainable()[0].1.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        for (g, want) in got.iter().zip([0.1f32, -0.1, 0.1, -0.1]) {
            assert!((g - want).abs() < 1e-6, "{got:?}");
        }
        Ok(())
    }

    /// One step on loss = Σ w (gradient 1) from w = 0 at lr 1, μ 0.9: the buffer starts at g, so
    /// momentum moves w by −g and Nesterov by −(g + μ·g) = −1.9 (PyTorch's forms); plain SGD −g.
    #[test]
    fn momentum_and_nesterov_differ_from_the_first_step() -> Result<()> {
        for (kind, want) in [(OptimKind::Sgd, -1f32), (OptimKind::Momentum, -1.0), (OptimKind::Nesterov, -1.9)] {
            let p = Params::new(0);
            let w = p.vb(&Device::Cpu).get_with_hints(2, "w", candle_nn::init::ZERO)?;
            let hp = OptimHp { kind, momentum: 0.9, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
            let mut opt = Optimizer::new(&p, hp);
            opt.step(&w.sum_all()?.backward()?, 1.0, None)?;
            let got = p.trainable()[0].1.as_tensor().to_vec1::<f32>()?;
            assert!(got.iter().all(|g| (g - want).abs() < 1e-6), "{kind:?}: {got:?}");
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
        opt.step(&loss.backward()?, 0.1, None)?;
        let vals: Vec<f32> = p
            .trainable()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0])
            .collect();
        // sorted by name: b, w
        assert!((vals[0] - 1.0).abs() < 1e-6 && (vals[1] - 0.95).abs() < 1e-6, "{vals:?}");
        Ok(())
    }

    #[test]
    fn state_round_trips_through_tensors() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let w = p.vb(&dev).get_with_hints((2, 3), "w", candle_nn::init::ONE)?;
        let hp =
            OptimHp { kind: OptimKind::Adam, momentum: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = Optimizer::new(&p, hp);
        opt.step(&w.sqr()?.sum_all()?.backward()?, 0.1, None)?;
        let saved: BTreeMap<String, Tensor> = opt.state()?.into_iter().collect();
        assert_eq!(saved["optim/w/v"].dims(), &[2, 3]);
        let mut back = Optimizer::new(&p, hp);
        back.load_state(&saved, opt.t)?;
        let again: BTreeMap<String, Tensor> = back.state()?.into_iter().collect();
        for (k, t) in &saved {
            assert_eq!(t.flatten_all()?.to_vec1::<f32>()?, again[k].flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }
}
