//! An exponential moving average of the weights (Polyak & Juditsky 1992; used by DDPM, Ho et
//! al. 2020, for sampling): after every step e ← d·e + (1 − d)·w for each trainable tensor,
//! starting from the initial weights. Evaluation and sampling swap the averages in; the
//! checkpoint keeps them as `ema/<name>`, so a resumed run continues the same average.

use crate::ops::optim::{ema_step, StateBuf};
use crate::params::Params;
use candle_core::{Result, Tensor, Var};
use std::collections::BTreeMap;

pub struct Ema {
    decay: f64,
    /// (name, variable, its average on the variable's device; empty until the first update)
    slots: Vec<(String, Var, StateBuf)>,
}

impl Ema {
    /// An average of the trainable tensors of `params`, with weight `decay` on the past.
    pub fn new(params: &Params, decay: f64) -> Self {
        let slots = params
            .trainable()
            .into_iter()
            .map(|(n, v)| {
                let e = StateBuf::new(v.device());
                (n, v, e)
            })
            .collect();
        Self { decay, slots }
    }

    /// Folds the current weights into the average (the first call copies them).
    pub fn update(&mut self) -> Result<()> {
        for (_, var, e) in self.slots.iter_mut() {
            ema_step(var.as_tensor(), e, self.decay)?;
        }
        Ok(())
    }

    /// The averages as `ema/<name>` tensors (the current weights where none is kept yet).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.slots
            .iter()
            .map(|(n, v, e)| {
                let t = match e.to_tensor(v.shape(), v.device())? {
                    Some(t) => t,
                    None => v.as_tensor().copy()?,
                };
                Ok((format!("ema/{n}"), t))
            })
            .collect()
    }

    /// Restores the averages from `ema/<name>` tensors; a missing one is an error.
    pub fn load_state(&mut self, map: &BTreeMap<String, Tensor>) -> std::result::Result<(), String> {
        for (n, var, e) in self.slots.iter_mut() {
            let t = map.get(&format!("ema/{n}")).ok_or_else(|| format!("it keeps no average of `{n}` (ema/{n})"))?;
            *e = StateBuf::from_tensor(Some(t), var.device()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Runs `f` with the averages in place of the weights, then puts the weights back.
    pub fn with_average<T>(&self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut saved = vec![];
        for (_, var, e) in &self.slots {
            if let Some(avg) = e.to_tensor(var.shape(), var.device())? {
                saved.push((var, var.as_tensor().copy()?));
                var.set(&avg)?;
            }
        }
        let out = f();
        for (var, w) in saved {
            var.set(&w)?;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_average_follows_the_closed_form_and_swaps_in_and_out() -> anyhow::Result<()> {
        let p = Params::new(0);
        let w = p.vb(&Device::Cpu).get_with_hints(3, "w", candle_nn::init::ZERO)?;
        let var = p.trainable()[0].1.clone();
        let mut ema = Ema::new(&p, 0.5);
        ema.update()?; // e = w = 0
        var.set(&Tensor::new(&[4f32, 8., -2.], &Device::Cpu)?)?;
        ema.update()?; // e = 0.5·0 + 0.5·w
        var.set(&Tensor::new(&[0f32, 0., 0.], &Device::Cpu)?)?;
        ema.update()?; // e = 0.5·e
        let seen = ema.with_average(|| Ok(w.to_vec1::<f32>()?))?;
        assert_eq!(seen, vec![1.0, 2.0, -0.5]);
        assert_eq!(w.to_vec1::<f32>()?, vec![0.0; 3], "the weights come back");
        let state: BTreeMap<String, Tensor> = ema.state()?.into_iter().collect();
        let mut again = Ema::new(&p, 0.5);
        again.load_state(&state).unwrap();
        assert_eq!(again.with_average(|| Ok(w.to_vec1::<f32>()?))?, seen);
        Ok(())
    }
}
