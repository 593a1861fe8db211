//! `cnn`: the 1989 zip-code network (LeCun, Boser, Denker, Henderson, Howard, Hubbard & Jackel,
//! "Backpropagation applied to handwritten zip code recognition", Neural Computation 1989), the
//! first convolutional net trained end to end by backprop, on 16x16 digit images:
//!
//! - H1: 12 feature maps of 8x8, each a 5x5 kernel applied with stride 2 to the padded input;
//! - H2: 12 maps of 4x4, 5x5 kernels with stride 2. The paper connects each H2 map to 8 of the 12
//!   H1 maps; here every H2 map sees all 12 (a plain convolution, 3,612 weights instead of 2,592);
//! - H3: 30 units fully connected to H2's 192; 10 outputs; tanh throughout.
//!
//! The paper also gave every unit of H1/H2 its own bias; here each map has one (the usual shared
//! bias), and it trains by cross-entropy with Adam rather than squared error with a diagonal
//! Newton method. Claim: with under 2% of the `mlp`'s parameters it still reaches a high MNIST
//! test accuracy (the paper: 5.0% test error on the harder zip-code digits).

use super::classify::{ClassModel, Classifier};
use super::{from_table, mlp, to_table, Family};
use crate::data::{vision, ImageSet};
use crate::experiment::Experiment;
use crate::nn::activation::Activation;
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::linear::InitKind;
use crate::nn::mlp::Mlp;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The paper's input side: digits normalised to 16x16.
pub const SIDE: usize = 16;

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// feature maps of H1 and H2
    pub maps: [usize; 2],
    /// units of H3
    pub hidden: usize,
}

impl Default for ModelCfg {
    fn default() -> Self {
        Self { maps: [12, 12], hidden: 30 }
    }
}

pub struct ZipNet {
    /// H1: 1 -> 12 maps, 5x5, stride 2, padding 2: 16x16 -> 8x8
    pub h1: Conv2d,
    /// H2: 12 -> 12 maps, 5x5, stride 2, padding 2: 8x8 -> 4x4
    pub h2: Conv2d,
    /// H3 and the output: 192 -> 30 -> 10, tanh between
    pub fc: Mlp,
}

/// Parameters: `h1.*`, `h2.*`, `fc.fc0.*` (H3), `fc.fc1.*` (output).
pub fn zipnet(cfg: &ModelCfg, params: &Params, device: &Device) -> Result<ZipNet> {
    let vb = params.vb(device);
    let [m1, m2] = cfg.maps;
    if m1 == 0 || m2 == 0 || cfg.hidden == 0 {
        candle_core::bail!(
            "cnn: model.maps and model.hidden must be at least 1, got {:?} and {}",
            cfg.maps,
            cfg.hidden
        );
    }
    let h1 = conv2d(1, m1, 5, 2, 2, vb.pp("h1"))?;
    let h2 = conv2d(m1, m2, 5, 2, 2, vb.pp("h2"))?;
    let fc = Mlp::new(&[m2 * 4 * 4, cfg.hidden, 10], Activation::Tanh, InitKind::Default, vb.pp("fc"))?;
    Ok(ZipNet { h1, h2, fc })
}

impl ClassModel for ZipNet {
    /// (B, 1, 16, 16) -> (B, 10) logits
    fn logits(&self, x: &Tensor, _train: bool, _rng: &mut Rng) -> Result<Tensor> {
        let h = self.h1.forward(x)?.tanh()?; // (B, 12, 8, 8)
        let h = self.h2.forward(&h)?.tanh()?; // (B, 12, 4, 4)
        self.fc.forward(&h.flatten_from(1)?) // (B, 192) -> (B, 30) -> (B, 10)
    }
}

/// An image set at the paper's 16x16. The 28x28 sets carry their own margin (MNIST centres a
/// 20x20 digit), so the whole image is scaled down; the margin-free 8x8 digits are enlarged into
/// a 12x12 box, about MNIST's digit-to-frame ratio (20/28 of 16 = 11.4).
pub fn to_16(set: &ImageSet) -> ImageSet {
    let inner = if set.h >= 2 * SIDE - 4 { SIDE } else { 12 };
    vision::resize_box(set, SIDE, inner)
}

pub type Config = super::Config<mlp::DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        // LeNet-5's budget and data: the two nets of the 1989/1998 papers train alike
        train: super::lenet::defaults().train,
        data: super::lenet::defaults().data,
        model: ModelCfg::default(),
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let mut data = vision::load(&c.data.dataset, c.data.train_size)?;
    data.map_sets(to_16);
    let params = Params::new(c.train.seed);
    let net = zipnet(&c.model, &params, device)?;
    Ok(Box::new(Classifier::new(net, params, data, c.train.batch_size, c.train.seed, device)))
}

pub static FAMILY: Family =
    Family { id: "cnn", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;

    /// The paper's geometry: 16x16 -> 12@8x8 -> 12@4x4 -> 30 -> 10, and (with H2 fully connected
    /// across maps and one bias per map) 312 + 3,612 + 5,790 + 310 = 10,024 parameters.
    #[test]
    fn shapes_and_parameter_count_follow_the_1989_net_and_every_parameter_learns() -> Result<()> {
        let dev = Device::Cpu;
        let p = Params::new(3);
        let net = zipnet(&ModelCfg::default(), &p, &dev)?;
        assert_eq!(p.count(), 312 + 3612 + 5790 + 310);
        let mut rng = Rng::new(1);
        let x: Vec<f32> = (0..2 * SIDE * SIDE).map(|_| rng.uniform() as f32).collect();
        let x = Tensor::from_vec(x, (2, 1, SIDE, SIDE), &dev)?;
        assert_eq!(net.h1.forward(&x)?.dims(), &[2, 12, 8, 8]);
        let logits = net.logits(&x, true, &mut rng)?;
        assert_eq!(logits.dims(), &[2, 10]);
        let loss = crate::nn::loss::cross_entropy(&logits, &Tensor::new(&[4u32, 9], &dev)?)?;
        assert_every_param_gets_a_gradient(&p, &loss)
    }

    #[test]
    fn both_source_sizes_come_out_16x16() {
        let d = crate::data::digits::load();
        let small = to_16(&d.subset(&[0, 1]));
        assert_eq!((small.h, small.w), (16, 16));
        // the 8x8 digit sits in a 12x12 box: a 2-pixel blank margin
        assert!(small.image(0)[..2 * 16].iter().all(|&v| v == 0.0));
        let big = ImageSet { pixels: vec![1.0; 28 * 28], labels: vec![1], h: 28, w: 28, classes: 10 };
        assert!(to_16(&big).pixels.iter().all(|&v| v == 1.0), "a 28x28 image fills the whole 16x16");
    }
}
