//! `mlp`: backprop at scale (Rumelhart et al. 1986, applied to MNIST as in LeCun et al. 1998's
//! baselines): a 784-512-256-10 ReLU network. Claim: two hidden layers reach ≥ 98% test
//! accuracy on MNIST.

use super::classify::{ClassModel, Classifier};
use super::{from_table, to_table, Family};
use crate::config::TrainConfig;
use crate::data::vision;
use crate::error::DlError;
use crate::experiment::Experiment;
use crate::nn::activation::Activation;
use crate::nn::linear::InitKind;
use crate::nn::mlp::Mlp;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// mnist | fashion | digits8 (mnist/fashion fall back to digits8 when not fetched)
    pub dataset: String,
    /// keep only this many training images; 0 = all
    pub train_size: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// hidden layer widths
    pub hidden: Vec<usize>,
    /// sigmoid | tanh | relu | gelu | gelu_tanh
    pub act: Activation,
    /// default | he | glorot | normal
    pub init: InitKind,
    /// probability of dropping each hidden unit in training; 0 = no dropout
    pub dropout: f64,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig { steps: 3000, batch_size: 128, lr: 1e-3, eval_every: 500, ..Default::default() },
        data: DataCfg { dataset: "mnist".into(), train_size: 0 },
        model: ModelCfg { hidden: vec![512, 256], act: Activation::Relu, init: InitKind::Default, dropout: 0.0 },
    }
}

pub struct MlpModel {
    pub net: Mlp,
}

impl ClassModel for MlpModel {
    fn logits(&self, x: &Tensor, train: bool, rng: &mut Rng) -> Result<Tensor> {
        let x = x.flatten_from(1)?; // (B, 1, H, W) -> (B, H·W)
        if train {
            self.net.forward_train(&x, rng)
        } else {
            self.net.forward(&x)
        }
    }

    /// Fraction of hidden activations that are exactly zero (ReLU sparsity, Glorot et al. 2011).
    fn probe(&self, x: &Tensor) -> Result<crate::experiment::Metrics> {
        let (_, hidden) = self.net.forward_trace(&x.flatten_from(1)?, true)?;
        let (mut zeros, mut total) = (0.0, 0.0);
        for h in &hidden {
            zeros += h.eq(0f32)?.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64;
            total += h.elem_count() as f64;
        }
        // ‖W‖: the L2 norm of all weight matrices together (Krogh & Hertz's weight-decay study)
        let mut sq = 0f64;
        for w in self.net.weights() {
            sq += w.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        Ok(crate::experiment::Metrics::from([
            ("zero_frac".to_string(), zeros / total.max(1.0)),
            ("weight_norm".to_string(), sq.sqrt()),
        ]))
    }
}

/// Builds an MLP classifier from a config with the mlp family's shape (shared by the
/// activation study, which differs only in its defaults).
pub fn build_classifier(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    if c.model.hidden.contains(&0) {
        return Err(DlError::BadValue {
            context: "model.hidden".into(),
            message: format!("every hidden layer needs at least one unit, got {:?}", c.model.hidden),
        }
        .into());
    }
    let data = vision::load(&c.data.dataset, c.data.train_size)?;
    let params = Params::new(c.train.seed);
    let mut dims = vec![data.train.dim()];
    dims.extend(&c.model.hidden);
    dims.push(data.train.classes);
    if !(0.0..1.0).contains(&c.model.dropout) {
        return Err(DlError::BadValue {
            context: "model.dropout".into(),
            message: format!("must be in [0, 1), got {}", c.model.dropout),
        }
        .into());
    }
    let net = Mlp::new(&dims, c.model.act, c.model.init, params.vb(device))?.with_dropout(c.model.dropout);
    Ok(Box::new(Classifier::new(MlpModel { net }, params, data, c.train.batch_size, c.train.seed, device)))
}

/// Trainable parameters of an MLP `d_in -> hidden... -> classes` (weights and biases).
pub fn param_count(d_in: usize, hidden: &[usize], classes: usize) -> usize {
    let mut dims = vec![d_in];
    dims.extend(hidden);
    dims.push(classes);
    dims.windows(2).map(|d| d[0] * d[1] + d[1]).sum()
}

/// Parameters of the `mlp` milestone's default net on 28x28 MNIST (535,818): what the CNN
/// claims compare their parameter counts against.
pub fn mnist_param_count() -> usize {
    param_count(28 * 28, &defaults().model.hidden, 10)
}

pub static FAMILY: Family = Family {
    id: "mlp",
    defaults: || to_table(&defaults()),
    build: |t, d| build_classifier(&from_table::<Config>(t)?, d),
};
