//! Fused, in-place optimizer updates: one pass over each parameter reads w, g and the moments
//! and writes w and the moments, where the composed form (`src/engine/optim.rs`) runs ~14 tensor
//! ops per parameter, each allocating a tensor of the parameter's size.
//!
//! The arithmetic is exactly the engine's, in the same order and with the same f32 roundings:
//! candle's `t * s` for an f64 `s` is `affine(s, 0)`, computed per element as `t·f32(s) + 0`
//! (the `+ 0` turns −0 into +0, so it is kept), `t / s` is `t·f32(1/s) + 0` and `t + s` is
//! `t·1 + f32(s)`. The test checks bitwise agreement with `Optimizer::step` over several steps.
//!
//! Semantics (Krogh & Hertz 1991 for L2; Loshchilov & Hutter 2019 for AdamW): weight decay only
//! on tensors of rank ≥ 2; SGD, momentum, Nesterov and Adam add λ·w to the gradient, AdamW
//! subtracts lr·λ·w from the weight after the adaptive step; the momentum buffer is PyTorch's
//! (b ← μ·b + g, first b = g); Adam's moments are bias-corrected by 1 − β^t.
//!
//! The moments are plain `Vec<f32>` so that saving them is cheap; an empty vector means "no
//! state yet" (the engine's `None`) and is filled on the first update.

use super::cpu;
use candle_core::{bail, CpuStorage, Device, InplaceOp2, Layout, Result, Shape, Tensor, Var};
use std::cell::RefCell;

/// Adam / AdamW hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHp {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW's decoupled decay (true) or Adam's L2 decay added to the gradient (false)
    pub decoupled: bool,
}

/// One Adam (L2 decay) or AdamW (decoupled decay) step on `w` in place, with moments `m`, `v`
/// (empty before the first step) and `t` the 1-based count of updates including this one.
pub fn adamw_update(
    w: &Tensor,
    g: &Tensor,
    m: &mut Vec<f32>,
    v: &mut Vec<f32>,
    hp: &AdamHp,
    t: u64,
    lr: f64,
) -> Result<()> {
    adamw_update_scaled(w, g, None, m, v, hp, t, lr)
}

/// `adamw_update` with the gradient taken as `g * gs` when `gs` is given (the step's clipping,
/// folded into the update's one pass): bitwise as candle's `g * gs` (`affine(gs, 0)`) then the
/// update, without writing the scaled gradient.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update_scaled(
    w: &Tensor,
    g: &Tensor,
    gs: Option<f64>,
    m: &mut Vec<f32>,
    v: &mut Vec<f32>,
    hp: &AdamHp,
    t: u64,
    lr: f64,
) -> Result<()> {
    let n = check(w, g, "adamw_update")?;
    if t == 0 || t > i32::MAX as u64 {
        bail!("adamw_update: t counts updates from 1, got {t}");
    }
    let first = m.is_empty();
    if first != v.is_empty() {
        bail!("adamw_update: one of m, v is empty and the other is not");
    }
    if first {
        m.resize(n, 0.0);
        v.resize(n, 0.0);
    } else if m.len() != n || v.len() != n {
        bail!("adamw_update: moments of {} and {} elements for a parameter of {n}", m.len(), v.len());
    }
    let k = adam_consts(w.rank(), hp, t, lr, first);
    let (g, gs) = (g.contiguous()?, gs.map(|s| s as f32));
    w.inplace_op2(&g, &AdamStep { k, gs, m: RefCell::new(m.as_mut_slice()), v: RefCell::new(v.as_mut_slice()) })
}

/// The per-step constants of an Adam/AdamW update of a rank-`rank` parameter (`t` checked to
/// fit an i32 by the caller).
fn adam_consts(rank: usize, hp: &AdamHp, t: u64, lr: f64, first: bool) -> AdamConsts {
    let decay = rank >= 2 && hp.weight_decay > 0.0;
    let t = t as i32;
    AdamConsts {
        l2: decay && !hp.decoupled,
        wd: hp.weight_decay as f32,
        b1: hp.beta1 as f32,
        c1: (1.0 - hp.beta1) as f32,
        b2: hp.beta2 as f32,
        c2: (1.0 - hp.beta2) as f32,
        bc1: (1.0 / (1.0 - hp.beta1.powi(t))) as f32,
        bc2: (1.0 / (1.0 - hp.beta2.powi(t))) as f32,
        eps: hp.eps as f32,
        lr: lr as f32,
        decoupled: decay && hp.decoupled,
        lr_wd: (lr * hp.weight_decay) as f32,
        first,
    }
}

/// One step of an exponential moving average of `w`: e ← decay·e + (1 − decay)·w, elementwise
/// in f32, in place on `e` (empty before the first step, which copies w). `w` is read, not written.
pub fn ema_update(w: &Tensor, e: &mut Vec<f32>, decay: f64) -> Result<()> {
    let n = w.elem_count();
    if e.is_empty() {
        *e = w.flatten_all()?.to_vec1::<f32>()?;
        return Ok(());
    }
    if e.len() != n {
        bail!("ema_update: an average of {} elements for a weight of {n}", e.len());
    }
    let (d, c) = (decay as f32, (1.0 - decay) as f32);
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(st) => {
            let w = cpu::cpu_f32(st, layout, "ema_update")?;
            let step = |(e, w): (&mut [f32], &[f32])| {
                for (e, &w) in e.iter_mut().zip(w) {
                    *e = d * *e + c * w;
                }
            };
            use rayon::prelude::*;
            e.par_chunks_mut(cpu::GRAIN).zip(w.par_chunks(cpu::GRAIN)).for_each(step);
        }
        _ => {
            drop(storage);
            let w = w.flatten_all()?.to_vec1::<f32>()?;
            for (e, w) in e.iter_mut().zip(w) {
                *e = d * *e + c * w;
            }
        }
    }
    Ok(())
}

/// One SGD step on `w` in place: plain with `buf = None` (μ and `nesterov` are then ignored, as
/// the engine's `sgd` ignores them), else with a PyTorch momentum buffer (empty before the
/// first step), Nesterov's form when `nesterov`.
pub fn sgd_update(
    w: &Tensor,
    g: &Tensor,
    buf: Option<&mut Vec<f32>>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    lr: f64,
) -> Result<()> {
    sgd_update_scaled(w, g, None, buf, momentum, nesterov, weight_decay, lr)
}

/// `sgd_update` with the gradient taken as `g * gs` when `gs` is given, as `adamw_update_scaled`.
#[allow(clippy::too_many_arguments)]
pub fn sgd_update_scaled(
    w: &Tensor,
    g: &Tensor,
    gs: Option<f64>,
    buf: Option<&mut Vec<f32>>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    lr: f64,
) -> Result<()> {
    let n = check(w, g, "sgd_update")?;
    let mut first = false;
    let buf = match buf {
        Some(b) => {
            if b.is_empty() {
                first = true;
                b.resize(n, 0.0);
            } else if b.len() != n {
                bail!("sgd_update: a momentum buffer of {} elements for a parameter of {n}", b.len());
            }
            Some(b.as_mut_slice())
        }
        None => None,
    };
    let k = sgd_consts(w.rank(), momentum, nesterov, weight_decay, lr, first);
    let (g, gs) = (g.contiguous()?, gs.map(|s| s as f32));
    w.inplace_op2(&g, &SgdStep { k, gs, buf: RefCell::new(buf) })
}

fn sgd_consts(rank: usize, momentum: f64, nesterov: bool, weight_decay: f64, lr: f64, first: bool) -> SgdConsts {
    SgdConsts {
        l2: rank >= 2 && weight_decay > 0.0,
        wd: weight_decay as f32,
        mu: momentum as f32,
        nesterov,
        lr: lr as f32,
        first,
    }
}

/// An optimizer's per-parameter state (a momentum buffer, one of Adam's moments, an EMA),
/// shaped like its parameter and kept where the parameter is: host memory for a CPU parameter
/// (what the CPU ops above update), device memory for a CUDA one (kernels/optim.cu), a tensor
/// for the composed update on any other device. Empty until the first update.
pub enum StateBuf {
    Host(Vec<f32>),
    #[cfg(feature = "cuda")]
    Cuda(Option<candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>>),
    Tensor(Option<Tensor>),
}

impl StateBuf {
    /// An empty buffer for a parameter on `dev`.
    pub fn new(dev: &Device) -> Self {
        match dev {
            Device::Cpu => StateBuf::Host(vec![]),
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => StateBuf::Cuda(None),
            _ => StateBuf::Tensor(None),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            StateBuf::Host(v) => v.is_empty(),
            #[cfg(feature = "cuda")]
            StateBuf::Cuda(s) => s.is_none(),
            StateBuf::Tensor(t) => t.is_none(),
        }
    }

    /// The state as a tensor of `shape` on `dev` (a copy), or None while empty.
    pub fn to_tensor(&self, shape: &Shape, dev: &Device) -> Result<Option<Tensor>> {
        Ok(match self {
            StateBuf::Host(v) if v.is_empty() => None,
            StateBuf::Host(v) => Some(Tensor::from_slice(v, shape, dev)?),
            #[cfg(feature = "cuda")]
            StateBuf::Cuda(s) => s.as_ref().map(|s| super::cuda::from_slice(s, dev, shape)).transpose()?,
            StateBuf::Tensor(t) => t.as_ref().map(|t| t.copy()).transpose()?,
        })
    }

    /// A buffer for a parameter on `dev` holding `t` (from a checkpoint, on any device), or an
    /// empty one for None.
    pub fn from_tensor(t: Option<&Tensor>, dev: &Device) -> Result<Self> {
        let mut out = Self::new(dev);
        if let Some(t) = t {
            match &mut out {
                StateBuf::Host(v) => *v = t.flatten_all()?.to_vec1::<f32>()?,
                #[cfg(feature = "cuda")]
                StateBuf::Cuda(s) => *s = Some(super::cuda::to_slice(t, dev)?),
                StateBuf::Tensor(s) => *s = Some(t.to_device(dev)?.copy()?),
            }
        }
        Ok(out)
    }
}

/// One Adam/AdamW step of `w` with its state on `w`'s device: the CPU op (`adamw_update`), the
/// CUDA kernel, or elsewhere the composed reference.
/// The gradient is `g * gs` when `gs` is given (the step's clipping): folded into the CPU op's
/// pass, applied as a tensor op before the others.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    w: &Var,
    g: &Tensor,
    gs: Option<f64>,
    m: &mut StateBuf,
    v: &mut StateBuf,
    hp: &AdamHp,
    t: u64,
    lr: f64,
) -> Result<()> {
    match (m, v) {
        (StateBuf::Host(m), StateBuf::Host(v)) => adamw_update_scaled(w.as_tensor(), g, gs, m, v, hp, t, lr),
        #[cfg(feature = "cuda")]
        (StateBuf::Cuda(m), StateBuf::Cuda(v)) => adamw_step_cuda(w, &scaled(g, gs)?, m, v, hp, t, lr),
        (StateBuf::Tensor(m), StateBuf::Tensor(v)) => adamw_update_ref(w, &scaled(g, gs)?, m, v, hp, t, lr),
        _ => bail!("adamw_update: moments kept on another device than the weight"),
    }
}

/// `g * gs` as candle computes it (`affine(gs, 0)`), or `g` itself.
fn scaled(g: &Tensor, gs: Option<f64>) -> Result<Tensor> {
    match gs {
        Some(s) => g * s,
        None => Ok(g.clone()),
    }
}

/// `adamw_step` with its moments in GPU memory: the CUDA kernel (a function of its own so that
/// `make mutants`, which builds without CUDA, can leave it out by name).
#[cfg(feature = "cuda")]
fn adamw_step_cuda(
    w: &Var,
    g: &Tensor,
    m: &mut Option<candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>>,
    v: &mut Option<candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>>,
    hp: &AdamHp,
    t: u64,
    lr: f64,
) -> Result<()> {
    let n = check(w, g, "adamw_update")?;
    if t == 0 || t > i32::MAX as u64 {
        bail!("adamw_update: t counts updates from 1, got {t}");
    }
    if m.is_none() != v.is_none() {
        bail!("adamw_update: one of m, v is empty and the other is not");
    }
    let first = m.is_none();
    let dev = w.device();
    if first {
        *m = Some(super::cuda::zeros(dev, n)?);
        *v = Some(super::cuda::zeros(dev, n)?);
    }
    let (Some(m), Some(v)) = (m.as_mut(), v.as_mut()) else { unreachable!("filled above") };
    if m.len() != n || v.len() != n {
        bail!("adamw_update: moments of {} and {} elements for a parameter of {n}", m.len(), v.len());
    }
    let k = adam_consts(w.rank(), hp, t, lr, first);
    let g = g.contiguous()?;
    w.inplace_op2(&g, &cuda_steps::Adam { k, m: RefCell::new(m), v: RefCell::new(v) })
}

/// One SGD (buf None) or momentum / Nesterov step of `w` with its buffer on `w`'s device, the
/// gradient taken as `g * gs` when `gs` is given (as `adamw_step`).
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    w: &Var,
    g: &Tensor,
    gs: Option<f64>,
    buf: Option<&mut StateBuf>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    lr: f64,
) -> Result<()> {
    let (mu, wd) = (momentum, weight_decay);
    match (w.device(), buf) {
        (Device::Cpu, None) => sgd_update_scaled(w.as_tensor(), g, gs, None, mu, nesterov, wd, lr),
        (_, Some(StateBuf::Host(b))) => sgd_update_scaled(w.as_tensor(), g, gs, Some(b), mu, nesterov, wd, lr),
        #[cfg(feature = "cuda")]
        (Device::Cuda(_), buf @ (None | Some(StateBuf::Cuda(_)))) => {
            sgd_step_cuda(w, &scaled(g, gs)?, buf, mu, nesterov, wd, lr)
        }
        (_, None) => sgd_update_ref(w, &scaled(g, gs)?, None, mu, nesterov, wd, lr),
        (_, Some(StateBuf::Tensor(b))) => sgd_update_ref(w, &scaled(g, gs)?, Some(b), mu, nesterov, wd, lr),
        #[cfg(feature = "cuda")]
        (_, Some(StateBuf::Cuda(_))) => {
            bail!("sgd_update: a momentum buffer on a GPU for a weight on {:?}", w.device())
        }
    }
}

/// `sgd_step` on a GPU: the CUDA kernel, with its momentum buffer (if any) in GPU memory (a
/// function of its own so that `make mutants`, which builds without CUDA, can leave it out).
#[cfg(feature = "cuda")]
fn sgd_step_cuda(
    w: &Var,
    g: &Tensor,
    buf: Option<&mut StateBuf>,
    mu: f64,
    nesterov: bool,
    wd: f64,
    lr: f64,
) -> Result<()> {
    let n = check(w, g, "sgd_update")?;
    let mut first = false;
    let buf = match buf {
        Some(StateBuf::Cuda(b)) => {
            first = b.is_none();
            if first {
                *b = Some(super::cuda::zeros(w.device(), n)?);
            }
            let Some(b) = b.as_mut() else { unreachable!("filled above") };
            if b.len() != n {
                bail!("sgd_update: a momentum buffer of {} elements for a parameter of {n}", b.len());
            }
            Some(b)
        }
        _ => None,
    };
    let k = sgd_consts(w.rank(), mu, nesterov, wd, lr, first);
    let g = g.contiguous()?;
    w.inplace_op2(&g, &cuda_steps::Sgd { k, buf: RefCell::new(buf) })
}

/// One EMA step of `w` into `e` on `w`'s device (`ema_update` on the CPU).
pub fn ema_step(w: &Tensor, e: &mut StateBuf, decay: f64) -> Result<()> {
    match e {
        StateBuf::Host(e) => ema_update(w, e, decay),
        #[cfg(feature = "cuda")]
        StateBuf::Cuda(e) => match e {
            None => {
                *e = Some(super::cuda::to_slice(w, w.device())?);
                Ok(())
            }
            Some(e) => super::cuda::ema_inplace(e, w, decay as f32, (1.0 - decay) as f32),
        },
        StateBuf::Tensor(e) => {
            let next = match e.take() {
                None => w.copy()?,
                Some(e) => ((e * decay)? + (w * (1.0 - decay))?)?,
            };
            *e = Some(next);
            Ok(())
        }
    }
}

/// The in-place updates' CUDA side: the weight is the op's destination, the state buffers are
/// the optimizer's own device memory, borrowed mutably for the call (as the CPU ops borrow
/// their `Vec`s).
#[cfg(feature = "cuda")]
mod cuda_steps {
    use super::{AdamConsts, SgdConsts};
    use candle_core::cuda_backend::cudarc::driver::CudaSlice;
    use candle_core::{bail, CpuStorage, CudaStorage, InplaceOp2, Layout, Result};
    use std::cell::RefCell;

    pub(super) struct Adam<'a> {
        pub(super) k: AdamConsts,
        pub(super) m: RefCell<&'a mut CudaSlice<f32>>,
        pub(super) v: RefCell<&'a mut CudaSlice<f32>>,
    }

    impl InplaceOp2 for Adam<'_> {
        fn name(&self) -> &'static str {
            "adamw_update"
        }
        fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
            bail!("adamw_update: GPU moments for a weight on the CPU")
        }
        fn cuda_fwd(&self, s1: &mut CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<()> {
            let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
            crate::ops::cuda::adamw_inplace((s1, l1), (s2, l2), &mut m, &mut v, &self.k)
        }
    }

    pub(super) struct Sgd<'a> {
        pub(super) k: SgdConsts,
        pub(super) buf: RefCell<Option<&'a mut CudaSlice<f32>>>,
    }

    impl InplaceOp2 for Sgd<'_> {
        fn name(&self) -> &'static str {
            "sgd_update"
        }
        fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
            bail!("sgd_update: a GPU buffer for a weight on the CPU")
        }
        fn cuda_fwd(&self, s1: &mut CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<()> {
            let mut b = self.buf.borrow_mut();
            crate::ops::cuda::sgd_inplace((s1, l1), (s2, l2), b.as_deref_mut(), &self.k)
        }
    }
}

/// Checks w and g are f32 tensors of one shape and returns their size.
fn check(w: &Tensor, g: &Tensor, op: &str) -> Result<usize> {
    if w.dims() != g.dims() {
        bail!("{op}: gradient {:?} for a weight {:?}", g.shape(), w.shape());
    }
    if w.dtype() != candle_core::DType::F32 || g.dtype() != candle_core::DType::F32 {
        bail!("{op}: only f32 weights and gradients are supported");
    }
    Ok(w.elem_count())
}

/// The weight's contiguous data, mutably.
fn weight_slice<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(v) = s else { bail!("{op}: only f32 weights are supported") };
    let Some((a, b)) = l.contiguous_offsets() else { bail!("{op}: the weight must be contiguous") };
    Ok(&mut v[a..b])
}

/// Per-step constants, each rounded to f32 as candle rounds the scalar of the engine's op.
pub(super) struct AdamConsts {
    /// add λ·w to g (Adam's L2 decay)
    pub(super) l2: bool,
    pub(super) wd: f32,
    pub(super) b1: f32,
    /// 1 − β1, computed in f64
    pub(super) c1: f32,
    pub(super) b2: f32,
    pub(super) c2: f32,
    /// 1 / (1 − β1^t), computed in f64
    pub(super) bc1: f32,
    pub(super) bc2: f32,
    pub(super) eps: f32,
    pub(super) lr: f32,
    /// subtract lr·λ·w after the step (AdamW)
    pub(super) decoupled: bool,
    /// lr·λ, computed in f64
    pub(super) lr_wd: f32,
    /// no moments yet: m = (1 − β1)·g rather than β1·m + (1 − β1)·g
    pub(super) first: bool,
}

#[inline(always)]
fn adam_kernel(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamConsts) {
    for i in 0..w.len() {
        let wi = w[i];
        let mut gi = g[i];
        if k.l2 {
            gi += wi * k.wd + 0.0;
        }
        let mg = gi * k.c1 + 0.0;
        let mi = if k.first { mg } else { (m[i] * k.b1 + 0.0) + mg };
        let vg = (gi * gi) * k.c2 + 0.0;
        let vi = if k.first { vg } else { (v[i] * k.b2 + 0.0) + vg };
        m[i] = mi;
        v[i] = vi;
        let mhat = mi * k.bc1 + 0.0;
        let vhat = vi * k.bc2 + 0.0;
        let u = mhat / (vhat.sqrt() + k.eps);
        let mut next = wi - (u * k.lr + 0.0);
        if k.decoupled {
            next -= wi * k.lr_wd + 0.0;
        }
        w[i] = next;
    }
}
cpu::simd!(adam_kernel_simd, adam_kernel, (w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamConsts));

/// g·s + 0 for each element, as candle's `g * s` (`affine(s, 0)`) computes it.
#[inline(always)]
fn scale_kernel(g: &[f32], s: f32, out: &mut [f32]) {
    for (o, &g) in out.iter_mut().zip(g) {
        *o = g * s + 0.0;
    }
}
cpu::simd!(scale_kernel_simd, scale_kernel, (g: &[f32], s: f32, out: &mut [f32]));

thread_local! {
    /// Each thread's scaled chunk of a gradient (`with_scaled`).
    static SCALED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f(g)`, or with a scale `f(g·s + 0)` from a per-thread scratch chunk: the scaled gradient is
/// made a chunk (≤ `cpu::GRAIN` floats) at a time, in cache, just before the update reads it,
/// where scaling the whole gradient first would write and read it again through memory.
fn with_scaled<R>(g: &[f32], gs: Option<f32>, f: impl FnOnce(&[f32]) -> R) -> R {
    match gs {
        None => f(g),
        Some(s) => cpu::with_scratch(&SCALED, g.len(), |buf| {
            scale_kernel_simd(g, s, buf);
            f(buf)
        }),
    }
}

struct AdamStep<'a> {
    k: AdamConsts,
    /// the gradient's scale (the step's clipping), if any
    gs: Option<f32>,
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
}

impl InplaceOp2 for AdamStep<'_> {
    fn name(&self) -> &'static str {
        "adamw_update"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let w = weight_slice(s1, l1, self.name())?;
        let g = cpu::cpu_f32(s2, l2, self.name())?;
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        let (m, v): (&mut [f32], &mut [f32]) = (&mut m, &mut v);
        let (k, gs) = (&self.k, self.gs);
        if w.len() <= cpu::GRAIN {
            with_scaled(g, gs, |g| adam_kernel_simd(w, g, m, v, k));
        } else {
            use rayon::prelude::*;
            let ch = cpu::GRAIN;
            w.par_chunks_mut(ch)
                .zip(g.par_chunks(ch))
                .zip(m.par_chunks_mut(ch))
                .zip(v.par_chunks_mut(ch))
                .for_each(|(((w, g), m), v)| with_scaled(g, gs, |g| adam_kernel_simd(w, g, m, v, k)));
        }
        Ok(())
    }
}

pub(super) struct SgdConsts {
    pub(super) l2: bool,
    pub(super) wd: f32,
    pub(super) mu: f32,
    pub(super) nesterov: bool,
    pub(super) lr: f32,
    /// an empty buffer: b = g
    pub(super) first: bool,
}

#[inline(always)]
fn sgd_kernel(w: &mut [f32], g: &[f32], k: &SgdConsts) {
    for (w, &g) in w.iter_mut().zip(g) {
        let gi = if k.l2 { g + (*w * k.wd + 0.0) } else { g };
        *w -= gi * k.lr + 0.0;
    }
}
cpu::simd!(sgd_kernel_simd, sgd_kernel, (w: &mut [f32], g: &[f32], k: &SgdConsts));

#[inline(always)]
fn momentum_kernel(w: &mut [f32], g: &[f32], b: &mut [f32], k: &SgdConsts) {
    for i in 0..w.len() {
        let wi = w[i];
        let gi = if k.l2 { g[i] + (wi * k.wd + 0.0) } else { g[i] };
        let bi = if k.first { gi } else { (b[i] * k.mu + 0.0) + gi };
        b[i] = bi;
        let u = if k.nesterov { gi + (bi * k.mu + 0.0) } else { bi };
        w[i] = wi - (u * k.lr + 0.0);
    }
}
cpu::simd!(momentum_kernel_simd, momentum_kernel, (w: &mut [f32], g: &[f32], b: &mut [f32], k: &SgdConsts));

struct SgdStep<'a> {
    k: SgdConsts,
    /// the gradient's scale, as `AdamStep::gs`
    gs: Option<f32>,
    buf: RefCell<Option<&'a mut [f32]>>,
}

impl InplaceOp2 for SgdStep<'_> {
    fn name(&self) -> &'static str {
        "sgd_update"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        use rayon::prelude::*;
        let w = weight_slice(s1, l1, self.name())?;
        let g = cpu::cpu_f32(s2, l2, self.name())?;
        let (ch, k, gs) = (cpu::GRAIN, &self.k, self.gs);
        let small = w.len() <= ch;
        let sgd = |w: &mut [f32], g: &[f32]| with_scaled(g, gs, |g| sgd_kernel_simd(w, g, k));
        let momentum =
            |w: &mut [f32], g: &[f32], b: &mut [f32]| with_scaled(g, gs, |g| momentum_kernel_simd(w, g, b, k));
        match self.buf.borrow_mut().as_deref_mut() {
            None if small => sgd(w, g),
            None => w.par_chunks_mut(ch).zip(g.par_chunks(ch)).for_each(|(w, g)| sgd(w, g)),
            Some(b) if small => momentum(w, g, b),
            Some(b) => w
                .par_chunks_mut(ch)
                .zip(g.par_chunks(ch))
                .zip(b.par_chunks_mut(ch))
                .for_each(|((w, g), b)| momentum(w, g, b)),
        }
        Ok(())
    }
}

/// The composed reference for Adam/AdamW: the engine's tensor ops (`src/engine/optim.rs`),
/// allocating each intermediate, then `Var::set`.
pub fn adamw_update_ref(
    w: &Var,
    g: &Tensor,
    m: &mut Option<Tensor>,
    v: &mut Option<Tensor>,
    hp: &AdamHp,
    t: u64,
    lr: f64,
) -> Result<()> {
    let decay = w.rank() >= 2 && hp.weight_decay > 0.0;
    let wt = w.as_tensor();
    let g = if decay && !hp.decoupled { (g + (wt * hp.weight_decay)?)? } else { g.clone() };
    let m_new = match m {
        Some(m) => ((&*m * hp.beta1)? + (&g * (1.0 - hp.beta1))?)?,
        None => (&g * (1.0 - hp.beta1))?,
    };
    let g2 = g.sqr()?;
    let v_new = match v {
        Some(v) => ((&*v * hp.beta2)? + (g2 * (1.0 - hp.beta2))?)?,
        None => (g2 * (1.0 - hp.beta2))?,
    };
    let t = t as i32;
    let mhat = (&m_new / (1.0 - hp.beta1.powi(t)))?;
    let vhat = (&v_new / (1.0 - hp.beta2.powi(t)))?;
    let u = (mhat / (vhat.sqrt()? + hp.eps)?)?;
    let mut next = (wt - (u * lr)?)?;
    if decay && hp.decoupled {
        next = (next - (wt * (lr * hp.weight_decay))?)?;
    }
    *m = Some(m_new);
    *v = Some(v_new);
    w.set(&next)
}

/// The composed reference for SGD / momentum / Nesterov (the engine's tensor ops).
pub fn sgd_update_ref(
    w: &Var,
    g: &Tensor,
    buf: Option<&mut Option<Tensor>>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    lr: f64,
) -> Result<()> {
    let wt = w.as_tensor();
    let g = if w.rank() >= 2 && weight_decay > 0.0 { (g + (wt * weight_decay)?)? } else { g.clone() };
    let u = match buf {
        None => g,
        Some(buf) => {
            let b = match buf {
                Some(b) => ((&*b * momentum)? + &g)?,
                None => g.clone(),
            };
            let u = if nesterov { (&g + (&b * momentum)?)? } else { b.clone() };
            *buf = Some(b);
            u
        }
    };
    w.set(&(wt - (u * lr)?)?)
}

/// Fused vs reference: one AdamW update of the MLP's parameters (784·512 + 512·256 + 256·10
/// weights and their biases, 535k floats).
pub fn benches() -> Result<Vec<super::OpBench>> {
    let shapes: [&[usize]; 6] = [&[512, 784], &[512], &[256, 512], &[256], &[10, 256], &[10]];
    let mut rng = crate::rng::Rng::new(31);
    let dev = candle_core::Device::Cpu;
    let mut params = vec![];
    for s in shapes {
        let n: usize = s.iter().product();
        let w = Tensor::from_vec((0..n).map(|_| (0.05 * rng.normal()) as f32).collect::<Vec<_>>(), s, &dev)?;
        let g = Tensor::from_vec((0..n).map(|_| (0.01 * rng.normal()) as f32).collect::<Vec<_>>(), s, &dev)?;
        params.push((Var::from_tensor(&w)?, Var::from_tensor(&w)?, g));
    }
    let hp = AdamHp { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true };
    let fused_state = RefCell::new((1u64, vec![(vec![], vec![]); params.len()]));
    let ref_state = RefCell::new((1u64, vec![(None, None); params.len()]));
    let pf = params.iter().map(|(w, _, g)| (w.clone(), g.clone())).collect::<Vec<_>>();
    let pr = params.iter().map(|(_, w, g)| (w.clone(), g.clone())).collect::<Vec<_>>();
    Ok(vec![super::OpBench {
        name: "adamw_update",
        shape: "784·512 + 512·256 + 256·10 and biases".to_string(),
        fused: Box::new(move || {
            let mut st = fused_state.borrow_mut();
            let (t, moments) = &mut *st;
            for ((w, g), (m, v)) in pf.iter().zip(moments.iter_mut()) {
                adamw_update(w, g, m, v, &hp, *t, 1e-3)?;
            }
            *t += 1;
            Ok(())
        }),
        reference: Box::new(move || {
            let mut st = ref_state.borrow_mut();
            let (t, moments) = &mut *st;
            for ((w, g), (m, v)) in pr.iter().zip(moments.iter_mut()) {
                adamw_update_ref(w, g, m, v, &hp, *t, 1e-3)?;
            }
            *t += 1;
            Ok(())
        }),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimKind;
    use crate::params::Params;
    use candle_core::Device;

    /// Distance in units in the last place (±0 are equal).
    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        let key = |x: f32| {
            let i = x.to_bits() as i32;
            if i < 0 {
                i32::MIN.wrapping_sub(i) as i64
            } else {
                i as i64
            }
        };
        (key(a) - key(b)).unsigned_abs() as u32
    }

    /// One state per parameter for the fused path.
    #[derive(Default)]
    struct State {
        m: Vec<f32>,
        v: Vec<f32>,
    }

    /// Runs the composed reference (`*_ref`: the engine's original tensor-op formulas) and the
    /// fused update side by side for `steps` steps on a matrix, a bias and a conv kernel, with
    /// real gradients of a nonlinear loss and a changing lr, and requires every weight and moment
    /// to agree within 1 ulp (it is bitwise in practice: the maximum seen is returned).
    fn run(kind: OptimKind, weight_decay: f64, steps: usize) -> Result<u32> {
        let dev = Device::Cpu;
        let p = Params::new(7);
        let vb = p.vb(&dev);
        let init = candle_nn::init::Init::Randn { mean: 0.0, stdev: 1.0 };
        for (name, shape) in [("a.w", vec![7, 13]), ("a.b", vec![13]), ("c.k", vec![2, 3, 3, 5])] {
            vb.get_with_hints(shape, name, init)?;
        }
        let momentum = 0.9;
        let adam = AdamHp { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay, decoupled: kind == OptimKind::Adamw };
        // the reference path updates the store's variables (they produce the gradients); the
        // fused path updates copies
        let vars = p.trainable();
        let ours: Vec<Tensor> = vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<Result<_>>()?;
        let mut state: Vec<State> = vars.iter().map(|_| State::default()).collect();
        let mut ref_state: Vec<(Option<Tensor>, Option<Tensor>)> = vars.iter().map(|_| (None, None)).collect();
        let mut rng = crate::rng::Rng::new(3);
        let r: Vec<Tensor> = vars
            .iter()
            .map(|(_, v)| {
                let n = v.elem_count();
                Tensor::from_vec((0..n).map(|_| rng.normal() as f32).collect::<Vec<_>>(), v.shape(), &dev)
            })
            .collect::<Result<_>>()?;
        let mut worst = 0;
        for step in 1..=steps {
            let lr = 0.1 / step as f64;
            let mut loss = Tensor::new(0f32, &dev)?;
            for ((_, v), r) in vars.iter().zip(&r) {
                loss = (loss + ((v.as_tensor().tanh()? * r)?.sum_all()? + (v.as_tensor().sqr()?.sum_all()? * 0.1)?)?)?;
            }
            let grads = loss.backward()?;
            for ((((_, v), w), s), rs) in vars.iter().zip(&ours).zip(state.iter_mut()).zip(ref_state.iter_mut()) {
                let g = grads.get(v.as_tensor()).expect("every parameter has a gradient").copy()?;
                let nesterov = kind == OptimKind::Nesterov;
                match kind {
                    OptimKind::Sgd => {
                        sgd_update_ref(v, &g, None, momentum, false, weight_decay, lr)?;
                        sgd_update(w, &g, None, momentum, false, weight_decay, lr)?
                    }
                    OptimKind::Momentum | OptimKind::Nesterov => {
                        sgd_update_ref(v, &g, Some(&mut rs.0), momentum, nesterov, weight_decay, lr)?;
                        sgd_update(w, &g, Some(&mut s.m), momentum, nesterov, weight_decay, lr)?
                    }
                    OptimKind::Adam | OptimKind::Adamw => {
                        adamw_update_ref(v, &g, &mut rs.0, &mut rs.1, &adam, step as u64, lr)?;
                        adamw_update(w, &g, &mut s.m, &mut s.v, &adam, step as u64, lr)?
                    }
                }
                let (want, got) = (v.as_tensor().flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?);
                for (a, b) in want.iter().zip(&got) {
                    worst = worst.max(ulps(*a, *b));
                }
            }
        }
        // the moments agree too
        for (rs, s) in ref_state.iter().zip(&state) {
            for (t, ours) in [(&rs.0, &s.m), (&rs.1, &s.v)] {
                if let Some(t) = t {
                    for (a, b) in t.flatten_all()?.to_vec1::<f32>()?.iter().zip(ours) {
                        worst = worst.max(ulps(*a, *b));
                    }
                }
            }
        }
        Ok(worst)
    }

    #[test]
    fn agrees_with_engine_optimizer_within_one_ulp() -> Result<()> {
        use OptimKind::*;
        for kind in [Sgd, Momentum, Nesterov, Adam, Adamw] {
            for wd in [0.0, 0.05] {
                let worst = run(kind, wd, 6)?;
                assert!(worst <= 1, "{kind:?} wd={wd}: {worst} ulps from the engine");
            }
        }
        Ok(())
    }

    #[test]
    fn large_parameter_takes_the_parallel_path_and_matches_the_reference() -> Result<()> {
        // a (1, 3·GRAIN + 5) matrix: several rayon chunks and a ragged last one
        let dev = Device::Cpu;
        let n = 3 * cpu::GRAIN + 5;
        let mut rng = crate::rng::Rng::new(9);
        let mut randn = |s: f64| -> Result<Tensor> {
            Tensor::from_vec((0..n).map(|_| (s * rng.normal()) as f32).collect::<Vec<_>>(), n, &dev)?.reshape((1, n))
        };
        let (w0, g1, g2) = (randn(1.0)?, randn(0.1)?, randn(0.1)?);
        let hp = AdamHp { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1, decoupled: true };
        let wf = w0.copy()?;
        let wr = Var::from_tensor(&w0)?;
        let (mut m, mut v, mut mr, mut vr) = (vec![], vec![], None, None);
        for (t, g) in [(1, &g1), (2, &g2)] {
            adamw_update(&wf, g, &mut m, &mut v, &hp, t, 1e-2)?;
            adamw_update_ref(&wr, g, &mut mr, &mut vr, &hp, t, 1e-2)?;
        }
        let (a, b) = (wf.flatten_all()?.to_vec1::<f32>()?, wr.flatten_all()?.to_vec1::<f32>()?);
        assert!(a.iter().zip(&b).all(|(a, b)| ulps(*a, *b) <= 1));
        // momentum, parallel
        let wf = w0.copy()?;
        let wr = Var::from_tensor(&w0)?;
        let (mut b, mut br) = (vec![], None);
        for g in [&g1, &g2] {
            sgd_update(&wf, g, Some(&mut b), 0.9, true, 0.01, 0.1)?;
            sgd_update_ref(&wr, g, Some(&mut br), 0.9, true, 0.01, 0.1)?;
        }
        let (a, b) = (wf.flatten_all()?.to_vec1::<f32>()?, wr.flatten_all()?.to_vec1::<f32>()?);
        assert!(a.iter().zip(&b).all(|(a, b)| ulps(*a, *b) <= 1));
        Ok(())
    }

    /// The clip folded into the update (`*_update_scaled`) against candle's `g * s` followed by
    /// the plain update: bit for bit (weights and state) over three steps, for every optimizer,
    /// on a parameter of several rayon chunks whose gradient holds −0.0 and +0.0.
    #[test]
    fn a_scaled_update_equals_scaling_the_gradient_first_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let n = 2 * cpu::GRAIN + 7;
        let mut rng = crate::rng::Rng::new(21);
        let mut randn = |s: f64| -> Result<Tensor> {
            let mut v: Vec<f32> = (0..n).map(|_| (s * rng.normal()) as f32).collect();
            (v[3], v[n - 2]) = (-0.0, 0.0);
            Tensor::from_vec(v, n, &dev)?.reshape((1, n))
        };
        let w0 = randn(1.0)?;
        let grads = [randn(0.1)?, randn(3.0)?, randn(0.5)?];
        let scales = [Some(0.123_456_7), None, Some(1.7e-3)];
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            Ok(t.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| v.to_bits()).collect())
        };
        let vbits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for decoupled in [true, false] {
            let hp = AdamHp { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, decoupled };
            let (wa, wb) = (w0.copy()?, w0.copy()?);
            let (mut ma, mut va, mut mb, mut vb) = (vec![], vec![], vec![], vec![]);
            for (t, (g, s)) in grads.iter().zip(scales).enumerate() {
                adamw_update_scaled(&wa, g, s, &mut ma, &mut va, &hp, t as u64 + 1, 1e-2)?;
                adamw_update(&wb, &scaled(g, s)?, &mut mb, &mut vb, &hp, t as u64 + 1, 1e-2)?;
            }
            assert_eq!(bits(&wa)?, bits(&wb)?, "adam decoupled={decoupled}: weights");
            assert_eq!((vbits(&ma), vbits(&va)), (vbits(&mb), vbits(&vb)), "adam: moments");
        }
        for (momentum, nesterov) in [(None, false), (Some(0.9), false), (Some(0.9), true)] {
            let (wa, wb) = (w0.copy()?, w0.copy()?);
            let (mut ba, mut bb) = (vec![], vec![]);
            for (g, s) in grads.iter().zip(scales) {
                let mu = momentum.unwrap_or(0.0);
                sgd_update_scaled(&wa, g, s, momentum.map(|_| &mut ba), mu, nesterov, 0.01, 0.1)?;
                sgd_update(&wb, &scaled(g, s)?, momentum.map(|_| &mut bb), mu, nesterov, 0.01, 0.1)?;
            }
            assert_eq!(bits(&wa)?, bits(&wb)?, "sgd momentum={momentum:?} nesterov={nesterov}: weights");
            assert_eq!(vbits(&ba), vbits(&bb), "sgd: buffer");
        }
        Ok(())
    }

    /// The CPU EMA (`ema_update`) against the composed formula (`ema_step` on a tensor state),
    /// e ← decay·e + (1 − decay)·w, for four steps on a small weight and on one of several
    /// rayon chunks; the first step copies w. Within 1 ulp (the same f32 operations).
    #[test]
    fn ema_matches_the_composed_average() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = crate::rng::Rng::new(5);
        for n in [7, 2 * cpu::GRAIN + 3] {
            let (mut e, mut r) = (vec![], StateBuf::Tensor(None));
            for step in 0..4 {
                let w = Tensor::from_vec((0..n).map(|_| rng.normal() as f32).collect::<Vec<_>>(), n, &dev)?;
                ema_update(&w, &mut e, 0.75)?;
                ema_step(&w, &mut r, 0.75)?;
                let StateBuf::Tensor(Some(rt)) = &r else { panic!("the composed EMA keeps a tensor") };
                let want = rt.to_vec1::<f32>()?;
                if step == 0 {
                    assert_eq!(e, w.to_vec1::<f32>()?, "the first step copies the weight");
                }
                let worst = e.iter().zip(&want).map(|(a, b)| ulps(*a, *b)).max().unwrap_or(0);
                assert!(worst <= 1, "n {n}, step {step}: {worst} ulps from the composed EMA");
            }
        }
        assert!(ema_update(&Tensor::zeros(3, candle_core::DType::F32, &dev)?, &mut vec![0.0; 4], 0.9).is_err());
        Ok(())
    }

    #[test]
    fn rejects_mismatched_state_and_aliasing() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::ones((2, 3), candle_core::DType::F32, &dev)?;
        let g = Tensor::ones((2, 3), candle_core::DType::F32, &dev)?;
        let hp = AdamHp { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: true };
        assert!(adamw_update(&w, &g, &mut vec![0.0; 5], &mut vec![0.0; 5], &hp, 1, 0.1).is_err());
        assert!(adamw_update(&w, &g, &mut vec![], &mut vec![], &hp, 0, 0.1).is_err());
        // each moment is checked on its own: a right m does not excuse a wrong v
        assert!(adamw_update(&w, &g, &mut vec![0.0; 6], &mut vec![0.0; 5], &hp, 2, 0.1).is_err());
        assert!(adamw_update(&w, &g, &mut vec![0.0; 5], &mut vec![0.0; 6], &hp, 2, 0.1).is_err());
        // t must fit an i32 (powi's exponent): the largest that does is taken, the next is not
        let t_max = i32::MAX as u64;
        assert!(adamw_update(&w, &g, &mut vec![], &mut vec![], &hp, t_max, 0.1).is_ok());
        assert!(adamw_update(&w, &g, &mut vec![], &mut vec![], &hp, t_max + 1, 0.1).is_err());
        assert!(sgd_update(&w, &g.t()?, None, 0.0, false, 0.0, 0.1).is_err()); // shape
        assert!(sgd_update(&w, &w, None, 0.0, false, 0.0, 0.1).is_err()); // g aliases w

        // either tensor in another dtype is refused, not only both
        let g64 = g.to_dtype(candle_core::DType::F64)?;
        assert!(sgd_update(&w, &g64, None, 0.0, false, 0.0, 0.1).is_err());
        assert!(sgd_update(&w.to_dtype(candle_core::DType::F64)?, &g, None, 0.0, false, 0.0, 0.1).is_err());
        Ok(())
    }

    /// A checkpoint saves the optimizer's state through `to_tensor` and resumes it through
    /// `from_tensor`: empty stays empty (None), values come back bit for bit in the given shape.
    #[test]
    fn state_round_trips_through_a_tensor() -> Result<()> {
        let dev = Device::Cpu;
        let shape = Shape::from((2, 3));
        let empty = StateBuf::new(&dev);
        assert!(empty.is_empty());
        assert!(empty.to_tensor(&shape, &dev)?.is_none());
        assert!(StateBuf::from_tensor(None, &dev)?.is_empty());
        let values = vec![0.5f32, -1.25, 3.0, 0.0, 1e-7, -2.0];
        let host = StateBuf::Host(values.clone());
        assert!(!host.is_empty());
        let t = host.to_tensor(&shape, &dev)?.expect("a filled buffer gives a tensor");
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(t.flatten_all()?.to_vec1::<f32>()?, values);
        match StateBuf::from_tensor(Some(&t), &dev)? {
            StateBuf::Host(v) => assert_eq!(v, values),
            _ => panic!("a CPU parameter's state lives in host memory"),
        }
        Ok(())
    }

    /// The `*_step` dispatchers the engine calls: host state goes to the fused CPU ops, tensor
    /// state (what a device without kernels keeps) to the composed reference; both take the
    /// same steps within a few ulps, and each step moves the weight.
    #[test]
    fn host_and_tensor_state_take_the_same_steps() -> Result<()> {
        let dev = Device::Cpu;
        let w0: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
        let grads: Vec<Tensor> = (0..3)
            .map(|s| Tensor::from_vec((0..24).map(|i| ((i + 3 * s) as f32 * 0.37).sin()).collect(), (4, 6), &dev))
            .collect::<Result<_>>()?;
        let new_w = || Var::from_tensor(&Tensor::from_vec(w0.clone(), (4, 6), &dev)?);
        let far = |a: &Var, b: &Var| -> Result<u32> {
            let (a, b) = (a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?.to_vec1::<f32>()?);
            Ok(a.iter().zip(&b).map(|(x, y)| ulps(*x, *y)).max().unwrap_or(0))
        };
        let moved = |w: &Var| -> Result<bool> { Ok(w.flatten_all()?.to_vec1::<f32>()? != w0) };
        let hp = AdamHp { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, decoupled: true };
        let tensor_state = || StateBuf::Tensor(None);

        let (wh, wt) = (new_w()?, new_w()?);
        let (mut mh, mut vh, mut mt, mut vt) =
            (StateBuf::new(&dev), StateBuf::new(&dev), tensor_state(), tensor_state());
        // the second step's gradient scaled (clipped) on the way
        let gs = |t: usize| (t == 1).then_some(0.37);
        for (t, g) in grads.iter().enumerate() {
            adamw_step(&wh, g, gs(t), &mut mh, &mut vh, &hp, t as u64 + 1, 0.01)?;
            adamw_step(&wt, g, gs(t), &mut mt, &mut vt, &hp, t as u64 + 1, 0.01)?;
        }
        assert!(moved(&wh)? && far(&wh, &wt)? <= 4, "adamw: {} ulps", far(&wh, &wt)?);
        assert!(adamw_step(&wh, &grads[0], None, &mut mh, &mut vt, &hp, 4, 0.01).is_err(), "mixed state kinds");

        let (wh, wt) = (new_w()?, new_w()?);
        let (mut bh, mut bt) = (StateBuf::new(&dev), tensor_state());
        for (t, g) in grads.iter().enumerate() {
            sgd_step(&wh, g, gs(t), Some(&mut bh), 0.9, true, 0.01, 0.1)?;
            sgd_step(&wt, g, gs(t), Some(&mut bt), 0.9, true, 0.01, 0.1)?;
        }
        assert!(moved(&wh)? && far(&wh, &wt)? <= 4, "sgd: {} ulps", far(&wh, &wt)?);

        let (mut sh, mut st) = (StateBuf::new(&dev), tensor_state());
        for g in &grads {
            // the EMA follows a moving weight: w0 + g each time
            let w = (Tensor::from_vec(w0.clone(), (4, 6), &dev)? + g)?;
            ema_step(&w, &mut sh, 0.9)?;
            ema_step(&w, &mut st, 0.9)?;
        }
        let shape = Shape::from((4, 6));
        let as_var = |b: &StateBuf| -> Result<Var> { Var::from_tensor(&b.to_tensor(&shape, &dev)?.expect("filled")) };
        let (eh, et) = (as_var(&sh)?, as_var(&st)?);
        assert!(moved(&eh)? && far(&eh, &et)? <= 4, "ema: {} ulps", far(&eh, &et)?);
        Ok(())
    }
}
