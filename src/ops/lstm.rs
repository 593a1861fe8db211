//! An LSTM layer over a whole sequence, fused (Hochreiter & Schmidhuber 1997; the forget gate of
//! Gers, Schmidhuber & Cummins 2000, switchable for the learning-to-forget study).
//!
//! Per step, with gate order i, f, g, o (PyTorch's) and σ the logistic sigmoid:
//!   a_t = x_t·W_ihᵀ + b + h_{t-1}·W_hhᵀ        (B, 4H)
//!   i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
//!   c_t = f ⊙ c_{t-1} + i ⊙ g                   (without forget gate: c_t = c_{t-1} + i ⊙ g)
//!   h_t = o ⊙ tanh(c_t)
//!
//! The fused version:
//! - forward: the input projection x·W_ihᵀ of ALL steps is one (B·T, D)·(D, 4H) gemm, hoisted
//!   out of the recurrence (a candle matmul, so its backward is candle's: one gemm each for dx and
//!   dW_ih over all steps). The recurrence is one `CustomOp3`: per step one (B, H)·(H, 4H) gemm
//!   and one fused pass of gate math (which also adds b), saving the gate activations, c_{t-1},
//!   tanh(c_t) and h_{t-1} for the backward (7·B·T·H floats).
//! - backward (BPTT): the recurrence runs backward with one fused elementwise pass and one
//!   (B, 4H)·(4H, H) gemm per step (for dh_{t-1}); dW_hh is then ONE (4H, B·T)·(B·T, H) gemm over
//!   all steps, db a column sum, and the gate gradients dA (B, T, 4H) go to the projection's
//!   backward.
//!
//! A `CustomOp3` has three inputs, so the op takes (x·W_ihᵀ, W_hh, [h0 | c0 | b] flattened); the
//! concatenation and the output's packing of c_T are cheap next to the gemms.
//!
//! Without the forget gate the weights keep the 4H layout, so both variants share parameters and
//! checkpoints: the f rows of W_ih, W_hh and b are computed but ignored, and get zero gradient
//! (so an optimizer with weight decay will shrink them; they never affect the output).

use super::vmath::{self, simd_kernel};
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// The fused LSTM over a sequence. x (B, T, D), w_ih (4H, D), w_hh (4H, H), b (4H), h0 and c0
/// (B, H), all f32 on the CPU; gate order i, f, g, o.
///
/// Returns (h (B, T, H): h_1..h_T, h_T (B, H), c_T (B, H)). Gradients flow to every input from
/// all three outputs (h_T is h's last step; c_T lets truncated BPTT carry the cell state).
pub fn lstm_seq(
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (bsz, t_len, d) = check_shapes(x, w_ih, w_hh, b, h0, c0)?;
    let hid = w_hh.dim(1)?;
    for (name, t) in [("x", x), ("w_ih", w_ih), ("w_hh", w_hh), ("b", b), ("h0", h0), ("c0", c0)] {
        if t.dtype() != DType::F32 || !matches!(t.device(), Device::Cpu) {
            bail!("lstm_seq: {name} must be f32 on the CPU, got {:?} on {:?}", t.dtype(), t.device())
        }
    }
    // (B, T, 4H) = x·W_ihᵀ for all steps at once: one gemm
    let a_x = x.reshape((bsz * t_len, d))?.matmul(&w_ih.t()?)?.reshape((bsz, t_len, 4 * hid))?;
    let state = Tensor::cat(&[&h0.flatten_all()?, &c0.flatten_all()?, b], 0)?; // (2·B·H + 4H)
    let op = LstmRecurrence { forget_gate, saved: OnceLock::new() };
    // (B, T+1, H): h_1..h_T, then c_T in the last slot
    let out = a_x.contiguous()?.apply_op3(&w_hh.contiguous()?, &state, op)?;
    let h = out.narrow(1, 0, t_len)?;
    let h_last = out.narrow(1, t_len - 1, 1)?.squeeze(1)?;
    let c_last = out.narrow(1, t_len, 1)?.squeeze(1)?;
    Ok((h, h_last, c_last))
}

/// The reference: a per-step LSTM composed of candle ops that have a backward. Same signature
/// and outputs as `lstm_seq`.
pub fn lstm_seq_ref(
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, t_len, _) = check_shapes(x, w_ih, w_hh, b, h0, c0)?;
    let hid = w_hh.dim(1)?;
    let w_hh_t = w_hh.t()?;
    let w_ih_t = w_ih.t()?;
    let (mut h, mut c) = (h0.clone(), c0.clone());
    let mut hs = Vec::with_capacity(t_len);
    for t in 0..t_len {
        let x_t = x.narrow(1, t, 1)?.squeeze(1)?; // (B, D)
        let a = x_t.matmul(&w_ih_t)?.broadcast_add(b)?.add(&h.matmul(&w_hh_t)?)?; // (B, 4H)
        let i = candle_nn::ops::sigmoid(&a.narrow(1, 0, hid)?)?;
        let g = a.narrow(1, 2 * hid, hid)?.tanh()?;
        let o = candle_nn::ops::sigmoid(&a.narrow(1, 3 * hid, hid)?)?;
        c = if forget_gate {
            let f = candle_nn::ops::sigmoid(&a.narrow(1, hid, hid)?)?;
            f.mul(&c)?.add(&i.mul(&g)?)?
        } else {
            c.add(&i.mul(&g)?)?
        };
        h = o.mul(&c.tanh()?)?;
        hs.push(h.clone());
    }
    Ok((Tensor::stack(&hs, 1)?, h, c))
}

/// Checks the shapes and returns (B, T, D).
fn check_shapes(
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
) -> Result<(usize, usize, usize)> {
    let (bsz, t_len, d) = x.dims3()?;
    let (h4, hid) = w_hh.dims2()?;
    if h4 != 4 * hid || hid == 0 {
        bail!("lstm_seq: w_hh must be (4H, H), got {:?}", w_hh.shape())
    }
    if w_ih.dims() != [4 * hid, d] {
        bail!("lstm_seq: w_ih must be (4H, D) = ({}, {d}), got {:?}", 4 * hid, w_ih.shape())
    }
    if b.dims() != [4 * hid] {
        bail!("lstm_seq: b must be (4H) = ({}), got {:?}", 4 * hid, b.shape())
    }
    for (name, s) in [("h0", h0), ("c0", c0)] {
        if s.dims() != [bsz, hid] {
            bail!("lstm_seq: {name} must be (B, H) = ({bsz}, {hid}), got {:?}", s.shape())
        }
    }
    if t_len == 0 {
        bail!("lstm_seq: the sequence is empty (T = 0)")
    }
    Ok((bsz, t_len, d))
}

/// What the forward keeps for BPTT, all (B, T, ·) row-major.
struct Saved {
    /// i, f, g, o after their nonlinearities (B, T, 4H)
    gates: Vec<f32>,
    /// c_{t-1} (B, T, H)
    c_prev: Vec<f32>,
    /// tanh(c_t) (B, T, H)
    tanh_c: Vec<f32>,
    /// h_{t-1} (B, T, H): the left factor of dW_hh's single gemm
    h_prev: Vec<f32>,
}

/// The recurrence as a custom op on (x·W_ihᵀ (B, T, 4H), W_hh (4H, H), [h0 | c0 | b] (2·B·H + 4H));
/// its output is (B, T+1, H): h_1..h_T and then c_T.
struct LstmRecurrence {
    forget_gate: bool,
    saved: OnceLock<Saved>,
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        (CpuStorage::F32(_), None) => bail!("lstm_seq: {what} must be contiguous"),
        _ => bail!("lstm_seq: {what} must be f32"),
    }
}

/// gemm's parallelism: the global rayon pool, as candle's matmul does.
fn parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        n if n > 1 => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}

/// Rows of B per rayon task in the elementwise passes: a couple of tasks per thread, since a
/// step's gate math is only B·H elements.
fn rows_per_task(bsz: usize) -> usize {
    bsz.div_ceil(2 * rayon::current_num_threads()).max(1)
}

/// The four gate blocks (i, f, g, o) of a 4H row.
fn split4(a: &[f32], hid: usize) -> [&[f32]; 4] {
    let (i, rest) = a.split_at(hid);
    let (f, rest) = rest.split_at(hid);
    let (g, o) = rest.split_at(hid);
    [i, f, g, o]
}

fn split4_mut(a: &mut [f32], hid: usize) -> [&mut [f32]; 4] {
    let (i, rest) = a.split_at_mut(hid);
    let (f, rest) = rest.split_at_mut(hid);
    let (g, o) = rest.split_at_mut(hid);
    [i, f, g, o]
}

// The two kernels take every block as its own slice argument: distinct `&mut` arguments are
// known not to alias, so LLVM vectorises the loops without runtime overlap checks (with one
// 4H slice split inside, it kept the scalar loop).

simd_kernel! {
    /// One step of gate math for one batch row. (ai, af, ag, ao) hold the recurrent
    /// pre-activation h_{t-1}·W_hhᵀ and become the activations i, f, g, o; (xi, xf, xg, xo) is
    /// x_t·W_ihᵀ and (bi, bf, bg, bo) the bias. Writes c_t, tanh(c_t) and h_t (each H).
    #[allow(clippy::too_many_arguments)]
    fn gates_fwd(
        ai: &mut [f32], af: &mut [f32], ag: &mut [f32], ao: &mut [f32],
        xi: &[f32], xf: &[f32], xg: &[f32], xo: &[f32],
        bi: &[f32], bf: &[f32], bg: &[f32], bo: &[f32],
        c_prev: &[f32], c: &mut [f32], tanh_c: &mut [f32], h: &mut [f32], forget: bool,
    ) {
        let hid = c.len();
        // every slice cut to exactly H, so that the loop has no bounds checks
        let (ai, af, ag, ao) = (&mut ai[..hid], &mut af[..hid], &mut ag[..hid], &mut ao[..hid]);
        let (xi, xf, xg, xo) = (&xi[..hid], &xf[..hid], &xg[..hid], &xo[..hid]);
        let (bi, bf, bg, bo) = (&bi[..hid], &bf[..hid], &bg[..hid], &bo[..hid]);
        let (c_prev, tanh_c, h) = (&c_prev[..hid], &mut tanh_c[..hid], &mut h[..hid]);
        for j in 0..hid {
            let i = vmath::sigmoid(ai[j] + xi[j] + bi[j]);
            let g = vmath::tanh(ag[j] + xg[j] + bg[j]);
            let o = vmath::sigmoid(ao[j] + xo[j] + bo[j]);
            let f = if forget { vmath::sigmoid(af[j] + xf[j] + bf[j]) } else { 1.0 };
            let c_t = f * c_prev[j] + i * g;
            let tc = vmath::tanh(c_t);
            ai[j] = i;
            af[j] = f;
            ag[j] = g;
            ao[j] = o;
            c[j] = c_t;
            tanh_c[j] = tc;
            h[j] = o * tc;
        }
    }
}

simd_kernel! {
    /// One step of BPTT for one batch row. In: ∂L/∂h_t from the output (dh_out) and from step
    /// t+1 (dh_rec); dc = ∂L/∂c_t from step t+1, updated in place to ∂L/∂c_{t-1}; the saved
    /// activations. Out: (dai, daf, dag, dao), the gradient of the pre-activations (daf is zero
    /// without the forget gate).
    #[allow(clippy::too_many_arguments)]
    fn gates_bwd(
        dai: &mut [f32], daf: &mut [f32], dag: &mut [f32], dao: &mut [f32],
        gi: &[f32], gf: &[f32], gg: &[f32], go: &[f32],
        dh_out: &[f32], dh_rec: &[f32], dc: &mut [f32], c_prev: &[f32], tanh_c: &[f32], forget: bool,
    ) {
        let hid = dc.len();
        let (dai, daf, dag, dao) = (&mut dai[..hid], &mut daf[..hid], &mut dag[..hid], &mut dao[..hid]);
        let (gi, gf, gg, go) = (&gi[..hid], &gf[..hid], &gg[..hid], &go[..hid]);
        let (dh_out, dh_rec, c_prev, tanh_c) = (&dh_out[..hid], &dh_rec[..hid], &c_prev[..hid], &tanh_c[..hid]);
        for j in 0..hid {
            let (i, f, g, o, tc) = (gi[j], gf[j], gg[j], go[j], tanh_c[j]);
            let dh = dh_out[j] + dh_rec[j];
            let dc_t = dc[j] + dh * o * (1.0 - tc * tc);
            dao[j] = dh * tc * o * (1.0 - o);
            dai[j] = dc_t * g * i * (1.0 - i);
            dag[j] = dc_t * i * (1.0 - g * g);
            daf[j] = if forget { dc_t * c_prev[j] * f * (1.0 - f) } else { 0.0 };
            dc[j] = if forget { dc_t * f } else { dc_t };
        }
    }
}

impl CustomOp3 for LstmRecurrence {
    fn name(&self) -> &'static str {
        "lstm-recurrence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (bsz, t_len, h4) = l1.shape().dims3()?;
        let hid = h4 / 4;
        let a_x = contiguous_f32(s1, l1, "the input projection")?; // (B, T, 4H)
        let w_hh = contiguous_f32(s2, l2, "w_hh")?; // (4H, H)
        let state = contiguous_f32(s3, l3, "[h0 | c0 | b]")?; // (2·B·H + 4H)
        let (th, t4) = (t_len * hid, t_len * h4);
        if state.len() != 2 * bsz * hid + h4 {
            bail!("lstm_seq: the state holds {} values, expected 2·B·H + 4H", state.len())
        }
        let (h0, rest) = state.split_at(bsz * hid);
        let (c0, bias) = rest.split_at(bsz * hid);
        let [bi, bf, bg, bo] = split4(bias, hid);

        let mut gates = vec![0f32; bsz * t4];
        let mut c_prev = vec![0f32; bsz * th];
        let mut tanh_c = vec![0f32; bsz * th];
        let mut h_prev = vec![0f32; bsz * th];
        let mut out = vec![0f32; bsz * (t_len + 1) * hid];
        for r in 0..bsz {
            h_prev[r * th..r * th + hid].copy_from_slice(&h0[r * hid..(r + 1) * hid]);
            c_prev[r * th..r * th + hid].copy_from_slice(&c0[r * hid..(r + 1) * hid]);
        }
        // W_hhᵀ (H, 4H), made once: gemm (which computes the transposed product for a row-major
        // destination) then reads it without repacking the 4H·H weights at every step
        let mut w_hh_t = vec![0f32; h4 * hid];
        for r0 in (0..h4).step_by(16) {
            for k in 0..hid {
                for r in r0..(r0 + 16).min(h4) {
                    w_hh_t[k * h4 + r] = w_hh[r * hid + k];
                }
            }
        }
        let par = parallelism();
        let rows = rows_per_task(bsz);
        for t in 0..t_len {
            // gates[:, t] (B, 4H) = h_{t-1} (B, H) · W_hhᵀ (H, 4H); rows of both are T·… apart
            // SAFETY: the pointers and strides stay inside the vectors for m = B, n = 4H, k = H.
            unsafe {
                gemm::gemm(
                    bsz,
                    h4,
                    hid,
                    gates.as_mut_ptr().add(t * h4),
                    1,
                    t4 as isize,
                    false,
                    h_prev.as_ptr().add(t * hid),
                    1,
                    th as isize,
                    w_hh_t.as_ptr(),
                    1,
                    h4 as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
            let forget = self.forget_gate;
            gates
                .par_chunks_mut(t4)
                .zip(c_prev.par_chunks_mut(th))
                .zip(tanh_c.par_chunks_mut(th))
                .zip(h_prev.par_chunks_mut(th))
                .zip(out.par_chunks_mut((t_len + 1) * hid))
                .zip(a_x.par_chunks(t4))
                .with_min_len(rows)
                .for_each(|(((((g_b, cp_b), tc_b), hp_b), out_b), ax_b)| {
                    let a = &mut g_b[t * h4..(t + 1) * h4];
                    let ax = &ax_b[t * h4..(t + 1) * h4];
                    // h_t goes to the output's slot t; c_t to c_prev[t+1], or after the last step
                    // to the output's last slot
                    let (h_all, c_last) = out_b.split_at_mut(t_len * hid);
                    let h = &mut h_all[t * hid..(t + 1) * hid];
                    let (cp, c) = if t + 1 < t_len {
                        let (lo, hi) = cp_b.split_at_mut((t + 1) * hid);
                        (&lo[t * hid..], &mut hi[..hid])
                    } else {
                        (&cp_b[t * hid..], c_last)
                    };
                    let [ai, af, ag, ao] = split4_mut(a, hid);
                    let [xi, xf, xg, xo] = split4(ax, hid);
                    let tc = &mut tc_b[t * hid..(t + 1) * hid];
                    gates_fwd(ai, af, ag, ao, xi, xf, xg, xo, bi, bf, bg, bo, cp, c, tc, h, forget);
                    if t + 1 < t_len {
                        hp_b[(t + 1) * hid..(t + 2) * hid].copy_from_slice(h);
                    }
                });
        }
        let _ = self.saved.set(Saved { gates, c_prev, tanh_c, h_prev });
        Ok((CpuStorage::F32(out), Shape::from((bsz, t_len + 1, hid))))
    }

    fn bwd(
        &self,
        a_x: &Tensor,
        w_hh: &Tensor,
        _state: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.get() else { bail!("lstm_seq: backward before forward") };
        let (bsz, t_len, h4) = a_x.dims3()?;
        let hid = h4 / 4;
        let (th, t4) = (t_len * hid, t_len * h4);
        let (w_hh, d_out) = (w_hh.contiguous()?, grad_res.contiguous()?);
        let (w_st, w_l) = w_hh.storage_and_layout();
        let (d_st, d_l) = d_out.storage_and_layout();
        let (Storage::Cpu(w_st), Storage::Cpu(d_st)) = (&*w_st, &*d_st) else { bail!("lstm_seq: CPU only") };
        let w_hh = contiguous_f32(w_st, w_l, "w_hh")?; // (4H, H)
        let d_out = contiguous_f32(d_st, d_l, "the output gradient")?; // (B, T+1, H): dh_1..dh_T, dc_T

        let mut da = vec![0f32; bsz * t4]; // (B, T, 4H)
        let mut dh_rec = vec![0f32; bsz * hid]; // ∂L/∂h_t through the recurrence
        let mut dc = vec![0f32; bsz * hid]; // ∂L/∂c_t, starting from dc_T
        for r in 0..bsz {
            let src = (r * (t_len + 1) + t_len) * hid;
            dc[r * hid..(r + 1) * hid].copy_from_slice(&d_out[src..src + hid]);
        }
        let par = parallelism();
        let rows = rows_per_task(bsz);
        let forget = self.forget_gate;
        for t in (0..t_len).rev() {
            da.par_chunks_mut(t4)
                .zip(dc.par_chunks_mut(hid))
                .zip(dh_rec.par_chunks(hid))
                .zip(d_out.par_chunks((t_len + 1) * hid))
                .zip(saved.gates.par_chunks(t4))
                .zip(saved.c_prev.par_chunks(th))
                .zip(saved.tanh_c.par_chunks(th))
                .with_min_len(rows)
                .for_each(|((((((da_b, dc_b), dhr_b), dout_b), g_b), cp_b), tc_b)| {
                    let (s, s4) = (t * hid..(t + 1) * hid, t * h4..(t + 1) * h4);
                    let [dai, daf, dag, dao] = split4_mut(&mut da_b[s4.clone()], hid);
                    let [gi, gf, gg, go] = split4(&g_b[s4], hid);
                    let (dh_out, cp, tc) = (&dout_b[s.clone()], &cp_b[s.clone()], &tc_b[s]);
                    gates_bwd(dai, daf, dag, dao, gi, gf, gg, go, dh_out, dhr_b, dc_b, cp, tc, forget);
                });
            // dh_rec (B, H) = da[:, t] (B, 4H) · W_hh (4H, H): the gradient of h_{t-1}
            // SAFETY: m = B, n = H, k = 4H stay inside da (rows T·4H apart), w_hh and dh_rec.
            unsafe {
                gemm::gemm(
                    bsz,
                    hid,
                    h4,
                    dh_rec.as_mut_ptr(),
                    1,
                    hid as isize,
                    false,
                    da.as_ptr().add(t * h4),
                    1,
                    t4 as isize,
                    w_hh.as_ptr(),
                    1,
                    hid as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        // dW_hh (4H, H) = Σ_{b,t} da[b, t]ᵀ h_{t-1}[b] = daᵀ (4H, B·T) · h_prev (B·T, H): one gemm
        let mut dw_hh = vec![0f32; h4 * hid];
        // SAFETY: m = 4H, n = H, k = B·T index da (B·T, 4H) transposed and h_prev (B·T, H).
        unsafe {
            gemm::gemm(
                h4,
                hid,
                bsz * t_len,
                dw_hh.as_mut_ptr(),
                1,
                hid as isize,
                false,
                da.as_ptr(),
                h4 as isize,
                1,
                saved.h_prev.as_ptr(),
                1,
                hid as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
        // [dh0 | dc0 | db]: db (4H) = Σ_{b,t} da[b, t], summed per block of columns in parallel
        let mut d_state = dh_rec;
        d_state.extend_from_slice(&dc);
        let mut db = vec![0f32; h4];
        const COLS: usize = 128;
        db.par_chunks_mut(COLS).enumerate().for_each(|(ci, db_c)| {
            for row in da.chunks_exact(h4) {
                for (acc, v) in db_c.iter_mut().zip(&row[ci * COLS..]) {
                    *acc += v;
                }
            }
        });
        d_state.extend_from_slice(&db);
        let dev = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(da, (bsz, t_len, h4), &dev)?),
            Some(Tensor::from_vec(dw_hh, (h4, hid), &dev)?),
            Some(Tensor::from_vec(d_state, 2 * bsz * hid + h4, &dev)?),
        ))
    }
}

/// `shape`-sized tensor of N(0, scale²) from our seeded RNG, as a trainable variable.
fn random_var(rng: &mut crate::engine::rng::Rng, shape: &[usize], scale: f64) -> Result<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
    Ok(candle_core::Var::from_vec(v, shape, &Device::Cpu)?.as_tensor().clone())
}

/// The inputs of one LSTM problem (all variables) and the random weights r_h, r_hT, r_cT of the
/// scalar loss Σ h⊙r_h + Σ h_T⊙r_hT + Σ c_T⊙r_cT, which sends a gradient into every output.
#[derive(Clone)]
struct Problem {
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b: Tensor,
    h0: Tensor,
    c0: Tensor,
    r: [Tensor; 3],
}

type LstmFn = fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, &Tensor, bool) -> Result<(Tensor, Tensor, Tensor)>;

impl Problem {
    fn new(seed: u64, bsz: usize, t_len: usize, d: usize, hid: usize) -> Result<Self> {
        let mut rng = crate::engine::rng::Rng::new(seed);
        // PyTorch's init scale 1/√H for the weights; unit inputs; a non-zero initial state
        let s = 1.0 / (hid as f64).sqrt();
        Ok(Self {
            x: random_var(&mut rng, &[bsz, t_len, d], 1.0)?,
            w_ih: random_var(&mut rng, &[4 * hid, d], s)?,
            w_hh: random_var(&mut rng, &[4 * hid, hid], s)?,
            b: random_var(&mut rng, &[4 * hid], s)?,
            h0: random_var(&mut rng, &[bsz, hid], 0.5)?,
            c0: random_var(&mut rng, &[bsz, hid], 0.5)?,
            r: [
                random_var(&mut rng, &[bsz, t_len, hid], 1.0)?.detach(),
                random_var(&mut rng, &[bsz, hid], 1.0)?.detach(),
                random_var(&mut rng, &[bsz, hid], 1.0)?.detach(),
            ],
        })
    }

    /// Forward, loss, backward: the outputs and the gradients of (x, w_ih, w_hh, b, h0, c0).
    fn run(&self, f: LstmFn, forget_gate: bool) -> Result<([Tensor; 3], Vec<Tensor>)> {
        let (h, h_last, c_last) = f(&self.x, &self.w_ih, &self.w_hh, &self.b, &self.h0, &self.c0, forget_gate)?;
        let loss = (h.mul(&self.r[0])?.sum_all()? + h_last.mul(&self.r[1])?.sum_all()?)?
            .add(&c_last.mul(&self.r[2])?.sum_all()?)?;
        let grads = loss.backward()?;
        let mut g = Vec::new();
        for v in [&self.x, &self.w_ih, &self.w_hh, &self.b, &self.h0, &self.c0] {
            match grads.get(v) {
                Some(t) => g.push(t.clone()),
                None => bail!("lstm_seq: no gradient reached an input"),
            }
        }
        Ok(([h, h_last, c_last], g))
    }
}

/// The `lstm` workload's layer: B=32, T=64, D=64 (the embedding), H=256; both variants.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let (bsz, t_len, d, hid) = (32, 64, 64, 256);
    let p = Problem::new(7, bsz, t_len, d, hid)?;
    let mut out = Vec::new();
    for forget_gate in [true, false] {
        let (pf, pr) = (p.clone(), p.clone());
        out.push(super::OpBench {
            name: if forget_gate { "lstm_seq" } else { "lstm_seq (no forget gate)" },
            shape: format!("B={bsz}, T={t_len}, D={d}, H={hid}"),
            fused: Box::new(move || pf.run(lstm_seq, forget_gate).map(|_| ())),
            reference: Box::new(move || pr.run(lstm_seq_ref, forget_gate).map(|_| ())),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// max |a − b| / max(1, max |b|)
    fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
        let diff = a.sub(b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
        Ok(diff / scale)
    }

    /// Fused vs composed: outputs and the gradients of all six inputs. Tolerance 2e-5 relative
    /// to the largest reference entry: both sides sum in f32 in different orders (gemm blocking
    /// vs candle's per-step matmuls, ≤ 4H = 132 terms) and the fused sigmoid/tanh differ from
    /// libm by ~1e-7 relative; BPTT through 7 steps compounds these to a few 1e-6 at most.
    fn check(bsz: usize, t_len: usize, d: usize, hid: usize, forget_gate: bool) -> Result<()> {
        let p = Problem::new(1000 + (bsz * 31 + t_len * 7 + hid) as u64, bsz, t_len, d, hid)?;
        let (out_f, g_f) = p.run(lstm_seq, forget_gate)?;
        let (out_r, g_r) = p.run(lstm_seq_ref, forget_gate)?;
        let names = ["h", "h_T", "c_T", "dx", "dw_ih", "dw_hh", "db", "dh0", "dc0"];
        for (k, (a, b)) in out_f.iter().chain(&g_f).zip(out_r.iter().chain(&g_r)).enumerate() {
            assert_eq!(a.dims(), b.dims(), "{}", names[k]);
            let e = rel_err(a, b)?;
            assert!(e < 2e-5, "B={bsz} T={t_len} D={d} H={hid} forget={forget_gate}: {} off by {e}", names[k]);
        }
        if !forget_gate {
            // the f rows are ignored: exactly zero gradient
            for (k, g) in [(4, &g_f[1]), (5, &g_f[2]), (6, &g_f[3])] {
                let f_rows = g.narrow(0, hid, hid)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                assert_eq!(f_rows, 0.0, "{} has a gradient in its f rows", names[k]);
            }
        }
        Ok(())
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

    #[test]
    fn rejects_bad_shapes() -> Result<()> {
        let p = Problem::new(1, 2, 3, 4, 5)?;
        assert!(lstm_seq(&p.x, &p.w_hh, &p.w_hh, &p.b, &p.h0, &p.c0, true).is_err());
        assert!(lstm_seq(&p.x, &p.w_ih, &p.w_hh, &p.b, &p.c0.t()?, &p.c0, true).is_err());
        Ok(())
    }

    /// Rough timing of the bench workloads, fused vs reference (forward + backward): wall time
    /// and the process's CPU time per call (the machine is shared, so CPU time is the steadier).
    /// `cargo test --release --lib ops::lstm::tests::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timing() -> Result<()> {
        for b in benches()? {
            super::super::time_bench(&b, 5)?;
        }
        Ok(())
    }
}
