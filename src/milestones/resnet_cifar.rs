//! The CIFAR family of He, Zhang, Ren & Sun (2015, §4.2), for the depth study's convolutional
//! protocol (`model.conv = true`): a 3x3 convolution, then three stages of n basic blocks on
//! feature maps of w, 2w and 4w channels (the first block of stages 2 and 3 halves the side
//! with stride 2: 28 → 14 → 7 here), global average pooling and a fully connected layer to the
//! 10 classes: 6n + 2 weight layers. Every convolution is followed by batch norm; a basic block
//! is y = ReLU(x + BN(conv(ReLU(BN(conv(x)))))) with the paper's option A shortcut (the identity;
//! where the block downsamples, x subsampled by 2 and its new channels padded with zeros, so the
//! shortcut has no parameters). The plain net is the same without the shortcuts.

use crate::nn::batchnorm::BatchNorm;
use crate::nn::conv::Conv2d;
use crate::nn::linear::{linear, InitKind, Linear};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Module, ModuleT, Result, Tensor, D};
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};

use super::classify::ClassModel;

/// A 3x3 convolution without bias (batch norm's β is the bias), then batch norm.
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(c_in: usize, c_out: usize, stride: usize, name: &str, params: &Params, device: &Device) -> Result<Self> {
        let vb = params.vb(device).pp(name);
        // He et al. 2015's init: N(0, 2/fan_in)
        let he =
            Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanIn, non_linearity: NonLinearity::ReLU };
        let weight = vb.get_with_hints((c_out, c_in, 3, 3), "weight", he)?; // (C_out, C_in, 3, 3)
        let bias = Tensor::zeros(c_out, candle_core::DType::F32, device)?; // a constant, not a parameter
        let bn = BatchNorm::new(c_out, params, &format!("{name}.bn"), vb.pp("bn"), device)?;
        Ok(Self { conv: Conv2d { weight, bias, stride, padding: 1 }, bn })
    }

    /// (B, C_in, S, S) -> (B, C_out, S/stride, S/stride), before any ReLU
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv.forward(x)?, train)
    }
}

struct Block {
    a: ConvBn,
    b: ConvBn,
    /// the block halves the side and doubles the channels
    down: bool,
}

pub struct CifarNet {
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: Linear,
    residual: bool,
}

/// The net of `depth` = 6n + 2 weight layers and base width `width` on 1-channel images.
pub fn cifar_net(depth: usize, width: usize, residual: bool, params: &Params, device: &Device) -> Result<CifarNet> {
    if depth < 8 || !(depth - 2).is_multiple_of(6) || width == 0 {
        candle_core::bail!("the CIFAR family has 6n + 2 layers (8, 14, 20, …, 56) and a positive width; got depth {depth}, width {width}")
    }
    let n = (depth - 2) / 6;
    let stem = ConvBn::new(1, width, 1, "stem", params, device)?;
    let mut blocks = vec![];
    let mut c = width;
    for stage in 0..3 {
        for i in 0..n {
            let down = stage > 0 && i == 0;
            let c_out = if down { 2 * c } else { c };
            let name = format!("stage{}.block{i}", stage + 1);
            let a = ConvBn::new(c, c_out, if down { 2 } else { 1 }, &format!("{name}.a"), params, device)?;
            let b = ConvBn::new(c_out, c_out, 1, &format!("{name}.b"), params, device)?;
            blocks.push(Block { a, b, down });
            c = c_out;
        }
    }
    let fc = linear(c, 10, InitKind::Default, params.vb(device).pp("fc"))?;
    Ok(CifarNet { stem, blocks, fc, residual })
}

/// Option A's shortcut of a downsampling block: x (B, C, S, S) subsampled by 2 (every other row
/// and column, S even) and zero-padded to 2C channels -> (B, 2C, S/2, S/2).
fn shortcut_down(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("option A's shortcut subsamples even sides only, got {h}x{w}")
    }
    let sub = x.reshape((b, c, h / 2, 2, w / 2, 2))?.narrow(3, 0, 1)?.narrow(5, 0, 1)?;
    let sub = sub.reshape((b, c, h / 2, w / 2))?;
    Tensor::cat(&[&sub, &sub.zeros_like()?], 1)
}

impl ClassModel for CifarNet {
    /// (B, 1, 28, 28) -> (B, 10) logits
    fn logits(&self, x: &Tensor, train: bool, _rng: &mut Rng) -> Result<Tensor> {
        let mut h = self.stem.forward(x, train)?.relu()?; // (B, w, 28, 28)
        for blk in &self.blocks {
            let f = blk.b.forward(&blk.a.forward(&h, train)?.relu()?, train)?; // F(x)
            h = if self.residual {
                let s = if blk.down { shortcut_down(&h)? } else { h.clone() };
                (s + f)?.relu()?
            } else {
                f.relu()?
            };
        }
        let pooled = h.mean(D::Minus1)?.mean(D::Minus1)?; // (B, 4w): global average pooling
        self.fc.forward(&pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milestones::tests::assert_every_param_gets_a_gradient;

    /// 6n + 2 weight layers: n = 1 gives a stem, 3 blocks of 2 convolutions and the fc (8); every
    /// parameter learns with and without the shortcuts, and the downsampling shortcut keeps the
    /// subsampled input in its first channels and zeros in the rest.
    #[test]
    fn the_family_has_6n_plus_2_layers_and_every_parameter_learns() -> Result<()> {
        let dev = Device::Cpu;
        for residual in [false, true] {
            let p = Params::new(1);
            let net = cifar_net(8, 4, residual, &p, &dev)?;
            assert_eq!(1 + 2 * net.blocks.len() + 1, 8);
            let convs = p.trainable().iter().filter(|(n, v)| n.ends_with("weight") && v.rank() == 4).count();
            assert_eq!(convs, 7);
            let mut rng = Rng::new(2);
            let x: Vec<f32> = (0..4 * 28 * 28).map(|_| rng.normal() as f32).collect();
            let x = Tensor::from_vec(x, (4, 1, 28, 28), &dev)?;
            let y = net.logits(&x, true, &mut rng)?;
            assert_eq!(y.dims(), [4, 10]);
            let loss = crate::nn::loss::cross_entropy(&y, &Tensor::new(&[1u32, 2, 3, 4], &dev)?)?;
            assert_every_param_gets_a_gradient(&p, &loss)?;
        }
        assert!(cifar_net(21, 4, true, &Params::new(1), &dev).is_err());
        let x = Tensor::arange(0f32, 2. * 2. * 16., &dev)?.reshape((2, 2, 4, 4))?;
        let s = shortcut_down(&x)?;
        assert_eq!(s.dims(), [2, 4, 2, 2]);
        assert_eq!(s.narrow(1, 0, 2)?.flatten_all()?.to_vec1::<f32>()?[..4], [0., 2., 8., 10.]);
        assert_eq!(s.narrow(1, 2, 2)?.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }
}
