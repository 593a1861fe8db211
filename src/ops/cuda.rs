//! The CUDA side of the fused ops (`--features cuda`): launches of kernels/*.cu (compiled to PTX
//! by build.rs) for the `cuda_fwd` of the ops in this folder and for their backward passes.
//! Each function here is called from its op's file, where the CPU code stays as it was; the
//! ops choose between them by the device of their input (`super::fused_on`).
//!
//! f32 only: the models train in f32 (checkpoints are f32), and a bf16 path would need its own
//! tolerances and tests. Saved state (logsumexp, μ and rstd, the pre-activation) stays on the
//! GPU in `CudaSlice`s. Gradients come back as fresh tensors; the products of linear's backward
//! are candle's own matmuls (cuBLAS) and its forward product one cuBLAS sgemm.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{bail, DType, Device, Layout, Result, Shape, Storage, Tensor};
use std::sync::Arc;

mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

/// Threads per block of the element-wise and per-row kernels.
const THREADS: u32 = 256;

/// A kernel of one of our PTX modules, loaded on first use.
/// A kernel of one of our PTX modules (loaded on first use) and the device's stream to launch it on.
fn func(dev: &CudaDevice, module: &str, ptx: &'static str, name: &str) -> Result<(Arc<CudaStream>, CudaFunction)> {
    Ok((dev.cuda_stream(), dev.get_or_load_custom_func(name, module, ptx)?.into_cuda_function()))
}

/// A grid-stride launch over `n` elements.
fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// One block of `threads` per row.
fn per_row(rows: usize, threads: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 }
}

/// Threads for a per-row reduction over `c` columns: a multiple of 32, at most 256.
fn row_threads(c: usize) -> u32 {
    (c.div_ceil(32) * 32).clamp(32, THREADS as usize) as u32
}

/// The contiguous f32 data of `s` under `l`.
fn view<'a>(s: &'a CudaStorage, l: &Layout, op: &str) -> Result<CudaView<'a, f32>> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("{op}: expects a contiguous input") };
    Ok(s.as_cuda_slice::<f32>()?.slice(a..b))
}

/// A fresh tensor (no gradient history) on `dev` from a device buffer.
fn tensor(slice: CudaSlice<f32>, dev: &CudaDevice, shape: impl Into<Shape>) -> Tensor {
    let st = CudaStorage::wrap_cuda_slice(slice, dev.clone());
    Tensor::from_storage(Storage::Cuda(st), shape, BackpropOp::none(), false)
}

/// Runs `f` on the CUDA storage and layout of `t` (made contiguous first).
fn with_cuda<R>(t: &Tensor, op: &str, f: impl FnOnce(&CudaStorage, &Layout) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cuda(cs) => f(cs, l),
        _ => bail!("{op}: expected a tensor on a CUDA device, got one on {:?}", t.device()),
    }
}

/// Uninitialised device memory for `n` floats, every one of which the caller's kernel writes.
fn alloc(dev: &CudaDevice, n: usize) -> Result<CudaSlice<f32>> {
    // SAFETY: each caller launches a kernel that writes all n elements before any read
    unsafe { dev.alloc::<f32>(n.max(1)) }
}

/// Column sums of a contiguous (rows, cols) matrix, deterministic (colsum.cu).
fn colsum(dev: &CudaDevice, a: &CudaView<'_, f32>, rows: usize, cols: usize) -> Result<CudaSlice<f32>> {
    const ROWS: usize = 64; // DL_COLSUM_ROWS
    let parts = rows.div_ceil(ROWS).max(1);
    let part = dev.alloc_zeros::<f32>(parts * cols.max(1))?;
    let (r, c) = (rows as i32, cols as i32);
    if rows > 0 && cols > 0 {
        let (st, f) = func(dev, "colsum", ptx::COLSUM, "colsum_partial_f32")?;
        let cfg = LaunchConfig {
            grid_dim: (cols.div_ceil(32) as u32, parts as u32, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let mut b = st.launch_builder(&f);
        b.arg(a).arg(&part).arg(&r).arg(&c);
        // SAFETY: a holds rows·cols floats, part parts·cols
        unsafe { b.launch(cfg) }.w()?;
    }
    colsum_finish(dev, &part, parts, cols)
}

// ------------------------------------------------------------------------------ layer norm

/// μ and rstd per row, saved by the forward.
pub struct LnSaved {
    mu: CudaSlice<f32>,
    rstd: CudaSlice<f32>,
}

/// y and the saved row statistics of layer norm over the last dimension.
pub fn layer_norm_fwd(
    (xs, xl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    (bs, bl): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, LnSaved)> {
    let dev = xs.device();
    let (x, g, be) = (view(xs, xl, "layer_norm")?, view(gs, gl, "layer_norm")?, view(bs, bl, "layer_norm")?);
    let c = gl.shape().elem_count();
    let rows = xl.shape().elem_count() / c.max(1);
    let y = alloc(dev, rows * c)?;
    let (mu, rstd) = (alloc(dev, rows)?, alloc(dev, rows)?);
    if rows > 0 {
        let (st, f) = func(dev, "layernorm", ptx::LAYERNORM, "layer_norm_fwd_f32")?;
        let (r, ci) = (rows as i32, c as i32);
        let mut b = st.launch_builder(&f);
        b.arg(&x).arg(&g).arg(&be).arg(&y).arg(&mu).arg(&rstd).arg(&r).arg(&ci).arg(&eps);
        // SAFETY: one block per row of x (rows, c); y the same size, mu and rstd rows floats
        unsafe { b.launch(per_row(rows, row_threads(c))) }.w()?;
    }
    Ok((CudaStorage::wrap_cuda_slice(y, dev.clone()), LnSaved { mu, rstd }))
}

/// (dx, dγ, dβ) of layer norm from dy.
pub fn layer_norm_bwd(x: &Tensor, gamma: &Tensor, dy: &Tensor, saved: &LnSaved) -> Result<(Tensor, Tensor, Tensor)> {
    let c = gamma.elem_count();
    let rows = x.elem_count() / c.max(1);
    with_cuda(x, "layer_norm", |xs, xl| {
        with_cuda(gamma, "layer_norm", |gs, gl| {
            with_cuda(dy, "layer_norm", |ds, dl| {
                let dev = xs.device();
                let (xv, gv, dyv) =
                    (view(xs, xl, "layer_norm")?, view(gs, gl, "layer_norm")?, view(ds, dl, "layer_norm")?);
                let dx = alloc(dev, rows * c)?;
                let parts = rows.div_ceil(64).max(1);
                let part = dev.alloc_zeros::<f32>(parts * 2 * c)?;
                if rows > 0 {
                    let (r, ci) = (rows as i32, c as i32);
                    let (st, f) = func(dev, "layernorm", ptx::LAYERNORM, "layer_norm_bwd_dx_f32")?;
                    let mut b = st.launch_builder(&f);
                    b.arg(&xv).arg(&dyv).arg(&gv).arg(&saved.mu).arg(&saved.rstd).arg(&dx).arg(&r).arg(&ci);
                    // SAFETY: one block per row, as the forward
                    unsafe { b.launch(per_row(rows, row_threads(c))) }.w()?;
                    let (st, f) = func(dev, "layernorm", ptx::LAYERNORM, "layer_norm_bwd_dgb_partial_f32")?;
                    let cfg = LaunchConfig {
                        grid_dim: (c.div_ceil(32) as u32, parts as u32, 1),
                        block_dim: (32, 8, 1),
                        shared_mem_bytes: 0,
                    };
                    let mut b = st.launch_builder(&f);
                    b.arg(&xv).arg(&dyv).arg(&saved.mu).arg(&saved.rstd).arg(&part).arg(&r).arg(&ci);
                    // SAFETY: part holds parts·2c floats
                    unsafe { b.launch(cfg) }.w()?;
                }
                // dγ | dβ: the partials' column sums over 2c columns
                let dgb = colsum_finish(dev, &part, parts, 2 * c)?;
                let dgb = tensor(dgb, dev, 2 * c);
                Ok((tensor(dx, dev, x.shape()), dgb.narrow(0, 0, c)?, dgb.narrow(0, c, c)?))
            })
        })
    })
}

/// The second pass of `colsum` alone, over partials already made.
fn colsum_finish(dev: &CudaDevice, part: &CudaSlice<f32>, parts: usize, cols: usize) -> Result<CudaSlice<f32>> {
    let out = alloc(dev, cols)?;
    let (st, f) = func(dev, "colsum", ptx::COLSUM, "colsum_finish_f32")?;
    let (p, c) = (parts as i32, cols as i32);
    let mut b = st.launch_builder(&f);
    b.arg(part).arg(&out).arg(&p).arg(&c);
    // SAFETY: one thread per column of part (parts, cols) into out (cols)
    unsafe {
        b.launch(LaunchConfig {
            grid_dim: (cols.div_ceil(256).max(1) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        })
    }
    .w()?;
    Ok(out)
}

// ---------------------------------------------------------------- softmax + cross-entropy

/// The mean cross-entropy (a scalar) and the per-row logsumexp it saves.
pub fn cross_entropy_fwd(
    (xs, xl): (&CudaStorage, &Layout),
    (ts, tl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, CudaSlice<f32>)> {
    let dev = xs.device();
    let (n, c) = xl.shape().dims2()?;
    let x = view(xs, xl, "softmax_cross_entropy")?;
    let Some((a, b)) = tl.contiguous_offsets() else { bail!("softmax_cross_entropy: targets must be contiguous") };
    let lse = alloc(dev, n)?;
    let rows = alloc(dev, n)?;
    let ni = n as i32;
    if n > 0 {
        match ts.dtype() {
            DType::U32 => {
                let t = ts.as_cuda_slice::<u32>()?.slice(a..b);
                ce_fwd_rows(dev, "ce_fwd_rows_u32", (&x, &t), (&lse, &rows), (n, c))?
            }
            DType::I64 => {
                let t = ts.as_cuda_slice::<i64>()?.slice(a..b);
                ce_fwd_rows(dev, "ce_fwd_rows_i64", (&x, &t), (&lse, &rows), (n, c))?
            }
            d => bail!("softmax_cross_entropy: targets must be u32 or i64, got {d:?}"),
        }
    }
    let loss = alloc(dev, 1)?;
    let (st, f) = func(dev, "cross_entropy", ptx::CROSS_ENTROPY, "ce_mean_f32")?;
    let mut bld = st.launch_builder(&f);
    bld.arg(&rows).arg(&loss).arg(&ni);
    // SAFETY: one block of 256 threads (the kernel's shared array) sums n floats into loss[0]
    unsafe { bld.launch(per_row(1, 256)) }.w()?;
    Ok((CudaStorage::wrap_cuda_slice(loss, dev.clone()), lse))
}

/// The per-row pass of the forward: lse and the row losses.
fn ce_fwd_rows<T>(
    dev: &CudaDevice,
    name: &str,
    (x, t): (&CudaView<'_, f32>, &CudaView<'_, T>),
    (lse, rows): (&CudaSlice<f32>, &CudaSlice<f32>),
    (n, c): (usize, usize),
) -> Result<()> {
    let (st, f) = func(dev, "cross_entropy", ptx::CROSS_ENTROPY, name)?;
    let (ni, ci) = (n as i32, c as i32);
    let mut bld = st.launch_builder(&f);
    bld.arg(x).arg(t).arg(lse).arg(rows).arg(&ni).arg(&ci);
    // SAFETY: one block per row of x (n, c); lse and rows n floats; t n targets
    unsafe { bld.launch(per_row(n, row_threads(c))) }.w()?;
    Ok(())
}

/// ∂loss/∂logits = (softmax − onehot(target)) · g / N, g the upstream scalar (on the device).
pub fn cross_entropy_bwd(logits: &Tensor, targets: &Tensor, g: &Tensor, lse: &CudaSlice<f32>) -> Result<Tensor> {
    let (n, c) = logits.dims2()?;
    let g = g.to_dtype(DType::F32)?;
    with_cuda(logits, "softmax_cross_entropy", |xs, xl| {
        with_cuda(&g, "softmax_cross_entropy", |gs, gl| {
            with_cuda(targets, "softmax_cross_entropy", |ts, tl| {
                let dev = xs.device();
                let (x, gv) = (view(xs, xl, "softmax_cross_entropy")?, view(gs, gl, "softmax_cross_entropy")?);
                let Some((a, b)) = tl.contiguous_offsets() else { bail!("softmax_cross_entropy: targets") };
                let dx = alloc(dev, n * c)?;
                let (ni, ci) = (n as i32, c as i32);
                if n * c > 0 {
                    let name = match ts.dtype() {
                        DType::U32 => "ce_bwd_u32",
                        DType::I64 => "ce_bwd_i64",
                        d => bail!("softmax_cross_entropy: targets must be u32 or i64, got {d:?}"),
                    };
                    let (st, f) = func(dev, "cross_entropy", ptx::CROSS_ENTROPY, name)?;
                    let mut bld = st.launch_builder(&f);
                    bld.arg(&x);
                    let (tu, ti);
                    if ts.dtype() == DType::U32 {
                        tu = ts.as_cuda_slice::<u32>()?.slice(a..b);
                        bld.arg(&tu);
                    } else {
                        ti = ts.as_cuda_slice::<i64>()?.slice(a..b);
                        bld.arg(&ti);
                    }
                    bld.arg(lse).arg(&gv).arg(&dx).arg(&ni).arg(&ci);
                    // SAFETY: grid-stride over the n·c entries of x and dx
                    unsafe { bld.launch(elementwise(n * c)) }.w()?;
                }
                Ok(tensor(dx, dev, (n, c)))
            })
        })
    })
}

// ------------------------------------------------------------ linear + bias + activation

/// The activation's code in linear_act.cu and its slope (LeakyReLU's; 0 for the others).
fn act_code(act: super::linear::Act) -> (i32, f32) {
    use super::linear::Act;
    match act {
        Act::Identity => (0, 0.0),
        Act::Relu => (1, 0.0),
        Act::Gelu => (2, 0.0),
        Act::GeluErf => (3, 0.0),
        Act::LeakyRelu(s) => (4, s),
    }
}

/// y = act(x·wᵀ + b) for x (N, K), w (M, K), b (M) or none; returns y and, for the GELUs, the
/// pre-activation z (N, M) kept for the backward.
pub fn linear_fwd(
    (xs, xl): (&CudaStorage, &Layout),
    (ws, wl): (&CudaStorage, &Layout),
    b: Option<(&CudaStorage, &Layout)>,
    act: super::linear::Act,
) -> Result<(CudaStorage, Option<CudaSlice<f32>>)> {
    let dev = xs.device();
    let (m, k) = wl.shape().dims2()?;
    let n = xl.shape().elem_count() / k.max(1);
    let (x, w) = (view(xs, xl, "linear_act")?, view(ws, wl, "linear_act")?);
    let mut z = dev.alloc_zeros::<f32>((n * m).max(1))?;
    if n > 0 && m > 0 && k > 0 {
        // row-major z (N, M) = x (N, K) · wᵀ is column-major zᵀ (M, N) = op(w)·x with w read as
        // a column-major (K, M) matrix transposed
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: m as i32,
            n: n as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: k as i32,
            ldb: k as i32,
            beta: 0.0f32,
            ldc: m as i32,
        };
        // SAFETY: w holds M·K floats, x N·K, z N·M, as the leading dimensions say
        unsafe { dev.cublas_handle().gemm(cfg, &w, &x, &mut z) }.w()?;
    }
    let (code, slope) = act_code(act);
    let gelu = code == 2 || code == 3;
    let y = if gelu { alloc(dev, n * m)? } else { dev.alloc_zeros::<f32>(1)? };
    if n * m > 0 {
        let (st, f) = func(dev, "linear_act", ptx::LINEAR_ACT, "bias_act_f32")?;
        let (ni, mi) = (n as i32, m as i32);
        let null = 0u64;
        let bv = match b {
            Some((bs, bl)) => Some(view(bs, bl, "linear_act")?),
            None => None,
        };
        let mut bld = st.launch_builder(&f);
        bld.arg(&z);
        match &bv {
            Some(bv) => bld.arg(bv),
            None => bld.arg(&null),
        };
        if gelu {
            bld.arg(&y);
        } else {
            bld.arg(&z); // in place
        }
        bld.arg(&ni).arg(&mi).arg(&code).arg(&slope);
        // SAFETY: grid-stride over the n·m entries of z (and y); b holds m floats or is null
        unsafe { bld.launch(elementwise(n * m)) }.w()?;
    }
    Ok(if gelu {
        (CudaStorage::wrap_cuda_slice(y, dev.clone()), Some(z))
    } else {
        (CudaStorage::wrap_cuda_slice(z, dev.clone()), None)
    })
}

/// (dx, dw, db) of linear_act from dy, each when `need` asks: dz = dy ⊙ act'(·) by one kernel,
/// db its column sums, dx = dz·w and dw = dzᵀ·x candle's matmuls (cuBLAS).
pub fn linear_bwd(
    (x, w): (&Tensor, &Tensor),
    res: &Tensor,
    dy: &Tensor,
    z: Option<&CudaSlice<f32>>,
    act: super::linear::Act,
    need: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let (m, k) = w.dims2()?;
    let n = x.elem_count() / k.max(1);
    let (code, slope) = act_code(act);
    let dy2 = dy.contiguous()?.reshape((n, m))?;
    let dz = if code == 0 {
        dy2
    } else {
        with_cuda(&dy2, "linear_act", |ds, dl| {
            let dev = ds.device();
            let dyv = view(ds, dl, "linear_act")?;
            let dz = alloc(dev, n * m)?;
            let run = |aux: &CudaView<'_, f32>| -> Result<()> {
                let (st, f) = func(dev, "linear_act", ptx::LINEAR_ACT, "act_grad_f32")?;
                let (ni, mi) = (n as i32, m as i32);
                let mut bld = st.launch_builder(&f);
                bld.arg(&dyv).arg(aux).arg(&dz).arg(&ni).arg(&mi).arg(&code).arg(&slope);
                // SAFETY: grid-stride over n·m entries of dy, aux and dz
                unsafe { bld.launch(elementwise(n * m)) }.w()?;
                Ok(())
            };
            if n * m > 0 {
                match z {
                    Some(z) => run(&z.slice(..))?,
                    // (Leaky)ReLU reads the output y
                    None => with_cuda(res, "linear_act", |rs, rl| run(&view(rs, rl, "linear_act")?))?,
                }
            }
            Ok(tensor(dz, dev, (n, m)))
        })?
    };
    let [need_dx, need_dw, need_db] = need;
    let dx = if need_dx { Some(dz.matmul(&w.contiguous()?)?.reshape(x.shape())?) } else { None };
    let dw = if need_dw { Some(dz.t()?.matmul(&x.contiguous()?.reshape((n, k))?)?) } else { None };
    let db = if need_db {
        Some(with_cuda(&dz, "linear_act", |ds, dl| {
            let dev = ds.device();
            Ok(tensor(colsum(dev, &view(ds, dl, "linear_act")?, n, m)?, dev, m))
        })?)
    } else {
        None
    };
    Ok([dx, dw, db])
}

// ------------------------------------------------------------------------------ attention

/// The C struct `Dims` of attention.cu.
#[repr(C)]
#[derive(Clone, Copy)]
struct AttnDims {
    b: i32,
    t: i32,
    c: i32,
    h: i32,
    d: i32,
    scale: f32,
    causal: i32,
}
// SAFETY: plain old data laid out as the kernel's struct
unsafe impl DeviceRepr for AttnDims {}

/// The largest head size the kernels take (their register rows).
pub const ATTN_MAX_DH: usize = 128;

fn attn_dims(shape: &Shape, n_head: usize, causal: bool) -> Result<(AttnDims, usize)> {
    let (b, t, c3) = shape.dims3()?;
    let c = c3 / 3;
    let d = c / n_head;
    let dmax = match d {
        0..=32 => 32,
        33..=64 => 64,
        65..=ATTN_MAX_DH => 128,
        _ => bail!("attention_qkv: head size {d} is above the CUDA kernel's {ATTN_MAX_DH}"),
    };
    let p = AttnDims {
        b: b as i32,
        t: t as i32,
        c: c as i32,
        h: n_head as i32,
        d: d as i32,
        scale: 1.0 / (d as f32).sqrt(),
        causal: causal as i32,
    };
    Ok((p, dmax))
}

const BR: usize = 64; // query rows per block (forward, dQ)
const BC: usize = 32; // key rows per shared tile
const BKV: usize = 64; // key rows per block (dK, dV)
const BQ: usize = 32; // query rows per shared tile (dK, dV)

/// y (B, T, C) and the logsumexp L (B, H, T) of attention from the packed qkv (B, T, 3C).
pub fn attention_fwd(
    (qs, ql): (&CudaStorage, &Layout),
    n_head: usize,
    causal: bool,
) -> Result<(CudaStorage, CudaSlice<f32>, Shape)> {
    let dev = qs.device();
    let (p, dmax) = attn_dims(ql.shape(), n_head, causal)?;
    let (b, t, c, h, d) = (p.b as usize, p.t as usize, p.c as usize, n_head, p.d as usize);
    let qkv = view(qs, ql, "attention_qkv")?;
    let y = alloc(dev, b * t * c)?;
    let lse = alloc(dev, b * h * t)?;
    if b * t * c > 0 {
        let (st, f) = func(dev, "attention", ptx::ATTENTION, &format!("attn_fwd_f32_d{dmax}"))?;
        let cfg = LaunchConfig {
            grid_dim: (t.div_ceil(BR) as u32, (b * h) as u32, 1),
            block_dim: (BR as u32, 1, 1),
            shared_mem_bytes: (2 * BC * d * 4) as u32,
        };
        let mut bld = st.launch_builder(&f);
        bld.arg(&qkv).arg(&y).arg(&lse).arg(&p);
        // SAFETY: qkv holds B·T·3C floats, y B·T·C, lse B·H·T; shared K and V tiles of BC·Dh
        unsafe { bld.launch(cfg) }.w()?;
    }
    Ok((CudaStorage::wrap_cuda_slice(y, dev.clone()), lse, Shape::from((b, t, c))))
}

/// dqkv (B, T, 3C) of attention from y, dy and the saved L.
pub fn attention_bwd(
    qkv: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    lse: &CudaSlice<f32>,
    n_head: usize,
    causal: bool,
) -> Result<Tensor> {
    let (p, dmax) = attn_dims(qkv.shape(), n_head, causal)?;
    let (b, t, c, h, d) = (p.b as usize, p.t as usize, p.c as usize, n_head, p.d as usize);
    with_cuda(qkv, "attention_qkv", |qs, ql| {
        with_cuda(y, "attention_qkv", |ys, yl| {
            with_cuda(dy, "attention_qkv", |ds, dl| {
                let dev = qs.device();
                let (qv, yv, dyv) =
                    (view(qs, ql, "attention_qkv")?, view(ys, yl, "attention_qkv")?, view(ds, dl, "attention_qkv")?);
                let dqkv = alloc(dev, b * t * 3 * c)?;
                if b * t * c == 0 {
                    return Ok(tensor(dqkv, dev, (b, t, 3 * c)));
                }
                let dd = alloc(dev, b * h * t)?;
                let (st, f) = func(dev, "attention", ptx::ATTENTION, "attn_bwd_dot_f32")?;
                let mut bld = st.launch_builder(&f);
                bld.arg(&yv).arg(&dyv).arg(&dd).arg(&p);
                // SAFETY: grid-stride over the B·H·T rows of y, dy and dd
                unsafe { bld.launch(elementwise(b * h * t)) }.w()?;

                let (st, f) = func(dev, "attention", ptx::ATTENTION, &format!("attn_bwd_dq_f32_d{dmax}"))?;
                let cfg = LaunchConfig {
                    grid_dim: (t.div_ceil(BR) as u32, (b * h) as u32, 1),
                    block_dim: (BR as u32, 1, 1),
                    shared_mem_bytes: (2 * BC * d * 4) as u32,
                };
                let mut bld = st.launch_builder(&f);
                bld.arg(&qv).arg(&dyv).arg(lse).arg(&dd).arg(&dqkv).arg(&p);
                // SAFETY: writes the q columns of dqkv (B·T·3C); shared K and V tiles
                unsafe { bld.launch(cfg) }.w()?;

                let (st, f) = func(dev, "attention", ptx::ATTENTION, &format!("attn_bwd_dkv_f32_d{dmax}"))?;
                let cfg = LaunchConfig {
                    grid_dim: (t.div_ceil(BKV) as u32, (b * h) as u32, 1),
                    block_dim: (BKV as u32, 1, 1),
                    shared_mem_bytes: ((2 * BQ * d + 2 * BQ) * 4) as u32,
                };
                let mut bld = st.launch_builder(&f);
                bld.arg(&qv).arg(&dyv).arg(lse).arg(&dd).arg(&dqkv).arg(&p);
                // SAFETY: writes the k and v columns of dqkv; shared Q, dO tiles and their L, D
                unsafe { bld.launch(cfg) }.w()?;
                Ok(tensor(dqkv, dev, (b, t, 3 * c)))
            })
        })
    })
}

// ----------------------------------------------------------------------- optimizer updates

/// Adam/AdamW in place on w (a CUDA storage) with device moments m, v; `k` the CPU op's
/// per-step constants (so both round them alike).
pub(super) fn adamw_inplace(
    (ws, wl): (&mut CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    m: &mut CudaSlice<f32>,
    v: &mut CudaSlice<f32>,
    k: &super::optim::AdamConsts,
) -> Result<()> {
    let dev = ws.device().clone();
    let n = wl.shape().elem_count();
    let Some((a, b)) = wl.contiguous_offsets() else { bail!("adamw_update: the weight must be contiguous") };
    let g = view(gs, gl, "adamw_update")?;
    let mut w = ws.as_cuda_slice_mut::<f32>()?.slice_mut(a..b);
    if n == 0 {
        return Ok(());
    }
    let flags = (k.l2 as i32) | ((k.decoupled as i32) << 1) | ((k.first as i32) << 2);
    let (st, f) = func(&dev, "optim", ptx::OPTIM, "adamw_f32")?;
    let mut bld = st.launch_builder(&f);
    bld.arg(&mut w).arg(&g).arg(m).arg(v).arg(&n);
    bld.arg(&k.wd).arg(&k.b1).arg(&k.c1).arg(&k.b2).arg(&k.c2).arg(&k.bc1).arg(&k.bc2);
    bld.arg(&k.eps).arg(&k.lr).arg(&k.lr_wd).arg(&flags);
    // SAFETY: grid-stride over the n entries of w, g, m and v
    unsafe { bld.launch(elementwise(n)) }.w()?;
    Ok(())
}

/// SGD (buf none) or momentum / Nesterov in place on w with a device buffer.
pub(super) fn sgd_inplace(
    (ws, wl): (&mut CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    buf: Option<&mut CudaSlice<f32>>,
    k: &super::optim::SgdConsts,
) -> Result<()> {
    let dev = ws.device().clone();
    let n = wl.shape().elem_count();
    let Some((a, b)) = wl.contiguous_offsets() else { bail!("sgd_update: the weight must be contiguous") };
    let g = view(gs, gl, "sgd_update")?;
    let mut w = ws.as_cuda_slice_mut::<f32>()?.slice_mut(a..b);
    if n == 0 {
        return Ok(());
    }
    let flags = (k.l2 as i32) | ((k.nesterov as i32) << 1) | ((k.first as i32) << 2);
    let null = 0u64;
    let (st, f) = func(&dev, "optim", ptx::OPTIM, "sgd_f32")?;
    let mut bld = st.launch_builder(&f);
    bld.arg(&mut w).arg(&g);
    match buf {
        Some(buf) => bld.arg(buf),
        None => bld.arg(&null),
    };
    bld.arg(&n).arg(&k.wd).arg(&k.mu).arg(&k.lr).arg(&flags);
    // SAFETY: grid-stride over the n entries of w, g and buf (or a null buf, not read)
    unsafe { bld.launch(elementwise(n)) }.w()?;
    Ok(())
}

/// e ← d·e + c·w in place on the device average e.
pub fn ema_inplace(e: &mut CudaSlice<f32>, w: &Tensor, d: f32, c: f32) -> Result<()> {
    with_cuda(w, "ema_update", |ws, wl| {
        let dev = ws.device();
        let wv = view(ws, wl, "ema_update")?;
        let n = wv.len();
        if n != e.len() {
            bail!("ema_update: an average of {} elements for a weight of {n}", e.len());
        }
        if n == 0 {
            return Ok(());
        }
        let (st, f) = func(dev, "optim", ptx::OPTIM, "ema_f32")?;
        let mut bld = st.launch_builder(&f);
        bld.arg(&mut *e).arg(&wv).arg(&n).arg(&d).arg(&c);
        // SAFETY: grid-stride over the n entries of e and w
        unsafe { bld.launch(elementwise(n)) }.w()?;
        Ok(())
    })
}

/// A device copy of a tensor's f32 data, as an owned buffer (optimizer state, EMA).
pub fn to_slice(t: &Tensor, dev: &Device) -> Result<CudaSlice<f32>> {
    let t = t.to_device(dev)?.to_dtype(DType::F32)?;
    with_cuda(&t, "state", |s, l| {
        let v = view(s, l, "state")?;
        s.device().cuda_stream().clone_dtod(&v).w()
    })
}

/// A tensor of `shape` holding a copy of a device buffer.
pub fn from_slice(s: &CudaSlice<f32>, dev: &Device, shape: &Shape) -> Result<Tensor> {
    let cd = dev.as_cuda_device()?;
    let copy = cd.cuda_stream().clone_dtod(s).w()?;
    Ok(tensor(copy, cd, shape.clone()))
}

/// A zeroed device buffer of `n` floats on `dev`.
pub fn zeros(dev: &Device, n: usize) -> Result<CudaSlice<f32>> {
    dev.as_cuda_device()?.alloc_zeros::<f32>(n)
}

#[cfg(test)]
mod tests;

pub use benches::benches;
mod benches;
