//! The parameter store: named trainable `Var`s and non-trainable buffers (e.g. BatchNorm's
//! running statistics), created through candle-nn's `VarBuilder` so layers are written the
//! candle-nn way (`linear(784, 512, vb.pp("fc1"))`), but initialised from our seeded RNG.
//!
//! Each tensor's init stream is derived from `(seed, "init/<name>")`, so a parameter's initial
//! value depends only on the seed and its name, not on construction order.

use crate::rng::Rng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    vars: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Var>,
}

#[derive(Clone)]
pub struct Params {
    seed: u64,
    inner: Arc<Mutex<Inner>>,
}

fn sample_init(init: Init, shape: &Shape, rng: &mut Rng) -> Vec<f32> {
    let n = shape.elem_count();
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => (0..n).map(|_| (lo + (up - lo) * rng.uniform()) as f32).collect(),
        Init::Randn { mean, stdev } => (0..n).map(|_| (mean + stdev * rng.normal()) as f32).collect(),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    (0..n).map(|_| (-b + 2.0 * b * rng.uniform()) as f32).collect()
                }
                NormalOrUniform::Normal => (0..n).map(|_| (std * rng.normal()) as f32).collect(),
            }
        }
    }
}

impl Params {
    pub fn new(seed: u64) -> Self {
        Self { seed, inner: Arc::new(Mutex::new(Inner::default())) }
    }

    /// A `VarBuilder` whose `get_with_hints` creates (or returns) trainable variables here.
    pub fn vb(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, device.clone())
    }

    /// Registers a non-trainable buffer (saved in checkpoints, never touched by the optimizer).
    pub fn buffer(&self, name: &str, init: Tensor) -> Result<Var> {
        let mut g = self.inner.lock().unwrap();
        if let Some(v) = g.buffers.get(name) {
            return Ok(v.clone());
        }
        let v = Var::from_tensor(&init)?;
        g.buffers.insert(name.to_string(), v.clone());
        Ok(v)
    }

    /// Trainable variables, sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let g = self.inner.lock().unwrap();
        g.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Every tensor that defines the model (trainables and buffers), sorted by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let g = self.inner.lock().unwrap();
        let mut out: Vec<(String, Tensor)> =
            g.vars.iter().chain(g.buffers.iter()).map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Number of trainable scalars.
    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().vars.values().map(|v| v.elem_count()).sum()
    }

    /// Overwrites every tensor from `map`. Strict: a missing name or a shape mismatch is an error,
    /// so a checkpoint of another model cannot half-load.
    pub fn load(&self, map: &BTreeMap<String, Tensor>) -> std::result::Result<(), String> {
        let g = self.inner.lock().unwrap();
        for (name, var) in g.vars.iter().chain(g.buffers.iter()) {
            let t = map.get(name).ok_or_else(|| format!("it has no tensor named `{name}`"))?;
            if t.dims() != var.dims() {
                return Err(format!("tensor `{name}` has shape {:?}, the model expects {:?}", t.dims(), var.dims()));
            }
            var.set(t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl SimpleBackend for Params {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut g = self.inner.lock().unwrap();
        if let Some(v) = g.vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!("parameter {name} requested as {s:?} but exists as {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = Rng::derive(self.seed, &format!("init/{name}"), 0);
        let data = sample_init(h, &s, &mut rng);
        let v = Var::from_tensor(&Tensor::from_vec(data, s, dev)?.to_dtype(dtype)?)?;
        g.vars.insert(name.to_string(), v.clone());
        Ok(v.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let g = self.inner.lock().unwrap();
        match g.vars.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no parameter named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.lock().unwrap().vars.contains_key(name)
    }
}
