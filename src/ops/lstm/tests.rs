//! The fused LSTM against the composed reference.

use super::problem::Problem;
use super::*;
use crate::ops::testutil::{max_abs, max_abs_diff, rel_err};

/// Fused (with the kernels of every level this CPU runs) vs composed: outputs and the
/// gradients of all six inputs. Tolerance 2e-5 relative to the largest reference entry
/// (`rel_err`): both sides sum in f32 in different orders (the tile sums over k = D+H in
/// order, the gemms and candle's per-step matmuls in blocks; ≤ 4H = 132 terms) and the fused
/// sigmoid/tanh differ from libm by ~1e-7 relative; BPTT through 7 steps compounds these to
/// a few 1e-6 at most.
fn check_problem(p: &Problem, what: &str, hid: usize, forget_gate: bool) -> Result<()> {
    let (out_r, g_r) = p.run(&lstm_seq_ref, forget_gate)?;
    for level in SimdLevel::supported() {
        let fused = |x: &Tensor, w_ih: &Tensor, w_hh: &Tensor, b: &Tensor, h0: &Tensor, c0: &Tensor, fg: bool| {
            lstm_seq_mode(level, x, w_ih, w_hh, b, h0, c0, fg, false)
        };
        let (out_f, g_f) = p.run(&fused, forget_gate)?;
        let names = ["h", "h_T", "c_T", "dx", "dw_ih", "dw_hh", "db", "dh0", "dc0"];
        for (k, (a, b)) in out_f.iter().chain(&g_f).zip(out_r.iter().chain(&g_r)).enumerate() {
            assert_eq!(a.dims(), b.dims(), "{}", names[k]);
            let e = rel_err(a, b)?;
            assert!(e < 2e-5, "{what} forget={forget_gate} {level:?}: {} off by {e}", names[k]);
        }
        if !forget_gate {
            // the f rows are ignored: exactly zero gradient
            for (k, g) in [(4, &g_f[1]), (5, &g_f[2]), (6, &g_f[3])] {
                let f_rows = g.narrow(0, hid, hid)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                assert_eq!(f_rows, 0.0, "{level:?}: {} has a gradient in its f rows", names[k]);
            }
        }
    }
    Ok(())
}

fn check(bsz: usize, t_len: usize, d: usize, hid: usize, forget_gate: bool) -> Result<()> {
    let p = Problem::new(1000 + (bsz * 31 + t_len * 7 + hid) as u64, bsz, t_len, d, hid)?;
    check_problem(&p, &format!("B={bsz} T={t_len} D={d} H={hid}"), hid, forget_gate)
}

#[test]
fn matches_reference_one_step() -> Result<()> {
    for forget_gate in [true, false] {
        check(1, 1, 5, 7, forget_gate)?;
        check(3, 1, 4, 13, forget_gate)?;
    }
    Ok(())
}

#[test]
fn matches_reference_seven_steps() -> Result<()> {
    for forget_gate in [true, false] {
        check(1, 7, 5, 7, forget_gate)?;
        check(3, 7, 9, 33, forget_gate)?;
        check(5, 7, 16, 17, forget_gate)?;
    }
    Ok(())
}

/// Batches of more than one lane block (17 → 32 lanes, 33 → 32 + 16), H over several work
/// items with a partial last tile (70 = 2 chunks of 32 + 6), D = 1.
#[test]
fn matches_reference_wide_batches_and_chunks() -> Result<()> {
    check(17, 5, 3, 40, true)?;
    check(33, 4, 1, 70, true)?;
    check(33, 3, 6, 9, false)?;
    Ok(())
}

/// The translation milestones' encoder shape: batch 64 (two full blocks of 32 lanes), 24 steps,
/// embeddings 64, H 128 (four work items of 32 units).
#[test]
fn matches_reference_at_the_translation_shapes() -> Result<()> {
    check(64, 24, 64, 128, true)
}

/// Losses of some outputs only: h alone (c_T off the loss's path, so its op has no
/// backward), c_T alone (h's gradient comes only from c_T's op), h_T and c_T.
#[test]
fn matches_reference_with_some_outputs_unused() -> Result<()> {
    for terms in [[true, false, false], [false, false, true], [false, true, true]] {
        let p = Problem::new(55, 3, 5, 4, 9)?.with_loss_terms(terms);
        check_problem(&p, &format!("loss terms {terms:?}"), 9, true)?;
    }
    Ok(())
}

/// x strided (a (T, B, D) tensor transposed), as a time-major caller would pass it.
#[test]
fn matches_reference_with_strided_x() -> Result<()> {
    let p = Problem::new(77, 4, 6, 5, 11)?.with_time_major_x()?;
    check_problem(&p, "time-major x", 11, true)
}

/// Truncated BPTT (the 1997 rule): fused vs the composed reference that detaches h_{t−1} where
/// it enters the gates, at every level, both cells; the reference's h0 gets no gradient at all
/// and the fused op's is exactly zero. Same tolerance as the full backward. And truncation
/// changes the gradients (it is not the full BPTT under another name).
#[test]
fn truncated_bptt_matches_its_reference_and_differs_from_full() -> Result<()> {
    for (forget_gate, (bsz, t_len, d, hid)) in [(true, (3, 7, 5, 9)), (false, (17, 6, 4, 40))] {
        let p = Problem::new(91 + bsz as u64, bsz, t_len, d, hid)?;
        let (out_r, g_r) = p.run_some(&lstm_seq_truncated_ref, forget_gate)?;
        assert!(g_r[4].is_none(), "the reference cuts h0 off the gradient");
        for level in SimdLevel::supported() {
            let fused = |x: &Tensor, w_ih: &Tensor, w_hh: &Tensor, b: &Tensor, h0: &Tensor, c0: &Tensor, fg: bool| {
                lstm_seq_mode(level, x, w_ih, w_hh, b, h0, c0, fg, true)
            };
            let (out_f, g_f) = p.run_some(&fused, forget_gate)?;
            for (k, (a, b)) in out_f.iter().zip(&out_r).enumerate() {
                assert!(rel_err(a, b)? < 2e-5, "{level:?} output {k}");
            }
            for k in [0, 1, 2, 3, 5] {
                let (a, b) = (g_f[k].as_ref().unwrap(), g_r[k].as_ref().unwrap());
                let e = rel_err(a, b)?;
                assert!(e < 2e-5, "truncated forget={forget_gate} {level:?}: gradient {k} off by {e}");
            }
            let dh0 = g_f[4].as_ref().unwrap().abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert_eq!(dh0, 0.0, "{level:?}: the fused op sends an error into h0");
        }
        let (_, g_full) = p.run(&lstm_seq_ref, forget_gate)?;
        let e = rel_err(g_full[2].as_ref(), g_r[2].as_ref().unwrap())?;
        assert!(e > 1e-3, "W_hh's gradient should change when the recurrent path is cut (diff {e})");
    }
    Ok(())
}

#[test]
fn rejects_bad_shapes() -> Result<()> {
    let p = Problem::new(1, 2, 3, 4, 5)?;
    assert!(lstm_seq(&p.x, &p.w_hh, &p.w_hh, &p.b, &p.h0, &p.c0, true).is_err());
    assert!(lstm_seq(&p.x, &p.w_ih, &p.w_hh, &p.b, &p.c0.t()?, &p.c0, true).is_err());
    Ok(())
}

/// An encoder's use: the loss sees only h_T and c_T, so the gradients of early steps are far
/// smaller than those of late ones (the largest dx entry at step 0 is about 1.6e-4), and an
/// error confined to early steps would hide under a tolerance relative to the largest entry, or
/// to 1 (`rel_err`). So each step's dx is measured against its own scale: max |error| over max
/// |reference entry| of that step (floored at 1e-20, far below any step's scale here; the
/// scale is asserted above 1e-12 so the ratio means something). Measured ≤ 1e-6; asserted
/// 1e-4. The same measure must flag a 60% error at step 0 (checked on the reference scaled).
#[test]
fn encoder_gradients_match_step_by_step() -> Result<()> {
    let (bsz, t_len, d, hid) = (64, 24, 64, 128);
    let p = Problem::new(77, bsz, t_len, d, hid)?.with_loss_terms([false, true, true]);
    let (_, g_r) = p.run(&lstm_seq_ref, true)?;
    let (_, g_f) = p.run(&lstm_seq, true)?;
    let step_err = |a: &Tensor, b: &Tensor| -> Result<(f32, f32)> {
        let scale = max_abs(b)?;
        Ok((max_abs_diff(a, b)? / scale.max(1e-20), scale))
    };
    for t in 0..t_len {
        let (a, b) = (g_f[0].narrow(1, t, 1)?, g_r[0].narrow(1, t, 1)?);
        let (e, scale) = step_err(&a, &b)?;
        assert!(scale > 1e-12, "dx at step {t} is {scale}: too small to measure against");
        assert!(e < 1e-4, "dx at step {t} off by {e} of its largest entry {scale}");
    }
    let first = g_r[0].narrow(1, 0, 1)?;
    let (e, _) = step_err(&(&first * 1.6)?, &first)?;
    assert!(e >= 1e-4, "a 60% error at step 0 would pass ({e})");
    Ok(())
}

/// The SIMD copies of the op (kernels/README.md): the two FMA levels (AVX-512, AVX2) give the
/// same bits, outputs and all gradients. The baseline copy does not (measured: 15,604 of the
/// 9 tensors' values differ here); like every level it is held to the reference at 2e-5 above.
#[test]
fn the_fma_levels_give_the_same_bits() -> Result<()> {
    let p = Problem::new(3, 33, 5, 7, 40)?;
    let bits = |level: SimdLevel| -> Result<Vec<Vec<u32>>> {
        let fused = |x: &Tensor, w_ih: &Tensor, w_hh: &Tensor, b: &Tensor, h0: &Tensor, c0: &Tensor, fg: bool| {
            lstm_seq_mode(level, x, w_ih, w_hh, b, h0, c0, fg, false)
        };
        let (out, grads) = p.run(&fused, true)?;
        out.iter()
            .chain(&grads)
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| v.to_bits()).collect()))
            .collect()
    };
    let fma: Vec<SimdLevel> = SimdLevel::supported().into_iter().filter(|l| *l != SimdLevel::Base).collect();
    if let Some((first, rest)) = fma.split_first() {
        let want = bits(*first)?;
        for level in rest {
            assert!(bits(*level)? == want, "the lstm at {level:?} differs from {first:?}");
        }
    }
    Ok(())
}
