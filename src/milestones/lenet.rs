//! `lenet`: LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998), a convolutional network for digits,
//! with ReLU in place of the paper's scaled tanh and max- in place of average-pooling, as is
//! usual today. Claim: it reaches ≥ 99.0% MNIST test accuracy with about a tenth of the
//! parameters of the `mlp` (weight sharing: a 5x5 kernel is applied at every position).

use super::classify::{ClassModel, Classifier};
use super::{from_table, mlp, to_table, Family};
use crate::config::TrainConfig;
use crate::data::vision;
use crate::experiment::Experiment;
use crate::nn::activation::Activation;
use crate::nn::batchnorm::BatchNorm;
use crate::nn::conv::{conv2d, max_pool2d, Conv2d};
use crate::nn::linear::InitKind;
use crate::nn::mlp::Mlp;
use crate::ops::relu::relu;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, ModuleT, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// channels of the input images
    pub in_channels: usize,
    /// side of the (square) input images
    pub image_size: usize,
    /// output channels of the two conv layers
    pub channels: [usize; 2],
    /// side of the square conv kernels
    pub kernel: usize,
    /// widths of the fully connected hidden layers
    pub hidden: Vec<usize>,
    pub classes: usize,
    /// batch normalisation after each convolution (Ioffe & Szegedy 2015)
    pub batchnorm: bool,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self {
            in_channels: 1,
            image_size: 28,
            channels: [6, 16],
            kernel: 5,
            hidden: vec![120, 84],
            classes: 10,
            batchnorm: false,
        }
    }
}

impl ModelCfg {
    /// Side of the feature maps after conv (no padding) + 2x2 pool, twice: 28 -> 24 -> 12 -> 8 -> 4.
    fn map_sizes(&self) -> Result<[usize; 2]> {
        // a conv output side o = s − k + 1, floored by the pool to o / 2; None when nothing is left
        let conv_pool = |s: usize| s.checked_sub(self.kernel).map(|d| d + 1).filter(|&o| o >= 2).map(|o| o / 2);
        let s1 = conv_pool(self.image_size);
        match s1.and_then(|s1| conv_pool(s1).map(|s2| [s1, s2])) {
            Some(s) => Ok(s),
            None => candle_core::bail!(
                "lenet: {0}x{0} images are too small for two {1}x{1} convolutions each followed by a 2x2 pool",
                self.image_size,
                self.kernel
            ),
        }
    }

    /// Inputs of the first fully connected layer: C2·s2² (16·4·4 = 256).
    pub fn flat_dim(&self) -> Result<usize> {
        Ok(self.channels[1] * self.map_sizes()?[1].pow(2))
    }

    /// Multiply-add FLOPs (2 per multiply-add) of one forward pass of `batch` images: the two
    /// convolutions (2·C_out·H'·W'·C_in·k² each) and the fully connected layers (2·in·out each).
    /// Pooling, ReLU and bias adds are not counted.
    pub fn forward_flops(&self, batch: usize) -> Result<f64> {
        let [s1, s2] = self.map_sizes()?;
        let (o1, o2) = (self.image_size - self.kernel + 1, s1 - self.kernel + 1); // conv output sides
        let k2 = self.kernel * self.kernel;
        let conv1 = 2 * self.channels[0] * o1 * o1 * self.in_channels * k2;
        let conv2 = 2 * self.channels[1] * o2 * o2 * self.channels[0] * k2;
        let mut dims = vec![self.channels[1] * s2 * s2];
        dims.extend(&self.hidden);
        dims.push(self.classes);
        let fc: usize = dims.windows(2).map(|d| 2 * d[0] * d[1]).sum();
        Ok(batch as f64 * (conv1 + conv2 + fc) as f64)
    }
}

pub struct LeNet {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    /// with `batchnorm`: one per convolution, before its ReLU
    pub bn: Option<[BatchNorm; 2]>,
    /// 256 -> 120 -> 84 -> 10, ReLU between
    pub fc: Mlp,
}

/// LeNet-5: conv 1→6 5x5, ReLU, pool 2; conv 6→16 5x5, ReLU, pool 2; fc 256→120→84→10.
/// Parameters: `conv1.*`, `conv2.*`, `fc.fc0.*` .. `fc.fc2.*`.
pub fn lenet(cfg: &ModelCfg, params: &Params, device: &Device) -> Result<LeNet> {
    let vb = params.vb(device);
    let [c1, c2] = cfg.channels;
    let conv1 = conv2d(cfg.in_channels, c1, cfg.kernel, 1, 0, vb.pp("conv1"))?;
    let conv2 = conv2d(c1, c2, cfg.kernel, 1, 0, vb.pp("conv2"))?;
    let mut dims = vec![cfg.flat_dim()?];
    dims.extend(&cfg.hidden);
    dims.push(cfg.classes);
    let fc = Mlp::new(&dims, Activation::Relu, InitKind::Default, vb.pp("fc"))?;
    let bn = if cfg.batchnorm {
        Some([
            BatchNorm::new(c1, params, "bn1", vb.pp("bn1"), device)?,
            BatchNorm::new(c2, params, "bn2", vb.pp("bn2"), device)?,
        ])
    } else {
        None
    };
    Ok(LeNet { conv1, conv2, bn, fc })
}

impl LeNet {
    /// The convolutional trunk: (B, 1, 28, 28) -> (B, 256), flattened.
    fn trunk(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // conv, [batch norm], ReLU, pool
        let norm = |z: Tensor, k: usize| match &self.bn {
            Some(bn) => bn[k].forward_t(&z, train),
            None => Ok(z),
        };
        let h = max_pool2d(&relu(&norm(self.conv1.forward(x)?, 0)?)?, 2, 2)?; // (B, 6, 12, 12)
        let h = max_pool2d(&relu(&norm(self.conv2.forward(&h)?, 1)?)?, 2, 2)?; // (B, 16, 4, 4)
        h.flatten_from(1)
    }

    /// The activations of the last hidden layer (B, 84), in eval mode: the features whose
    /// Gaussian fits the generative milestones' Fréchet distance compares.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let (_, hidden) = self.fc.forward_trace(&self.trunk(x, false)?, true)?;
        hidden.last().cloned().ok_or_else(|| candle_core::Error::Msg("lenet: no hidden layer".into()))
    }
}

impl ClassModel for LeNet {
    /// (B, 1, 28, 28) -> (B, 10) logits
    fn logits(&self, x: &Tensor, train: bool, _rng: &mut Rng) -> Result<Tensor> {
        self.fc.forward(&self.trunk(x, train)?) // (B, 256) -> (B, 10)
    }
}

pub type Config = super::Config<mlp::DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig { steps: 6000, batch_size: 64, lr: 1e-3, eval_every: 1000, ..Default::default() },
        data: mlp::DataCfg { dataset: "mnist".into(), train_size: 0 },
        model: ModelCfg::default(),
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let mut data = vision::load(&c.data.dataset, c.data.train_size)?;
    // LeNet's geometry needs 28x28 inputs: the 8x8 fallback digits are resampled to it
    let size = c.model.image_size;
    data.map_sets(|set| vision::resize(set, size));
    let params = Params::new(c.train.seed);
    let net = lenet(&c.model, &params, device)?;
    Ok(Box::new(Classifier::new(net, params, data, c.train.batch_size, c.train.seed, device)))
}

pub static FAMILY: Family =
    Family { id: "lenet", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;
    use crate::params::Params;
    use candle_core::Device;

    #[test]
    fn every_parameter_gets_a_gradient_and_the_flop_count_is_lenets() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = ModelCfg::default();
        assert_eq!(cfg.flat_dim()?, 256);
        // conv1 2·6·24²·25 + conv2 2·16·8²·150 + fc 2·(256·120 + 120·84 + 84·10), per image
        assert_eq!(cfg.forward_flops(1)?, (172_800 + 307_200 + 83_280) as f64);
        let p = Params::new(7);
        let net = lenet(&cfg, &p, &dev)?;
        let mut rng = Rng::new(1);
        let x: Vec<f32> = (0..3 * 28 * 28).map(|_| rng.uniform() as f32).collect();
        let x = Tensor::from_vec(x, (3, 1, 28, 28), &dev)?;
        let y = Tensor::new(&[1u32, 7, 3], &dev)?;
        let loss = crate::nn::loss::cross_entropy(&net.logits(&x, true, &mut rng)?, &y)?;
        assert_every_param_gets_a_gradient(&p, &loss)
    }
}
