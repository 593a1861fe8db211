//! The SIMD copies agree bitwise (kernels/README.md): the shared element-wise math of the fused
//! ops (`cpu::exp`, `sigmoid`, `erf_and_gauss`, `vmath::tanh`, the 8-lane `cpu::sum`), compiled
//! by `simd_at!` as the ops' kernels are, for every level this CPU runs, gives the same bits on
//! the same inputs; and so does a whole op whose level can be chosen (the LSTM: its gate math,
//! forward and backward, and the small-gemm tiles).

use super::cpu::{self, simd_at, SimdLevel};
use super::vmath;

/// One pass of each function over x, as the ops' kernels call them (loops LLVM vectorises),
/// and `cpu::sum` over blocks of 37 (a remainder in every block).
#[inline(always)]
fn kernel(x: &[f32], exp: &mut [f32], sig: &mut [f32], erf: &mut [f32], tanh: &mut [f32], sums: &mut [f32]) {
    for (o, &v) in exp.iter_mut().zip(x) {
        *o = cpu::exp(v);
    }
    for (o, &v) in sig.iter_mut().zip(x) {
        *o = cpu::sigmoid(v);
    }
    for (o, &v) in erf.iter_mut().zip(x) {
        let (e, g) = cpu::erf_and_gauss(v);
        *o = e.mul_add(0.5, g);
    }
    for (o, &v) in tanh.iter_mut().zip(x) {
        *o = vmath::tanh(v);
    }
    for (o, c) in sums.iter_mut().zip(x.chunks(37)) {
        *o = cpu::sum(c);
    }
}

simd_at!(at, kernel, (x: &[f32], exp: &mut [f32], sig: &mut [f32], erf: &mut [f32], tanh: &mut [f32], sums: &mut [f32]));

/// The bits of every output of `kernel` at `level`.
fn outputs(level: SimdLevel, x: &[f32]) -> Vec<u32> {
    let n = x.len();
    let (mut e, mut s, mut f, mut t, mut sums) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n.div_ceil(37)]);
    // SAFETY: the level is one this CPU runs
    unsafe { at(level, x, &mut e, &mut s, &mut f, &mut t, &mut sums) };
    [e, s, f, t, sums].concat().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn the_element_wise_math_agrees_bitwise_at_every_level() {
    let levels = SimdLevel::supported();
    // a dense grid over exp's range and beyond (clamped), then seeded normals at several scales
    let mut x: Vec<f32> = (-1000..=1000).map(|i| i as f32 * 0.1).collect();
    let mut rng = crate::rng::Rng::new(5);
    x.extend((0..3000).map(|i| (rng.normal() * [0.01, 1.0, 30.0][i % 3]) as f32));
    let base = outputs(SimdLevel::Base, &x);
    for level in &levels {
        let got = outputs(*level, &x);
        let differ = got.iter().zip(&base).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{level:?} differs from the baseline copy in {differ} of {} values", got.len());
    }
}
