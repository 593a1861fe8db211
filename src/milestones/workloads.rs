//! The `dlhist bench` workloads: the milestones' own models (mlp, lenet, lstm, gpt, the
//! diffusion U-Net, the GAN) with their default sizes, each on one fixed batch of seeded
//! synthetic data (random images and labels, random tokens), so every trial trains on the same
//! data. The engine times
//! them through [`Experiment`] like any milestone, with the one shared training step.

use super::classify::ClassModel;
use super::{gpt, lenet, lstm, mlp};
use crate::config::OptimKind;
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Metrics, Split, TrainOut};
use crate::nn::mlp::Mlp;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// Seed of the weights and of the synthetic batch.
const SEED: u64 = 1234;

pub struct Workload {
    pub name: &'static str,
    /// the shapes, in words
    pub shapes: &'static str,
    pub build: fn(&Device) -> Result<Built>,
}

/// A workload ready to time.
pub struct Built {
    pub exp: Box<dyn Experiment>,
    /// FLOPs of one training step: 3 × the forward pass's matmul/conv FLOPs (the backward pass
    /// computes two products, the gradients of the input and of the weights, for each forward
    /// one). Counted at 2 FLOPs per multiply-add; elementwise ops, norms, softmax and the
    /// optimizer are not counted. The data input's gradient (first layer) is counted too:
    /// candle computes it, PyTorch does not.
    pub flops_per_step: f64,
}

pub static WORKLOADS: [Workload; 6] = [
    Workload { name: "mlp", shapes: "784-512-256-10, ReLU, batch 128", build: build_mlp },
    Workload {
        name: "lenet",
        shapes: "conv 1-6 5x5, pool 2, conv 6-16 5x5, pool 2, fc 256-120-84-10, ReLU; 28x28, batch 64",
        build: build_lenet,
    },
    Workload { name: "lstm", shapes: "vocab 65, embed 64, LSTM 256, seq 64, batch 32", build: build_lstm },
    Workload { name: "gpt", shapes: "vocab 65, 4 layers, 4 heads, embd 128, block 64, batch 32", build: build_gpt },
    Workload {
        name: "unet",
        shapes:
            "diffusion U-Net 16/32/64 channels, GroupNorm(8)+SiLU, time embedding 64; 28x28, batch 64, MSE on the noise",
        build: build_diffusion_unet,
    },
    Workload {
        name: "gan",
        shapes: "G 100-256-512-1024-784, D 784-1024-512-256-1, LeakyReLU 0.2, D dropout 0.3; batch 64, a D update then a G update",
        build: build_gan,
    },
];

/// The recipe of every workload: AdamW, lr 1e-3, weight decay 0.01 (explicit, matrices only),
/// no clipping.
pub fn train_config() -> TrainConfig {
    TrainConfig {
        optimizer: OptimKind::Adamw,
        lr: 1e-3,
        weight_decay: 0.01,
        clip_grad_norm: 0.0,
        seed: SEED,
        ..Default::default()
    }
}

/// One fixed batch and the loss of the model on it.
struct Synthetic {
    params: Params,
    loss: Box<dyn Fn() -> Result<Tensor>>,
}

impl Experiment for Synthetic {
    fn params(&self) -> &Params {
        &self.params
    }
    fn steps_per_epoch(&self) -> usize {
        1
    }
    fn train_loss(&mut self, _step: usize, _rng: &mut Rng) -> Result<TrainOut> {
        Ok(TrainOut { loss: (self.loss)()?, metrics: Metrics::new() })
    }
    fn evaluate(&mut self, _split: Split) -> Result<Metrics> {
        let loss = (self.loss)()?.to_scalar::<f32>()? as f64;
        Ok(Metrics::from([("loss".to_string(), loss)]))
    }
    fn data_name(&self) -> String {
        "synthetic".into()
    }
}

/// (B, 1, S, S) uniform [0, 1) pixels and (B,) labels below `classes`.
fn images(b: usize, s: usize, classes: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut rng = Rng::derive(SEED, "bench/images", 0);
    let x: Vec<f32> = (0..b * s * s).map(|_| rng.uniform() as f32).collect();
    let y: Vec<u32> = (0..b).map(|_| rng.below(classes) as u32).collect();
    Ok((Tensor::from_vec(x, (b, 1, s, s), device)?, Tensor::from_vec(y, b, device)?))
}

/// (B, T) input tokens and the (B, T) targets that follow them, from one (B, T + 1) draw.
fn tokens(b: usize, t: usize, vocab: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut rng = Rng::derive(SEED, "bench/tokens", 0);
    let ids: Vec<u32> = (0..b * (t + 1)).map(|_| rng.below(vocab) as u32).collect();
    let ids = Tensor::from_vec(ids, (b, t + 1), device)?;
    Ok((ids.narrow(1, 0, t)?.contiguous()?, ids.narrow(1, 1, t)?.contiguous()?))
}

/// A classifier's loss on a fixed batch, as `classify::Classifier` computes it.
fn classifier<M: ClassModel + 'static>(params: Params, model: M, x: Tensor, y: Tensor) -> Box<dyn Experiment> {
    let loss = move || {
        let mut rng = Rng::new(0); // the models here use no randomness in training
        crate::nn::loss::cross_entropy(&model.logits(&x, true, &mut rng)?, &y)
    };
    Box::new(Synthetic { params, loss: Box::new(loss) })
}

fn build_mlp(device: &Device) -> Result<Built> {
    let (b, s, classes) = (128, 28, 10);
    let m = mlp::defaults().model;
    let mut dims = vec![s * s];
    dims.extend(&m.hidden);
    dims.push(classes);
    let params = Params::new(SEED);
    let net = Mlp::new(&dims, m.act, m.init, params.vb(device))?;
    // 2·in·out per example and layer: 784·512 + 512·256 + 256·10
    let fwd: usize = dims.windows(2).map(|d| 2 * d[0] * d[1]).sum::<usize>() * b;
    let (x, y) = images(b, s, classes, device)?;
    Ok(Built { exp: classifier(params, mlp::MlpModel { net }, x, y), flops_per_step: 3.0 * fwd as f64 })
}

fn build_lenet(device: &Device) -> Result<Built> {
    let b = 64;
    let cfg = lenet::ModelCfg::default();
    let params = Params::new(SEED);
    let net = lenet::lenet(&cfg, &params, device)?;
    let (x, y) = images(b, cfg.image_size, cfg.classes, device)?;
    Ok(Built { exp: classifier(params, net, x, y), flops_per_step: 3.0 * cfg.forward_flops(b)? })
}

fn build_lstm(device: &Device) -> Result<Built> {
    let (b, t) = (32, 64);
    let cfg = lstm::ModelCfg::default();
    let params = Params::new(SEED);
    let net = lstm::char_lstm(&cfg, params.vb(device))?;
    let (x, y) = tokens(b, t, cfg.vocab, device)?;
    let loss = move || net.loss(&x, &y);
    Ok(Built {
        exp: Box::new(Synthetic { params, loss: Box::new(loss) }),
        flops_per_step: 3.0 * cfg.forward_flops(b, t),
    })
}

fn build_gpt(device: &Device) -> Result<Built> {
    let b = 32;
    let cfg = gpt::ModelCfg::default();
    let params = Params::new(SEED);
    let net = gpt::gpt(&cfg, &params, device)?;
    let (x, y) = tokens(b, cfg.block, cfg.vocab, device)?;
    let loss = move || net.loss(&x, &y);
    Ok(Built {
        exp: Box::new(Synthetic { params, loss: Box::new(loss) }),
        flops_per_step: 3.0 * cfg.forward_flops(b, cfg.block),
    })
}

/// The diffusion preset's U-Net step: noisy 28x28 images at random timesteps, the MSE of the
/// predicted noise against the true noise (as `diffusion`'s training loss computes it).
fn build_diffusion_unet(device: &Device) -> Result<Built> {
    use crate::nn::time_unet::{time_unet, TimeUNetCfg};
    let (b, s) = (64, 28);
    let m = super::diffusion::defaults().model;
    let cfg = TimeUNetCfg { in_channels: 1, channels: m.channels.clone(), groups: m.groups, classes: 0, cond_dim: 0 };
    let params = Params::new(SEED);
    let net = time_unet(&cfg, params.vb(device))?;
    let mut rng = Rng::derive(SEED, "bench/diffusion", 0);
    let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let x = Tensor::from_vec(randn(b * s * s), (b, 1, s, s), device)?;
    let eps = Tensor::from_vec(randn(b * s * s), (b, 1, s, s), device)?;
    let t: Vec<f32> = (0..b).map(|i| ((i * 997) % m.timesteps) as f32).collect();
    let loss = move || (net.forward(&x, &t, None)? - &eps)?.sqr()?.mean_all();
    Ok(Built {
        exp: Box::new(Synthetic { params, loss: Box::new(loss) }),
        flops_per_step: 3.0 * cfg.forward_flops(b, s),
    })
}

/// The gan preset's step: D on real and generated images, then G through D (two parameter
/// groups, each with the workloads' AdamW).
fn build_gan(device: &Device) -> Result<Built> {
    let (exp, flops_per_step) = super::gan::synthetic(SEED, device)?;
    Ok(Built { exp, flops_per_step })
}

/// The workload called `name`, if there is one.
pub fn get(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FLOP counts the issue quotes (gpt ≈ 10.6, lstm ≈ 4.2 GFLOP per step), and the two
    /// small ones by hand.
    #[test]
    fn flop_counts_per_step() -> Result<()> {
        let dev = Device::Cpu;
        let g = |name: &str| -> Result<f64> { Ok((get(name).unwrap().build)(&dev)?.flops_per_step / 1e9) };
        assert!((g("gpt")? - 10.57).abs() < 0.01);
        assert!((g("lstm")? - 4.23).abs() < 0.01);
        assert!((g("mlp")? - 3.0 * 2.0 * 128.0 * 535_040.0 / 1e9).abs() < 1e-9); // 0.411
        assert!((g("lenet")? - 3.0 * 64.0 * 563_280.0 / 1e9).abs() < 1e-9); // 0.108

        // 2.25: G 1,483,776 and D 1,458,432 multiply-adds per image; D sees 3 images per G's 1
        let gan = 3.0 * 2.0 * 64.0 * (1_483_776.0 + 3.0 * 1_458_432.0) / 1e9;
        assert!((g("gan")? - gan).abs() < 1e-9);
        Ok(())
    }

    /// The FLOPs a run records (`ops::flops`, counted by the ops during a real training step)
    /// are the bench's hand counts, exactly: both are sums of the same integer products
    /// (2·M·K·N per matmul, the full T×T attention scores), well inside f64's exact integers.
    #[test]
    fn the_counted_flops_of_a_training_step_equal_the_hand_counts() -> anyhow::Result<()> {
        use crate::engine::step::{train_step, Groups, Step};
        let tc = train_config();
        for name in ["mlp", "lenet", "lstm", "gpt", "gan"] {
            let mut built = (get(name).unwrap().build)(&Device::Cpu)?;
            let mut groups = Groups::new(built.exp.as_ref(), &tc, 10)?;
            for step in 0..2 {
                let Step::Updated(out) = train_step(built.exp.as_mut(), &mut groups, None, &tc, step)? else {
                    panic!("{name}: the step did not update")
                };
                assert_eq!(3.0 * out.forward_flops as f64, built.flops_per_step, "{name}, step {step}");
            }
        }
        Ok(())
    }
}
