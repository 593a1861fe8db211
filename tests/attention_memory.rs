//! The fused attention's extra memory is O(T), the composed reference's O(T²). Alone in its own
//! test binary (one process, one test): the allocator's live/peak counter is process-wide, so a
//! test running beside it would move the peak (it did, in CI, once more tests ran in parallel).

use candle_core::{Result, Tensor, Var};
use dlhist::alloc::{live_bytes, peak_bytes, reset_peak};
use dlhist::ops::attention_qkv::{attention_qkv, attention_qkv_ref};
use dlhist::rng::Rng;

/// The extra memory of forward + backward at T = 2048 (one head, Dh = 32): one f32 score matrix
/// is 4·T² = 16 MiB. Measured: the fused op from the packed projection peaks about 6.4 MB above
/// its inputs (O, L, dO, the gathered q, k, v and their gradients, dqkv and candle's gradient
/// sums, all O(T·Dh)); the composed reference about 295 MB. The bound is half of one score
/// matrix.
#[test]
fn fused_attention_needs_less_than_half_a_score_matrix_of_extra_memory_and_the_reference_more() -> Result<()> {
    let (t, dh) = (2048, 32);
    let score_matrix = 4 * t * t;
    let mut rng = Rng::new(5);
    let mut randn = |width: usize| -> Result<Var> {
        let v: Vec<f32> = (0..t * width).map(|_| rng.normal() as f32).collect();
        Var::from_tensor(&Tensor::from_vec(v, (1, t, width), &candle_core::Device::Cpu)?)
    };
    // q, k, v packed as the model's projection: (1, T, 3·Dh), one head
    let (qkv, r) = (randn(3 * dh)?, randn(dh)?);
    let run = |f: fn(&Tensor, usize, bool) -> Result<Tensor>| -> Result<usize> {
        reset_peak();
        let base = live_bytes();
        let o = f(qkv.as_tensor(), 1, true)?;
        let grads = o.mul(r.as_tensor())?.sum_all()?.backward()?;
        assert!(grads.get(qkv.as_tensor()).is_some(), "no gradient reached qkv");
        Ok(peak_bytes().saturating_sub(base))
    };
    let fused = run(attention_qkv)?;
    let reference = run(attention_qkv_ref)?;
    assert!(fused < score_matrix / 2, "fused attention used {fused} extra bytes at T={t}");
    assert!(reference > score_matrix, "the reference used only {reference} bytes: is the counter on?");
    Ok(())
}
