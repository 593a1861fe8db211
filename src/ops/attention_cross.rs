//! Multi-head cross-attention (Vaswani et al. 2017, the decoder's "encoder–decoder attention"):
//! queries from one sequence, keys and values from another of a different length. q (B, Tq, C)
//! holds H heads of Dh = C/H features side by side; kv (B, Tk, 2C) is the packed key/value
//! projection [k | v] of the other sequence; the output y (B, Tq, C) has the heads side by side,
//! ready for the output projection. Batch row b sees only the keys in its range (a key-padding
//! mask: padded source positions are never scored).
//!
//! The per-head work is `attention.rs`'s flash kernels (online softmax forward keeping only the
//! row logsumexp L; a backward that recomputes P = e^{S − L} block by block), as in
//! `attention_qkv.rs`: each (b, h) task gathers its q rows (Tq × Dh) and k, v rows (Tk × Dh) into
//! local buffers, and the backward scatters dq into dq's columns and dk, dv into dkv's. The same
//! op serves cached decoding: one new query (Tq = 1) against the keys and values of every
//! position so far.

use super::attention::{check_keys, FlashAttention, KeyRange, BLOCK};
use super::cpu::{self, Ptr};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Cross-attention over `n_head` heads: q (B, Tq, C) against kv (B, Tk, 2C), both f32 on the
/// CPU → (B, Tq, C). `keys[b]`: the positions of kv that batch row b sees (None: all Tk). There
/// is no CUDA kernel for it: off the CPU (`ops::fused_on`) it runs the composed reference.
pub fn attention_cross(q: &Tensor, kv: &Tensor, n_head: usize, keys: Option<&[KeyRange]>) -> Result<Tensor> {
    if !super::fused_on(q.device(), false) {
        return attention_cross_ref(q, kv, n_head, keys);
    }
    attention_cross_blocked(q, kv, n_head, keys, BLOCK)
}

fn attention_cross_blocked(
    q: &Tensor,
    kv: &Tensor,
    n_head: usize,
    keys: Option<&[KeyRange]>,
    block: usize,
) -> Result<Tensor> {
    let (b, tq, c) = q.dims3()?;
    let (b2, tk, c2) = kv.dims3()?;
    for x in [q, kv] {
        if x.dtype() != DType::F32 || !matches!(x.device(), Device::Cpu) {
            bail!("attention_cross: q and kv must be f32 on the CPU, got {:?} on {:?}", x.dtype(), x.device())
        }
    }
    if b != b2 || c2 != 2 * c {
        bail!("attention_cross: q {:?} and kv {:?} need the same batch and kv twice q's width", q.dims(), kv.dims())
    }
    if n_head == 0 || c == 0 || !c.is_multiple_of(n_head) {
        bail!("attention_cross: width {c} is not divisible by {n_head} heads")
    }
    if tq == 0 || tk == 0 {
        bail!("attention_cross: empty sequence (Tq {tq}, Tk {tk})")
    }
    let keys = check_keys(keys, b, tk, "attention_cross")?;
    super::flops::add(super::flops::attention(b, tq, tk, c));
    let op = CrossAttention {
        d: Dims { b, tq, tk, c, h: n_head, dh: c / n_head },
        flash: FlashAttention::new(false, block, c / n_head),
        keys,
        lse: OnceLock::new(),
    };
    super::arg(&q.contiguous()?).apply_op2(&super::arg(&kv.contiguous()?), op)
}

/// The composed reference: q and kv reshaped and permuted to heads, `attention_ref_keys`
/// (the Tq × Tk scores, −∞ outside each row's keys, candle's composed softmax), heads put
/// back side by side.
pub fn attention_cross_ref(q: &Tensor, kv: &Tensor, n_head: usize, keys: Option<&[KeyRange]>) -> Result<Tensor> {
    let (b, tq, c) = q.dims3()?;
    let tk = kv.dim(1)?;
    let h = n_head;
    let qh = q.reshape((b, tq, h, c / h))?.transpose(1, 2)?.contiguous()?; // (B, H, Tq, Dh)
    let kv = kv.reshape((b, tk, 2, h, c / h))?.permute((2, 0, 3, 1, 4))?.contiguous()?; // (2, B, H, Tk, Dh)
    let y = super::attention::attention_ref_keys(&qh, &kv.get(0)?, &kv.get(1)?, false, keys)?; // (B, H, Tq, Dh)
    y.transpose(1, 2)?.reshape((b, tq, c))
}

/// The shapes of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    tq: usize,
    tk: usize,
    c: usize,
    h: usize,
    dh: usize,
}

impl Dims {
    /// Copies the rows of head `hh` of batch row `bi` out of `src` (B, rows, width), whose head
    /// columns start at `col`, into `dst` (rows × Dh).
    fn gather(
        &self,
        src: &[f32],
        (rows, width): (usize, usize),
        (bi, hh): (usize, usize),
        col: usize,
        dst: &mut [f32],
    ) {
        let base = bi * rows * width + col + hh * self.dh;
        for (ti, row) in dst.chunks_exact_mut(self.dh).enumerate() {
            row.copy_from_slice(&src[base + ti * width..][..self.dh]);
        }
    }

    /// The inverse of `gather`, into a buffer of B·rows·width floats.
    /// SAFETY: `dst` holds B·rows·width floats and no other thread writes these columns.
    unsafe fn scatter(
        &self,
        src: &[f32],
        dst: Ptr,
        (rows, width): (usize, usize),
        (bi, hh): (usize, usize),
        col: usize,
    ) {
        let base = bi * rows * width + col + hh * self.dh;
        for (ti, row) in src.chunks_exact(self.dh).enumerate() {
            std::ptr::copy_nonoverlapping(row.as_ptr(), dst.0.add(base + ti * width), self.dh);
        }
    }
}

struct CrossAttention {
    d: Dims,
    flash: FlashAttention,
    /// the keys each batch row sees
    keys: Vec<KeyRange>,
    /// the row logsumexp L (B, H, Tq), saved by the forward for the backward
    lse: OnceLock<Vec<f32>>,
}

impl CustomOp2 for CrossAttention {
    fn name(&self) -> &'static str {
        "flash-attention-cross"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = self.d;
        let (q, kv) = (cpu::cpu_f32(s1, l1, "attention_cross")?, cpu::cpu_f32(s2, l2, "attention_cross")?);
        let (qdh, kdh) = (d.tq * d.dh, d.tk * d.dh);
        let mut y = vec![0f32; d.b * d.tq * d.c]; // (B, Tq, C)
        let mut lse = vec![0f32; d.b * d.h * d.tq]; // (B, H, Tq)
        let y_out = Ptr(y.as_mut_ptr());
        lse.par_chunks_mut(d.tq).enumerate().for_each(|(bh, lse_bh)| {
            let at = (bh / d.h, bh % d.h);
            let mut buf = vec![0f32; 2 * qdh + 2 * kdh]; // q, O (Tq × Dh), k, v (Tk × Dh)
            let (qo, kv_buf) = buf.split_at_mut(2 * qdh);
            let (qb, o) = qo.split_at_mut(qdh);
            let (kb, vb) = kv_buf.split_at_mut(kdh);
            d.gather(q, (d.tq, d.c), at, 0, qb);
            d.gather(kv, (d.tk, 2 * d.c), at, 0, kb);
            d.gather(kv, (d.tk, 2 * d.c), at, d.c, vb);
            self.flash.forward_head((qb, kb, vb), self.keys[at.0].clone(), o, lse_bh);
            // SAFETY: y holds B·Tq·C floats; this task alone writes head hh of batch row bi.
            unsafe { d.scatter(o, y_out, (d.tq, d.c), at, 0) };
        });
        let _ = self.lse.set(lse);
        Ok((CpuStorage::F32(y), Shape::from((d.b, d.tq, d.c))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        kv: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(lse) = self.lse.get() else { bail!("attention_cross: backward before forward") };
        let d = self.d;
        let owned = [q, kv, res, grad_res].into_iter().map(|x| x.contiguous()).collect::<Result<Vec<_>>>()?;
        let guards: Vec<_> = owned.iter().map(|x| x.storage_and_layout()).collect();
        let slices =
            guards.iter().map(|(st, l)| cpu::storage_f32(st, l, "attention_cross")).collect::<Result<Vec<_>>>()?;
        let [q, kv, y, dy] = [slices[0], slices[1], slices[2], slices[3]];
        let (qdh, kdh) = (d.tq * d.dh, d.tk * d.dh);
        let mut dq = vec![0f32; d.b * d.tq * d.c]; // (B, Tq, C)
        let mut dkv = vec![0f32; d.b * d.tk * 2 * d.c]; // (B, Tk, 2C)
        let (dq_out, dkv_out) = (Ptr(dq.as_mut_ptr()), Ptr(dkv.as_mut_ptr()));
        let (qshape, kvshape) = ((d.tq, d.c), (d.tk, 2 * d.c));
        (0..d.b * d.h).into_par_iter().for_each(|bh| {
            let at = (bh / d.h, bh % d.h);
            // q, O, dO, dq (Tq × Dh); k, v, dk, dv (Tk × Dh)
            let mut qbuf = vec![0f32; 4 * qdh];
            let mut kbuf = vec![0f32; 4 * kdh];
            let (q_ins, dqb) = qbuf.split_at_mut(3 * qdh);
            let (k_ins, dkdv) = kbuf.split_at_mut(2 * kdh);
            d.gather(q, qshape, at, 0, &mut q_ins[..qdh]);
            d.gather(y, qshape, at, 0, &mut q_ins[qdh..2 * qdh]);
            d.gather(dy, qshape, at, 0, &mut q_ins[2 * qdh..]);
            d.gather(kv, kvshape, at, 0, &mut k_ins[..kdh]);
            d.gather(kv, kvshape, at, d.c, &mut k_ins[kdh..]);
            let (dk, dv) = dkdv.split_at_mut(kdh);
            let [qb, o, d_o] = [0, 1, 2].map(|i| &q_ins[i * qdh..(i + 1) * qdh]);
            let (kb, vb) = (&k_ins[..kdh], &k_ins[kdh..]);
            let lse_bh = &lse[bh * d.tq..(bh + 1) * d.tq];
            self.flash.backward_head((qb, kb, vb), self.keys[at.0].clone(), (o, d_o, lse_bh), dqb, dk, dv);
            // SAFETY: dq holds B·Tq·C and dkv B·Tk·2C floats; this task alone writes head hh of
            // batch row bi in each.
            unsafe {
                d.scatter(dqb, dq_out, qshape, at, 0);
                d.scatter(dk, dkv_out, kvshape, at, 0);
                d.scatter(dv, dkv_out, kvshape, at, d.c);
            }
        });
        Ok((
            Some(Tensor::from_vec(dq, (d.b, d.tq, d.c), &Device::Cpu)?),
            Some(Tensor::from_vec(dkv, (d.b, d.tk, 2 * d.c), &Device::Cpu)?),
        ))
    }
}

/// Trainable q (B, Tq, C) and kv (B, Tk, 2C) ~ N(0, 1), and the fixed weight r (B, Tq, C) of the
/// loss Σ y ⊙ r.
fn problem(seed: u64, (b, tq, tk, c): (usize, usize, usize, usize)) -> Result<(Tensor, Tensor, Tensor)> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let q = candle_core::Var::from_vec(randn(b * tq * c), (b, tq, c), &Device::Cpu)?;
    let kv = candle_core::Var::from_vec(randn(b * tk * 2 * c), (b, tk, 2 * c), &Device::Cpu)?;
    let r = Tensor::from_vec(randn(b * tq * c), (b, tq, c), &Device::Cpu)?;
    Ok((q.as_tensor().clone(), kv.as_tensor().clone(), r))
}

/// y, dq and dkv of the loss Σ y ⊙ r.
fn run(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>, q: &Tensor, kv: &Tensor, r: &Tensor) -> Result<[Tensor; 3]> {
    let y = f(q, kv)?;
    let grads = y.mul(r)?.sum_all()?.backward()?;
    let (Some(gq), Some(gkv)) = (grads.get(q), grads.get(kv)) else {
        bail!("attention_cross: no gradient reached q or kv")
    };
    Ok([y, gq.clone(), gkv.clone()])
}

/// The transformer milestone's cross-attention (batch 64, 20 target against 24 source tokens,
/// C = 128, 4 heads, the sources left-padded to 12..24 tokens), fused vs composed.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let (b, tq, tk, c) = (64, 20, 24, 128);
    let (q, kv, r) = problem(13, (b, tq, tk, c))?;
    let keys: Vec<KeyRange> = (0..b).map(|i| (i % 13)..tk).collect();
    let (q2, kv2, r2, keys2) = (q.clone(), kv.clone(), r.clone(), keys.clone());
    Ok(vec![super::OpBench {
        name: "cross-attention (key mask)",
        shape: format!("B={b}, Tq={tq}, Tk={tk}, C={c}, H=4"),
        fused: Box::new(move || run(|a, x| attention_cross(a, x, 4, Some(&keys)), &q, &kv, &r).map(|_| ())),
        reference: Box::new(move || run(|a, x| attention_cross_ref(a, x, 4, Some(&keys2)), &q2, &kv2, &r2).map(|_| ())),
    }])
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one batch row: a slice of one key range
mod tests {
    use super::*;
    use crate::ops::testutil::rel_err;

    /// y, dq and dkv against the composed reference. Tolerance 1e-5 relative to the largest
    /// reference entry, as `attention_qkv.rs`'s (the same kernels; gathers and scatters are
    /// exact copies).
    fn check(
        (b, tq, tk, c): (usize, usize, usize, usize),
        h: usize,
        block: usize,
        keys: Option<&[KeyRange]>,
    ) -> Result<()> {
        let (q, kv, r) = problem(5 + (tq * 31 + tk) as u64, (b, tq, tk, c))?;
        let fused = run(|a, x| attention_cross_blocked(a, x, h, keys, block), &q, &kv, &r)?;
        let reference = run(|a, x| attention_cross_ref(a, x, h, keys), &q, &kv, &r)?;
        assert_eq!(fused[0].dims(), [b, tq, c]);
        for (name, f, z) in [("y", 0, 0), ("dq", 1, 1), ("dkv", 2, 2)].map(|(n, i, j)| (n, &fused[i], &reference[j])) {
            let e = rel_err(f, z)?;
            assert!(e < 1e-5, "B={b} Tq={tq} Tk={tk} C={c} H={h} block={block} keys={keys:?}: {name} off by {e}");
        }
        Ok(())
    }

    #[test]
    fn matches_the_composed_reference_with_tq_not_tk() -> Result<()> {
        check((2, 7, 13, 12), 3, BLOCK, None)?; // odd Tq and Tk, Dh = 4
        check((3, 13, 5, 21), 3, BLOCK, None)?; // Tq > Tk, odd Dh = 7
        check((1, 1, 9, 8), 2, BLOCK, None)?; // one query (cached decoding)
        check((2, 29, 37, 21), 3, 8, None)?; // many ragged blocks both ways
        check((1, 70, 100, 64), 4, BLOCK, None)?; // past one block both ways
        check((2, 11, 19, 48), 3, 5, None)?; // a block size that is not a power of two
        Ok(())
    }

    #[test]
    fn a_key_mask_matches_the_masked_reference() -> Result<()> {
        check((3, 7, 13, 12), 3, BLOCK, Some(&[4..13, 0..13, 0..6]))?; // left, none, right
        check((2, 29, 37, 21), 3, 8, Some(&[9..37, 3..30]))?; // ranges inside blocks
        check((2, 1, 100, 64), 4, BLOCK, Some(&[70..100, 0..1]))?; // one query, one key
        Ok(())
    }

    /// The rows of padded keys get exactly zero gradient, and the outputs are those of the same
    /// keys without the padding.
    #[test]
    fn padded_keys_change_nothing_and_get_no_gradient() -> Result<()> {
        let (q, kv, r) = problem(9, (1, 5, 8, 12))?;
        let [y, _, dkv] = run(|a, x| attention_cross(a, x, 3, Some(&[3..8])), &q, &kv, &r)?;
        let short = attention_cross(&q, &kv.narrow(1, 3, 5)?, 3, None)?;
        assert!(rel_err(&y, &short)? < 1e-6);
        let pad: Vec<f32> = dkv.narrow(1, 0, 3)?.flatten_all()?.to_vec1()?;
        assert!(pad.iter().all(|&g| g == 0.0));
        Ok(())
    }

    #[test]
    fn rejects_mismatched_shapes_and_bad_masks() -> Result<()> {
        let (q, kv, _) = problem(1, (2, 3, 4, 8))?;
        assert!(attention_cross(&q, &kv.narrow(2, 0, 15)?, 2, None).is_err()); // kv not 2C wide
        assert!(attention_cross(&q, &kv.narrow(0, 0, 1)?, 2, None).is_err()); // batch differs
        assert!(attention_cross(&q, &kv, 3, None).is_err()); // 8 not divisible by 3 heads
        assert!(attention_cross(&q, &kv, 2, Some(&[0..4])).is_err()); // one range for two rows
        assert!(attention_cross(&q, &kv, 2, Some(&[0..4, 2..5])).is_err()); // past Tk
        Ok(())
    }
}
