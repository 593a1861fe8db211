//! `dlhist bench --ops --device cuda:N`: each CUDA kernel, forward + backward, against candle's
//! composed ops on the same GPU, with the work of a call for the achieved TFLOP/s or GB/s.
//! Every closure ends with a device synchronize, so a call's time is the kernels' time plus the
//! launch latency (which dominates the small shapes; the larger shape of each op is the one to
//! read for throughput).

use crate::ops::{attention_qkv, cross_entropy, layernorm, linear, optim, OpBench, Work};
use candle_core::{Device, Result, Tensor, Var};
use std::cell::RefCell;

/// Seeded N(0, s²) values of `shape` on `dev`.
fn randn(seed: u64, shape: &[usize], s: f64, dev: &Device) -> Result<Tensor> {
    let mut rng = crate::rng::Rng::new(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| (s * rng.normal()) as f32).collect::<Vec<_>>(), shape, dev)
}

/// fused and reference as the loss Σ f(..) ⊙ r, backward, synchronize.
fn pair(
    name: &'static str,
    shape: String,
    dev: &Device,
    fused: impl Fn() -> Result<Tensor> + 'static,
    reference: impl Fn() -> Result<Tensor> + 'static,
    work: Work,
) -> (OpBench, Work) {
    let (d1, d2) = (dev.clone(), dev.clone());
    let b = OpBench {
        name,
        shape,
        fused: Box::new(move || {
            fused()?.backward()?;
            d1.synchronize()
        }),
        reference: Box::new(move || {
            reference()?.backward()?;
            d2.synchronize()
        }),
    };
    (b, work)
}

pub fn benches(dev: &Device) -> Result<Vec<(OpBench, Work)>> {
    let mut out = vec![];
    // linear + bias + GELU: the gpt MLP's first layer and a GPU-sized one
    for (i, &(n, k, m)) in [(2048usize, 128usize, 512usize), (8192, 1024, 4096)].iter().enumerate() {
        let x = Var::from_tensor(&randn(40 + i as u64, &[n, k], 1.0, dev)?)?;
        let w = Var::from_tensor(&randn(50 + i as u64, &[m, k], 1.0 / (k as f64).sqrt(), dev)?)?;
        let b = Var::from_tensor(&randn(60 + i as u64, &[m], 0.5, dev)?)?;
        let r = randn(70 + i as u64, &[n, m], 1.0, dev)?;
        let (x2, w2, b2, r2) = (x.clone(), w.clone(), b.clone(), r.clone());
        let flops = 3.0 * 2.0 * (n * k * m) as f64;
        out.push(pair(
            "linear_act (cuda)",
            format!("N={n}, K={k}, M={m}, Gelu"),
            dev,
            move || (linear::linear_act(&x, &w, Some(&b), linear::Act::Gelu)? * &r)?.sum_all(),
            move || (linear::linear_act_ref(&x2, &w2, Some(&b2), linear::Act::Gelu)? * &r2)?.sum_all(),
            Work { flops, bytes: 0.0 },
        ));
    }
    // layer norm
    for (i, &(rows, c)) in [(2048usize, 128usize), (16384, 1024)].iter().enumerate() {
        let x = Var::from_tensor(&(randn(80 + i as u64, &[rows, c], 2.0, dev)? + 0.5)?)?;
        let g = Var::from_tensor(&(randn(81 + i as u64, &[c], 0.3, dev)? + 1.0)?)?;
        let be = Var::from_tensor(&randn(82 + i as u64, &[c], 0.3, dev)?)?;
        let r = randn(83 + i as u64, &[rows, c], 1.0, dev)?;
        let (x2, g2, b2, r2) = (x.clone(), g.clone(), be.clone(), r.clone());
        out.push(pair(
            "layer_norm (cuda)",
            format!("R={rows}, C={c}"),
            dev,
            move || (layernorm::layer_norm(&x, &g, &be, 1e-5)? * &r)?.sum_all(),
            move || (layernorm::layer_norm_ref(&x2, &g2, &b2, 1e-5)? * &r2)?.sum_all(),
            // x, y forward; x, dy, dx in dx; x, dy in dγ, dβ
            Work { flops: 0.0, bytes: 7.0 * (rows * c * 4) as f64 },
        ));
    }
    // softmax + cross-entropy
    for (i, &(n, c)) in [(2048usize, 65usize), (4096, 32768)].iter().enumerate() {
        let x = Var::from_tensor(&randn(90 + i as u64, &[n, c], 2.0, dev)?)?;
        let mut rng = crate::rng::Rng::new(91 + i as u64);
        let t: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
        let t = Tensor::from_vec(t, n, dev)?;
        let (x2, t2) = (x.clone(), t.clone());
        out.push(pair(
            "softmax_cross_entropy (cuda)",
            format!("N={n}, C={c}"),
            dev,
            move || cross_entropy::softmax_cross_entropy(&x, &t),
            move || cross_entropy::softmax_cross_entropy_ref(&x2, &t2),
            // x forward; x, dx backward
            Work { flops: 0.0, bytes: 3.0 * (n * c * 4) as f64 },
        ));
    }
    // attention from the packed projection, causal: the gpt shape and a GPT-2-small-like one
    for (i, &(b, t, c, h)) in [(32usize, 64usize, 128usize, 4usize), (8, 1024, 768, 12)].iter().enumerate() {
        let qkv = Var::from_tensor(&randn(100 + i as u64, &[b, t, 3 * c], 1.0, dev)?)?;
        let r = randn(101 + i as u64, &[b, t, c], 1.0, dev)?;
        let (q2, r2) = (qkv.clone(), r.clone());
        // forward 4·B·H·T²·Dh (S = QKᵀ, O = PV), backward 2.5x that; causal halves it
        let flops = 3.5 * 4.0 * (b * h * t * t * (c / h)) as f64 / 2.0;
        out.push(pair(
            "attention_qkv (cuda, causal)",
            format!("B={b}, T={t}, C={c}, H={h}"),
            dev,
            move || (attention_qkv::attention_qkv(&qkv, h, true)? * &r)?.sum_all(),
            move || (attention_qkv::attention_qkv_ref(&q2, h, true)? * &r2)?.sum_all(),
            Work { flops, bytes: 0.0 },
        ));
    }
    // AdamW over 16M parameters
    let n = 1 << 24;
    let w = Var::from_tensor(&randn(110, &[4096, n / 4096], 0.05, dev)?)?;
    let w2 = Var::from_tensor(&w.as_tensor().copy()?)?;
    let g = randn(111, &[4096, n / 4096], 0.01, dev)?;
    let g2 = g.clone();
    let hp = optim::AdamHp { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true };
    let fused_state = RefCell::new((1u64, optim::StateBuf::new(dev), optim::StateBuf::new(dev)));
    let ref_state = RefCell::new((1u64, None, None));
    let (d1, d2) = (dev.clone(), dev.clone());
    out.push((
        OpBench {
            name: "adamw_update (cuda)",
            shape: format!("{n} parameters"),
            fused: Box::new(move || {
                let mut st = fused_state.borrow_mut();
                let (t, m, v) = &mut *st;
                optim::adamw_step(&w, &g, None, m, v, &hp, *t, 1e-3)?;
                *t += 1;
                d1.synchronize()
            }),
            reference: Box::new(move || {
                let mut st = ref_state.borrow_mut();
                let (t, m, v) = &mut *st;
                optim::adamw_update_ref(&w2, &g2, m, v, &hp, *t, 1e-3)?;
                *t += 1;
                d2.synchronize()
            }),
        },
        // w, g, m, v read; w, m, v written
        Work { flops: 0.0, bytes: 7.0 * (n * 4) as f64 },
    ));
    Ok(out)
}
