//! `alexnet` and `alexnet-tanh` (Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep
//! convolutional neural networks", NIPS 2012), at the scale of 28x28 Fashion-MNIST: the paper's
//! ingredients in a small net —
//!
//! - rectified linear units, the point of the claim (`alexnet-tanh` swaps in tanh everywhere);
//! - overlapping max-pooling, kernel 3 stride 2 (§3.4), after every convolution;
//! - dropout 0.5 in the fully connected layers (§4.2);
//! - data augmentation (§4.1): random crops of the image zero-padded by 2 pixels, random
//!   horizontal flips, drawn from the step's rng so resumed runs see the same batches;
//! - SGD with momentum 0.9 (§5).
//!
//! conv 5x5 (1→16), pool: 28→13; conv 3x3 (16→32), pool: 13→6; conv 3x3 32→48, 48→48, 48→32,
//! pool: 6→2; then fc 128 → 256 → 256 → 10 (AlexNet's five convolutions and three fc layers).
//!
//! The paper's Figure 1: a ReLU net reaches 25% training error on CIFAR-10 six times faster than
//! the same net with tanh. The claim (src/claims/cnn.rs) runs that experiment: this family with
//! Figure 1's four layers and no regularisation, and counts the updates until the error on 2,000
//! (un-augmented) training images, scored in eval mode at every evaluation, first falls to a level.

use super::classify::{ClassModel, Classifier};
use super::{from_table, to_table, Family};
use crate::config::OptimKind;
use crate::config::TrainConfig;
use crate::data::augment::Augment;
use crate::data::vision;
use crate::error::DlError;
use crate::experiment::Experiment;
use crate::nn::activation::Activation;
use crate::nn::conv::{max_pool2d, Conv2d};
use crate::nn::linear::InitKind;
use crate::nn::mlp::Mlp;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// fashion | mnist | digits8 (fashion/mnist fall back to digits8 when not fetched)
    pub dataset: String,
    /// keep only this many training images; 0 = all
    pub train_size: usize,
    /// augmentation of the training batches (crops from a `pad`-pixel zero border, flips)
    pub augment: Augment,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// side of the square input images (the 8x8 fallback digits are resampled to it)
    pub image_size: usize,
    /// output channels of the convolutions (at least 2): the first 5x5, the rest 3x3; an
    /// overlapping max-pool after the first, the second and the last, as AlexNet's five
    pub channels: Vec<usize>,
    /// widths of the fully connected hidden layers
    pub hidden: Vec<usize>,
    /// relu | tanh (any of the activations study's works) in every hidden layer
    pub act: Activation,
    /// probability of dropping each fully connected hidden unit in training
    pub dropout: f64,
}

/// The pooling window and stride: overlapping, as AlexNet's (§3.4).
const POOL: (usize, usize) = (3, 2);

/// Kernel side of convolution `i` ('same' padding): AlexNet's first kernel is its largest.
fn kernel(i: usize) -> usize {
    if i == 0 {
        5
    } else {
        3
    }
}

/// Whether convolution `i` of `n` is followed by a max-pool: after the first, the second and the last.
fn pooled(i: usize, n: usize) -> bool {
    i < 2 || i + 1 == n
}

impl ModelCfg {
    /// Side after the three overlapping pools: s -> (s − 3)/2 + 1 each (28 → 13 → 6 → 2).
    fn final_side(&self) -> Result<usize> {
        if self.channels.len() < 2 {
            candle_core::bail!("alexnet: model.channels needs at least 2 convolutions, got {:?}", self.channels);
        }
        let mut s = self.image_size;
        for _ in 0..3 {
            if s < POOL.0 {
                candle_core::bail!(
                    "alexnet: {0}x{0} images are too small for three 3/2 max-pools; use model.image_size ≥ 15",
                    self.image_size
                );
            }
            s = (s - POOL.0) / POOL.1 + 1;
        }
        Ok(s)
    }
}

pub struct MiniAlexNet {
    pub convs: Vec<Conv2d>,
    pub act: Activation,
    /// c·s² -> hidden... -> 10, `act` and dropout after each hidden layer
    pub fc: Mlp,
}

/// Parameters: `conv1.*`, `conv2.*`, ..., `fc.fc0.*`, ...
pub fn mini_alexnet(cfg: &ModelCfg, params: &Params, device: &Device) -> Result<MiniAlexNet> {
    let vb = params.vb(device);
    let mut c_in = 1;
    let mut convs = vec![];
    // He et al. 2015's N(0, 2/fan_in) for every layer of both variants: the standard init for
    // ReLU, and close to the usual one for tanh (gain 5/3 against √2), so neither starts saturated
    // or vanishing; PyTorch's default U(±1/√fan_in) shrinks the signal ~6x per ReLU layer and
    // plain SGD then sits at chance for hundreds of updates
    let he = Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanIn, non_linearity: NonLinearity::ReLU };
    for (i, &c) in cfg.channels.iter().enumerate() {
        let k = kernel(i);
        let vb = vb.pp(format!("conv{}", i + 1));
        let weight = vb.get_with_hints((c, c_in, k, k), "weight", he)?; // (C_out, C_in, k, k)
        let bias = vb.get_with_hints(c, "bias", Init::Const(0.0))?;
        convs.push(Conv2d { weight, bias, stride: 1, padding: k / 2 });
        c_in = c;
    }
    let mut dims = vec![c_in * cfg.final_side()?.pow(2)];
    dims.extend(&cfg.hidden);
    dims.push(10);
    let fc = Mlp::new(&dims, cfg.act, InitKind::He, vb.pp("fc"))?.with_dropout(cfg.dropout);
    Ok(MiniAlexNet { convs, act: cfg.act, fc })
}

impl ClassModel for MiniAlexNet {
    /// (B, 1, 28, 28) -> (B, 10) logits
    fn logits(&self, x: &Tensor, train: bool, rng: &mut Rng) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = self.act.forward(&conv.forward(&h)?)?; // (B, c, s, s)
            if pooled(i, self.convs.len()) {
                h = max_pool2d(&h, POOL.0, POOL.1)?; // (B, c, s', s'), s' = (s − 3)/2 + 1
            }
        }
        let h = h.flatten_from(1)?; // (B, c·s²)
        if train {
            self.fc.forward_train(&h, rng)
        } else {
            self.fc.forward(&h)
        }
    }
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        train: TrainConfig {
            steps: 600, // both nets cross 25% within the first 300 updates
            batch_size: 64,
            optimizer: OptimKind::Momentum,
            lr: 0.01,
            momentum: 0.9,
            eval_every: 50,
            ..Default::default()
        },
        data: DataCfg { dataset: "fashion".into(), train_size: 0, augment: Augment { pad: 2, flip: true } },
        model: ModelCfg {
            image_size: 28,
            channels: vec![16, 32, 48, 48, 32],
            hidden: vec![256, 256],
            act: Activation::Relu,
            dropout: 0.5,
        },
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    if !(0.0..1.0).contains(&c.model.dropout) {
        let message = format!("must be in [0, 1), got {}", c.model.dropout);
        return Err(DlError::BadValue { context: "model.dropout".into(), message }.into());
    }
    if c.model.channels.contains(&0) || c.model.hidden.contains(&0) {
        let message = "every layer needs at least one channel or unit".to_string();
        return Err(DlError::BadValue { context: "model.channels / model.hidden".into(), message }.into());
    }
    let mut data = vision::load(&c.data.dataset, c.data.train_size)?;
    data.map_sets(|set| vision::resize(set, c.model.image_size));
    let params = Params::new(c.train.seed);
    let net = mini_alexnet(&c.model, &params, device)?;
    let clf = Classifier::new(net, params, data, c.train.batch_size, c.train.seed, device);
    Ok(Box::new(clf.with_augment(c.data.augment)))
}

pub static FAMILY: Family =
    Family { id: "alexnet", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;

    #[test]
    fn pools_overlap_down_to_2x2_and_every_parameter_learns() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = defaults().model;
        assert_eq!(cfg.final_side()?, 2); // 28 -> 13 -> 6 -> 2
        let p = Params::new(2);
        let net = mini_alexnet(&cfg, &p, &dev)?;
        let mut rng = Rng::new(4);
        let x: Vec<f32> = (0..3 * 28 * 28).map(|_| rng.uniform() as f32).collect();
        let x = Tensor::from_vec(x, (3, 1, 28, 28), &dev)?;
        let logits = net.logits(&x, true, &mut rng)?;
        assert_eq!(logits.dims(), &[3, 10]);
        let loss = crate::nn::loss::cross_entropy(&logits, &Tensor::new(&[0u32, 5, 9], &dev)?)?;
        assert_every_param_gets_a_gradient(&p, &loss)?;
        // eval mode has no dropout: the same input gives the same logits whatever the rng
        let a = net.logits(&x, false, &mut Rng::new(1))?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, net.logits(&x, false, &mut Rng::new(2))?.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }
}
