//! A 2-D convolution layer and max-pooling over NCHW images, on our fused ops (`crate::ops::conv2d`:
//! im2col + gemm forward and both backward passes; `crate::ops::maxpool`: any kernel and stride,
//! with a backward), each tested there against candle's composed ops.

use candle_core::{Result, Tensor};
use candle_nn::init::Init;
use candle_nn::VarBuilder;

pub struct Conv2d {
    /// W: (C_out, C_in, k, k)
    pub weight: Tensor,
    /// b: (C_out,)
    pub bias: Tensor,
    pub stride: usize,
    pub padding: usize,
}

/// A k×k convolution from `c_in` to `c_out` channels with PyTorch's default init,
/// U(−1/√fan_in, 1/√fan_in) for weights and bias, fan_in = c_in·k·k.
pub fn conv2d(c_in: usize, c_out: usize, k: usize, stride: usize, padding: usize, vb: VarBuilder) -> Result<Conv2d> {
    let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
    let u = Init::Uniform { lo: -bound, up: bound };
    let weight = vb.get_with_hints((c_out, c_in, k, k), "weight", u)?;
    let bias = vb.get_with_hints(c_out, "bias", u)?;
    Ok(Conv2d { weight, bias, stride, padding })
}

impl Conv2d {
    /// (B, C_in, H, W) -> (B, C_out, H', W'), H' = (H + 2·padding − k)/stride + 1
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::conv2d::conv2d(x, &self.weight, Some(&self.bias), self.stride, self.padding)
    }
}

/// y = x ⋆ W + b. x: (B, C_in, H, W), W: (C_out, C_in, k, k), b: (C_out,).
/// Max-pooling over k×k windows with stride `stride` (overlapping when stride < k, as AlexNet's
/// 3/2). candle's own `max_pool2d` cannot backprop overlapping windows and, in 0.11.1, scales
/// its gradient by 1/k² (see `ops::maxpool`), so this always runs our op.
pub fn max_pool2d(x: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    crate::ops::maxpool::max_pool2d(x, k, stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn conv_shapes_and_pool_picks_the_window_maximum() -> Result<()> {
        let dev = Device::Cpu;
        let p = crate::params::Params::new(1);
        let conv = conv2d(1, 6, 5, 1, 0, p.vb(&dev).pp("c1"))?;
        let x = Tensor::ones((2, 1, 28, 28), candle_core::DType::F32, &dev)?;
        assert_eq!(conv.forward(&x)?.dims(), &[2, 6, 24, 24]);
        let x = Tensor::new(&[[[[1f32, 5., 2., 0.], [3., 4., 9., 1.]]]], &dev)?; // (1, 1, 2, 4)
        assert_eq!(max_pool2d(&x, 2, 2)?.flatten_all()?.to_vec1::<f32>()?, vec![5., 9.]);
        Ok(())
    }
}
