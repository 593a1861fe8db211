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
use super::small_gemm::{Level, StepQueue, LANE_BLOCK, MAX_LANES, R};
use super::vmath;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

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
    lstm_seq_at(Level::best(), x, w_ih, w_hh, b, h0, c0, forget_gate)
}

/// `lstm_seq` with the kernels of `level` (which the CPU must support): the tests run every level.
#[allow(clippy::too_many_arguments)]
fn lstm_seq_at(
    level: Level,
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    forget_gate: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (_, t_len, _) = check_shapes(x, w_ih, w_hh, b, h0, c0)?;
    for (name, t) in [("x", x), ("w_ih", w_ih), ("w_hh", w_hh), ("b", b), ("h0", h0), ("c0", c0)] {
        if t.dtype() != DType::F32 || !matches!(t.device(), Device::Cpu) {
            bail!("lstm_seq: {name} must be f32 on the CPU, got {:?} on {:?}", t.dtype(), t.device())
        }
    }
    let w = Tensor::cat(&[w_ih, w_hh], 1)?.contiguous()?; // (4H, D+H)
    let state = Tensor::cat(&[&h0.flatten_all()?, &c0.flatten_all()?, b], 0)?; // (2·B·H + 4H)
    let link = Arc::new(Mutex::new(CellLink::default()));
    let op = LstmSeq { forget_gate, level, saved: Mutex::new(None), link: link.clone() };
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
    level: Level,
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

/// Runs `work(tid, n)` on each of the n threads of rayon's global pool (RAYON_NUM_THREADS, set
/// once by main), all at once: the step queue hands work between them, so they must run
/// concurrently, and `broadcast` gives each pool thread one call. (candle's own pool runs one
/// thread: main sets CANDLE_NUM_THREADS=1 so its spinning workers do not fight rayon's.)
fn run_threads(work: &(dyn Fn(usize, usize) + Sync)) {
    rayon::broadcast(|ctx| work(ctx.index(), ctx.num_threads()));
}

/// `fn name(args) { body }` becomes `unsafe fn name(level, args)`, which runs `body` compiled
/// for that level's instruction set (AVX-512: 16 lanes per vector; AVX2+FMA: 8; the baseline
/// build otherwise). The body's loops over 16 lanes then vectorise to the widest registers.
macro_rules! per_level {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(level: Level, $($a: $t),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($a: $t),*) {
                    body($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($a: $t),*) {
                    body($($a),*)
                }
                // SAFETY: `level` is one the CPU supports (`Level::supported`).
                match level {
                    Level::Avx512 => return avx512($($a),*),
                    Level::Avx2 => return avx2($($a),*),
                    Level::Portable => {}
                }
            }
            body($($a),*)
        }
    };
}

/// Asks the CPU to bring the `n` floats from `p` into L2 (a hint: no effect on any result).
#[inline(always)]
fn prefetch_l2(p: *const f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..n).step_by(LANE_BLOCK) {
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.wrapping_add(off) as *const i8)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, n);
}

/// 16 lanes from `p`.
#[inline(always)]
unsafe fn load16(p: *const f32) -> [f32; LANE_BLOCK] {
    std::ptr::read_unaligned(p as *const [f32; LANE_BLOCK])
}

/// 16 lanes to `p`.
#[inline(always)]
unsafe fn store16(p: *mut f32, v: &[f32; LANE_BLOCK]) {
    std::ptr::write_unaligned(p as *mut [f32; LANE_BLOCK], *v)
}

per_level! {
    /// One step of gate math for one hidden unit on `blocks` × 16 lanes. `a` holds the unit's
    /// pre-activations a_i, a_f, a_g, a_o (bias included); writes the activations i, f, g, o to
    /// `act`, c_t, tanh(c_t) and h_t. Every pointer addresses `blocks`·16 lanes; each block's
    /// lanes are loaded into locals before any store, so the loop vectorises without overlap
    /// checks. (32 lanes at a time, for two independent exp chains, was slower: 3.8 → 4.1 ms
    /// per forward, the live values no longer fitting the registers.)
    fn gates_fwd(
        blocks: usize, a: [*const f32; 4], act: [*mut f32; 4], c_prev: *const f32, c: *mut f32,
        tanh_c: *mut f32, h: *mut f32, forget: bool,
    ) {
        for blk in 0..blocks {
            let o16 = blk * LANE_BLOCK;
            let [ai, af, ag, ao] = a.map(|p| load16(p.add(o16)));
            let cp = load16(c_prev.add(o16));
            let mut s = [[0f32; LANE_BLOCK]; 7];
            for l in 0..LANE_BLOCK {
                let i = vmath::sigmoid(ai[l]);
                let f = if forget { vmath::sigmoid(af[l]) } else { 1.0 };
                let g = vmath::tanh(ag[l]);
                let o = vmath::sigmoid(ao[l]);
                let c_t = f * cp[l] + i * g;
                let tc = vmath::tanh(c_t);
                s[0][l] = i;
                s[1][l] = f;
                s[2][l] = g;
                s[3][l] = o;
                s[4][l] = c_t;
                s[5][l] = tc;
                s[6][l] = o * tc;
            }
            for (g, p) in act.iter().enumerate() {
                store16(p.add(o16), &s[g]);
            }
            store16(c.add(o16), &s[4]);
            store16(tanh_c.add(o16), &s[5]);
            store16(h.add(o16), &s[6]);
        }
    }
}

per_level! {
    /// One step of BPTT for one hidden unit on `blocks` × 16 lanes. In: ∂L/∂h_t from the output
    /// (`dh_out`) and through the recurrence (`dh_rec`); `dc` = ∂L/∂c_t, updated in place to
    /// ∂L/∂c_{t-1}; the saved c_{t-1} and tanh(c_t). `act` holds the activations i, f, g, o and
    /// is overwritten with the pre-activations' gradients (da_f = 0 without the forget gate).
    fn gates_bwd(
        blocks: usize, dh_rec: *const f32, dh_out: *const f32, dc: *mut f32, act: [*mut f32; 4],
        c_prev: *const f32, tanh_c: *const f32, forget: bool,
    ) {
        for blk in 0..blocks {
            let o16 = blk * LANE_BLOCK;
            let [gi, gf, gg, go] = act.map(|p| load16(p.add(o16)));
            let (dr, dout, dcv) = (load16(dh_rec.add(o16)), load16(dh_out.add(o16)), load16(dc.add(o16)));
            let (cp, tcv) = (load16(c_prev.add(o16)), load16(tanh_c.add(o16)));
            let mut s = [[0f32; LANE_BLOCK]; 5];
            for l in 0..LANE_BLOCK {
                let (i, f, g, o, tc) = (gi[l], gf[l], gg[l], go[l], tcv[l]);
                let dh = dout[l] + dr[l];
                let dc_t = dcv[l] + dh * o * (1.0 - tc * tc);
                s[0][l] = dc_t * g * i * (1.0 - i);
                s[1][l] = if forget { dc_t * cp[l] * f * (1.0 - f) } else { 0.0 };
                s[2][l] = dc_t * i * (1.0 - g * g);
                s[3][l] = dh * tc * o * (1.0 - o);
                s[4][l] = if forget { dc_t * f } else { dc_t };
            }
            for (g, p) in act.iter().enumerate() {
                store16(p.add(o16), &s[g]);
            }
            store16(dc.add(o16), &s[4]);
        }
    }
}

/// Copies a (B, ·) row-major batch into lanes: `dst[j·dst_rs + b] = src[b·src_rs + j]` for
/// b < B and j < n, and zeroes the padded lanes B ≤ b < Bp.
/// SAFETY: `dst` addresses all those elements, and no other thread touches them meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn to_lanes(src: &[f32], src_rs: usize, n: usize, bsz: usize, bp: usize, dst: Ptr, dst_rs: usize) {
    for b in 0..bsz {
        for (j, v) in src[b * src_rs..][..n].iter().enumerate() {
            *dst.at(j * dst_rs + b) = *v;
        }
    }
    for j in 0..n {
        for b in bsz..bp {
            *dst.at(j * dst_rs + b) = 0.0;
        }
    }
}

/// A buffer of `n` floats that is not zeroed: the op's big buffers are written in full anyway,
/// and zeroing them (calloc on reused heap memory) cost a memset pass over ~20 MB per call.
fn uninit(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: MaybeUninit needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// The buffer as plain floats.
/// SAFETY: every element of `v` has been written.
unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    Vec::from_raw_parts(v.as_mut_ptr() as *mut f32, v.len(), v.capacity())
}

/// `Ptr` to a buffer's first element.
fn ptr_of(v: &mut [MaybeUninit<f32>]) -> Ptr {
    Ptr(v.as_mut_ptr() as *mut f32)
}

/// Zeroes the columns [from, ld) of `rows` rows of stride ld (the rows' padding after T·Bp).
/// SAFETY: `p` addresses rows × ld elements, which no other thread touches meanwhile.
unsafe fn zero_row_tails(p: Ptr, rows: usize, from: usize, ld: usize) {
    for r in 0..rows {
        std::ptr::write_bytes(p.at(r * ld + from), 0, ld - from);
    }
}

/// The reverse of `to_lanes`: `dst[b·dst_rs + j] = src[j·src_rs + b]` for b < B and j < n, in
/// blocks of 16 rows j so that both sides touch whole cache lines.
/// SAFETY: `dst` addresses every such element, and no other thread writes them meanwhile.
unsafe fn from_lanes(src: &[f32], src_rs: usize, n: usize, bsz: usize, dst: Ptr, dst_rs: usize) {
    for j0 in (0..n).step_by(16) {
        for b in 0..bsz {
            for j in j0..(j0 + 16).min(n) {
                *dst.at(b * dst_rs + j) = src[j * src_rs + b];
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

        let (forget, level, tile) = (self.forget_gate, self.level, self.level.tile());
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
                // k in blocks of KB rows, so that the block of z_t (KB × 32 lanes) stays in L1
                // while every tile of the item passes over it
                for k0 in (0..k).step_by(KB) {
                    let kb = KB.min(k - k0);
                    for p in tiles.clone() {
                        for (lb, l0) in (0..bp).step_by(MAX_LANES).enumerate() {
                            // SAFETY: the tile reads rows k0..k0+kb of z_t (complete: written at
                            // step t − 1 or before the loop) and the packed W, and writes its
                            // part (8 × 32) of `part`.
                            unsafe {
                                tile(
                                    kb,
                                    wp.as_ptr().add((p * k + k0) * R),
                                    z_p.at(k0 * ld + t * bp + l0),
                                    ld,
                                    MAX_LANES.min(bp - l0),
                                    bp_init.as_ptr().add(p * R),
                                    k0 > 0,
                                    part.as_mut_ptr().add(part_at(p, lb)),
                                )
                            };
                        }
                    }
                }
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
        let mut c_last = vec![0f32; bsz * hid]; // (B, H)
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
        let (forget, level, tile) = (self.forget_gate, self.level, self.level.tile());
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
                if s > 0 {
                    let t = t_len - s;
                    for k0 in (0..h4).step_by(KB) {
                        let kb = KB.min(h4 - k0);
                        for q in tiles.clone() {
                            for (lb, l0) in (0..bp).step_by(MAX_LANES).enumerate() {
                                // SAFETY: the tile reads rows k0..k0+kb of block t of dA
                                // (complete: the previous queue step) and the packed W_hhᵀ, and
                                // writes its part (8 × 32) of `part`.
                                unsafe {
                                    tile(
                                        kb,
                                        wq.as_ptr().add((q * h4 + k0) * R),
                                        da_p.at(k0 * ld + t * bp + l0),
                                        ld,
                                        MAX_LANES.min(bp - l0),
                                        std::ptr::null(),
                                        k0 > 0,
                                        part.as_mut_ptr().add(part_at(q, lb)),
                                    )
                                };
                            }
                        }
                    }
                }
                for q in tiles.clone() {
                    for (lb, l0) in (0..bp).step_by(MAX_LANES).enumerate() {
                        let lanes = MAX_LANES.min(bp - l0);
                        for r in 0..R {
                            let j = q * R + r;
                            if j >= hid {
                                break;
                            }
                            let rec =
                                if s == 0 { zeros.as_ptr() } else { part[part_at(q, lb) + r * MAX_LANES..].as_ptr() };
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
        let mut dw = vec![0f32; h4 * k];
        cpu::sgemm(h4, k, tb, &mut dw, &da, (ld, 1), &z, (1, ld));
        drop(z);
        // dx: (T·Bp, D) = dAᵀ · W_ih, then back to (B, T, D)
        let mut dx_l = vec![0f32; tb * d];
        cpu::sgemm(tb, d, h4, &mut dx_l, &da, (1, ld), w, (k, 1));
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
    /// x is held as (T, B, D) and passed transposed: a non-contiguous input
    time_major: bool,
    /// which of the terms with h, h_T and c_T the loss has
    loss_terms: [bool; 3],
}

type LstmFn<'a> =
    &'a dyn Fn(&Tensor, &Tensor, &Tensor, &Tensor, &Tensor, &Tensor, bool) -> Result<(Tensor, Tensor, Tensor)>;

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
            time_major: false,
            loss_terms: [true; 3],
        })
    }

    /// The same problem with a loss of only some of the outputs.
    #[cfg(test)]
    fn with_loss_terms(mut self, loss_terms: [bool; 3]) -> Self {
        self.loss_terms = loss_terms;
        self
    }

    /// The same problem with x held as (T, B, D), so that the op sees a strided x.
    #[cfg(test)]
    fn with_time_major_x(mut self) -> Result<Self> {
        let x_tbd = self.x.transpose(0, 1)?.contiguous()?;
        self.x = candle_core::Var::from_tensor(&x_tbd)?.as_tensor().clone();
        self.time_major = true;
        Ok(self)
    }

    /// Forward, loss, backward: the outputs and the gradients of (x, w_ih, w_hh, b, h0, c0).
    fn run(&self, f: LstmFn, forget_gate: bool) -> Result<([Tensor; 3], Vec<Tensor>)> {
        let x = if self.time_major { self.x.transpose(0, 1)? } else { self.x.clone() };
        let (h, h_last, c_last) = f(&x, &self.w_ih, &self.w_hh, &self.b, &self.h0, &self.c0, forget_gate)?;
        let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu)?;
        for ((out, r), used) in [&h, &h_last, &c_last].into_iter().zip(&self.r).zip(self.loss_terms) {
            if used {
                loss = loss.add(&out.mul(r)?.sum_all()?)?;
            }
        }
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
            fused: Box::new(move || pf.run(&lstm_seq, forget_gate).map(|_| ())),
            reference: Box::new(move || pr.run(&lstm_seq_ref, forget_gate).map(|_| ())),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::rel_err;

    /// Fused (with the kernels of every level this CPU runs) vs composed: outputs and the
    /// gradients of all six inputs. Tolerance 2e-5 relative to the largest reference entry
    /// (`rel_err`): both sides sum in f32 in different orders (the tile sums over k = D+H in
    /// order, the gemms and candle's per-step matmuls in blocks; ≤ 4H = 132 terms) and the fused
    /// sigmoid/tanh differ from libm by ~1e-7 relative; BPTT through 7 steps compounds these to
    /// a few 1e-6 at most.
    fn check_problem(p: &Problem, what: &str, hid: usize, forget_gate: bool) -> Result<()> {
        let (out_r, g_r) = p.run(&lstm_seq_ref, forget_gate)?;
        for level in Level::supported() {
            let fused = |x: &Tensor, w_ih: &Tensor, w_hh: &Tensor, b: &Tensor, h0: &Tensor, c0: &Tensor, fg: bool| {
                lstm_seq_at(level, x, w_ih, w_hh, b, h0, c0, fg)
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

    #[test]
    fn rejects_bad_shapes() -> Result<()> {
        let p = Problem::new(1, 2, 3, 4, 5)?;
        assert!(lstm_seq(&p.x, &p.w_hh, &p.w_hh, &p.b, &p.h0, &p.c0, true).is_err());
        assert!(lstm_seq(&p.x, &p.w_ih, &p.w_hh, &p.b, &p.c0.t()?, &p.c0, true).is_err());
        Ok(())
    }
}
