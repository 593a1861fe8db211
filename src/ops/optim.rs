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
use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Result, Tensor, Var};
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
    let decay = w.rank() >= 2 && hp.weight_decay > 0.0;
    let t = t as i32;
    let k = AdamConsts {
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
    };
    let g = g.contiguous()?;
    w.inplace_op2(&g, &AdamStep { k, m: RefCell::new(m.as_mut_slice()), v: RefCell::new(v.as_mut_slice()) })
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
    let k = SgdConsts {
        l2: w.rank() >= 2 && weight_decay > 0.0,
        wd: weight_decay as f32,
        mu: momentum as f32,
        nesterov,
        lr: lr as f32,
        first,
    };
    let g = g.contiguous()?;
    w.inplace_op2(&g, &SgdStep { k, buf: RefCell::new(buf) })
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
struct AdamConsts {
    /// add λ·w to g (Adam's L2 decay)
    l2: bool,
    wd: f32,
    b1: f32,
    /// 1 − β1, computed in f64
    c1: f32,
    b2: f32,
    c2: f32,
    /// 1 / (1 − β1^t), computed in f64
    bc1: f32,
    bc2: f32,
    eps: f32,
    lr: f32,
    /// subtract lr·λ·w after the step (AdamW)
    decoupled: bool,
    /// lr·λ, computed in f64
    lr_wd: f32,
    /// no moments yet: m = (1 − β1)·g rather than β1·m + (1 − β1)·g
    first: bool,
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

struct AdamStep<'a> {
    k: AdamConsts,
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
        if w.len() <= cpu::GRAIN {
            adam_kernel_simd(w, g, m, v, &self.k);
        } else {
            use rayon::prelude::*;
            let (ch, k) = (cpu::GRAIN, &self.k);
            w.par_chunks_mut(ch)
                .zip(g.par_chunks(ch))
                .zip(m.par_chunks_mut(ch))
                .zip(v.par_chunks_mut(ch))
                .for_each(|(((w, g), m), v)| adam_kernel_simd(w, g, m, v, k));
        }
        Ok(())
    }
}

struct SgdConsts {
    l2: bool,
    wd: f32,
    mu: f32,
    nesterov: bool,
    lr: f32,
    /// an empty buffer: b = g
    first: bool,
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
        let (ch, k) = (cpu::GRAIN, &self.k);
        let small = w.len() <= ch;
        match self.buf.borrow_mut().as_deref_mut() {
            None if small => sgd_kernel_simd(w, g, k),
            None => w.par_chunks_mut(ch).zip(g.par_chunks(ch)).for_each(|(w, g)| sgd_kernel_simd(w, g, k)),
            Some(b) if small => momentum_kernel_simd(w, g, b, k),
            Some(b) => w
                .par_chunks_mut(ch)
                .zip(g.par_chunks(ch))
                .zip(b.par_chunks_mut(ch))
                .for_each(|((w, g), b)| momentum_kernel_simd(w, g, b, k)),
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

    #[test]
    fn rejects_mismatched_state_and_aliasing() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::ones((2, 3), candle_core::DType::F32, &dev)?;
        let g = Tensor::ones((2, 3), candle_core::DType::F32, &dev)?;
        let hp = AdamHp { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: true };
        assert!(adamw_update(&w, &g, &mut vec![0.0; 5], &mut vec![0.0; 5], &hp, 1, 0.1).is_err());
        assert!(adamw_update(&w, &g, &mut vec![], &mut vec![], &hp, 0, 0.1).is_err());
        assert!(sgd_update(&w, &g.t()?, None, 0.0, false, 0.0, 0.1).is_err()); // shape
        assert!(sgd_update(&w, &w, None, 0.0, false, 0.0, 0.1).is_err()); // g aliases w
        Ok(())
    }
}
