//! The parameter store: named trainable `Var`s and non-trainable buffers (e.g. BatchNorm's
//! running statistics), created through candle-nn's `VarBuilder` so layers are written the
//! candle-nn way (`linear(784, 512, vb.pp("fc1"))`), but initialised from our seeded RNG.
//!
//! Each tensor's init stream is derived from `(seed, "init/<name>")`, so a parameter's initial
//! value depends only on the seed and its name, not on construction order.
//!
//! Parameters can be frozen by name or name prefix (`freeze`): they leave `trainable()`, so the
//! engine keeps no gradient for them (candle's backward may still compute one on its way to
//! the trainable ones; it is dropped), gives them no optimizer state and never updates them.
//! Loads are strict (`load`: every tensor, for resuming) or by name (`load_matching`: for
//! starting from another run, with a report of what matched).

use crate::rng::Rng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    vars: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Var>,
    /// names or prefixes of frozen parameters
    freeze: Vec<String>,
    /// the frozen parameters among `vars`
    frozen: BTreeSet<String>,
}

/// True when `name` is `prefix` or starts with it.
pub fn matches(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix)
}

/// What a by-name load found: tensor names loaded, the model's names the source lacked, and
/// the source's names the model lacks.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
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

    /// Freezes the existing parameters named by `prefixes`, and any created later. Returns how
    /// many are frozen in all; a prefix that matches no parameter is an error naming it.
    pub fn freeze(&self, prefixes: &[String]) -> std::result::Result<usize, String> {
        let mut g = self.inner.lock().unwrap();
        for p in prefixes {
            if !g.vars.keys().any(|n| matches(n, p)) {
                let some: Vec<&String> = g.vars.keys().take(8).collect();
                return Err(format!("train.freeze: `{p}` matches no parameter (names look like {some:?})"));
            }
            if !g.freeze.contains(p) {
                g.freeze.push(p.clone());
            }
        }
        let hit: Vec<String> = g.vars.keys().filter(|n| g.freeze.iter().any(|p| matches(n, p))).cloned().collect();
        g.frozen.extend(hit);
        Ok(g.frozen.len())
    }

    /// Trainable variables, sorted by name (frozen ones excluded).
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let g = self.inner.lock().unwrap();
        g.vars.iter().filter(|(k, _)| !g.frozen.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Frozen parameters, sorted by name.
    pub fn frozen(&self) -> Vec<(String, Var)> {
        let g = self.inner.lock().unwrap();
        g.vars.iter().filter(|(k, _)| g.frozen.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
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
        self.trainable().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Number of frozen scalars.
    pub fn count_frozen(&self) -> usize {
        self.frozen().iter().map(|(_, v)| v.elem_count()).sum()
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

    /// Overwrites the tensors that `map` has under the model's names and reports what matched;
    /// names of optimizer and EMA state (`optim/…`, `ema/…`) are not model tensors and are
    /// ignored. A shape mismatch is an error naming the tensor, and nothing is loaded then.
    pub fn load_matching(&self, map: &BTreeMap<String, Tensor>) -> std::result::Result<LoadReport, String> {
        let g = self.inner.lock().unwrap();
        let ours: BTreeMap<&String, &Var> = g.vars.iter().chain(g.buffers.iter()).collect();
        let mut report = LoadReport::default();
        for (name, var) in &ours {
            match map.get(*name) {
                Some(t) if t.dims() != var.dims() => {
                    return Err(format!(
                        "tensor `{name}` has shape {:?} there, this model's has {:?}",
                        t.dims(),
                        var.dims()
                    ))
                }
                Some(_) => report.loaded.push(name.to_string()),
                None => report.missing.push(name.to_string()),
            }
        }
        for name in report.loaded.iter() {
            ours[&name].set(&map[name]).map_err(|e| e.to_string())?;
        }
        report.unexpected = map
            .keys()
            .filter(|k| !ours.contains_key(k) && !k.starts_with("optim/") && !k.starts_with("ema/"))
            .cloned()
            .collect();
        Ok(report)
    }
}

impl SimpleBackend for Params {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut g = self.inner.lock().unwrap();
        let frozen = g.freeze.iter().any(|p| matches(name, p));
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
        if frozen {
            g.frozen.insert(name.to_string());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn two_layers(p: &Params) -> Result<(Tensor, Tensor)> {
        let vb = p.vb(&Device::Cpu);
        let init = candle_nn::init::Init::Randn { mean: 0.0, stdev: 1.0 };
        Ok((vb.get_with_hints((2, 2), "base.w", init)?, vb.get_with_hints((2, 2), "adapter.w", init)?))
    }

    #[test]
    fn a_frozen_parameter_is_not_trainable_and_stays_frozen_for_parameters_made_later() -> Result<()> {
        let p = Params::new(1);
        p.vb(&Device::Cpu).get_with_hints(1, "base.b", candle_nn::init::ZERO)?;
        assert_eq!(p.freeze(&["base.".into()]), Ok(1));
        let (base, _) = two_layers(&p)?;
        assert_eq!(p.trainable().iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["adapter.w"]);
        assert_eq!((p.count(), p.count_frozen()), (4, 5), "adapter.w; base.b and base.w");
        // a by-name load reaches frozen tensors too
        let ones = Tensor::ones((2, 2), DType::F32, &Device::Cpu)?;
        let r = p.load_matching(&BTreeMap::from([("base.w".to_string(), ones)])).unwrap();
        assert_eq!((r.loaded, r.missing), (vec!["base.w".to_string()], vec!["adapter.w".to_string(), "base.b".into()]));
        assert_eq!(base.flatten_all()?.to_vec1::<f32>()?, vec![1.0; 4]);
        Ok(())
    }

    #[test]
    fn freezing_after_the_build_names_a_prefix_that_matches_nothing() -> Result<()> {
        let p = Params::new(1);
        two_layers(&p)?;
        assert_eq!(p.freeze(&["base".into()]), Ok(1));
        assert!(p.freeze(&["bsae".into()]).unwrap_err().contains("`bsae` matches no parameter"));
        Ok(())
    }

    #[test]
    fn a_by_name_load_reports_missing_and_unexpected_and_rejects_a_shape_mismatch() -> Result<()> {
        let p = Params::new(1);
        two_layers(&p)?;
        let t = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
        let map = BTreeMap::from([
            ("base.w".to_string(), t(&[2, 2])),
            ("head.w".to_string(), t(&[3])),
            ("optim/base.w/m".to_string(), t(&[2, 2])),
        ]);
        let r = p.load_matching(&map).unwrap();
        assert_eq!(r.loaded, ["base.w"]);
        assert_eq!(r.missing, ["adapter.w"]);
        assert_eq!(r.unexpected, ["head.w"]);
        let bad = BTreeMap::from([("adapter.w".to_string(), t(&[2, 3]))]);
        assert!(p.load_matching(&bad).unwrap_err().contains("`adapter.w` has shape [2, 3]"));
        Ok(())
    }
}
