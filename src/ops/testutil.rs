//! Helpers shared by the ops' tests: error measures between a fused op and its reference.

use candle_core::{Result, Tensor};

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
