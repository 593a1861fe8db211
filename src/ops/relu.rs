//! ReLU as one op: y = max(0, x), backward dx = dy where y > 0, else 0 (slope 0 at x = 0, as
//! PyTorch's and `linear_act`'s).
//!
//! candle's `relu()` backward builds `zeros_like(x)`, compares x against it, converts the mask to
//! f32 and multiplies: four passes and three temporaries (its strided `binary_map` was 10% of a
//! LeNet step's CPU samples). Here the forward is one vectorised pass and the backward one pass
//! over (y, dy).

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

/// max(0, x) for f32 x on the CPU, any shape.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    // no CUDA kernel yet: elsewhere than the CPU, candle's relu (its backward's slope at exactly
    // 0 is 1, ours 0; `super::fused_on`)
    if !super::fused_on(x.device(), false) {
        return relu_ref(x);
    }
    if x.dtype() != DType::F32 || !matches!(x.device(), Device::Cpu) {
        bail!("relu: x must be f32 on the CPU, got {:?} on {:?}", x.dtype(), x.device())
    }
    super::arg(&x.contiguous()?).apply_op1(Relu)
}

/// The reference: candle's own `relu()`, whose backward passes slope 1 at x = 0.
pub fn relu_ref(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

#[inline(always)]
fn relu_rows(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        // NaN stays NaN (a comparison with NaN is false)
        *y = if x < 0.0 { 0.0 } else { x };
    }
}
cpu::simd!(relu_rows_simd, relu_rows, (x: &[f32], y: &mut [f32]));

#[inline(always)]
fn relu_grad_rows(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = if y > 0.0 { dy } else { 0.0 };
    }
}
cpu::simd!(relu_grad_rows_simd, relu_grad_rows, (y: &[f32], dy: &[f32], dx: &mut [f32]));

/// Elements per parallel task of the element-wise passes.
const CHUNK: usize = 1 << 14;

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let x = cpu::cpu_f32(s, l, "relu")?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| relu_rows_simd(x, y));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        use rayon::prelude::*;
        let (y, dy) = (y.contiguous()?, dy.contiguous()?);
        let ((ys, yl), (ds, dl)) = (y.storage_and_layout(), dy.storage_and_layout());
        let (yv, dv) = (cpu::storage_f32(&ys, yl, "relu")?, cpu::storage_f32(&ds, dl, "relu")?);
        let mut dx = vec![0f32; yv.len()];
        dx.par_chunks_mut(CHUNK)
            .zip(yv.par_chunks(CHUNK).zip(dv.par_chunks(CHUNK)))
            .for_each(|(dx, (y, dy))| relu_grad_rows_simd(y, dy, dx));
        Ok(Some(Tensor::from_vec(dx, y.shape(), &Device::Cpu)?))
    }
}

/// LeNet's first feature map after its convolution, (64, 6, 24, 24).
pub fn benches() -> Result<Vec<super::OpBench>> {
    let (x, r) = problem(5, &[64, 6, 24, 24])?;
    let (x2, r2) = (x.clone(), r.clone());
    Ok(vec![super::OpBench {
        name: "relu",
        shape: "x [64, 6, 24, 24]".into(),
        fused: Box::new(move || relu(&x)?.mul(&r)?.sum_all()?.backward().map(|_| ())),
        reference: Box::new(move || relu_ref(&x2)?.mul(&r2)?.sum_all()?.backward().map(|_| ())),
    }])
}

/// A trainable x ~ N(0, 1) of `dims` and a fixed upstream weight r of the same shape.
fn problem(seed: u64, dims: &[usize]) -> Result<(Tensor, Tensor)> {
    let mut rng = crate::rng::Rng::new(seed);
    let n = dims.iter().product();
    let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let x = candle_core::Var::from_vec(randn(n), dims, &Device::Cpu)?;
    Ok((x.as_tensor().clone(), Tensor::from_vec(randn(n), dims, &Device::Cpu)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y and dx equal candle's exactly: both are selections, no arithmetic. Inputs away from
    /// 0 (x ~ N(0, 1) never hits it), where the two backwards agree; at exactly 0 ours gives 0.
    #[test]
    fn matches_candle_relu_exactly_away_from_zero() -> Result<()> {
        for dims in [&[7][..], &[3, 5, 11], &[2, 3, 40, 41]] {
            let (x, r) = problem(dims.len() as u64, dims)?;
            let run = |f: fn(&Tensor) -> Result<Tensor>| -> Result<(Vec<f32>, Vec<f32>)> {
                let y = f(&x)?;
                let g = y.mul(&r)?.sum_all()?.backward()?;
                let Some(dx) = g.get(&x) else { bail!("relu: no gradient") };
                Ok((y.flatten_all()?.to_vec1()?, dx.flatten_all()?.to_vec1()?))
            };
            assert_eq!(run(relu)?, run(relu_ref)?, "{dims:?}");
        }
        Ok(())
    }

    #[test]
    fn slope_at_zero_is_zero_and_nan_passes_through() -> Result<()> {
        let x = candle_core::Var::new(&[0f32, -1.0, 2.0, f32::NAN], &Device::Cpu)?;
        let y = relu(x.as_tensor())?;
        let v = y.to_vec1::<f32>()?;
        assert_eq!(&v[..3], &[0.0, 0.0, 2.0]);
        assert!(v[3].is_nan());
        let g = y.sum_all()?.backward()?;
        let Some(dx) = g.get(x.as_tensor()) else { bail!("relu: no gradient") };
        assert_eq!(dx.to_vec1::<f32>()?[..3], [0.0, 0.0, 1.0]);
        Ok(())
    }
}
