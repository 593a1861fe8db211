//! The activations study (Glorot & Bengio 2010; Glorot, Bordes & Bengio 2011; Hendrycks &
//! Gimpel 2016): the same deep (10-layer) MLP on mnist with sigmoid, tanh, relu or gelu.
//! Deep sigmoid nets saturate and stall; relu trains and its activations are sparse; gelu
//! matches or beats relu.

use super::mlp::{build_classifier, Config, DataCfg, ModelCfg};
use super::{from_table, metric, to_table, ClaimCtx, Family, Verdict};
use crate::config::OptimKind;
use crate::config::TrainConfig;
use crate::nn::activation::Activation;
use crate::nn::linear::InitKind;

fn defaults() -> Config {
    Config {
        // plain SGD with momentum, as in Glorot & Bengio: adaptive optimizers would mask saturation
        train: TrainConfig {
            steps: 1500,
            batch_size: 128,
            optimizer: OptimKind::Momentum,
            lr: 0.01,
            momentum: 0.9,
            eval_every: 250,
            ..Default::default()
        },
        data: DataCfg { dataset: "mnist".into(), train_size: 0 },
        // 9 hidden layers of 128 + the output layer = 10 weight layers; He init for all four,
        // so relu gets a fair start and sigmoid's stall is its own, not the init's
        model: ModelCfg { hidden: vec![128; 9], act: Activation::Relu, init: InitKind::He, dropout: 0.0 },
    }
}

pub static FAMILY: Family = Family {
    id: "activations",
    defaults: || to_table(&defaults()),
    build: |t, d| build_classifier(&from_table::<Config>(t)?, d),
};

/// Chance-level cross-entropy over 10 classes is ln 10 = 2.30; "stalled" means still above 2.0.
const STALL: f64 = 2.0;

pub fn claim_sigmoid(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("sigmoid", &[])?;
    let loss = metric(&s, "train_loss")?;
    Ok(Verdict {
        value: loss,
        threshold: STALL,
        pass: loss >= STALL,
        detail: format!(
            "sigmoid train loss {loss:.3} after {} steps (chance 2.303); val acc {:.1}%",
            s.steps,
            metric(&s, "val_acc")? * 100.0
        ),
    })
}

pub fn claim_tanh(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let t = metric(&ctx.run("tanh", &[])?, "train_loss")?;
    let s = metric(&ctx.run("sigmoid", &[])?, "train_loss")?;
    Ok(Verdict { value: t, threshold: s, pass: t < s, detail: format!("train loss tanh {t:.3} vs sigmoid {s:.3}") })
}

pub fn claim_relu(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let r = ctx.run("relu", &[])?;
    let zeros = metric(&r, "val_zero_frac")?;
    let acc = metric(&r, "val_acc")?;
    Ok(Verdict {
        value: zeros,
        threshold: 0.5,
        pass: zeros >= 0.5 && acc >= 0.9,
        detail: format!(
            "{:.1}% of relu activations are exactly zero; it trains to {:.1}% val accuracy (needs ≥ 90%)",
            zeros * 100.0,
            acc * 100.0
        ),
    })
}

/// Mean final training loss of `name` over three seeds (one run's noise is ~2% here).
fn mean_loss(ctx: &mut dyn ClaimCtx, name: &str) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for seed in ["1", "2", "3"] {
        total += metric(&ctx.run(name, &[("train.seed", seed)])?, "train_loss")?;
    }
    Ok(total / 3.0)
}

pub fn claim_gelu(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let g = mean_loss(ctx, "gelu")?;
    let r = mean_loss(ctx, "relu")?;
    Ok(Verdict {
        value: g,
        threshold: r,
        pass: g <= r,
        detail: format!("mean train loss over 3 seeds: gelu {g:.4} vs relu {r:.4}"),
    })
}
