//! An LSTM layer over a whole sequence, fused (Hochreiter & Schmidhuber 1997; the forget gate of
//! Gers, Schmidhuber & Cummins 2000, switchable for the learning-to-forget study).
//!
//! Per step, with gate order i, f, g, o (PyTorch's) and σ the logistic sigmoid:
//!   a_t = W_ih·x_t + W_hh·h_{t-1} + b           (4H)
//!   i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
//!   c_t = f ⊙ c_{t-1} + i ⊙ g                   (without forget gate: c_t = c_{t-1} + i ⊙ g)
//!   h_t = o ⊙ tanh(c_t)
//!
//! The fused version is ONE `CustomOp3` on (x (B, T, D), W = [W_ih | W_hh] (4H, D+H),
//! [h0 | c0 | b] flattened) with output h (B, T, H) (c_T leaves through a small `CustomOp1` on
//! h, see `CellLink`), with the batch as the vector dimension ("time-major, batch in the
//! lanes"): the batch is padded with zeros to Bp, a multiple of 16 lanes, and every per-step
//! quantity is a (rows, Bp) matrix.
//! - forward: z_t = [x_t; h_{t-1}] (D+H, Bp) is column block t of one buffer Z (D+H, T·Bp) (the x
//!   rows are x transposed once). Per step, A_t = W·z_t + b (4H, Bp) runs on `small_gemm`'s tile
//!   (8 rows = i, f, g, o of 2 hidden units × 32 lanes; W packed once per call so that W is read
//!   once per step; k in blocks of 128 rows, so that a block of z_t stays in L1 while a work
//!   item's tiles pass over it), then the gate math of the item's units, which writes h_t into
//!   Z's next column block. Saved for BPTT: Z, the gate activations (4H, T·Bp), c_0..c_T and
//!   tanh(c_t) (T, H, Bp): memory grows with Bp, so B = 1 costs as much as B = 16.
//! - backward (BPTT): per step, dh_{t} = W_hhᵀ·dA_{t+1} (H, Bp) on the same tile (8 units, W_hhᵀ
//!   packed once), then the gate gradients dA_t, written over the saved activations. After the
//!   loop: dW = [dW_ih | dW_hh] = dA (4H, T·Bp) · Zᵀ is ONE gemm, dx = (W_ihᵀ·dA)ᵀ one gemm,
//!   db the row sums of dA. Padded lanes hold zeros in x, h0, c0 and in the incoming gradients,
//!   so their dA is exactly zero and adds nothing to dW and db.
//!
//! Each step's hidden units are split into chunks of 32 that rayon's threads take from a
//! `StepQueue` (each thread first takes its own share, so its part of W stays in its L2; a
//! descheduled thread's share is taken by the others).
//!
//! The input projection is inside the op, so the (B, T, 4H) tensor x·W_ihᵀ and its gradient
//! never pass through candle's graph (its backward would zero-fill and add them, 8 MB each at
//! the `lstm` workload's shapes). The concatenation of W costs one copy of W per call, and its
//! backward two narrows of dW.
//!
//! Without the forget gate the weights keep the 4H layout, so both variants share parameters and
//! checkpoints: the f rows of W_ih, W_hh and b are computed but ignored, and get zero gradient
//! (so an optimizer with weight decay will shrink them; they never affect the output).

use super::cpu;
use super::cpu::SimdLevel;
use super::cpu::{assume_init, uninit};
use super::small_gemm::{self, StepQueue, TileFn, LANE_BLOCK, MAX_LANES, R};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

mod lanes;
mod problem;
#[cfg(test)]
mod tests;

use lanes::{from_lanes, gates_bwd, gates_fwd, prefetch_l2, ptr_of, run_threads, to_lanes, zero_row_tails, Ptr};
pub use problem::benches;

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
    // no CUDA kernel yet: elsewhere than the CPU, the composed reference (`crate::ops::fused_on`)
    if !crate::ops::fused_on(x.device(), false) {
        return lstm_seq_ref(x, w_ih, w_hh, b, h0, c0, forget_gate);
    }
    lstm_seq_mode(cpu::simd_level(), x, w_ih, w_hh, b, h0, c0, forget_gate, false)
}

/// `lstm_seq` with the 1997 LSTM's truncated gradient (Hochreiter & Schmidhuber 1997 §4; used
/// by Gers et al. 2000): the error flows back through time only along the cell state c; the
/// recurrent path h_{t−1} → gates is cut (W_hh still gets its gradient, from each step's own
/// error). The forward is `lstm_seq`'s.
pub fn lstm_seq_truncated(
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !crate::ops::fused_on(x.device(), false) {
        return lstm_seq_truncated_ref(x, w_ih, w_hh, b, h0, c0, forget_gate);
    }
    lstm_seq_mode(cpu::simd_level(), x, w_ih, w_hh, b, h0, c0, forget_gate, true)
}

/// The fused op with the kernels of `level` (which the CPU must support: the tests run every
/// level), with full (`truncated` false) or truncated backprop through time.
#[allow(clippy::too_many_arguments)]
fn lstm_seq_mode(
    level: SimdLevel,
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
    truncated: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, t_len, _) = check_shapes(x, w_ih, w_hh, b, h0, c0)?;
    count_flops(x, w_hh)?;
    for (name, t) in [("x", x), ("w_ih", w_ih), ("w_hh", w_hh), ("b", b), ("h0", h0), ("c0", c0)] {
        if t.dtype() != DType::F32 || !matches!(t.device(), Device::Cpu) {
            bail!("lstm_seq: {name} must be f32 on the CPU, got {:?} on {:?}", t.dtype(), t.device())
        }
    }
    let w = Tensor::cat(&[w_ih, w_hh], 1)?.contiguous()?; // (4H, D+H)
    let state = Tensor::cat(&[&h0.flatten_all()?, &c0.flatten_all()?, b], 0)?; // (2·B·H + 4H)
    let link = Arc::new(Mutex::new(CellLink::default()));
    let op = LstmSeq { forget_gate, truncated, level, saved: Mutex::new(None), link: link.clone() };
    let h = x.contiguous()?.apply_op3(&w, &state, op)?; // (B, T, H)
    let c_last = h.apply_op1(CellOut { link })?; // (B, H)
    let h_last = h.narrow(1, t_len - 1, 1)?.squeeze(1)?;
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
    lstm_seq_ref_mode(x, w_ih, w_hh, b, h0, c0, forget_gate, false)
}

/// The reference of `lstm_seq_truncated`: h_{t−1} detached where it enters the gates.
pub fn lstm_seq_truncated_ref(
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    lstm_seq_ref_mode(x, w_ih, w_hh, b, h0, c0, forget_gate, true)
}

#[allow(clippy::too_many_arguments)]
fn lstm_seq_ref_mode(
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
    truncated: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, t_len, _) = check_shapes(x, w_ih, w_hh, b, h0, c0)?;
    count_flops(x, w_hh)?;
    let hid = w_hh.dim(1)?;
    let w_hh_t = w_hh.t()?;
    let w_ih_t = w_ih.t()?;
    let (mut h, mut c) = (h0.clone(), c0.clone());
    let mut hs = Vec::with_capacity(t_len);
    for t in 0..t_len {
        let x_t = x.narrow(1, t, 1)?.squeeze(1)?; // (B, D)
        let h_in = if truncated { h.detach() } else { h.clone() };
        let a = x_t.matmul(&w_ih_t)?.broadcast_add(b)?.add(&h_in.matmul(&w_hh_t)?)?; // (B, 4H)
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

/// Counts the forward's products (`crate::ops::flops`): per position, (B, D + H)·(D + H, 4H).
fn count_flops(x: &Tensor, w_hh: &Tensor) -> Result<()> {
    let (bsz, t_len, d) = x.dims3()?;
    let hid = w_hh.dim(1)?;
    crate::ops::flops::add(crate::ops::flops::product(bsz * t_len, d + hid, 4 * hid));
    Ok(())
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

/// The layout of a call's per-step buffers: (Bp, ld), the batch padded to a multiple of 16
/// lanes, and the row stride of Z and of the gate buffer, T·Bp plus 16 when that is an even
/// multiple of 64 bytes, so that the rows of one step (read down a column block) fall in
/// different cache sets (with a stride of 8 KB they would all map to one set of L1).
fn lane_layout(bsz: usize, t_len: usize) -> (usize, usize) {
    let bp = bsz.div_ceil(LANE_BLOCK) * LANE_BLOCK;
    let mut ld = t_len * bp;
    if (ld / LANE_BLOCK).is_multiple_of(2) {
        ld += LANE_BLOCK;
    }
    (bp, ld)
}

/// Hidden units per work item: H = 256 gives 8 items per step to share between the threads.
const UNITS: usize = 32;

/// Rows of z_t (or dA_t) per block of the per-step products: 128 rows × 32 lanes = 16 KB stay in
/// L1 while all tiles of a work item pass over them (all D+H = 320 rows, 40 KB, and the weights
/// streaming past evicted one another: the loads of z_t took 20% of the tile's time).
const KB: usize = 128;

/// What the forward keeps for BPTT.
struct Saved {
    /// (D+H, ld): column block t (Bp lanes from t·Bp) is z_t = [x_t; h_{t-1}]
    z: Vec<f32>,
    /// (4H, ld): the activations i, f, g, o of step t in column block t; the backward
    /// overwrites them with the gate gradients dA
    act: Vec<f32>,
    /// (T+1, H, Bp): c_0 … c_T
    c: Vec<f32>,
    /// (T, H, Bp): tanh(c_t) of step t (that is, of c[t+1])
    tanh_c: Vec<f32>,
}

/// The op on (x (B, T, D), W = [W_ih | W_hh] (4H, D+H), [h0 | c0 | b] (2·B·H + 4H)); its output
/// is h_1..h_T (B, T, H), and c_T goes out through `CellOut`.
struct LstmSeq {
    forget_gate: bool,
    /// truncated BPTT: no error through h_{t−1} → gates (see `lstm_seq_truncated`)
    truncated: bool,
    level: SimdLevel,
    /// taken by the backward, which reuses the gate buffer for dA
    saved: Mutex<Option<Saved>>,
    link: Arc<Mutex<CellLink>>,
}

/// c_T, from the forward of `LstmSeq` to that of `CellOut`, and ∂L/∂c_T from the backward of
/// `CellOut` to that of `LstmSeq`.
///
/// Why a second op: a `CustomOp` has one output, and narrowing one (B, T+1, H) output into h
/// and c_T made candle's backward of `narrow` pad h's gradient with zeros (a copy), zero-fill
/// the output's gradient and add into it: three passes over (B, T, H) per step. `CellOut`
/// consumes h, so candle runs its backward before that of `LstmSeq` (consumers first, in
/// reverse topological order); when c_T is not on the loss's path, `CellOut` is not in the
/// backward at all and ∂L/∂c_T is zero.
#[derive(Default)]
struct CellLink {
    /// (B, H), set by the forward
    c_last: Option<Vec<f32>>,
    /// (B, H), set by `CellOut`'s backward
    dc_last: Option<Vec<f32>>,
}

/// c_T (B, H) of the `LstmSeq` whose output h it is applied to (see `CellLink`).
struct CellOut {
    link: Arc<Mutex<CellLink>>,
}

impl CustomOp1 for CellOut {
    fn name(&self) -> &'static str {
        "lstm-seq-c-last"
    }

    fn cpu_fwd(&self, _s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (bsz, _, hid) = l.shape().dims3()?;
        let c_last = self.link.lock().ok().and_then(|mut k| k.c_last.take());
        let Some(c_last) = c_last else { bail!("lstm_seq: c_T taken twice from one forward") };
        Ok((CpuStorage::F32(c_last), Shape::from((bsz, hid))))
    }

    /// Hands ∂L/∂c_T to `LstmSeq`'s backward; h gets a zero gradient from this edge (candle
    /// needs one: h may have no other consumer on the loss's path).
    fn bwd(&self, h: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let dc_last = grad_res.flatten_all()?.to_vec1::<f32>()?;
        match self.link.lock() {
            Ok(mut k) => k.dc_last = Some(dc_last),
            Err(_) => bail!("lstm_seq: the c_T link is poisoned"),
        }
        Ok(Some(h.zeros_like()?))
    }
}

/// One work item's share of a per-step product: for each tile p in `tiles` and each block of
/// up to 32 lanes, out(p, lane block) (8 rows × 32 lanes) = packed rows of tile p (k × 8 at
/// `packed + p·k·8`) · the k rows of the step's column block at `col` (row stride `ld`, Bp
/// lanes), started from `init[p·8 + r]` (or 0 when `init` is null). k runs in blocks of KB rows,
/// so that a block of the column (KB × 32 lanes) stays in L1 while every tile passes over it.
/// SAFETY: the column block's k rows are complete, `packed` holds k × 8 floats per tile, `init`
/// (when not null) 8 per tile, and each `out` addresses 8 × 32 floats that no one else touches.
#[allow(clippy::too_many_arguments)]
unsafe fn step_product(
    tile: TileFn,
    k: usize,
    packed: *const f32,
    col: *const f32,
    (ld, bp): (usize, usize),
    tiles: std::ops::Range<usize>,
    init: *const f32,
    out: impl Fn(usize, usize) -> *mut f32,
) {
    for k0 in (0..k).step_by(KB) {
        let kb = KB.min(k - k0);
        for p in tiles.clone() {
            let start = if init.is_null() { init } else { init.add(p * R) };
            for (lb, l0) in (0..bp).step_by(MAX_LANES).enumerate() {
                let lanes = MAX_LANES.min(bp - l0);
                tile(kb, packed.add((p * k + k0) * R), col.add(k0 * ld + l0), ld, lanes, start, k0 > 0, out(p, lb));
            }
        }
    }
}

impl CustomOp3 for LstmSeq {
    fn name(&self) -> &'static str {
        "lstm-seq"
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
        let (bsz, t_len, d) = l1.shape().dims3()?;
        let (h4, k) = l2.shape().dims2()?;
        let hid = h4 / 4;
        if h4 != 4 * hid || k != d + hid {
            bail!("lstm_seq: W must be (4H, D+H) with D = {d}, got {:?}", l2.shape())
        }
        let x = cpu::cpu_f32(s1, l1, "lstm_seq")?; // (B, T, D)
        let w = cpu::cpu_f32(s2, l2, "lstm_seq")?; // (4H, D+H)
        let state = cpu::cpu_f32(s3, l3, "lstm_seq")?; // (2·B·H + 4H)
        if state.len() != 2 * bsz * hid + h4 {
            bail!("lstm_seq: the state holds {} values, expected 2·B·H + 4H", state.len())
        }
        let (h0, rest) = state.split_at(bsz * hid);
        let (c0, bias) = rest.split_at(bsz * hid);
        let (bp, ld) = lane_layout(bsz, t_len);

        // Z: x_t transposed into the first D rows of every column block, h_0 into the H rows of
        // block 0, with zeros in the padded lanes (and the rows' padding); the step loop writes
        // the other blocks' h rows. The loop writes every element of act (but the rows'
        // padding), c (but c_0), tanh_c and h_last.
        let (mut z, mut act, mut c) = (uninit(k * ld), uninit(h4 * ld), uninit((t_len + 1) * hid * bp));
        let (mut tanh_c, mut h_last) = (uninit(t_len * hid * bp), uninit(hid * bp)); // h_T (H, Bp)
        let (z_p, act_p, c_p, tc_p, hl_p) =
            (ptr_of(&mut z), ptr_of(&mut act), ptr_of(&mut c), ptr_of(&mut tanh_c), ptr_of(&mut h_last));
        let tb = t_len * bp;
        // SAFETY: each call writes inside its buffer, on this thread alone.
        unsafe {
            for t in 0..t_len {
                to_lanes(&x[t * d..], t_len * d, d, bsz, bp, Ptr(z_p.at(t * bp)), ld);
            }
            to_lanes(h0, hid, hid, bsz, bp, Ptr(z_p.at(d * ld)), ld);
            zero_row_tails(z_p, k, tb, ld);
            to_lanes(c0, hid, hid, bsz, bp, c_p, bp);
            zero_row_tails(act_p, h4, tb, ld);
        }

        // W packed per tile of 2 units: tile p's row r (r < 8) is gate r/2 of unit 2p + r%2,
        // k-major (the 8 weights of one k contiguous); the bias likewise, as the tiles' start
        let np = hid.div_ceil(2);
        let row_of = |p: usize, r: usize| {
            let j = 2 * p + r % 2;
            (j < hid).then_some((r / 2) * hid + j)
        };
        let mut wp = vec![0f32; np * k * R];
        wp.par_chunks_mut(k * R).enumerate().for_each(|(p, panel)| {
            for r in 0..R {
                if let Some(row) = row_of(p, r) {
                    for (kk, v) in w[row * k..(row + 1) * k].iter().enumerate() {
                        panel[kk * R + r] = *v;
                    }
                }
            }
        });
        let bp_init: Vec<f32> = (0..np * R).map(|i| row_of(i / R, i % R).map_or(0.0, |row| bias[row])).collect();

        let (forget, level, tile) = (self.forget_gate, self.level, small_gemm::tile(self.level));
        let chunks = hid.div_ceil(UNITS);
        let queue = StepQueue::new(t_len, chunks);
        let nlb = bp.div_ceil(MAX_LANES);
        let work = |tid: usize, n: usize| {
            // the item's pre-activations: (tile, lane block) → 8 rows × 32 lanes
            let mut part = vec![0f32; UNITS / 2 * nlb * R * MAX_LANES];
            queue.run(tid, n, |t, chunk| {
                let (u0, u1) = (chunk * UNITS, ((chunk + 1) * UNITS).min(hid));
                let tiles = u0 / 2..u1.div_ceil(2);
                let part_at = |p: usize, lb: usize| ((p - tiles.start) * nlb + lb) * R * MAX_LANES;
                // the gate math's outputs and c_{t-1}: ask for their lines now, while the tiles run
                for j in u0..u1 {
                    for g in 0..4 {
                        prefetch_l2(act_p.0.wrapping_add((g * hid + j) * ld + t * bp), bp);
                    }
                    prefetch_l2(c_p.0.wrapping_add((t * hid + j) * bp), bp);
                    prefetch_l2(c_p.0.wrapping_add(((t + 1) * hid + j) * bp), bp);
                    prefetch_l2(tc_p.0.wrapping_add((t * hid + j) * bp), bp);
                }
                // SAFETY: rows 0..k of z_t are complete (written at step t − 1 or before the loop);
                // wp holds every tile's packed W (k × 8 each), bp_init their start values, and
                // `part` the item's (tile, lane block) outputs.
                let part_p = part.as_mut_ptr();
                let out = |p: usize, lb: usize| part_p.wrapping_add(part_at(p, lb));
                unsafe {
                    step_product(tile, k, wp.as_ptr(), z_p.at(t * bp), (ld, bp), tiles.clone(), bp_init.as_ptr(), out)
                };
                for p in tiles.clone() {
                    for (lb, l0) in (0..bp).step_by(MAX_LANES).enumerate() {
                        let acc = part[part_at(p, lb)..].as_ptr();
                        for u in 0..2 {
                            let j = 2 * p + u;
                            if j >= hid {
                                break;
                            }
                            // SAFETY: this item alone writes its units' rows of act (block t),
                            // c[t+1], tanh_c[t] and of Z (block t + 1) or h_last, which no other
                            // item of step t reads; every offset lies inside its buffer.
                            unsafe {
                                let a = [0, 1, 2, 3].map(|g| acc.add((2 * g + u) * MAX_LANES));
                                let act_j = [0, 1, 2, 3].map(|g| act_p.at((g * hid + j) * ld + t * bp + l0));
                                let h_t = if t + 1 < t_len {
                                    z_p.at((d + j) * ld + (t + 1) * bp + l0)
                                } else {
                                    hl_p.at(j * bp + l0)
                                };
                                gates_fwd(
                                    level,
                                    MAX_LANES.min(bp - l0) / LANE_BLOCK,
                                    a,
                                    act_j,
                                    c_p.at((t * hid + j) * bp + l0),
                                    c_p.at(((t + 1) * hid + j) * bp + l0),
                                    tc_p.at((t * hid + j) * bp + l0),
                                    h_t,
                                    forget,
                                );
                            }
                        }
                    }
                }
            });
        };
        run_threads(&work);

        // SAFETY: the loop wrote every element the comments above say it does.
        let (z, act, c, tanh_c, h_last) =
            unsafe { (assume_init(z), assume_init(act), assume_init(c), assume_init(tanh_c), assume_init(h_last)) };
        // (B, T, H): h_1..h_T from Z's blocks 1..T−1 and h_last
        let mut out = uninit(bsz * t_len * hid);
        let out_p = ptr_of(&mut out);
        (0..t_len).into_par_iter().for_each(|t| {
            let (src, src_rs): (&[f32], usize) =
                if t + 1 < t_len { (&z[d * ld + (t + 1) * bp..], ld) } else { (&h_last, bp) };
            // SAFETY: slot t (H values) of every batch row is written by this task alone.
            unsafe { from_lanes(src, src_rs, hid, bsz, Ptr(out_p.at(t * hid)), t_len * hid) };
        });
        // SAFETY: the tasks wrote all of h (B, T, H).
        let out = unsafe { assume_init(out) };
        let mut c_last = vec![0f32; bsz * hid];
        // SAFETY: c_last is (B, H)
        unsafe { from_lanes(&c[t_len * hid * bp..], bp, hid, bsz, Ptr(c_last.as_mut_ptr()), hid) };
        match (self.saved.lock(), self.link.lock()) {
            (Ok(mut s), Ok(mut k)) => {
                *s = Some(Saved { z, act, c, tanh_c });
                k.c_last = Some(c_last);
            }
            _ => bail!("lstm_seq: a lock is poisoned"),
        }
        Ok((CpuStorage::F32(out), Shape::from((bsz, t_len, hid))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _state: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().ok().and_then(|mut s| s.take());
        let Some(Saved { z, act, c, tanh_c }) = saved else {
            bail!("lstm_seq: backward before the forward, or twice through one forward")
        };
        let (bsz, t_len, d) = x.dims3()?;
        let (h4, k) = w.dims2()?;
        let hid = h4 / 4;
        let (bp, ld) = lane_layout(bsz, t_len);
        let (w, d_out) = (w.contiguous()?, grad_res.contiguous()?);
        let (w_st, w_l) = w.storage_and_layout();
        let (d_st, d_l) = d_out.storage_and_layout();
        let w = cpu::storage_f32(&w_st, w_l, "lstm_seq")?; // (4H, D+H)
        let d_out = cpu::storage_f32(&d_st, d_l, "lstm_seq")?; // (B, T, H): dh_1..dh_T

        // ∂L/∂c_T (B, H), if c_T is on the loss's path
        let dc_last = self.link.lock().ok().and_then(|mut k| k.dc_last.take());

        // ∂L/∂h_t from the output, in lanes (T, H, Bp); dc starts as ∂L/∂c_T (H, Bp)
        let mut dh_out = uninit(t_len * hid * bp);
        let dh_out_p = ptr_of(&mut dh_out);
        // SAFETY: task t writes block t (H × Bp) of dh_out, all of it
        (0..t_len).into_par_iter().for_each(|t| unsafe {
            to_lanes(&d_out[t * hid..], t_len * hid, hid, bsz, bp, Ptr(dh_out_p.at(t * hid * bp)), bp)
        });
        let dh_out = unsafe { assume_init(dh_out) };
        let mut dc = vec![0f32; hid * bp];
        if let Some(dc_last) = &dc_last {
            // SAFETY: dc is (H, Bp)
            unsafe { to_lanes(dc_last, hid, hid, bsz, bp, Ptr(dc.as_mut_ptr()), bp) };
        }
        let mut dh0 = vec![0f32; hid * bp];

        // W_hhᵀ packed per tile of 8 units: tile q holds, for each of the 4H rows k of W_hh,
        // W_hh[k, 8q..8q+8] (zero past H)
        let nq = hid.div_ceil(R);
        let mut wq = vec![0f32; nq * h4 * R];
        wq.par_chunks_mut(h4 * R).enumerate().for_each(|(q, panel)| {
            let units = R.min(hid - q * R);
            for (kk, dst) in panel.chunks_exact_mut(R).enumerate() {
                dst[..units].copy_from_slice(&w[kk * k + d + q * R..][..units]);
            }
        });
        let mut da = act; // the activations, overwritten step by step with dA
        let (forget, level, tile) = (self.forget_gate, self.level, small_gemm::tile(self.level));
        let chunks = hid.div_ceil(UNITS);
        // queue step 0 computes dA_{T−1} from dh_out and dc_T alone; step s ≥ 1 computes
        // dh_rec = W_hhᵀ·dA_t, t = T − s, for a chunk's units, then their dA_{t−1} (or dh0)
        let queue = StepQueue::new(t_len + 1, chunks);
        let zeros = [0f32; MAX_LANES];
        let (da_p, dc_p, dh0_p) = (Ptr(da.as_mut_ptr()), Ptr(dc.as_mut_ptr()), Ptr(dh0.as_mut_ptr()));
        let nlb = bp.div_ceil(MAX_LANES);
        let work = |tid: usize, n: usize| {
            // the item's dh_rec: (tile, lane block) → 8 units × 32 lanes
            let mut part = vec![0f32; UNITS / R * nlb * R * MAX_LANES];
            queue.run(tid, n, |s, chunk| {
                let (u0, u1) = (chunk * UNITS, ((chunk + 1) * UNITS).min(hid));
                let tiles = u0 / R..u1.div_ceil(R);
                let part_at = |q: usize, lb: usize| ((q - tiles.start) * nlb + lb) * R * MAX_LANES;
                // the step whose gate gradients this item computes (None: dh0)
                let t_g = if s == 0 { Some(t_len - 1) } else { (t_len - s).checked_sub(1) };
                if let Some(tg) = t_g {
                    // the gate math's inputs were written long ago (in the forward) and come
                    // from far away: ask for them now, while the tiles run
                    for j in u0..u1 {
                        let lane = (tg * hid + j) * bp;
                        for g in 0..4 {
                            prefetch_l2(da_p.0.wrapping_add((g * hid + j) * ld + tg * bp), bp);
                        }
                        for buf in [dh_out.as_ptr(), c.as_ptr(), tanh_c.as_ptr()] {
                            prefetch_l2(buf.wrapping_add(lane), bp);
                        }
                    }
                }
                if s > 0 && !self.truncated {
                    let t = t_len - s;
                    // SAFETY: block t of dA is complete (the previous queue step); wq holds every
                    // tile's packed W_hhᵀ (4H × 8 each), and `part` the item's outputs.
                    let part_p = part.as_mut_ptr();
                    let out = |q: usize, lb: usize| part_p.wrapping_add(part_at(q, lb));
                    unsafe {
                        step_product(
                            tile,
                            h4,
                            wq.as_ptr(),
                            da_p.at(t * bp),
                            (ld, bp),
                            tiles.clone(),
                            std::ptr::null(),
                            out,
                        )
                    };
                }
                for q in tiles.clone() {
                    for (lb, l0) in (0..bp).step_by(MAX_LANES).enumerate() {
                        let lanes = MAX_LANES.min(bp - l0);
                        for r in 0..R {
                            let j = q * R + r;
                            if j >= hid {
                                break;
                            }
                            // truncated: no error reaches h_{t−1} through the gates
                            let rec = if s == 0 || self.truncated {
                                zeros.as_ptr()
                            } else {
                                part[part_at(q, lb) + r * MAX_LANES..].as_ptr()
                            };
                            // SAFETY: this item alone writes its units' rows of dA (block
                            // t_g), dc and dh0, which no other item of this queue step reads;
                            // every offset lies inside its buffer.
                            unsafe {
                                let Some(tg) = t_g else {
                                    std::ptr::copy_nonoverlapping(rec, dh0_p.at(j * bp + l0), lanes);
                                    continue;
                                };
                                let act_j = [0, 1, 2, 3].map(|g| da_p.at((g * hid + j) * ld + tg * bp + l0));
                                let lane = (tg * hid + j) * bp + l0;
                                gates_bwd(
                                    level,
                                    lanes / LANE_BLOCK,
                                    rec,
                                    dh_out.as_ptr().add(lane),
                                    dc_p.at(j * bp + l0),
                                    act_j,
                                    c.as_ptr().add(lane),
                                    tanh_c.as_ptr().add(lane),
                                    forget,
                                );
                            }
                        }
                    }
                }
            });
        };
        run_threads(&work);
        drop((dh_out, c, tanh_c));
        let tb = t_len * bp; // the columns of dA and Z that hold steps (the rest is row padding)

        // dW (4H, D+H) = dA (4H, T·Bp) · Zᵀ: one gemm on the gemm crate's threads (as fast here
        // as splitting the 4H rows between the pool's threads by hand)
        let dw = cpu::sgemm_new((h4, k, tb), &da, (ld, 1), &z, (1, ld));
        drop(z);
        // dx: (T·Bp, D) = dAᵀ · W_ih, then back to (B, T, D)
        let dx_l = cpu::sgemm_new((tb, d, h4), &da, (1, ld), w, (k, 1));
        let mut dx = vec![0f32; bsz * t_len * d];
        dx.par_chunks_mut(t_len * d).enumerate().for_each(|(b, dst)| {
            for (t, row) in dst.chunks_exact_mut(d).enumerate() {
                row.copy_from_slice(&dx_l[(t * bp + b) * d..][..d]);
            }
        });
        // [dh0 | dc0 | db]: db (4H) = the row sums of dA
        let mut d_state = vec![0f32; 2 * bsz * hid];
        let (dh0_b, dc0_b) = d_state.split_at_mut(bsz * hid);
        // SAFETY: both are (B, H)
        unsafe {
            from_lanes(&dh0, bp, hid, bsz, Ptr(dh0_b.as_mut_ptr()), hid);
            from_lanes(&dc, bp, hid, bsz, Ptr(dc0_b.as_mut_ptr()), hid);
        }
        let db: Vec<f32> = da.par_chunks(ld).map(|row| cpu::sum(&row[..tb])).collect();
        d_state.extend_from_slice(&db);
        let dev = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dx, (bsz, t_len, d), &dev)?),
            Some(Tensor::from_vec(dw, (h4, k), &dev)?),
            Some(Tensor::from_vec(d_state, 2 * bsz * hid + h4, &dev)?),
        ))
    }
}
