//! The fused attention's extra memory is O(T), the composed reference's O(T²). Alone in its own
//! test binary (one process, one test): the allocator's live/peak counter is process-wide, so a
//! test running beside it would move the peak (it did, in CI, once more tests ran in parallel).

use candle_core::{Result, Tensor, Var};
use dlhist::alloc::{live_bytes, peak_bytes, reset_peak};
use dlhist::engine::rng::Rng;
use dlhist::ops::attention::{attention, attention_ref};

/// The extra memory of forward + backward at T = 2048 (one head, Dh = 32): one f32 score matrix
/// is 4·T² = 16 MiB. Measured: the fused op peaks about 3.2 MB above its inputs (O, L, dO, dQ,
/// dK, dV and candle's gradient sums, all O(T·Dh)); the composed reference about 292 MB. The
/// bound is half of one score matrix.
#[test]
fn fused_attention_needs_less_than_half_a_score_matrix_of_extra_memory_and_the_reference_more() -> Result<()> {
    let (t, dh) = (2048, 32);
    let score_matrix = 4 * t * t;
    let mut rng = Rng::new(5);
    let mut randn = || -> Result<Var> {
        let v: Vec<f32> = (0..t * dh).map(|_| rng.normal() as f32).collect();
        Var::from_tensor(&Tensor::from_vec(v, (1, 1, t, dh), &candle_core::Device::Cpu)?)
    };
    let (q, k, v, r) = (randn()?, randn()?, randn()?, randn()?);
    let run = |f: fn(&Tensor, &Tensor, &Tensor, bool) -> Result<Tensor>| -> Result<usize> {
        reset_peak();
        let base = live_bytes();
        let o = f(q.as_tensor(), k.as_tensor(), v.as_tensor(), true)?;
        let grads = o.mul(r.as_tensor())?.sum_all()?.backward()?;
        assert!(grads.get(q.as_tensor()).is_some(), "no gradient reached q");
        Ok(peak_bytes().saturating_sub(base))
    };
    let fused = run(attention)?;
    let reference = run(attention_ref)?;
    assert!(fused < score_matrix / 2, "fused attention used {fused} extra bytes at T={t}");
    assert!(reference > score_matrix, "the reference used only {reference} bytes: is the counter on?");
    Ok(())
}
