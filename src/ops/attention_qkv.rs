//! Multi-head self-attention read straight from the packed projection: qkv (B, T, 3C) with
//! [q | k | v] along the last dimension and each of them H heads of Dh = C/H features side by
//! side, to y (B, T, C) with the heads side by side, ready for the output projection.
//!
//! The per-head work is `attention.rs`'s flash kernels (online softmax forward, blockwise
//! recomputing backward). What this op removes is the plumbing around them: the composed path
//! reshapes qkv to (B, T, 3, H, Dh), permutes and copies it to (3, B, H, T, Dh), takes q, k, v
//! with three `get`s and transposes the output back with another copy. In candle's backward every
//! one of those nodes costs a zeros_like + add of its gradient, and each `get` (a narrow) builds
//! a zero-padded tensor of the whole (3, B, H, T, Dh): about 40 MB of memory traffic per gpt
//! layer and step. Here each (b, h) task gathers its q, k, v rows (T × Dh each) into small local
//! buffers, and the backward scatters dq, dk, dv straight into dqkv's columns.

use super::attention::{FlashAttention, KeyRange, BLOCK};
use super::attention_small::{self, SmallAttention};
use super::cpu::{self, Ptr};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Self-attention over `n_head` heads from qkv (B, T, 3C) f32 on the CPU → (B, T, C). With
/// `causal`, position i attends to positions 0..=i. Sequences of at most 64 positions with
/// heads of at most 128 features take `attention_small`'s kernels, longer ones the flash kernels.
pub fn attention_qkv(qkv: &Tensor, n_head: usize, causal: bool) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if qkv.device().is_cuda() {
        return attention_qkv_cuda(qkv, n_head, causal);
    }
    if !super::fused_on(qkv.device(), true) {
        return attention_qkv_ref(qkv, n_head, causal);
    }
    attention_qkv_blocked(qkv, n_head, causal, None, BLOCK, true)
}

/// As `attention_qkv`, with a key-padding mask: batch row b attends only to the positions in
/// `keys[b]` (e.g. the real tokens of a padded source). Rows that see no key output zeros.
/// kernels/attention.cu has no key mask: off the CPU this runs the composed reference. The
/// small-T kernels take no mask: this always runs the flash kernels.
pub fn attention_qkv_keys(qkv: &Tensor, n_head: usize, causal: bool, keys: &[KeyRange]) -> Result<Tensor> {
    if !super::fused_on(qkv.device(), false) {
        return attention_qkv_ref_keys(qkv, n_head, causal, Some(keys));
    }
    attention_qkv_blocked(qkv, n_head, causal, Some(keys), BLOCK, false)
}

/// On a GPU: kernels/attention.cu for f32 and head sizes up to `cuda::ATTN_MAX_DH`, else the
/// composed reference.
#[cfg(feature = "cuda")]
fn attention_qkv_cuda(qkv: &Tensor, n_head: usize, causal: bool) -> Result<Tensor> {
    let (b, t, c3) = qkv.dims3()?;
    if n_head == 0 || c3 == 0 || !c3.is_multiple_of(3 * n_head) {
        bail!("attention_qkv: the last dimension {c3} must be 3·C with C divisible by {n_head} heads")
    }
    if t == 0 {
        bail!("attention_qkv: empty sequence")
    }
    let dh = c3 / 3 / n_head;
    if qkv.dtype() != DType::F32 || dh > super::cuda::ATTN_MAX_DH {
        return attention_qkv_ref(qkv, n_head, causal);
    }
    super::flops::add(super::flops::attention(b, t, t, c3 / 3));
    let op = PackedAttention {
        n_head,
        kernels: Kernels::Flash(FlashAttention::new(causal, BLOCK, dh)),
        keys: vec![0..t; b],
        saved: OnceLock::new(),
        causal,
        dev_lse: OnceLock::new(),
    };
    super::arg(&qkv.contiguous()?).apply_op1(op)
}

/// The CPU op; `small` allows `attention_small`'s kernels where they fit and no key mask is
/// given (tests run both).
fn attention_qkv_blocked(
    qkv: &Tensor,
    n_head: usize,
    causal: bool,
    keys: Option<&[KeyRange]>,
    block: usize,
    small: bool,
) -> Result<Tensor> {
    let (b, t, c3) = qkv.dims3()?;
    if qkv.dtype() != DType::F32 || !matches!(qkv.device(), Device::Cpu) {
        bail!("attention_qkv: qkv must be f32 on the CPU, got {:?} on {:?}", qkv.dtype(), qkv.device())
    }
    if n_head == 0 || c3 == 0 || !c3.is_multiple_of(3 * n_head) {
        bail!("attention_qkv: the last dimension {c3} must be 3·C with C divisible by {n_head} heads")
    }
    if t == 0 {
        bail!("attention_qkv: empty sequence")
    }
    let small = small && keys.is_none();
    let keys = super::attention::check_keys(keys, b, t, "attention_qkv")?;
    super::flops::add(super::flops::attention(b, t, t, c3 / 3));
    let dh = c3 / 3 / n_head;
    let kernels = if small && t <= attention_small::MAX_T && dh <= attention_small::MAX_DH {
        Kernels::Small(SmallAttention::new(causal, dh))
    } else {
        Kernels::Flash(FlashAttention::new(causal, block, dh))
    };
    let op = PackedAttention {
        n_head,
        kernels,
        keys,
        saved: OnceLock::new(),
        #[cfg(feature = "cuda")]
        causal,
        #[cfg(feature = "cuda")]
        dev_lse: OnceLock::new(),
    };
    super::arg(&qkv.contiguous()?).apply_op1(op)
}

/// The composed reference: the model's former plumbing (reshape, permute, copy, three `get`s)
/// around the composed softmax attention of `attention::attention_ref`, heads put back side by
/// side with a transpose.
pub fn attention_qkv_ref(qkv: &Tensor, n_head: usize, causal: bool) -> Result<Tensor> {
    attention_qkv_ref_keys(qkv, n_head, causal, None)
}

/// The composed reference with a key-padding mask (`attention::attention_ref_keys`).
pub fn attention_qkv_ref_keys(qkv: &Tensor, n_head: usize, causal: bool, keys: Option<&[KeyRange]>) -> Result<Tensor> {
    let (b, t, c3) = qkv.dims3()?;
    let (c, h) = (c3 / 3, n_head);
    let qkv = qkv.reshape((b, t, 3, h, c / h))?.permute((2, 0, 3, 1, 4))?.contiguous()?; // (3, B, H, T, Dh)
    let y = super::attention::attention_ref_keys(&qkv.get(0)?, &qkv.get(1)?, &qkv.get(2)?, causal, keys)?; // (B, H, T, Dh)
    y.transpose(1, 2)?.reshape((b, t, c))
}

/// The per-(b, h) kernels: short sequences keep P, longer ones recompute it blockwise.
enum Kernels {
    Small(SmallAttention),
    Flash(FlashAttention),
}

struct PackedAttention {
    n_head: usize,
    kernels: Kernels,
    /// the keys each batch row sees (all T when no mask was given); the small kernels see all
    keys: Vec<KeyRange>,
    /// saved by the CPU forward for the backward: the flash kernels' row logsumexp L (B, H, T),
    /// or the small kernels' P (B, H, T, TP)
    saved: OnceLock<Vec<f32>>,
    /// on the GPU: the mask, and L saved by kernels/attention.cu
    #[cfg(feature = "cuda")]
    causal: bool,
    #[cfg(feature = "cuda")]
    dev_lse: OnceLock<candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>>,
}

/// The shapes of one call: B, T, C, H, Dh.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    c: usize,
    h: usize,
    dh: usize,
}

impl Dims {
    fn of(shape: &Shape, n_head: usize) -> Result<Self> {
        let (b, t, c3) = shape.dims3()?;
        let c = c3 / 3;
        Ok(Self { b, t, c, h: n_head, dh: c / n_head })
    }

    /// Copies the (T, Dh) rows of head `hh` of batch row `bi` out of `src` (B, T, width), whose
    /// head columns start at `col` (0, C or 2C in qkv; 0 in y), into rows of `stride` ≥ Dh
    /// floats of `dst`, zero past Dh.
    fn gather(&self, src: &[f32], width: usize, (bi, hh): (usize, usize), col: usize, dst: &mut [f32], stride: usize) {
        let base = bi * self.t * width + col + hh * self.dh;
        let dst = &mut dst[..self.t * stride];
        // SAFETY: the level is one this CPU runs; the T rows of `stride` floats are dst's own
        unsafe { copy_rows_at(cpu::simd_level(), &src[base..], width, Ptr(dst.as_mut_ptr()), stride, self.t, self.dh) };
        if stride > self.dh {
            dst.chunks_exact_mut(stride).for_each(|row| row[self.dh..].fill(0.0));
        }
    }

    /// The inverse of `gather`, into a buffer of B·T·width floats.
    /// SAFETY: `dst` holds B·T·width floats and no other thread writes these columns.
    unsafe fn scatter(&self, src: &[f32], stride: usize, dst: Ptr, width: usize, (bi, hh): (usize, usize), col: usize) {
        let base = bi * self.t * width + col + hh * self.dh;
        // SAFETY: the level is one this CPU runs; row ti lands at base + ti·width, inside dst
        copy_rows_at(cpu::simd_level(), src, stride, Ptr(dst.0.add(base)), width, self.t, self.dh);
    }
}

/// `dst` + r·dst_stride ← the `len` floats at `src[r·src_stride..]`, for each of `rows` rows,
/// through a raw pointer (y and dqkv are not initialised yet, so no reference is made to them).
///
/// A head's row is a few dozen floats, copied 100–200 times per (b, h). A copy whose length is
/// known only at run time is a call into libc's memcpy (through `copy_from_slice`, 15% of the
/// op's time; through a loop over 16-float blocks too, which LLVM turns back into that call: 3%
/// of a gpt recipe step in memmove). So the usual head sizes get a loop of their own, whose
/// copies have a fixed length, and that loop is compiled per SIMD level, where such a copy is a
/// few full-width moves.
/// SAFETY: dst is valid for those writes, and no one else makes them.
#[inline(always)]
unsafe fn copy_rows(src: &[f32], src_stride: usize, dst: Ptr, dst_stride: usize, rows: usize, len: usize) {
    #[inline(always)]
    unsafe fn fixed<const N: usize>(src: &[f32], src_stride: usize, dst: Ptr, dst_stride: usize, rows: usize) {
        for r in 0..rows {
            let s: &[f32; N] = src[r * src_stride..][..N].try_into().unwrap();
            dst.0.add(r * dst_stride).cast::<[f32; N]>().write_unaligned(*s);
        }
    }
    match len {
        16 => fixed::<16>(src, src_stride, dst, dst_stride, rows),
        32 => fixed::<32>(src, src_stride, dst, dst_stride, rows),
        48 => fixed::<48>(src, src_stride, dst, dst_stride, rows),
        64 => fixed::<64>(src, src_stride, dst, dst_stride, rows),
        _ => {
            for r in 0..rows {
                std::ptr::copy_nonoverlapping(src[r * src_stride..][..len].as_ptr(), dst.0.add(r * dst_stride), len);
            }
        }
    }
}
cpu::simd_at!(copy_rows_at, copy_rows, (src: &[f32], src_stride: usize, dst: Ptr, dst_stride: usize, rows: usize, len: usize));

thread_local! {
    /// Each thread's gathered rows of its current (b, h) for the small kernels, kept between
    /// tasks (see `cpu::with_scratch`).
    static HEAD: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl CustomOp1 for PackedAttention {
    fn name(&self) -> &'static str {
        "flash-attention-qkv"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(l.shape(), self.n_head)?;
        let qkv = cpu::cpu_f32(s, l, "attention_qkv")?;
        let c3 = 3 * d.c;
        // (B, T, C), not zeroed: the tasks' scatters write every entry (H heads of Dh columns)
        let mut y = cpu::uninit(d.b * d.t * d.c);
        let y_out = Ptr(y.as_mut_ptr().cast());
        // one task per (b, h): gather q, k, v (T rows each), attend, scatter O into y's columns
        let saved = match &self.kernels {
            Kernels::Flash(flash) => {
                let tdh = d.t * d.dh;
                let mut lse = cpu::uninit(d.b * d.h * d.t); // (B, H, T), zeroed by each task
                lse.par_chunks_mut(d.t).enumerate().for_each(|(bh, lse_bh)| {
                    let (at, lse_bh) = ((bh / d.h, bh % d.h), cpu::zero_init(lse_bh));
                    let mut buf = vec![0f32; 3 * tdh]; // q, k, v: (T, Dh) each
                    for (i, x) in buf.chunks_exact_mut(tdh).enumerate() {
                        d.gather(qkv, c3, at, i * d.c, x, d.dh);
                    }
                    let (q, k, v) = (&buf[..tdh], &buf[tdh..2 * tdh], &buf[2 * tdh..]);
                    let mut o = vec![0f32; tdh];
                    flash.forward_head((q, k, v), self.keys[at.0].clone(), &mut o, lse_bh);
                    // SAFETY: y holds B·T·C floats; this task alone writes head hh of batch row bi.
                    unsafe { d.scatter(&o, d.dh, y_out, d.c, at, 0) };
                });
                // SAFETY: every chunk was zeroed by its task
                unsafe { cpu::assume_init(lse) }
            }
            Kernels::Small(small) => {
                let (tdp, pl) = (d.t * small.dp, SmallAttention::p_len(d.t));
                let mut p = cpu::uninit(d.b * d.h * pl); // (B, H, T, TP), zeroed by each task
                p.par_chunks_mut(pl).enumerate().for_each(|(bh, p_bh)| {
                    let (at, p_bh) = ((bh / d.h, bh % d.h), cpu::zero_init(p_bh));
                    // q, k, v, o: (T, DP) each; gather zeroes the pad, the kernel writes all of o
                    cpu::with_scratch(&HEAD, 4 * tdp, |buf| {
                        let (ins, o) = buf.split_at_mut(3 * tdp);
                        for (i, x) in ins.chunks_exact_mut(tdp).enumerate() {
                            d.gather(qkv, c3, at, i * d.c, x, small.dp);
                        }
                        let (q, k, v) = (&ins[..tdp], &ins[tdp..2 * tdp], &ins[2 * tdp..]);
                        small.forward_head(d.t, (q, k, v), o, p_bh);
                        // SAFETY: as above
                        unsafe { d.scatter(o, small.dp, y_out, d.c, at, 0) };
                    })
                });
                // SAFETY: as for lse
                unsafe { cpu::assume_init(p) }
            }
        };
        let _ = self.saved.set(saved);
        // SAFETY: the B·H tasks wrote all of y (above)
        let y = unsafe { cpu::assume_init(y) };
        Ok((CpuStorage::F32(y), Shape::from((d.b, d.t, d.c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        let (y, lse, shape) = super::cuda::attention_fwd((s, l), self.n_head, self.causal)?;
        if self.dev_lse.set(lse).is_err() {
            bail!("attention_qkv: forward ran twice on one op");
        }
        Ok((y, shape))
    }

    fn bwd(&self, qkv: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        #[cfg(feature = "cuda")]
        if let Some(lse) = self.dev_lse.get() {
            return Ok(Some(super::cuda::attention_bwd(qkv, res, grad_res, lse, self.n_head, self.causal)?));
        }
        let Some(saved) = self.saved.get() else { bail!("attention_qkv: backward before forward") };
        let d = Dims::of(qkv.shape(), self.n_head)?;
        let owned = [qkv, res, grad_res].into_iter().map(|x| x.contiguous()).collect::<Result<Vec<_>>>()?;
        let guards: Vec<_> = owned.iter().map(|x| x.storage_and_layout()).collect();
        let mut slices = Vec::with_capacity(3);
        for (st, l) in &guards {
            match &**st {
                Storage::Cpu(s) => slices.push(cpu::cpu_f32(s, l, "attention_qkv")?),
                _ => bail!("attention_qkv: CPU only"),
            }
        }
        let [qkv, y, dy] = [slices[0], slices[1], slices[2]];
        let c3 = 3 * d.c;
        // (B, T, 3C), not zeroed: each task scatters dq, dk and dv of its head, which covers it
        let mut dqkv = cpu::uninit(d.b * d.t * c3);
        let d_out = Ptr(dqkv.as_mut_ptr().cast());
        // rows of `stride` floats (Dh, or DP for the small kernels)
        let stride = match &self.kernels {
            Kernels::Flash(_) => d.dh,
            Kernels::Small(small) => small.dp,
        };
        let tdh = d.t * stride;
        // q, k, v, O, dO, then dq, dk, dv: (T, stride) each
        let head = |bh: usize, buf: &mut [f32]| {
            let at = (bh / d.h, bh % d.h);
            let (ins, grads) = buf.split_at_mut(5 * tdh);
            for (i, x) in ins.chunks_exact_mut(tdh).enumerate() {
                match i {
                    0..=2 => d.gather(qkv, c3, at, i * d.c, x, stride),
                    3 => d.gather(y, d.c, at, 0, x, stride),
                    _ => d.gather(dy, d.c, at, 0, x, stride),
                }
            }
            let (dq, rest) = grads.split_at_mut(tdh);
            let (dk, dv) = rest.split_at_mut(tdh);
            let [q, k, v, o, d_o] = [0, 1, 2, 3, 4].map(|i| &ins[i * tdh..(i + 1) * tdh]);
            match &self.kernels {
                Kernels::Flash(flash) => {
                    let lse = &saved[bh * d.t..(bh + 1) * d.t];
                    flash.backward_head((q, k, v), self.keys[at.0].clone(), (o, d_o, lse), dq, dk, dv)
                }
                Kernels::Small(small) => {
                    let pl = SmallAttention::p_len(d.t);
                    small.backward_head(d.t, (q, k, v), (o, d_o, &saved[bh * pl..(bh + 1) * pl]), (dq, dk, dv))
                }
            }
            for (i, g) in [&*dq, &*dk, &*dv].into_iter().enumerate() {
                // SAFETY: dqkv holds B·T·3C floats; this task alone writes head hh of row bi.
                unsafe { d.scatter(g, stride, d_out, c3, at, i * d.c) };
            }
        };
        (0..d.b * d.h).into_par_iter().for_each(|bh| match &self.kernels {
            // the small kernels overwrite dq, dk and dv, and gather zeroes the pads: any old
            // contents will do
            Kernels::Small(_) => cpu::with_scratch(&HEAD, 8 * tdh, |buf| head(bh, buf)),
            // the flash kernels add into dq, dk and dv
            Kernels::Flash(_) => head(bh, &mut vec![0f32; 8 * tdh]),
        });
        // SAFETY: the B·H tasks wrote all of dqkv (above)
        let dqkv = unsafe { cpu::assume_init(dqkv) };
        Ok(Some(Tensor::from_vec(dqkv, (d.b, d.t, c3), &Device::Cpu)?))
    }
}

/// A trainable qkv (B, T, 3C) ~ N(0, 1) and the fixed weight r (B, T, C) of the loss Σ y ⊙ r.
fn problem(seed: u64, (b, t, c): (usize, usize, usize)) -> Result<(Tensor, Tensor)> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
    let qkv = candle_core::Var::from_vec(randn(b * t * 3 * c), (b, t, 3 * c), &Device::Cpu)?;
    let r = Tensor::from_vec(randn(b * t * c), (b, t, c), &Device::Cpu)?;
    Ok((qkv.as_tensor().clone(), r))
}

/// y and dqkv of the loss Σ y ⊙ r.
fn run(f: impl Fn(&Tensor) -> Result<Tensor>, qkv: &Tensor, r: &Tensor) -> Result<(Tensor, Tensor)> {
    let y = f(qkv)?;
    let grads = y.mul(r)?.sum_all()?.backward()?;
    let Some(g) = grads.get(qkv) else { bail!("attention_qkv: no gradient reached qkv") };
    Ok((y, g.clone()))
}

/// The gpt workload's attention (B=32, T=64, C=128, 4 heads, causal), fused from the packed
/// projection vs the composed plumbing and softmax.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let (qkv, r) = problem(12, (32, 64, 128))?;
    let (qkv2, r2) = (qkv.clone(), r.clone());
    Ok(vec![super::OpBench {
        name: "attention from packed qkv (causal)",
        shape: "B=32, T=64, C=128, H=4".into(),
        fused: Box::new(move || run(|x| attention_qkv(x, 4, true), &qkv, &r).map(|_| ())),
        reference: Box::new(move || run(|x| attention_qkv_ref(x, 4, true), &qkv2, &r2).map(|_| ())),
    }])
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one batch row: a slice of one key range
mod tests {
    use super::*;
    use crate::ops::testutil::rel_err;

    /// y and dqkv against the composed reference. Tolerance 1e-5 relative to the largest
    /// reference entry, as `attention.rs`'s (the same kernels; gathering and scattering are
    /// exact copies).
    /// Both kernels (the small ones where T ≤ 64 and Dh ≤ 128, the flash ones always).
    fn check((b, t, c): (usize, usize, usize), h: usize, causal: bool, block: usize) -> Result<()> {
        check_keys((b, t, c), h, causal, block, None)
    }

    /// `check` with a key-padding mask (which always takes the flash kernels).
    fn check_keys(
        (b, t, c): (usize, usize, usize),
        h: usize,
        causal: bool,
        block: usize,
        keys: Option<&[KeyRange]>,
    ) -> Result<()> {
        let (qkv, r) = problem(7 + t as u64, (b, t, c))?;
        let (y_r, g_r) = run(|x| attention_qkv_ref_keys(x, h, causal, keys), &qkv, &r)?;
        for small in [false, true] {
            let (y_f, g_f) = run(|x| attention_qkv_blocked(x, h, causal, keys, block, small), &qkv, &r)?;
            assert_eq!(y_f.dims(), [b, t, c]);
            for (name, a, z) in [("y", &y_f, &y_r), ("dqkv", &g_f, &g_r)] {
                let e = rel_err(a, z)?;
                assert!(
                    e < 1e-5,
                    "B={b} T={t} C={c} H={h} causal={causal} block={block} small={small}: {name} off by {e}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn matches_the_composed_plumbing_and_softmax() -> Result<()> {
        for causal in [true, false] {
            check((2, 37, 12), 3, causal, BLOCK)?; // odd T and Dh = 4
            check((1, 1, 8), 2, causal, BLOCK)?; // one position (generation's first step)
            check((3, 29, 21), 3, causal, 8)?; // odd Dh = 7, many ragged blocks
            check((1, 100, 64), 4, causal, BLOCK)?; // T past one block
            check((1, 64, 64), 2, causal, BLOCK)?; // T exactly one block
            check((1, 29, 48), 3, causal, 5)?; // a block size that is not a power of two
            check((3, 64, 128), 4, causal, BLOCK)?; // the gpt recipe's heads: Dh = 32
            check((2, 17, 40), 1, causal, BLOCK)?; // Dh = 40: three 16-lane blocks, the last padded
            check((1, 33, 256), 2, causal, BLOCK)?; // Dh = 128, the small kernels' widest
        }
        Ok(())
    }

    /// A key-padding mask: left padding (keys lo..T) and right padding (0..hi), ranges that
    /// start and end inside a block, and with causal attention the right-padded form (a causal
    /// row i < lo would see no key, which the reference cannot express).
    #[test]
    fn a_key_mask_matches_the_masked_reference() -> Result<()> {
        check_keys((3, 37, 12), 3, false, BLOCK, Some(&[5..37, 0..37, 0..20]))?;
        check_keys((2, 29, 21), 3, false, 8, Some(&[3..29, 11..17]))?;
        check_keys((2, 100, 64), 4, false, BLOCK, Some(&[70..100, 1..99]))?;
        check_keys((2, 29, 21), 3, true, 8, Some(&[0..29, 0..13]))?;
        Ok(())
    }

    /// Padded keys change nothing: the real rows of a left-padded sequence equal the same
    /// sequence without its padding.
    #[test]
    fn padding_outside_the_key_range_changes_nothing() -> Result<()> {
        let (qkv, _) = problem(3, (1, 9, 12))?;
        let short = attention_qkv(&qkv.narrow(1, 4, 5)?, 3, false)?;
        let padded = attention_qkv_keys(&qkv, 3, false, &[4..9])?.narrow(1, 4, 5)?;
        assert!(rel_err(&padded, &short)? < 1e-6);
        Ok(())
    }

    #[test]
    fn rejects_a_width_that_is_not_three_heads_wide() -> Result<()> {
        let (qkv, _) = problem(1, (1, 4, 8))?;
        assert!(attention_qkv(&qkv.narrow(2, 0, 23)?, 2, true).is_err());
        assert!(attention_qkv(&qkv, 5, true).is_err());
        assert!(attention_qkv(&qkv.to_dtype(DType::F64)?, 2, true).is_err());
        assert!(attention_qkv_keys(&qkv, 2, false, &[0..5]).is_err()); // past T
        assert!(attention_qkv_keys(&qkv, 2, false, &[0..4, 0..4]).is_err()); // not one per row
        Ok(())
    }
}
