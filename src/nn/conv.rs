//! A 2-D convolution layer and max-pooling over NCHW images, on candle's conv2d and max_pool2d
//! (both have a backward; candle's max-pool backward needs kernel = stride). Each is one
//! function ([`conv2d_ref`], [`max_pool2d_ref`]) so a fused kernel can take its place.

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
        conv2d_ref(x, &self.weight, &self.bias, self.stride, self.padding)
    }
}

/// y = x ⋆ W + b. x: (B, C_in, H, W), W: (C_out, C_in, k, k), b: (C_out,).
pub fn conv2d_ref(x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let y = x.conv2d(w, padding, stride, 1, 1)?; // (B, C_out, H', W')
    y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)
}

/// Max over non-overlapping k×k windows: (B, C, H, W) -> (B, C, H/k, W/k).
pub fn max_pool2d_ref(x: &Tensor, k: usize) -> Result<Tensor> {
    x.max_pool2d(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn conv_shapes_and_pool_picks_the_window_maximum() -> Result<()> {
        let dev = Device::Cpu;
        let p = crate::engine::params::Params::new(1);
        let conv = conv2d(1, 6, 5, 1, 0, p.vb(&dev).pp("c1"))?;
        let x = Tensor::ones((2, 1, 28, 28), candle_core::DType::F32, &dev)?;
        assert_eq!(conv.forward(&x)?.dims(), &[2, 6, 24, 24]);
        let x = Tensor::new(&[[[[1f32, 5., 2., 0.], [3., 4., 9., 1.]]]], &dev)?; // (1, 1, 2, 4)
        assert_eq!(max_pool2d_ref(&x, 2)?.flatten_all()?.to_vec1::<f32>()?, vec![5., 9.]);
        Ok(())
    }
}
