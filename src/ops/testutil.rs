//! Helpers shared by the ops' tests: error measures between a fused op and its reference.

use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// A seeded N(0, 1) tensor of shape `dims` on the CPU.
pub fn randn(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let v: Vec<f32> = (0..dims.iter().product()).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("shape matches data")
}

/// max |a − b| over all entries (shapes must agree).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims(), "compared tensors differ in shape");
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// max |a| over all entries.
pub fn max_abs(a: &Tensor) -> Result<f32> {
    a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// max |a − b| relative to b's largest entry (at least 1), the scale f32 rounding errors take.
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok(max_abs_diff(a, b)? / max_abs(b)?.max(1.0))
}

/// erf in f64 (Taylor series up to |x| = 3, a continued fraction for erfc beyond; ~1e-13), the
/// reference for the f32 erf and GELU(erf).
pub fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a <= 3.0 {
        let (mut term, mut s, mut k) = (a, a, 0.0);
        while term.abs() > 1e-17 * s.abs() {
            k += 1.0;
            term *= -a * a / k;
            s += term / (2.0 * k + 1.0);
        }
        s * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = e^(−a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + …))))
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}
