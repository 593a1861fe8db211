//! A dense layer with its activation as one op: y = act(x · wᵀ + b), with x (N, K) or (..., K)
//! (read as (N, K) without a reshape), w (M, K) in the candle-nn / PyTorch layout and b (M).
//!
//! Forward: one gemm z = x · wᵀ (the transpose is a stride), then one pass over z adds b and
//! applies the activation. ReLU, LeakyReLU and identity work in place and keep nothing extra
//! (their backward reads the output: y > 0 ⇔ z > 0 for a slope ≥ 0, so at z = 0 exactly the
//! slope is the negative side's, as PyTorch's, where candle's `relu` backward uses 1 and its
//! `maximum` splits the gradient); GELU keeps its derivative at z (N·M floats, as
//! many as PyTorch's saved z), computed in the forward beside σ, so the backward only multiplies.
//! Backward: one pass computes dz = dy ⊙ act'(z) and the bias gradient db = Σ_rows dz, then two
//! gemms: dx = dz · w (skipped when x needs no gradient, e.g. the first layer's data) and
//! dw = dzᵀ · x (skipped for a frozen w).
//!
//! GELU is written with a vectorisable exp (`cpu::exp`): tanh-GELU as z·σ(2u) with
//! u = √(2/π)(z + 0.044715 z³) (since ½(1 + tanh u) = σ(2u)), erf-GELU with A&S 7.1.26.
//! candle's `gelu()` calls libm's tanhf per element, scalar.

use super::cpu;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// The activation applied after the bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    /// max(z, slope·z) for a slope in [0, 1] (the GAN's 0.2)
    LeakyRelu(f32),
    /// GELU, tanh approximation (GPT-2; candle's `gelu()`)
    Gelu,
    /// GELU with the exact erf (candle's `gelu_erf()`)
    GeluErf,
}

/// act(x · wᵀ + b): x (..., K) f32, w (M, K), b (M) → (..., M).
pub fn linear_act(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    let (m, k) = w.dims2()?;
    if x.dims().last() != Some(&k) {
        bail!("linear_act: x {:?} does not end in w's K = {k} (w is {:?})", x.shape(), w.shape());
    }
    if let Act::LeakyRelu(s) = act {
        // the backward tells the sides apart by y > 0, which needs s ≥ 0; s ≤ 1 keeps the
        // reference max(z, s·z) the same function
        if !(0.0..=1.0).contains(&s) {
            bail!("linear_act: the LeakyReLU slope must be in [0, 1], got {s}");
        }
    }
    if !super::fused_on(x.device(), true) {
        return linear_act_ref(x, w, b, act);
    }
    super::flops::add(super::flops::product(x.elem_count() / k.max(1), k, m));
    // x keeps its shape: the op reads it as (N, K) and returns (..., M), so no reshape nodes
    // (each costs candle's backward a zeros_like + add of its size)
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    let op = LinearAct {
        act,
        grad: OnceLock::new(),
        #[cfg(feature = "cuda")]
        dev_z: OnceLock::new(),
    };
    match b {
        Some(b) => {
            if b.dims() != [m] {
                bail!("linear_act: bias {:?} must be ({m},)", b.shape());
            }
            super::arg(&x).apply_op3(&super::arg(&w), &super::arg(&b.contiguous()?), op)
        }
        None => super::arg(&x).apply_op2(&super::arg(&w), op),
    }
}

/// The composed reference: candle's matmul, broadcast add and activation, each with backward.
pub fn linear_act_ref(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    let (m, k) = w.dims2()?;
    let mut out = x.dims().to_vec();
    let n = x.elem_count() / k.max(1);
    super::flops::add(super::flops::product(n, k, m));
    let mut z = x.reshape((n, k))?.matmul(&w.t()?)?; // (N, M)
    if let Some(b) = b {
        z = z.broadcast_add(b)?;
    }
    let y = match act {
        Act::Identity => z,
        Act::Relu => z.relu()?,
        Act::LeakyRelu(s) => z.maximum(&(&z * s as f64)?)?,
        Act::Gelu => z.gelu()?,
        Act::GeluErf => z.gelu_erf()?,
    };
    if let Some(last) = out.last_mut() {
        *last = m;
    }
    y.reshape(out)
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// (σ(2u), 1 − σ(2u)) with 2u clamped to ±80: beyond, σ is 0 or 1 to f32 precision, and the
/// clamp keeps σ (≥ 1.8e-35) out of the subnormals. 1 − σ is computed as e·σ with e = e^(−2u),
/// not by subtraction, which would cancel where σ ≈ 1.
#[inline(always)]
fn sigmoid_2u(u: f32) -> (f32, f32) {
    let e = cpu::exp(-(2.0 * u).clamp(-80.0, 80.0));
    let s = 1.0 / (1.0 + e);
    (s, e * s)
}

/// tanh-GELU: z · σ(2u), u = √(2/π)(z + 0.044715 z³).
#[inline(always)]
pub fn gelu(z: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (z + GELU_C * z * z * z);
    z * sigmoid_2u(u).0
}

/// d/dz tanh-GELU = s + z · s(1 − s) · 2u', s = σ(2u), u' = √(2/π)(1 + 3·0.044715 z²).
#[inline(always)]
pub fn gelu_grad(z: f32) -> f32 {
    let z2 = z * z;
    let u = SQRT_2_OVER_PI * (z + GELU_C * z * z2);
    let (s, one_minus_s) = sigmoid_2u(u);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * z2);
    s + z * s * one_minus_s * 2.0 * du
}

/// erf-GELU: z · Φ(z), Φ(z) = ½(1 + erf(z/√2)).
#[inline(always)]
pub fn gelu_erf(z: f32) -> f32 {
    let (e, _) = cpu::erf_and_gauss(z * std::f32::consts::FRAC_1_SQRT_2);
    0.5 * z * (1.0 + e)
}

/// d/dz erf-GELU = Φ(z) + z · φ(z), φ(z) = e^(−z²/2)/√(2π).
#[inline(always)]
pub fn gelu_erf_grad(z: f32) -> f32 {
    let (e, g) = cpu::erf_and_gauss(z * std::f32::consts::FRAC_1_SQRT_2);
    0.5 * (1.0 + e) + z * g * FRAC_1_SQRT_2PI
}

/// z ← z + b, then z ← act(z) for identity, ReLU and LeakyReLU, for rows of b.len() (an empty
/// b adds nothing). NaN stays NaN (a comparison with NaN is false).
#[inline(always)]
fn bias_act_in_place(z: &mut [f32], b: &[f32], m: usize, act: Act) {
    for row in z.chunks_exact_mut(m) {
        if !b.is_empty() {
            for (v, &bj) in row.iter_mut().zip(b) {
                *v += bj;
            }
        }
        match act {
            Act::Relu => {
                for v in row.iter_mut() {
                    *v = if *v < 0.0 { 0.0 } else { *v };
                }
            }
            Act::LeakyRelu(s) => {
                for v in row.iter_mut() {
                    *v = if *v < 0.0 { *v * s } else { *v };
                }
            }
            _ => {}
        }
    }
}
cpu::simd!(bias_act_in_place_simd, bias_act_in_place, (z: &mut [f32], b: &[f32], m: usize, act: Act));

/// (gelu(z), gelu'(z)), tanh form, sharing σ(2u).
#[inline(always)]
fn gelu_and_grad(z: f32) -> (f32, f32) {
    let z2 = z * z;
    let u = SQRT_2_OVER_PI * (z + GELU_C * z * z2);
    let (s, one_minus_s) = sigmoid_2u(u);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * z2);
    (z * s, s + z * s * one_minus_s * 2.0 * du)
}

/// (gelu(z), gelu'(z)), erf form, sharing erf and the Gaussian.
#[inline(always)]
fn gelu_erf_and_grad(z: f32) -> (f32, f32) {
    let (e, g) = cpu::erf_and_gauss(z * std::f32::consts::FRAC_1_SQRT_2);
    let phi = 0.5 * (1.0 + e);
    (z * phi, phi + z * g * FRAC_1_SQRT_2PI)
}

/// For rows of m: y = gelu(z + b) (tanh or erf form), and z ← gelu'(z + b), which is all the
/// backward needs (it then multiplies instead of recomputing the exponential).
#[inline(always)]
fn bias_gelu(z: &mut [f32], b: &[f32], y: &mut [MaybeUninit<f32>], m: usize, erf: bool) {
    for (z, y) in z.chunks_exact_mut(m).zip(y.chunks_exact_mut(m)) {
        if !b.is_empty() {
            for (v, &bj) in z.iter_mut().zip(b) {
                *v += bj;
            }
        }
        // y is written without a zero fill first (1.5 MB a layer at the gpt recipe's shapes)
        if erf {
            for (y, z) in y.iter_mut().zip(z.iter_mut()) {
                let (g, d) = gelu_erf_and_grad(*z);
                (*y, *z) = (MaybeUninit::new(g), d);
            }
        } else {
            for (y, z) in y.iter_mut().zip(z.iter_mut()) {
                let (g, d) = gelu_and_grad(*z);
                (*y, *z) = (MaybeUninit::new(g), d);
            }
        }
    }
}
cpu::simd!(bias_gelu_simd, bias_gelu, (z: &mut [f32], b: &[f32], y: &mut [MaybeUninit<f32>], m: usize, erf: bool));

/// dz = dy ⊙ act'(·) for rows of m, summing dz into `db` (M). `aux` is y for (Leaky)ReLU
/// (y > 0 ⇔ z > 0) and act'(z) for the GELUs (saved by the forward); unused for identity, where dz is dy and only db is computed.
#[inline(always)]
fn act_grad(act: Act, dy: &[f32], aux: &[f32], dz: &mut [f32], db: &mut [f32], m: usize) {
    match act {
        Act::Identity => {
            for dy in dy.chunks_exact(m) {
                for (s, &d) in db.iter_mut().zip(dy) {
                    *s += d;
                }
            }
        }
        Act::Relu => {
            for ((dz, dy), y) in dz.chunks_exact_mut(m).zip(dy.chunks_exact(m)).zip(aux.chunks_exact(m)) {
                for j in 0..m {
                    dz[j] = if y[j] > 0.0 { dy[j] } else { 0.0 };
                    db[j] += dz[j];
                }
            }
        }
        Act::LeakyRelu(s) => {
            for ((dz, dy), y) in dz.chunks_exact_mut(m).zip(dy.chunks_exact(m)).zip(aux.chunks_exact(m)) {
                for j in 0..m {
                    dz[j] = if y[j] > 0.0 { dy[j] } else { s * dy[j] };
                    db[j] += dz[j];
                }
            }
        }
        // aux holds gelu'(z), saved by the forward
        Act::Gelu | Act::GeluErf => {
            for ((dz, dy), g) in dz.chunks_exact_mut(m).zip(dy.chunks_exact(m)).zip(aux.chunks_exact(m)) {
                for j in 0..m {
                    dz[j] = dy[j] * g[j];
                    db[j] += dz[j];
                }
            }
        }
    }
}
cpu::simd!(act_grad_simd, act_grad, (act: Act, dy: &[f32], aux: &[f32], dz: &mut [f32], db: &mut [f32], m: usize));

struct LinearAct {
    act: Act,
    /// on the CPU: act'(z) at z = x·wᵀ + b, saved by the forward for the GELUs' backward: (N, M)
    grad: OnceLock<Vec<f32>>,
    /// on the GPU: Some(z) for the GELUs, None for ReLU and identity (set by the forward)
    #[cfg(feature = "cuda")]
    dev_z: OnceLock<Option<candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>>>,
}

const NAME: &str = "linear_act";

impl LinearAct {
    /// x (N, K), w (M, K), b (M) or empty → y (N, M).
    fn forward(&self, x: &[f32], (xn, xk): (usize, usize), w: &[f32], m: usize, b: &[f32]) -> Result<CpuStorage> {
        if w.len() != m * xk {
            bail!("{NAME}: w has {} elements, expected {m}·{xk}", w.len());
        }
        let (n, k) = (xn, xk);
        let mut z = cpu::sgemm_new((n, m, k), x, (k, 1), w, (1, k)); // (N, M)
        if m == 0 {
            return Ok(CpuStorage::F32(z));
        }
        match self.act {
            Act::Identity | Act::Relu | Act::LeakyRelu(_) => {
                let act = self.act;
                cpu::for_row_chunks(&mut z, m, |_, z| bias_act_in_place_simd(z, b, m, act));
                Ok(CpuStorage::F32(z))
            }
            Act::Gelu | Act::GeluErf => {
                let erf = self.act == Act::GeluErf;
                let mut y = cpu::uninit(n * m); // written chunk by chunk by the thread that fills it
                let rpt = cpu::rows_per_task(m);
                if n <= rpt {
                    bias_gelu_simd(&mut z, b, &mut y, m, erf);
                } else {
                    use rayon::prelude::*;
                    z.par_chunks_mut(rpt * m)
                        .zip(y.par_chunks_mut(rpt * m))
                        .for_each(|(z, y)| bias_gelu_simd(z, b, y, m, erf));
                }
                // SAFETY: bias_gelu wrote every element of every chunk
                let y = unsafe { cpu::assume_init(y) };
                // z now holds gelu'(z)
                if self.grad.set(z).is_err() {
                    bail!("{NAME}: forward ran twice on one op");
                }
                Ok(CpuStorage::F32(y))
            }
        }
    }

    /// (dx, dw, db) from dy (N, M), each only when `need` asks for it: x may be data (the first
    /// layer), w frozen (LoRA's base weights), b absent.
    fn backward(
        &self,
        (x, w): (&Tensor, &Tensor),
        res: &Tensor,
        grad_res: &Tensor,
        need: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        #[cfg(feature = "cuda")]
        if let Some(z) = self.dev_z.get() {
            return super::cuda::linear_bwd((x, w), res, grad_res, z.as_ref(), self.act, need);
        }
        let [need_dx, need_dw, need_db] = need;
        let (m, _) = w.dims2()?;
        let (n, k, _) = flat_dims(x.shape(), m)?;
        let dy = grad_res.contiguous()?; // (..., M) read as (N, M)
        let (dys, dyl) = dy.storage_and_layout();
        let dyv = cpu::storage_f32(&dys, dyl, NAME)?; // (N, M)
        let (xs, xl) = x.storage_and_layout();
        let xv = cpu::storage_f32(&xs, xl, NAME)?; // (..., K) read as (N, K)
        let (ws, wl) = w.storage_and_layout();
        let wv = cpu::storage_f32(&ws, wl, NAME)?; // (M, K)

        // dz and db in one pass; for identity dz is dy itself
        let (rs, rl) = res.storage_and_layout();
        let aux: &[f32] = match self.act {
            Act::Identity => &[],
            Act::Relu | Act::LeakyRelu(_) => cpu::storage_f32(&rs, rl, NAME)?,
            Act::Gelu | Act::GeluErf => match self.grad.get() {
                Some(z) => z,
                None => bail!("{NAME}: backward before forward"),
            },
        };
        let mut dz_own = vec![]; // for identity dz is dy itself
        let db = if m == 0 || (self.act == Act::Identity && !need_db) {
            // (for the other activations dz is needed anyway, and db comes with it)
            vec![]
        } else if self.act == Act::Identity {
            // no dz buffer to split: chunk the rows of dy by index
            let rpt = cpu::rows_per_task(m);
            let starts: Vec<usize> = (0..n).step_by(rpt).collect();
            let part = |r0: usize| {
                let r1 = (r0 + rpt).min(n);
                let mut db = vec![0f32; m];
                act_grad_simd(Act::Identity, &dyv[r0 * m..r1 * m], &[], &mut [], &mut db, m);
                db
            };
            let parts: Vec<Vec<f32>> = if starts.len() <= 1 {
                vec![part(0)]
            } else {
                use rayon::prelude::*;
                starts.into_par_iter().map(part).collect()
            };
            cpu::reduce_partials(parts)
        } else {
            let act = self.act;
            let parts;
            (dz_own, parts) = cpu::map_zeroed_row_chunks(n * m, m, |r0, dz| {
                let (lo, hi) = (r0 * m, r0 * m + dz.len());
                let mut db = vec![0f32; m];
                act_grad_simd(act, &dyv[lo..hi], &aux[lo..hi], dz, &mut db, m);
                db
            });
            cpu::reduce_partials(parts)
        };
        let dz: &[f32] = if self.act == Act::Identity { dyv } else { &dz_own };

        let dev = x.device();
        let dx_of: cpu::Product = ((n, k, m), dz, (m, 1), wv, (k, 1)); // (N, K) = dz (N, M) · w (M, K)
        let dw_of: cpu::Product = ((m, k, n), dz, (1, m), xv, (k, 1)); // (M, K) = dzᵀ (M, N) · x (N, K)
        let product = |(mnk, lhs, ls, rhs, rs): cpu::Product| cpu::sgemm_new(mnk, lhs, ls, rhs, rs);
        let (dx, dw) = if need_dx && need_dw {
            // the two at once, each on half of the threads
            let (dx, dw) = cpu::sgemm_pair(dx_of, dw_of);
            (Some(dx), Some(dw))
        } else {
            (need_dx.then(|| product(dx_of)), need_dw.then(|| product(dw_of)))
        };
        let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), dev)).transpose()?;
        let dw = dw.map(|dw| Tensor::from_vec(dw, (m, k), dev)).transpose()?;
        let db = if need_db { Some(Tensor::from_vec(db, m, dev)?) } else { None };
        Ok([dx, dw, db])
    }
}

#[cfg(feature = "cuda")]
impl LinearAct {
    /// The GPU forward (cuBLAS sgemm, then kernels/linear_act.cu's epilogue); keeps z for the
    /// GELUs' backward.
    fn cuda_forward(
        &self,
        x: (&candle_core::CudaStorage, &Layout),
        w: (&candle_core::CudaStorage, &Layout),
        b: Option<(&candle_core::CudaStorage, &Layout)>,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (m, _) = w.1.shape().dims2()?;
        let (_, _, out) = flat_dims(x.1.shape(), m)?;
        let (y, z) = super::cuda::linear_fwd(x, w, b, self.act)?;
        if self.dev_z.set(z).is_err() {
            bail!("{NAME}: forward ran twice on one op");
        }
        Ok((y, out))
    }
}

/// x (..., K) as (N, K), and the output shape (..., M).
fn flat_dims(x: &Shape, m: usize) -> Result<(usize, usize, Shape)> {
    let Some(&k) = x.dims().last() else { bail!("{NAME}: x must have rank ≥ 1") };
    let n = x.elem_count() / k.max(1);
    let mut out = x.dims().to_vec();
    *out.last_mut().expect("rank ≥ 1") = m;
    Ok((n, k, Shape::from(out)))
}

impl CustomOp2 for LinearAct {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, _) = l2.shape().dims2()?;
        let (n, k, out) = flat_dims(l1.shape(), m)?;
        let y = self.forward(cpu::cpu_f32(s1, l1, NAME)?, (n, k), cpu::cpu_f32(s2, l2, NAME)?, m, &[])?;
        Ok((y, out))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.cuda_forward((s1, l1), (s2, l2), None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = self.backward((x, w), res, grad_res, [x.track_op(), w.track_op(), false])?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for LinearAct {
    fn name(&self) -> &'static str {
        NAME
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
        let (m, _) = l2.shape().dims2()?;
        let (n, k, out) = flat_dims(l1.shape(), m)?;
        let b = cpu::cpu_f32(s3, l3, NAME)?;
        let y = self.forward(cpu::cpu_f32(s1, l1, NAME)?, (n, k), cpu::cpu_f32(s2, l2, NAME)?, m, b)?;
        Ok((y, out))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.cuda_forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = self.backward((x, w), res, grad_res, [x.track_op(), w.track_op(), b.track_op()])?;
        Ok((dx, dw, db))
    }
}

/// Fused vs reference, forward + backward, on the workloads' layers: the MLP's 784-512-256-10
/// at batch 128 (ReLU; the head is the identity; the first layer's input is data, so needs no
/// gradient), the GPT MLP's 128→512 GELU and 512→128 at 32·64 tokens, and the GAN
/// discriminator's 784→1024 LeakyReLU at batch 64.
pub fn benches() -> Result<Vec<super::OpBench>> {
    let layers: [(usize, usize, usize, Act, bool); 6] = [
        (128, 784, 512, Act::Relu, false),
        (128, 512, 256, Act::Relu, true),
        (128, 256, 10, Act::Identity, true),
        (2048, 128, 512, Act::Gelu, true),
        (2048, 512, 128, Act::Identity, true),
        (64, 784, 1024, Act::LeakyRelu(0.2), false),
    ];
    let mut out = vec![];
    for (i, &(n, k, m, act, x_grad)) in layers.iter().enumerate() {
        let (x, w, b, r) = random_inputs(n, k, m, 20 + i as u64)?;
        let x = if x_grad { candle_core::Var::from_tensor(&x)?.as_tensor().clone() } else { x };
        let (w, b) = (candle_core::Var::from_tensor(&w)?, candle_core::Var::from_tensor(&b)?);
        let (x2, w2, b2, r2) = (x.clone(), w.clone(), b.clone(), r.clone());
        out.push(super::OpBench {
            name: "linear_act",
            shape: format!("N={n}, K={k}, M={m}, {act:?}{}", if x_grad { "" } else { ", x data" }),
            fused: Box::new(move || (linear_act(&x, &w, Some(&b), act)? * &r)?.sum_all()?.backward().map(|_| ())),
            reference: Box::new(move || {
                (linear_act_ref(&x2, &w2, Some(&b2), act)? * &r2)?.sum_all()?.backward().map(|_| ())
            }),
        });
    }
    Ok(out)
}

/// Seeded x ~ N(0, 1) (N, K), w ~ N(0, 1/K) (M, K), b ~ 0.5·N(0, 1) (M) and an upstream weight
/// r ~ N(0, 1) (N, M).
fn random_inputs(n: usize, k: usize, m: usize, seed: u64) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let mut rng = crate::rng::Rng::new(seed);
    let dev = candle_core::Device::Cpu;
    let mut randn = |len: usize, s: f64| -> Vec<f32> { (0..len).map(|_| (s * rng.normal()) as f32).collect() };
    let x = Tensor::from_vec(randn(n * k, 1.0), (n, k), &dev)?;
    let w = Tensor::from_vec(randn(m * k, 1.0 / (k.max(1) as f64).sqrt()), (m, k), &dev)?;
    let b = Tensor::from_vec(randn(m, 0.5), m, &dev)?;
    let r = Tensor::from_vec(randn(n * m, 1.0), (n, m), &dev)?;
    Ok((x, w, b, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{erf64, max_abs, max_abs_diff};
    use candle_core::Var;

    /// The fast GELUs against the exact formulas in f64 on z ∈ [−10, 10], error measured as
    /// |fast − exact| / max(1, |exact|). Measured maxima: tanh-GELU 1.6e-7, its derivative
    /// 2.0e-7 (about 2 ulp); erf-GELU 2.6e-7, its derivative 3.3e-7 (A&S 7.1.26's erf).
    /// Asserted: 2.5e-7 for the tanh form, 4e-7 for the erf form.
    #[test]
    fn fast_gelu_error_against_exact_formulas() {
        let (mut e_t, mut e_tg, mut e_e, mut e_eg) = (0f64, 0f64, 0f64, 0f64);
        let k = (2.0 / std::f64::consts::PI).sqrt();
        for i in 0..=400_000 {
            let zf = -10.0 + 20.0 * i as f32 / 400_000.0;
            let z = zf as f64;
            let u = k * (z + 0.044715 * z * z * z);
            let th = u.tanh();
            let exact_t = 0.5 * z * (1.0 + th);
            let exact_tg = 0.5 * (1.0 + th) + 0.5 * z * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * z * z);
            let phi = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let big_phi = 0.5 * (1.0 + erf64(z / std::f64::consts::SQRT_2));
            // error relative to max(1, |exact|): absolute near 0, relative for large z, where
            // half an f32 ulp of gelu(10) = 10 is already 4.8e-7
            let err = |got: f32, want: f64| (got as f64 - want).abs() / want.abs().max(1.0);
            e_t = e_t.max(err(gelu(zf), exact_t));
            e_tg = e_tg.max(err(gelu_grad(zf), exact_tg));
            e_e = e_e.max(err(gelu_erf(zf), z * big_phi));
            e_eg = e_eg.max(err(gelu_erf_grad(zf), big_phi + z * phi));
        }
        println!(
            "max error / max(1, |exact|): gelu {e_t:.2e}, gelu' {e_tg:.2e}, gelu_erf {e_e:.2e}, gelu_erf' {e_eg:.2e}"
        );
        assert!(e_t <= 2.5e-7 && e_tg <= 2.5e-7, "tanh-GELU errors {e_t:e}, {e_tg:e}");
        assert!(e_e <= 4e-7 && e_eg <= 4e-7, "erf-GELU errors {e_e:e}, {e_eg:e}");
        assert!(gelu(f32::NAN).is_nan());
        // the σ argument is clamped to ±80, so far left gelu is z·1.8e-35 rather than −0
        assert!(gelu(-1e6).abs() < 1e-28);
        assert_eq!(gelu(1e6), 1e6);
    }

    /// y, dx, dw, db vs the composed reference for L = Σ y ⊙ r. Tolerances, relative to each
    /// tensor's largest entry: 1e-5 for y, dx and dw (the same gemm, but the GELUs differ by
    /// ≤ 1e-6 absolute, and candle's GELU backward uses 6-digit constants, 1e-6 relative), and
    /// 1e-5 · √(N/64) for db (a sum over N rows in chunked order vs candle's).
    fn check(dims: &[usize], m: usize, act: Act, bias: bool, seed: u64) -> Result<()> {
        let k = *dims.last().expect("rank ≥ 1");
        let n: usize = dims.iter().product::<usize>() / k;
        let (x, w, b, r) = random_inputs(n, k, m, seed)?;
        let x = x.reshape(dims)?;
        let mut rdims = dims.to_vec();
        *rdims.last_mut().expect("rank ≥ 1") = m;
        let r = r.reshape(rdims)?;
        let vars =
            || -> Result<(Var, Var, Var)> { Ok((Var::from_tensor(&x)?, Var::from_tensor(&w)?, Var::from_tensor(&b)?)) };
        let (xf, wf, bf) = vars()?;
        let (xr, wr, br) = vars()?;
        let yf = linear_act(&xf, &wf, bias.then_some(bf.as_tensor()), act)?;
        let yr = linear_act_ref(&xr, &wr, bias.then_some(br.as_tensor()), act)?;
        assert_eq!(yf.dims(), yr.dims());
        let what = format!("{dims:?}→{m} {act:?} bias={bias}");
        let d = max_abs_diff(&yf, &yr)?;
        assert!(d <= 1e-5 * max_abs(&yr)?.max(1.0), "y differs by {d} for {what}");
        let gf = (yf * &r)?.sum_all()?.backward()?;
        let gr = (yr * &r)?.sum_all()?.backward()?;
        let mut pairs = vec![("dx", &xf, &xr, 1e-5f32), ("dw", &wf, &wr, 1e-5)];
        if bias {
            pairs.push(("db", &bf, &br, 1e-5 * (n as f32 / 64.0).sqrt().max(1.0)));
        } else {
            assert!(gf.get(&bf).is_none());
        }
        for (name, vf, vr, tol) in pairs {
            let (a, b) = (gf.get(vf).expect("fused grad"), gr.get(vr).expect("ref grad"));
            let d = max_abs_diff(a, b)?;
            assert!(d <= tol * max_abs(b)?.max(1e-3), "{name} differs by {d} for {what}");
        }
        Ok(())
    }

    #[test]
    fn matches_reference_for_each_activation() -> Result<()> {
        let acts = [Act::Identity, Act::Relu, Act::LeakyRelu(0.2), Act::Gelu, Act::GeluErf];
        for (i, act) in acts.into_iter().enumerate() {
            let s = 10 * i as u64;
            check(&[128, 784], 512, act, true, s)?; // the MLP's first layer
            check(&[37, 29], 13, act, true, s + 1)?; // nothing a multiple of 8
            check(&[1, 5], 3, act, true, s + 2)?; // batch 1
            check(&[2, 33, 17], 19, act, true, s + 3)?; // leading batch dims, flattened
            check(&[9, 16], 11, act, false, s + 4)?; // no bias
        }
        check(&[2048, 128], 512, Act::Gelu, true, 50)?; // the GPT MLP: several rayon chunks
        check(&[2048, 512], 128, Act::Identity, true, 51)?;
        check(&[64, 784], 1024, Act::LeakyRelu(0.2), true, 52) // the GAN discriminator's first layer
    }

    /// LeakyReLU at its ends: slope 0 is ReLU, slope 1 the identity (bitwise, forward and
    /// backward, in the same op); a slope outside [0, 1] is refused (the backward reads the
    /// sides from y > 0, which a negative slope breaks).
    #[test]
    fn leaky_relu_at_slopes_0_and_1_is_relu_and_identity() -> Result<()> {
        let (x, w, b, r) = random_inputs(13, 7, 5, 62)?;
        let grads = |act: Act| -> Result<(Vec<f32>, Vec<f32>)> {
            let xv = Var::from_tensor(&x)?;
            let y = linear_act(&xv, &w, Some(&b), act)?;
            let g = (&y * &r)?.sum_all()?.backward()?;
            Ok((y.flatten_all()?.to_vec1()?, g.get(&xv).expect("grad").flatten_all()?.to_vec1()?))
        };
        assert_eq!(grads(Act::LeakyRelu(0.0))?, grads(Act::Relu)?);
        assert_eq!(grads(Act::LeakyRelu(1.0))?, grads(Act::Identity)?);
        for bad in [-0.1, 1.5, f32::NAN] {
            assert!(linear_act(&x, &w, Some(&b), Act::LeakyRelu(bad)).is_err(), "slope {bad}");
        }
        Ok(())
    }

    #[test]
    fn data_input_gets_no_gradient_and_strided_weights_work() -> Result<()> {
        let (x, w, b, r) = random_inputs(6, 10, 4, 60)?;
        // w as the transpose of a stored (K, M) matrix, as when a weight is tied
        let store = Var::from_tensor(&w.t()?.contiguous()?)?; // (10, 4)
        let y = linear_act(&x, &store.t()?, Some(&b), Act::Relu)?;
        let wr = Var::from_tensor(&w)?;
        let yr = linear_act_ref(&x, &wr, Some(&b), Act::Relu)?;
        assert!(max_abs_diff(&y, &yr)? < 1e-5);
        let g = (y * &r)?.sum_all()?.backward()?;
        let gr = (yr * &r)?.sum_all()?.backward()?;
        let d = max_abs_diff(&g.get(&store).expect("grad").t()?, gr.get(&wr).expect("grad"))?;
        assert!(d < 1e-5 * max_abs(gr.get(&wr).expect("grad"))?, "{d}");
        assert!(g.get(&x).is_none());
        assert!(linear_act(&x, &w.t()?, None, Act::Relu).is_err()); // K mismatch
        Ok(())
    }

    #[test]
    fn frozen_weight_and_bias_get_no_gradient_but_x_does() -> Result<()> {
        // LoRA's base layer: w and b are constants, only x (and what feeds it) trains
        for act in [Act::Identity, Act::Relu, Act::LeakyRelu(0.2), Act::Gelu] {
            let (x, w, b, r) = random_inputs(5, 9, 7, 61)?;
            let (xf, xr) = (Var::from_tensor(&x)?, Var::from_tensor(&x)?);
            let gf = (linear_act(&xf, &w, Some(&b), act)? * &r)?.sum_all()?.backward()?;
            let gr = (linear_act_ref(&xr, &w, Some(&b), act)? * &r)?.sum_all()?.backward()?;
            assert!(gf.get(&w).is_none() && gf.get(&b).is_none());
            let (a, e) = (gf.get(&xf).expect("grad"), gr.get(&xr).expect("grad"));
            assert!(max_abs_diff(a, e)? <= 1e-5 * max_abs(e)?, "{act:?}");
        }
        Ok(())
    }

    /// Rough timing of the vectorised GELU pass vs candle's `gelu()` on (2048, 512).
    /// `cargo test --release --lib ops::linear -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn time_gelu_against_candle() -> Result<()> {
        let (x, _, _, _) = random_inputs(2048, 512, 1, 70)?;
        let z = x.flatten_all()?.to_vec1::<f32>()?;
        let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
            f()?;
            let t = std::time::Instant::now();
            for _ in 0..20 {
                f()?;
            }
            Ok(t.elapsed().as_secs_f64() / 20.0 * 1e3)
        };
        let ours = time(&|| {
            let mut zc = z.clone();
            let mut y = cpu::uninit(z.len());
            bias_gelu_simd(&mut zc, &[], &mut y, 512, false);
            std::hint::black_box(&y);
            Ok(())
        })?;
        let mut zc = z.clone();
        let mut yb = cpu::uninit(z.len());
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            bias_gelu_simd(&mut zc, &[], &mut yb, 512, false);
            std::hint::black_box(&yb);
        }
        let kernel_only = t0.elapsed().as_secs_f64() / 20.0 * 1e3;
        let clone_only = time(&|| {
            std::hint::black_box(z.clone());
            Ok(())
        })?;
        let theirs = time(&|| x.gelu().map(|_| ()))?;
        println!(
            "gelu (2048, 512), one thread: ours {ours:.3} ms with fresh buffers ({kernel_only:.3} ms into \
             reused ones; copying z {clone_only:.3}), candle {theirs:.3} ms"
        );
        assert!(ours < theirs);
        Ok(())
    }
}
