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
//! The per-step products run on our own microkernel (`small_gemm`), not a general gemm: W_hh is
//! packed ONCE per forward (panels of 16 units × the 4 gates, so a tile holds i, f, g, o of the
//! same units) and once per backward (panels of 64 units), and the hidden units of each step are
//! split into work items that rayon's threads take from a queue (`StepQueue`); an
//! item runs its tiles and then its units' gate math. A general gemm repacked the 1 MB W_hh at
//! every step and synchronised its threads twice per step.
//!
//! A `CustomOp3` has three inputs, so the op takes (x·W_ihᵀ, W_hh, [h0 | c0 | b] flattened); the
//! concatenation and the output's packing of c_T are cheap next to the gemms.
//!
//! Without the forget gate the weights keep the 4H layout, so both variants share parameters and
//! checkpoints: the f rows of W_ih, W_hh and b are computed but ignored, and get zero gradient
//! (so an optimizer with weight decay will shrink them; they never affect the output).

use super::cpu;
use super::small_gemm::{self, StepQueue, MR, NR};
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

/// Units of one gate in a forward panel: 16 × (i, f, g, o) = the kernel's 64 columns.
const UNITS_F: usize = NR / 4;

/// Forward panels per work item: 32 hidden units, so that each item's gate math runs on rows
/// long enough to vectorise well, and H = 256 still gives 8 items per step to share.
const PANELS_PER_CHUNK: usize = 2;

/// A buffer that the recurrence's threads write in disjoint parts.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: the threads write disjoint ranges, ordered by the step queue.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The address `off` values in (a method, so that closures capture the whole `Ptr`).
    /// SAFETY: `off` lies inside the buffer.
    unsafe fn at(self, off: usize) -> *mut f32 {
        self.0.add(off)
    }
}

/// `len` values of `p` from `off`, mutable.
/// SAFETY: the range lies inside the buffer, and no other live reference covers it.
#[allow(clippy::mut_from_ref)]
unsafe fn slice<'a>(p: Ptr, off: usize, len: usize) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut(p.0.add(off), len)
}

/// The threads of rayon's global pool (RAYON_NUM_THREADS, set once by main), which our other
/// ops and the gemms use too. (candle's own barrier pool runs one thread: main sets
/// CANDLE_NUM_THREADS=1 so its spinning workers do not fight rayon's for the cores.)
fn n_threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `work(tid)` for every tid < `n_threads()`, one per thread, all at once (the step queue
/// hands work between them, so they must run concurrently: `broadcast` gives each pool thread
/// one call).
fn run_threads(work: &(dyn Fn(usize) + Sync)) {
    rayon::broadcast(|ctx| work(ctx.index()));
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
        let a_x = cpu::cpu_f32(s1, l1, "lstm_seq")?; // (B, T, 4H)
        let w_hh = cpu::cpu_f32(s2, l2, "lstm_seq")?; // (4H, H)
        let state = cpu::cpu_f32(s3, l3, "lstm_seq")?; // (2·B·H + 4H)
        let (th, t4) = (t_len * hid, t_len * h4);
        if state.len() != 2 * bsz * hid + h4 {
            bail!("lstm_seq: the state holds {} values, expected 2·B·H + 4H", state.len())
        }
        let (h0, rest) = state.split_at(bsz * hid);
        let (c0, bias) = rest.split_at(bsz * hid);

        let mut gates = vec![0f32; bsz * t4];
        let mut c_prev = vec![0f32; bsz * th];
        let mut tanh_c = vec![0f32; bsz * th];
        let mut h_prev = vec![0f32; bsz * th];
        let mut out = vec![0f32; bsz * (t_len + 1) * hid];
        for r in 0..bsz {
            h_prev[r * th..r * th + hid].copy_from_slice(&h0[r * hid..(r + 1) * hid]);
            c_prev[r * th..r * th + hid].copy_from_slice(&c0[r * hid..(r + 1) * hid]);
        }
        // W_hh packed once into panels of 16 hidden units × the 4 gates (H × 64 each, k-major):
        // a panel's tile then holds i, f, g, o of the same units, so its gate math can follow at
        // once; the panels stay in the cache for all T steps
        let np = hid.div_ceil(UNITS_F);
        let mut wp = vec![0f32; np * hid * NR];
        for (p, panel) in wp.chunks_exact_mut(hid * NR).enumerate() {
            let col = |c: usize| {
                let j = p * UNITS_F + c % UNITS_F;
                (j < hid).then_some((c / UNITS_F) * hid + j)
            };
            small_gemm::pack_panel(panel, hid, col, |k, row| w_hh[row * hid + k]);
        }
        let forget = self.forget_gate;
        let tile = small_gemm::tile_fn();
        // work items: step t × chunks of PANELS_PER_CHUNK panels (32 hidden units); an item
        // computes its units' gate pre-activations and then their gate math
        let chunks = np.div_ceil(PANELS_PER_CHUNK);
        let queue = StepQueue::new(t_len, chunks);
        let (g_p, cp_p, tc_p, hp_p, out_p) = (
            Ptr(gates.as_mut_ptr()),
            Ptr(c_prev.as_mut_ptr()),
            Ptr(tanh_c.as_mut_ptr()),
            Ptr(h_prev.as_mut_ptr()),
            Ptr(out.as_mut_ptr()),
        );
        let oh = (t_len + 1) * hid; // a batch row of the output
        let work = |_tid: usize| {
            let mut acc = [0f32; MR * NR];
            queue.run(|t, chunk| {
                let panels = chunk * PANELS_PER_CHUNK..((chunk + 1) * PANELS_PER_CHUNK).min(np);
                for p in panels.clone() {
                    let (j0, nu) = (p * UNITS_F, UNITS_F.min(hid - p * UNITS_F));
                    for r0 in (0..bsz).step_by(MR) {
                        let rows = MR.min(bsz - r0);
                        // acc (rows, 64) = h_{t-1}[r0..] (rows, H) · panel p (H, 64)
                        // SAFETY: rows r0.. of h_prev at step t hold H values, complete since
                        // step t − 1 finished; the panel holds H × 64; acc holds MR × 64.
                        unsafe {
                            tile(
                                hid,
                                hp_p.at(r0 * th + t * hid),
                                th,
                                rows,
                                wp.as_ptr().add(p * hid * NR),
                                acc.as_mut_ptr(),
                                NR,
                            )
                        };
                        for rr in 0..rows {
                            let ga = (r0 + rr) * t4 + t * h4; // gates[b, t]
                            for g in 0..4 {
                                // SAFETY: units j0..j0+nu of gates[b, t] are this item's alone.
                                unsafe { slice(g_p, ga + g * hid + j0, nu) }
                                    .copy_from_slice(&acc[rr * NR + g * UNITS_F..][..nu]);
                            }
                        }
                    }
                }
                // the gate math for all of the item's units at once (longer rows vectorise better)
                let j0 = panels.start * UNITS_F;
                let nu = (panels.end * UNITS_F).min(hid) - j0;
                for b in 0..bsz {
                    let ga = b * t4 + t * h4; // gates[b, t]
                                              // SAFETY: this item alone writes units j0..j0+nu of every buffer at step t
                                              // (and of h_prev / c_prev at t + 1); the slices lie inside their vectors and
                                              // do not overlap one another.
                    unsafe {
                        let [ai, af, ag, ao] = [0, 1, 2, 3].map(|g| slice(g_p, ga + g * hid + j0, nu));
                        let [xi, xf, xg, xo] = [0, 1, 2, 3].map(|g| &a_x[ga + g * hid + j0..][..nu]);
                        let [bi, bf, bg, bo] = [0, 1, 2, 3].map(|g| &bias[g * hid + j0..][..nu]);
                        let cp = &*slice(cp_p, b * th + t * hid + j0, nu);
                        // c_t goes to c_prev[t+1], or after the last step to the output's last
                        // slot; h_t to the output's slot t
                        let c = if t + 1 < t_len {
                            slice(cp_p, b * th + (t + 1) * hid + j0, nu)
                        } else {
                            slice(out_p, b * oh + t_len * hid + j0, nu)
                        };
                        let tc = slice(tc_p, b * th + t * hid + j0, nu);
                        let h = slice(out_p, b * oh + t * hid + j0, nu);
                        gates_fwd(ai, af, ag, ao, xi, xf, xg, xo, bi, bf, bg, bo, cp, c, tc, h, forget);
                        if t + 1 < t_len {
                            slice(hp_p, b * th + (t + 1) * hid + j0, nu).copy_from_slice(h);
                        }
                    }
                }
            });
        };
        run_threads(&work);
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
        let w_hh = cpu::cpu_f32(w_st, w_l, "lstm_seq")?; // (4H, H)
        let d_out = cpu::cpu_f32(d_st, d_l, "lstm_seq")?; // (B, T+1, H): dh_1..dh_T, dc_T

        let mut da = vec![0f32; bsz * t4]; // (B, T, 4H)
        let mut dh0 = vec![0f32; bsz * hid]; // ∂L/∂h_0, the last recurrent product
        let mut dc = vec![0f32; bsz * hid]; // ∂L/∂c_t, starting from dc_T
        for r in 0..bsz {
            let src = (r * (t_len + 1) + t_len) * hid;
            dc[r * hid..(r + 1) * hid].copy_from_slice(&d_out[src..src + hid]);
        }
        // W_hh packed once into panels of 64 hidden units (4H × 64 each, k-major) for
        // dh_{t-1} = dA_t · W_hh
        let np = hid.div_ceil(NR);
        let mut wp = vec![0f32; np * h4 * NR];
        for (q, panel) in wp.chunks_exact_mut(h4 * NR).enumerate() {
            let col = |c: usize| (q * NR + c < hid).then_some(q * NR + c);
            small_gemm::pack_panel(panel, h4, col, |k, j| w_hh[k * hid + j]);
        }
        let forget = self.forget_gate;
        let tile = small_gemm::tile_fn();
        // work items: step 0 is dA_{T-1} from dh_T and dc_T alone; step s ≥ 1 multiplies dA_t,
        // t = T − s, by W_hh for one panel's units and continues with their dA_{t-1} (or dh0)
        let queue = StepQueue::new(t_len + 1, np);
        let (da_p, dc_p, dh0_p) = (Ptr(da.as_mut_ptr()), Ptr(dc.as_mut_ptr()), Ptr(dh0.as_mut_ptr()));
        let oh = (t_len + 1) * hid; // a batch row of the output
                                    // dA[b, t] for the units j0..j0+nu, given ∂L/∂h_t through the recurrence (dh_rec)
        let gates_bwd_at = |b: usize, t: usize, j0: usize, nu: usize, dh_rec: &[f32]| {
            let ga = b * t4 + t * h4;
            // SAFETY: only the item of these units writes units j0..j0+nu of da (at step t) and
            // of dc; the slices lie inside their vectors and do not overlap.
            unsafe {
                let [dai, daf, dag, dao] = [0, 1, 2, 3].map(|g| slice(da_p, ga + g * hid + j0, nu));
                let [gi, gf, gg, go] = [0, 1, 2, 3].map(|g| &saved.gates[ga + g * hid + j0..][..nu]);
                let s = b * th + t * hid + j0;
                let (cp, tc) = (&saved.c_prev[s..][..nu], &saved.tanh_c[s..][..nu]);
                let dh_out = &d_out[b * oh + t * hid + j0..][..nu];
                let dc_b = slice(dc_p, b * hid + j0, nu);
                gates_bwd(dai, daf, dag, dao, gi, gf, gg, go, dh_out, dh_rec, dc_b, cp, tc, forget);
            }
        };
        let work = |_tid: usize| {
            let mut acc = [0f32; MR * NR];
            queue.run(|step, q| {
                let (j0, nu) = (q * NR, NR.min(hid - q * NR));
                if step == 0 {
                    for b in 0..bsz {
                        gates_bwd_at(b, t_len - 1, j0, nu, &[0f32; NR][..nu]);
                    }
                    return;
                }
                let t = t_len - step;
                for r0 in (0..bsz).step_by(MR) {
                    let rows = MR.min(bsz - r0);
                    // acc (rows, 64) = dA_t[r0..] (rows, 4H) · panel q (4H, 64): ∂L/∂h_{t-1}
                    // through the recurrence, for this panel's units
                    // SAFETY: da's rows at step t are complete (the previous queue step); the
                    // panel holds 4H × 64; acc holds MR × 64.
                    unsafe {
                        tile(
                            h4,
                            da_p.at(r0 * t4 + t * h4),
                            t4,
                            rows,
                            wp.as_ptr().add(q * h4 * NR),
                            acc.as_mut_ptr(),
                            NR,
                        )
                    };
                    for rr in 0..rows {
                        let dh_rec = &acc[rr * NR..][..nu];
                        if t > 0 {
                            gates_bwd_at(r0 + rr, t - 1, j0, nu, dh_rec);
                        } else {
                            // SAFETY: units j0..j0+nu of dh0's row are this item's alone.
                            unsafe { slice(dh0_p, (r0 + rr) * hid + j0, nu) }.copy_from_slice(dh_rec);
                        }
                    }
                }
            });
        };
        run_threads(&work);
        // dW_hh (4H, H) = Σ_{b,t} da[b, t]ᵀ h_{t-1}[b] = daᵀ (4H, B·T) · h_prev (B·T, H): one gemm,
        // its 4H rows split over the pool's threads (gemm's own threading left one core idle here)
        let mut dw_hh = vec![0f32; h4 * hid];
        let dw_p = Ptr(dw_hh.as_mut_ptr());
        let n_thr = n_threads();
        run_threads(&|tid: usize| {
            let (r0, r1) = (tid * h4 / n_thr, (tid + 1) * h4 / n_thr);
            if r1 == r0 {
                return;
            }
            // SAFETY: m = r1 − r0 rows from r0, n = H, k = B·T index da (B·T, 4H) transposed, h_prev
            // (B·T, H) and this thread's rows of dw_hh (4H, H).
            unsafe {
                gemm::gemm(
                    r1 - r0,
                    hid,
                    bsz * t_len,
                    dw_p.at(r0 * hid),
                    1,
                    hid as isize,
                    false,
                    da.as_ptr().add(r0),
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
                    gemm::Parallelism::None,
                );
            }
        });
        // [dh0 | dc0 | db]: db (4H) = Σ_{b,t} da[b, t], summed per block of columns in parallel
        let mut d_state = dh0;
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
    use crate::ops::testutil::rel_err;

    /// max |a − b| / max(1, max |b|)
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
}
