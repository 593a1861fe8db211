//! The activations study (Glorot & Bengio 2010; Glorot, Bordes & Bengio 2011; Hendrycks &
//! Gimpel 2016): the same deep (10-layer) MLP on mnist with sigmoid, tanh, relu or gelu.
//! Deep sigmoid nets saturate and stall; relu trains and its activations are sparse; gelu
//! matches or beats relu.

use super::mlp::{build_classifier, Config, DataCfg, ModelCfg};
use super::{from_table, to_table, Family};
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
