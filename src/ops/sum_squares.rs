//! Σx² of a tensor, for the training step's gradient norm: one read of the data, where
//! `x.sqr()?.sum_all()?` writes the squares to a new tensor first (the allocation, the squares
//! and the second pass: 2–3% of a GAN or MLP step on 2 cores, measured).
//!
//! The sum is bitwise candle's: on the CPU candle sums a contiguous f32 slice (`vec_sum` in
//! candle-core's cpu/avx.rs) with four 8-lane accumulators over blocks of 32 elements where the
//! CPU has AVX2, reduces them as `vec_reduce` does, then adds the tail one element at a time;
//! without AVX2 it adds the elements in order. The same IEEE additions in the same order give
//! the same f32, so clipping, and with it every trained value, stays as it was.

use candle_core::{DType, Device, Result, Tensor};

/// Σx² over every element of `t`, equal to `t.sqr()?.sum_all()?.to_scalar::<f32>()?` bit for
/// bit; a contiguous f32 tensor on the CPU takes the one-pass path, anything else that expression.
pub fn sum_squares(t: &Tensor) -> Result<f32> {
    if matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32 && t.elem_count() > 0 {
        let (storage, layout) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(s) = &*storage {
            if let Ok(x) = super::cpu::cpu_f32(s, layout, "sum_squares") {
                return Ok(if candle_avx2() { blocked(x) } else { in_order(x) });
            }
        }
    }
    t.sqr()?.sum_all()?.to_scalar::<f32>()
}

/// The test candle-core makes (cpu/features.rs) to pick its AVX2 sum.
fn candle_avx2() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}

/// candle's scalar `vec_sum` of the squares: in order.
fn in_order(x: &[f32]) -> f32 {
    let mut s = 0f32;
    for v in x {
        s += v * v;
    }
    s
}

/// candle's AVX2 `vec_sum` of the squares: acc[j][l] sums the elements 32i + 8j + l; then
/// (acc0 + acc1) + (acc2 + acc3), the two 4-lane halves added, two horizontal adds, the tail.
fn blocked(x: &[f32]) -> f32 {
    let np = x.len() & !31;
    let mut acc = [[0f32; 8]; 4];
    for block in x[..np].chunks_exact(32) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, s) in a.iter_mut().enumerate() {
                let v = block[8 * j + l];
                *s += v * v;
            }
        }
    }
    let mut x0 = [0f32; 8];
    for l in 0..8 {
        let x01 = acc[0][l] + acc[1][l];
        let x23 = acc[2][l] + acc[3][l];
        x0[l] = x01 + x23;
    }
    let t0 = [x0[0] + x0[4], x0[1] + x0[5], x0[2] + x0[6], x0[3] + x0[7]];
    let mut s = (t0[0] + t0[1]) + (t0[2] + t0[3]);
    for v in &x[np..] {
        s += v * v;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(t: &Tensor) -> f32 {
        t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn equals_candles_sqr_then_sum_bit_for_bit() {
        let dev = Device::Cpu;
        // lengths around the 32-element blocks, and values over many magnitudes so that the
        // order of the additions shows in the last bits
        for (seed, n) in [1, 7, 31, 32, 33, 63, 64, 100, 1000, 4099, 100_000, 823_124].into_iter().enumerate() {
            let mut rng = crate::rng::Rng::new(seed as u64 + 11);
            let v: Vec<f32> = (0..n).map(|i| rng.normal() as f32 * 10f32.powi((i % 9) as i32 - 4)).collect();
            let t = Tensor::from_vec(v, n, &dev).unwrap();
            let (ours, theirs) = (sum_squares(&t).unwrap(), reference(&t));
            assert_eq!(ours.to_bits(), theirs.to_bits(), "n = {n}: {ours} vs candle's {theirs}");
        }
    }

    #[test]
    fn the_blocked_and_in_order_sums_round_differently() {
        // the two paths are not interchangeable: on these values they round differently, so
        // the test above checks the path this CPU takes, not a sum that ignores order
        let v: Vec<f32> = (0..1000).map(|i| 1.0 + (i as f32) * 1e-3 + if i % 3 == 0 { 1e3 } else { 0.0 }).collect();
        assert_ne!(blocked(&v).to_bits(), in_order(&v).to_bits());
    }

    #[test]
    fn a_strided_tensor_takes_candles_own_path() {
        let t = Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((3, 4)).unwrap().t().unwrap();
        assert_eq!(sum_squares(&t).unwrap(), reference(&t));
    }
}
