//! The engine's features on toy experiments, through the real runner: two parameter groups
//! updated in one step (a tiny GAN on 2-D points), a frozen base with adapters, init_from's
//! report, and exact resumes with groups, a frozen base and an EMA.

use super::checkpoint;
use super::runner::{train, RunDir, RunSpec, Summary};
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Group, Metrics, Split, TrainOut, Updater};
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, Result, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

fn points(rng: &mut Rng, n: usize, dev: &Device) -> Result<Tensor> {
    // a Gaussian blob at (2, −1)
    let v: Vec<f32> =
        (0..n).flat_map(|_| [2.0 + 0.5 * rng.normal() as f32, -1.0 + 0.5 * rng.normal() as f32]).collect();
    Tensor::from_vec(v, (n, 2), dev)
}

/// Generator 2 -> 2 (affine), discriminator 2 -> 8 -> 1; the non-saturating GAN losses.
struct ToyGan {
    params: Params,
    g: Linear,
    d1: Linear,
    d2: Linear,
    dev: Device,
}

impl ToyGan {
    fn new(seed: u64) -> Result<Self> {
        let (params, dev) = (Params::new(seed), Device::Cpu);
        let vb = params.vb(&dev);
        let g = linear(2, 2, InitKind::Default, vb.pp("generator.fc"))?;
        let d1 = linear(2, 8, InitKind::Default, vb.pp("discriminator.fc1"))?;
        let d2 = linear(8, 1, InitKind::Default, vb.pp("discriminator.fc2"))?;
        Ok(Self { params, g, d1, d2, dev })
    }
    fn d(&self, x: &Tensor) -> Result<Tensor> {
        self.d2.forward(&self.d1.forward(x)?.tanh()?)
    }
}

/// −mean log σ(±logits): softplus(∓z) = log(1 + e^(∓z))
fn softplus_mean(z: &Tensor, sign: f64) -> Result<Tensor> {
    ((z * -sign)?.exp()? + 1.0)?.log()?.mean_all()
}

impl Experiment for ToyGan {
    fn params(&self) -> &Params {
        &self.params
    }
    fn steps_per_epoch(&self) -> usize {
        10
    }
    fn groups(&self) -> Vec<Group> {
        vec![
            Group { name: "discriminator", prefixes: vec!["discriminator.".into()] },
            Group { name: "generator", prefixes: vec!["generator.".into()] },
        ]
    }
    fn train_step(&mut self, _step: usize, rng: &mut Rng, up: &mut dyn Updater) -> Result<()> {
        let real = points(rng, 16, &self.dev)?;
        let z = Tensor::from_vec((0..32).map(|_| rng.normal() as f32).collect::<Vec<_>>(), (16, 2), &self.dev)?;
        let fake = self.g.forward(&z)?;
        let loss_d = (softplus_mean(&self.d(&real)?, 1.0)? + softplus_mean(&self.d(&fake.detach())?, -1.0)?)?;
        up.update("discriminator", TrainOut { loss: loss_d, metrics: Metrics::new() })?;
        let loss_g = softplus_mean(&self.d(&fake)?, 1.0)?;
        up.update("generator", TrainOut { loss: loss_g, metrics: Metrics::new() })?;
        Ok(())
    }
    fn evaluate(&mut self, _split: Split) -> Result<Metrics> {
        // distance of the generator's mean output from the blob's centre
        let z = Tensor::zeros((1, 2), candle_core::DType::F32, &self.dev)?;
        let m = self.g.forward(&z)?.flatten_all()?.to_vec1::<f32>()?;
        let dist = ((m[0] - 2.0).powi(2) + (m[1] + 1.0).powi(2)).sqrt() as f64;
        Ok(Metrics::from([("loss".to_string(), dist)]))
    }
    fn data_name(&self) -> String {
        "blob".into()
    }
}

/// A regression y = x·W₀ + x·A·B whose base W₀ can be frozen and whose "adapter" A·B trains.
struct Adapted {
    params: Params,
    base: Linear,
    a: Linear,
    b: Linear,
    dev: Device,
}

impl Adapted {
    fn new(seed: u64, base_out: usize) -> Result<Self> {
        let (params, dev) = (Params::new(seed), Device::Cpu);
        let vb = params.vb(&dev);
        Ok(Self {
            base: linear(4, base_out, InitKind::Default, vb.pp("base"))?,
            a: linear(4, 2, InitKind::Default, vb.pp("adapter.a"))?,
            b: linear(2, 3, InitKind::Default, vb.pp("adapter.b"))?,
            params,
            dev,
        })
    }
    fn loss(&self, rng: &mut Rng) -> Result<Tensor> {
        let x = Tensor::from_vec((0..32).map(|_| rng.normal() as f32).collect::<Vec<_>>(), (8, 4), &self.dev)?;
        let y = (self.base.forward(&x)? + self.b.forward(&self.a.forward(&x)?)?)?;
        let target = (x.narrow(1, 0, 3)? * 2.0)?;
        (y - target)?.sqr()?.mean_all()
    }
}

impl Experiment for Adapted {
    fn params(&self) -> &Params {
        &self.params
    }
    fn steps_per_epoch(&self) -> usize {
        10
    }
    fn train_loss(&mut self, _step: usize, rng: &mut Rng) -> Result<TrainOut> {
        Ok(TrainOut { loss: self.loss(rng)?, metrics: Metrics::new() })
    }
    fn evaluate(&mut self, _split: Split) -> Result<Metrics> {
        Ok(Metrics::from([("loss".to_string(), self.loss(&mut Rng::new(9))?.to_scalar::<f32>()? as f64)]))
    }
    fn data_name(&self) -> String {
        "synthetic".into()
    }
}

fn run(exp: &mut dyn Experiment, tc: &TrainConfig, dir: &Path, resume: bool) -> anyhow::Result<Summary> {
    let text = toml::to_string(&BTreeMap::from([("train", tc)]))?;
    let spec = RunSpec {
        name: "toy",
        config_text: &text,
        config_hash: "toy",
        train: tc,
        dir: RunDir(dir.to_path_buf()),
        resume,
        progress: false,
        echo: false,
    };
    train(&spec, exp, &Device::Cpu)
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    checkpoint::load(path, &Device::Cpu)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn values(p: &Params) -> BTreeMap<String, Vec<f32>> {
    p.tensors().into_iter().map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap())).collect()
}

fn tc(steps: usize) -> TrainConfig {
    TrainConfig { steps, batch_size: 16, lr: 0.01, ckpt_every: 5, log_every: 1, ..Default::default() }
}

#[test]
fn a_two_group_gan_updates_both_groups_every_step_with_their_own_settings() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = tc(1).with_groups(&["generator", "discriminator"]);
    cfg.groups.get_mut("discriminator").unwrap().lr = Some(0.05);
    let mut gan = ToyGan::new(1)?;
    let before = values(&gan.params);
    run(&mut gan, &cfg, &dir.path().join("one"), false)?;
    let after = values(&gan.params);
    for name in before.keys() {
        assert_ne!(before[name], after[name], "{name} did not move in one step");
    }
    // the first Adam step moves every weight by about its group's lr
    let moved = |n: &str| (after[n][0] - before[n][0]).abs();
    assert!(
        (moved("discriminator.fc1.weight") - 0.05).abs() < 1e-3 && (moved("generator.fc.weight") - 0.01).abs() < 1e-3
    );
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(dir.path().join("one/metrics.jsonl"))?.lines().nth(1).unwrap())?;
    for k in ["loss_generator", "loss_discriminator", "lr_discriminator", "grad_norm_generator"] {
        assert!(line[k].is_number(), "{k} missing from {line}");
    }
    assert_eq!(line["lr_discriminator"], 0.05);
    Ok(())
}

#[test]
fn a_two_group_run_resumes_to_the_weights_and_optimizer_state_of_a_straight_run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = |steps| TrainConfig { ema: 0.9, ..tc(steps).with_groups(&["generator", "discriminator"]) };
    run(&mut ToyGan::new(3)?, &cfg(20), &dir.path().join("straight"), false)?;
    run(&mut ToyGan::new(3)?, &cfg(10), &dir.path().join("resumed"), false)?;
    run(&mut ToyGan::new(3)?, &cfg(20), &dir.path().join("resumed"), true)?;
    for f in ["ckpt/latest.safetensors", "model.safetensors"] {
        let (a, b) = (tensors(&dir.path().join("straight").join(f)), tensors(&dir.path().join("resumed").join(f)));
        assert_eq!(a, b, "{f}");
        if f.starts_with("ckpt") {
            // both groups' Adam moments and the EMA are in the checkpoint
            assert!(a.contains_key("optim/generator.fc.weight/v") && a.contains_key("optim/discriminator.fc2.bias/m"));
            assert!(a.contains_key("ema/generator.fc.weight"));
        }
    }
    Ok(())
}

#[test]
fn the_final_weights_of_an_ema_run_are_the_averages() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = TrainConfig { ema: 0.8, ..tc(12) };
    let mut exp = Adapted::new(2, 3)?;
    run(&mut exp, &cfg, dir.path(), false)?;
    let (model, ckpt) =
        (tensors(&dir.path().join("model.safetensors")), tensors(&dir.path().join("ckpt/latest.safetensors")));
    assert_eq!(model["adapter.a.weight"], ckpt["ema/adapter.a.weight"]);
    assert_ne!(model["adapter.a.weight"], ckpt["adapter.a.weight"], "the raw weights differ from their average");
    Ok(())
}

#[test]
fn a_frozen_base_stays_bitwise_unchanged_and_its_checkpoints_hold_only_the_adapters() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let base_dir = dir.path().join("base");
    run(&mut Adapted::new(5, 3)?, &tc(10), &base_dir, false)?;
    let base = tensors(&base_dir.join("model.safetensors"));

    let cfg =
        |steps| TrainConfig { init_from: base_dir.display().to_string(), freeze: vec!["base.".into()], ..tc(steps) };
    let mut exp = Adapted::new(6, 3)?;
    let s = run(&mut exp, &cfg(20), &dir.path().join("lora"), false)?;
    assert_eq!(s.frozen_params, 4 * 3 + 3);
    assert_eq!(s.params, 4 * 2 + 2 + 2 * 3 + 3);
    let now = values(&exp.params);
    assert_eq!(now["base.weight"], base["base.weight"]);
    assert_eq!(now["base.bias"], base["base.bias"]);
    assert_ne!(now["adapter.a.weight"], base["adapter.a.weight"], "the adapters trained");

    let lora = dir.path().join("lora");
    for f in ["model.safetensors", "ckpt/latest.safetensors"] {
        let l = checkpoint::load(&lora.join(f), &Device::Cpu)?;
        assert!(l.tensors.keys().all(|k| !k.contains("base.")), "{f}: {:?}", l.tensors.keys());
        assert_eq!(
            l.get(checkpoint::BASE_SHA256),
            Some(checkpoint::sha256_file(&base_dir.join("model.safetensors"))?.as_str())
        );
        // loading through the reference gives the whole model back
        let full = checkpoint::load_full(&lora.join(f), &Device::Cpu)?;
        assert_eq!(full.tensors["base.weight"].flatten_all()?.to_vec1::<f32>()?, base["base.weight"]);
    }
    // resumes exactly through the reference
    let half = dir.path().join("half");
    run(&mut Adapted::new(6, 3)?, &cfg(10), &half, false)?;
    run(&mut Adapted::new(6, 3)?, &cfg(20), &half, true)?;
    assert_eq!(tensors(&half.join("ckpt/latest.safetensors")), tensors(&lora.join("ckpt/latest.safetensors")));

    // a changed base is refused with a reason
    run(&mut Adapted::new(7, 3)?, &tc(3), &dir.path().join("other"), false)?;
    std::fs::copy(dir.path().join("other/model.safetensors"), base_dir.join("model.safetensors"))?;
    let e = run(&mut Adapted::new(6, 3)?, &cfg(30), &half, true).unwrap_err().to_string();
    assert!(e.contains("retrained or overwritten"), "{e}");
    Ok(())
}

#[test]
fn init_from_reports_loaded_missing_and_unexpected_names_and_rejects_a_shape_mismatch() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    // the source run has a ToyGan's names: nothing of Adapted's but nothing fits either
    run(&mut Adapted::new(5, 3)?, &tc(4), &src, false)?;
    let cfg = TrainConfig { init_from: src.display().to_string(), ..tc(2) };
    let s = run(&mut Adapted::new(6, 3)?, &cfg, &dir.path().join("same"), false)?;
    let init = s.init_from.expect("reported");
    assert_eq!(init.report.loaded.len(), 6);
    assert!(init.report.missing.is_empty() && init.report.unexpected.is_empty());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("same/summary.json"))?)?;
    assert_eq!(summary["init_from"]["loaded"].as_array().unwrap().len(), 6);

    let mut gan = ToyGan::new(1)?;
    let s = run(
        &mut gan,
        &TrainConfig { init_from: src.display().to_string(), ..tc(1).with_groups(&["generator", "discriminator"]) },
        &dir.path().join("gan"),
        false,
    )?;
    let r = s.init_from.unwrap().report;
    assert!(r.loaded.is_empty());
    assert_eq!(r.missing.len(), 6);
    assert_eq!(
        r.unexpected,
        ["adapter.a.bias", "adapter.a.weight", "adapter.b.bias", "adapter.b.weight", "base.bias", "base.weight"]
    );

    // a base of another width: the error names the tensor
    let e = run(&mut Adapted::new(6, 5)?, &cfg, &dir.path().join("wide"), false).unwrap_err();
    assert!(format!("{e:#}").contains("`base.bias` has shape [3]"), "{e:#}");
    // a run that does not exist
    let gone = TrainConfig { init_from: dir.path().join("nope").display().to_string(), ..tc(2) };
    let e = run(&mut Adapted::new(6, 3)?, &gone, &dir.path().join("x"), false).unwrap_err();
    assert!(format!("{e:#}").contains("neither a run directory"), "{e:#}");
    Ok(())
}

/// `Adapted`, logging which evaluations the runner asks for; its training-data metric is `fit`.
struct Logged {
    inner: Adapted,
    asked: Vec<&'static str>,
}

impl Experiment for Logged {
    fn params(&self) -> &Params {
        self.inner.params()
    }
    fn steps_per_epoch(&self) -> usize {
        self.inner.steps_per_epoch()
    }
    fn train_loss(&mut self, step: usize, rng: &mut Rng) -> Result<TrainOut> {
        self.inner.train_loss(step, rng)
    }
    fn evaluate(&mut self, split: Split) -> Result<Metrics> {
        self.asked.push(if split == Split::Val { "val" } else { "test" });
        self.inner.evaluate(split)
    }
    fn evaluate_fit(&mut self) -> Result<Metrics> {
        self.asked.push("fit");
        Ok(Metrics::from([("fit".to_string(), 1.0)]))
    }
    fn evaluates_fit(&self) -> bool {
        true
    }
    fn data_name(&self) -> String {
        self.inner.data_name()
    }
}

#[test]
fn a_run_without_heldout_evaluations_scores_only_training_data_and_trains_the_same_weights() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let every = TrainConfig { eval_every: 4, ..tc(8) };
    let mut full = Logged { inner: Adapted::new(3, 3)?, asked: vec![] };
    let s_full = run(&mut full, &every, &dir.path().join("full"), false)?;
    // the start, update 4, the end's validation and test
    assert_eq!(full.asked, ["val", "val", "val", "test"]);
    assert!(s_full.final_metrics.contains_key("test_loss"));

    let mut fit = Logged { inner: Adapted::new(3, 3)?, asked: vec![] };
    let s = run(&mut fit, &TrainConfig { eval_heldout: false, ..every }, &dir.path().join("fit"), false)?;
    assert_eq!(fit.asked, ["fit", "fit", "fit"], "no held-out split is scored, not even the test set at the end");
    assert_eq!(s.final_metrics.keys().collect::<Vec<_>>(), ["val_fit"]);
    assert_eq!(s.initial.keys().collect::<Vec<_>>(), ["val_fit"]);
    let logged = std::fs::read_to_string(dir.path().join("fit/metrics.jsonl"))?;
    assert_eq!(logged.lines().filter(|l| l.contains("\"split\":\"val\"") && l.contains("\"fit\":1.0")).count(), 3);
    // evaluation does not touch training: the same weights either way
    assert_eq!(values(&fit.inner.params), values(&full.inner.params));
    // an experiment that measures nothing on its training data is refused before it starts
    let none = dir.path().join("none");
    let e = run(&mut Adapted::new(3, 3)?, &TrainConfig { eval_heldout: false, ..tc(2) }, &none, false).unwrap_err();
    assert!(format!("{e:#}").contains("measures nothing on its training data"), "{e:#}");
    assert!(!none.exists(), "no run folder is left behind");
    Ok(())
}
