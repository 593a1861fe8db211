//! The depth study, `plain` and `residual` (He, Zhang, Ren & Sun, "Deep residual learning for
//! image recognition", CVPR 2016, arXiv 2015), at MLP scale on MNIST: `model.depth` weight layers,
//! each hidden one (linear without bias, batch norm, ReLU), as in the paper's plain nets.
//!
//! - plain: 784 → w, then depth − 2 layers w → w, then w → 10;
//! - residual: the same layers, the depth − 2 middle ones grouped in pairs with an identity
//!   shortcut around each pair, as the paper's basic block: y = ReLU(x + BN(W₂·ReLU(BN(W₁·x)))).
//!
//! With `zero_init_residual` (the `residual` preset) each block's last batch-norm gain starts at
//! 0, so every block starts as the identity (Goyal et al. 2017, now common ResNet practice; the
//! 2015 paper started it at 1): see the registry entry for both results.
//!
//! The paper's finding (its Fig. 1 and 4): a deeper plain net has a *higher training* error than a
//! shallower one (degradation: an optimisation problem, not overfitting, since batch norm keeps
//! the signals healthy), while with shortcuts the deeper net trains better. The metric is the
//! mean training loss over the last stretch of a fixed number of updates.

use super::classify::{ClassModel, Classifier};
use super::{from_table, mlp, to_table, Family};
use crate::config::OptimKind;
use crate::config::TrainConfig;
use crate::data::vision;
use crate::error::DlError;
use crate::experiment::Experiment;
use crate::nn::batchnorm::BatchNorm;
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, ModuleT, Result, Tensor};
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// weight layers, input and output layers included; even, ≥ 4 (residual pairs the middle ones)
    pub depth: usize,
    /// units of every hidden layer
    pub width: usize,
    /// identity shortcuts around each pair of middle layers
    pub residual: bool,
    /// residual nets only: start each block's last batch-norm gain γ at 0, so every block starts
    /// as the identity (Goyal et al. 2017; the 2015 paper started γ at 1)
    pub zero_init_residual: bool,
    /// true: the paper's convolutional CIFAR family (`resnet_cifar`): depth = 6n + 2 layers,
    /// width = the first stage's channels
    #[serde(default)]
    pub conv: bool,
}

/// One hidden layer: W·x (no bias: batch norm's β is the bias), then batch norm.
struct Layer {
    w: Linear,
    bn: BatchNorm,
}

impl Layer {
    /// `gamma0`: the initial batch-norm gain γ (1, or 0 for a block that starts as the identity).
    fn new(d_in: usize, d_out: usize, name: &str, gamma0: f64, params: &Params, device: &Device) -> Result<Self> {
        let vb = params.vb(device).pp(name);
        // the store returns an existing variable, so creating γ first sets BatchNorm's start
        vb.pp("bn").get_with_hints(d_out, "weight", Init::Const(gamma0))?;
        // He et al. 2015's init for ReLU nets: N(0, 2/fan_in)
        let he =
            Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanIn, non_linearity: NonLinearity::ReLU };
        let w = Linear { weight: vb.get_with_hints((d_out, d_in), "weight", he)?, bias: None };
        let bn = BatchNorm::new(d_out, params, &format!("{name}.bn"), vb.pp("bn"), device)?;
        Ok(Self { w, bn })
    }

    /// (B, d_in) -> (B, d_out), before the ReLU
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.w.forward(x)?, train)
    }
}

pub struct DeepNet {
    /// depth − 1 hidden layers: `layer0` (784 → w), then `layer1` ... (w → w)
    layers: Vec<Layer>,
    /// w → 10, with a bias
    out: Linear,
    residual: bool,
}

pub fn deep_net(cfg: &ModelCfg, d_in: usize, params: &Params, device: &Device) -> Result<DeepNet> {
    let dims = std::iter::once(d_in).chain(std::iter::repeat(cfg.width)).take(cfg.depth);
    let dims: Vec<usize> = dims.collect(); // [784, w, w, ...]: depth − 1 hidden layers

    // middle layers pair up as (1, 2), (3, 4), ...: the even ones end a residual block
    let ends_block = |i: usize| cfg.residual && i >= 2 && i.is_multiple_of(2);
    let layers = dims
        .windows(2)
        .enumerate()
        .map(|(i, d)| {
            let gamma0 = if cfg.zero_init_residual && ends_block(i) { 0.0 } else { 1.0 };
            Layer::new(d[0], d[1], &format!("layer{i}"), gamma0, params, device)
        })
        .collect::<Result<Vec<_>>>()?;
    let out = linear(cfg.width, 10, InitKind::Default, params.vb(device).pp("out"))?;
    Ok(DeepNet { layers, out, residual: cfg.residual })
}

impl ClassModel for DeepNet {
    /// (B, 1, H, W) -> (B, 10) logits
    fn logits(&self, x: &Tensor, train: bool, _rng: &mut Rng) -> Result<Tensor> {
        let mut h = self.layers[0].forward(&x.flatten_from(1)?, train)?.relu()?; // (B, w)
        let middle = &self.layers[1..];
        if self.residual {
            for pair in middle.chunks(2) {
                let f = pair[1].forward(&pair[0].forward(&h, train)?.relu()?, train)?; // F(x)
                h = (h + f)?.relu()?; // ReLU(x + F(x))
            }
        } else {
            for layer in middle {
                h = layer.forward(&h, train)?.relu()?;
            }
        }
        self.out.forward(&h)
    }
}

pub type Config = super::Config<mlp::DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        // SGD with momentum as the paper (lr 0.1 there, with batch 256 on CIFAR)
        train: TrainConfig {
            steps: 1000,
            batch_size: 128,
            optimizer: OptimKind::Momentum,
            lr: 0.05,
            momentum: 0.9,
            eval_every: 250,
            ..Default::default()
        },
        data: mlp::DataCfg { dataset: "mnist".into(), train_size: 0 },
        model: ModelCfg { depth: 32, width: 64, residual: false, zero_init_residual: false, conv: false },
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let m = &c.model;
    if !m.conv && (m.depth < 4 || !m.depth.is_multiple_of(2) || m.width == 0) {
        let message = format!(
            "depth must be even and at least 4 (input layer, pairs of middle layers, output layer) and width at least 1; got depth {} width {}",
            m.depth, m.width
        );
        return Err(DlError::BadValue { context: "model.depth / model.width".into(), message }.into());
    }
    if m.zero_init_residual && !m.residual {
        let message = "applies to residual blocks only; set model.residual = true or leave it false".to_string();
        return Err(DlError::BadValue { context: "model.zero_init_residual".into(), message }.into());
    }
    let data = vision::load(&c.data.dataset, c.data.train_size)?;
    let params = Params::new(c.train.seed);
    if m.conv {
        if m.zero_init_residual {
            let message = "applies to the MLP nets only (model.conv = false)".to_string();
            return Err(DlError::BadValue { context: "model.zero_init_residual".into(), message }.into());
        }
        let net = super::resnet_cifar::cifar_net(m.depth, m.width, m.residual, &params, device)?;
        return Ok(Box::new(Classifier::new(net, params, data, c.train.batch_size, c.train.seed, device)));
    }
    let net = deep_net(m, data.train.dim(), &params, device)?;
    Ok(Box::new(Classifier::new(net, params, data, c.train.batch_size, c.train.seed, device)))
}

pub static FAMILY: Family =
    Family { id: "depth", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;

    #[test]
    fn depth_counts_weight_layers_and_every_parameter_learns_with_and_without_shortcuts() -> Result<()> {
        let dev = Device::Cpu;
        for residual in [false, true] {
            let p = Params::new(1);
            let cfg = ModelCfg { depth: 6, width: 8, residual, zero_init_residual: false, conv: false };
            let net = deep_net(&cfg, 16, &p, &dev)?;
            // 5 hidden layers (16·8 + 4·8·8 weights, 2·8 BN each) + the output layer (8·10 + 10)
            assert_eq!(net.layers.len(), 5);
            assert_eq!(p.count(), 16 * 8 + 4 * 64 + 5 * 16 + 90);
            let mut rng = Rng::new(2);
            let x: Vec<f32> = (0..4 * 16).map(|_| rng.normal() as f32).collect();
            let x = Tensor::from_vec(x, (4, 1, 4, 4), &dev)?;
            let loss = crate::nn::loss::cross_entropy(
                &net.logits(&x, true, &mut rng)?,
                &Tensor::new(&[1u32, 2, 3, 4], &dev)?,
            )?;
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        Ok(())
    }

    /// With every middle layer's weights zeroed, F(x) = BN(0) = β = 0: the residual net passes
    /// the first layer's output straight to the output layer (identity shortcuts), while the plain
    /// net's middle layers map everything to ReLU(0) = 0, so its logits are the output bias alone.
    #[test]
    fn shortcuts_are_identities() -> Result<()> {
        let dev = Device::Cpu;
        let mut logits = vec![];
        for residual in [false, true] {
            let p = Params::new(1);
            let net = deep_net(
                &ModelCfg { depth: 6, width: 8, residual, zero_init_residual: false, conv: false },
                16,
                &p,
                &dev,
            )?;
            for (name, var) in p.trainable() {
                if name.starts_with("layer")
                    && !name.starts_with("layer0")
                    && name.ends_with(".weight")
                    && !name.contains(".bn")
                {
                    var.set(&var.zeros_like()?)?;
                }
            }
            let x = Tensor::arange(0f32, 32., &dev)?.reshape((2, 1, 4, 4))?;
            let y = net.logits(&x, false, &mut Rng::new(0))?;
            let first = net.layers[0].forward(&x.flatten_from(1)?, false)?.relu()?;
            let want = if residual { net.out.forward(&first)? } else { net.out.forward(&first.zeros_like()?)? };
            logits.push((y - want)?.abs()?.max_all()?.to_scalar::<f32>()?);
        }
        assert!(logits.iter().all(|&d| d < 1e-6), "{logits:?}");
        Ok(())
    }

    /// Goyal et al. 2017: with each block's last γ at 0, F(x) = 0·x̂ + β = 0 at the start, so the
    /// whole residual net (random weights, train mode) is the first layer then the output layer.
    #[test]
    fn zero_init_residual_blocks_start_as_the_identity() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(5);
        let net = deep_net(
            &ModelCfg { depth: 8, width: 8, residual: true, zero_init_residual: true, conv: false },
            16,
            &p,
            &dev,
        )?;
        let zeros: Vec<String> = p
            .trainable()
            .into_iter()
            .filter(|(n, v)| {
                n.ends_with(".bn.weight") && v.flatten_all().unwrap().to_vec1::<f32>().unwrap() == vec![0.0; 8]
            })
            .map(|(n, _)| n)
            .collect();
        assert_eq!(zeros, ["layer2.bn.weight", "layer4.bn.weight", "layer6.bn.weight"]);
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..4 * 16).map(|_| rng.normal() as f32).collect();
        let x = Tensor::from_vec(x, (4, 1, 4, 4), &dev)?;
        let y = net.logits(&x, true, &mut rng)?;
        let want = net.out.forward(&net.layers[0].forward(&x.flatten_from(1)?, true)?.relu()?)?;
        assert!((y - want)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }
}
