//! Each CUDA kernel against the CPU op on the same seeded inputs: outputs and the gradient of
//! every input, at odd sizes (1, primes, sizes past one tile or block), with the tolerance stated
//! per test (relative to the largest CPU entry, as `testutil::rel_err`). Then the ops without a
//! kernel (the composed references on the GPU), the optimizer updates, and whole gpt training
//! steps, GPU against CPU.
//!
//! `cargo test --release --features cuda ops::cuda` on a machine with a GPU. Without one every
//! test prints `SKIPPED <test>: no GPU: <why>` and passes.

use crate::device::gpu_or_skip;
use crate::ops::testutil::rel_err;
use crate::ops::{attention_qkv, cross_entropy, layernorm, linear, optim};
use crate::rng::Rng;
use candle_core::{DType, Device, Result, Tensor, Var};

/// Seeded N(0, s²) + o of `dims`, on the CPU.
fn randn(seed: u64, dims: &[usize], s: f64, o: f64) -> Tensor {
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = (0..dims.iter().product()).map(|_| (o + s * rng.normal()) as f32).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("shape")
}

/// `f` on `inputs` moved to `dev` as variables, with the loss Σ f(..) ⊙ r: the output and each
/// input's gradient, back on the CPU.
fn run_on(
    dev: &Device,
    inputs: &[&Tensor],
    r: &Tensor,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<(Tensor, Vec<Tensor>)> {
    let vars = inputs.iter().map(|t| Var::from_tensor(&t.to_device(dev)?)).collect::<Result<Vec<_>>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts)?;
    let grads = (&y * r.to_device(dev)?)?.sum_all()?.backward()?;
    let g = ts
        .iter()
        .map(|t| {
            grads.get(t).map(|g| g.to_device(&Device::Cpu)).unwrap_or_else(|| t.zeros_like()?.to_device(&Device::Cpu))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((y.to_device(&Device::Cpu)?, g))
}

/// Runs `f` on the CPU and on the GPU and checks the output within `tol_y` and every gradient
/// within `tol_g` of the CPU's (relative to the CPU's largest entry).
fn agree(
    what: &str,
    dev: &Device,
    inputs: &[&Tensor],
    r: &Tensor,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    (tol_y, tol_g): (f32, f32),
) -> Result<()> {
    let (yc, gc) = run_on(&Device::Cpu, inputs, r, f)?;
    let (yg, gg) = run_on(dev, inputs, r, f)?;
    assert_eq!(yc.dims(), yg.dims(), "{what}: output shapes");
    let e = rel_err(&yg, &yc)?;
    assert!(e <= tol_y, "{what}: output off by {e} (tolerance {tol_y})");
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        let e = rel_err(a, b)?;
        assert!(e <= tol_g, "{what}: gradient of input {i} off by {e} (tolerance {tol_g})");
    }
    Ok(())
}

/// Layer norm: y within 1e-5 (μ, σ² summed in another order); dx, dγ, dβ within 1e-4 (dγ, dβ sum
/// over all rows in another order; dx subtracts two means that cancel).
#[test]
fn layer_norm_kernel_matches_the_cpu_op() -> Result<()> {
    let Some(dev) = gpu_or_skip("layer_norm_kernel_matches_the_cpu_op") else { return Ok(()) };
    for (i, dims) in
        [&[1usize, 1][..], &[3, 1], &[7, 33], &[3, 5, 128], &[2048, 128], &[257, 1000], &[65, 1025]].iter().enumerate()
    {
        let c = *dims.last().unwrap();
        let x = randn(i as u64, dims, 2.0, 0.5);
        let (g, b) = (randn(100 + i as u64, &[c], 0.3, 1.0), randn(200 + i as u64, &[c], 0.3, 0.0));
        let r = randn(300 + i as u64, dims, 1.0, 0.0);
        agree(
            &format!("layer_norm {dims:?}"),
            &dev,
            &[&x, &g, &b],
            &r,
            &|t| layernorm::layer_norm(&t[0], &t[1], &t[2], 1e-5),
            (1e-5, 1e-4),
        )?;
    }
    Ok(())
}

/// Softmax + cross-entropy, u32 and i64 targets: the loss within 1e-5, the gradient within 1e-5.
#[test]
fn cross_entropy_kernel_matches_the_cpu_op() -> Result<()> {
    let Some(dev) = gpu_or_skip("cross_entropy_kernel_matches_the_cpu_op") else { return Ok(()) };
    for (i, &(n, c)) in [(1usize, 1usize), (7, 3), (33, 65), (128, 10), (300, 1000), (5, 40_000)].iter().enumerate() {
        let x = randn(i as u64, &[n, c], 3.0, 0.0);
        let mut rng = Rng::new(50 + i as u64);
        let t: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
        for dtype in [DType::U32, DType::I64] {
            let targets = Tensor::from_vec(t.clone(), n, &Device::Cpu)?.to_dtype(dtype)?;
            let r = Tensor::new(1.7f32, &Device::Cpu)?; // the upstream gradient g
            agree(
                &format!("cross_entropy ({n}, {c}) {dtype:?}"),
                &dev,
                &[&x],
                &r,
                &|v| cross_entropy::softmax_cross_entropy(&v[0], &targets.to_device(v[0].device())?),
                (1e-5, 1e-5),
            )?;
        }
    }
    Ok(())
}

/// linear + bias + activation: cuBLAS in full f32 (no TF32), so y within 1e-5 and dx, dw, db
/// within 1e-4 (sums of N or K products in another order).
#[test]
fn linear_act_kernels_match_the_cpu_op() -> Result<()> {
    let Some(dev) = gpu_or_skip("linear_act_kernels_match_the_cpu_op") else { return Ok(()) };
    use linear::Act;
    for (i, &(n, k, m)) in
        [(1usize, 1usize, 1usize), (7, 13, 5), (33, 100, 257), (128, 784, 512), (3, 2, 9)].iter().enumerate()
    {
        let x = randn(i as u64, &[n, k], 1.0, 0.0);
        let w = randn(10 + i as u64, &[m, k], 1.0 / (k as f64).sqrt(), 0.0);
        let b = randn(20 + i as u64, &[m], 0.5, 0.0);
        let r = randn(30 + i as u64, &[n, m], 1.0, 0.0);
        for act in [Act::Identity, Act::Relu, Act::LeakyRelu(0.2), Act::Gelu, Act::GeluErf] {
            let what = format!("linear_act ({n}, {k}) -> {m} {act:?}");
            agree(
                &what,
                &dev,
                &[&x, &w, &b],
                &r,
                &|t| linear::linear_act(&t[0], &t[1], Some(&t[2]), act),
                (1e-5, 1e-4),
            )?;
            agree(&what, &dev, &[&x, &w], &r, &|t| linear::linear_act(&t[0], &t[1], None, act), (1e-5, 1e-4))?;
        }
    }
    // leading batch dimensions, read as (N, K)
    let x = randn(7, &[2, 5, 12], 1.0, 0.0);
    let (w, b, r) = (randn(8, &[6, 12], 0.3, 0.0), randn(9, &[6], 0.5, 0.0), randn(10, &[2, 5, 6], 1.0, 0.0));
    agree(
        "linear_act (2, 5, 12)",
        &dev,
        &[&x, &w, &b],
        &r,
        &|t| linear::linear_act(&t[0], &t[1], Some(&t[2]), Act::Gelu),
        (1e-5, 1e-4),
    )
}

/// Attention from the packed qkv, causal and not: y and dqkv within 1e-4 (the CPU op sums its
/// 64-wide blocks in another order; exp differs by an ulp or two).
#[test]
fn attention_kernels_match_the_cpu_op() -> Result<()> {
    let Some(dev) = gpu_or_skip("attention_kernels_match_the_cpu_op") else { return Ok(()) };
    let shapes = [
        (2usize, 37usize, 12usize, 3usize), // odd T, Dh = 4
        (1, 1, 8, 2),                       // one position
        (3, 29, 21, 3),                     // Dh = 7
        (1, 100, 64, 4),                    // T past a tile
        (1, 64, 64, 2),                     // T exactly one block
        (2, 130, 256, 2),                   // Dh = 128, the largest kernel
        (1, 70, 192, 2),                    // Dh = 96
        (32, 64, 128, 4),                   // the gpt workload's
    ];
    for (i, &(b, t, c, h)) in shapes.iter().enumerate() {
        let qkv = randn(i as u64, &[b, t, 3 * c], 1.0, 0.0);
        let r = randn(40 + i as u64, &[b, t, c], 1.0, 0.0);
        for causal in [true, false] {
            agree(
                &format!("attention B={b} T={t} C={c} H={h} causal={causal}"),
                &dev,
                &[&qkv],
                &r,
                &|v| attention_qkv::attention_qkv(&v[0], h, causal),
                (1e-4, 1e-4),
            )?;
        }
    }
    // a head above the kernel's 128 runs the composed reference on the GPU
    let qkv = randn(99, &[1, 5, 3 * 2 * 130], 1.0, 0.0);
    let r = randn(98, &[1, 5, 260], 1.0, 0.0);
    agree(
        "attention Dh=130 (reference)",
        &dev,
        &[&qkv],
        &r,
        &|v| attention_qkv::attention_qkv(&v[0], 2, true),
        (1e-4, 1e-4),
    )
}

/// The ops without a CUDA kernel run their composed reference on the GPU; they agree with the
/// CPU op within each op's own CPU tolerance (relu's slope at exactly 0 differs: no input is 0).
#[test]
fn ops_without_a_kernel_run_their_reference_on_the_gpu() -> Result<()> {
    let Some(dev) = gpu_or_skip("ops_without_a_kernel_run_their_reference_on_the_gpu") else { return Ok(()) };
    use crate::ops::{batchnorm, conv2d, embedding, maxpool, relu, upsample};
    let x = randn(1, &[2, 3, 9, 11], 1.0, 0.0);
    let w = randn(2, &[4, 3, 3, 3], 0.3, 0.0);
    let b = randn(3, &[4], 0.3, 0.0);
    let r = randn(4, &[2, 4, 9, 11], 1.0, 0.0);
    agree("conv2d", &dev, &[&x, &w, &b], &r, &|t| conv2d::conv2d(&t[0], &t[1], Some(&t[2]), 1, 1), (1e-4, 1e-4))?;
    let r = randn(5, &[2, 3, 4, 5], 1.0, 0.0);
    agree("max_pool2d", &dev, &[&x], &r, &|t| maxpool::max_pool2d(&t[0], 2, 2), (0.0, 1e-5))?;
    let r = randn(6, &[2, 3, 18, 22], 1.0, 0.0);
    agree("upsample", &dev, &[&x], &r, &|t| upsample::upsample_nearest(&t[0], 2), (0.0, 1e-5))?;
    let r = randn(7, &[2, 3, 9, 11], 1.0, 0.0);
    agree("relu", &dev, &[&x], &r, &|t| relu::relu(&t[0]), (0.0, 0.0))?;
    let (g, be) = (randn(8, &[3], 0.3, 1.0), randn(9, &[3], 0.3, 0.0));
    agree(
        "batch_norm",
        &dev,
        &[&x, &g, &be],
        &r,
        &|t| Ok(batchnorm::batch_norm_train(&t[0], &t[1], &t[2], 1e-5)?.0),
        (1e-4, 1e-4),
    )?;
    let table = randn(10, &[11, 6], 1.0, 0.0);
    let ids = Tensor::new(&[[3u32, 0, 10], [3, 3, 7]], &Device::Cpu)?;
    let r = randn(11, &[2, 3, 6], 1.0, 0.0);
    agree(
        "embedding",
        &dev,
        &[&table],
        &r,
        &|t| embedding::embedding(&ids.to_device(t[0].device())?, &t[0]),
        (0.0, 1e-5),
    )?;
    let (bb, tt, d, hh) = (3, 5, 4, 6);
    let xs = randn(12, &[bb, tt, d], 1.0, 0.0);
    let (wih, whh) = (randn(13, &[4 * hh, d], 0.4, 0.0), randn(14, &[4 * hh, hh], 0.4, 0.0));
    let (bias, h0, c0) =
        (randn(15, &[4 * hh], 0.1, 0.0), randn(16, &[bb, hh], 0.5, 0.0), randn(17, &[bb, hh], 0.5, 0.0));
    let r = randn(18, &[bb, tt, hh], 1.0, 0.0);
    agree(
        "lstm_seq",
        &dev,
        &[&xs, &wih, &whh, &bias, &h0, &c0],
        &r,
        &|t| Ok(crate::ops::lstm::lstm_seq(&t[0], &t[1], &t[2], &t[3], &t[4], &t[5], true)?.0),
        (2e-5, 1e-4),
    )
}

/// ulps between two f32s of one sign, for the optimizer updates.
fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        0
    } else {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }
}

/// The updates (AdamW, Adam, SGD, momentum, Nesterov, the EMA) over 5 steps on the GPU against
/// the CPU ops: the kernels round every operation as the CPU does (no FMA), so the weights are
/// expected bitwise equal; the tolerance is 1 ulp (a sqrt or division rounding differently).
#[test]
fn optimizer_kernels_match_the_cpu_ops_bitwise() -> Result<()> {
    let Some(dev) = gpu_or_skip("optimizer_kernels_match_the_cpu_ops_bitwise") else { return Ok(()) };
    use crate::engine::optim::OptimKind;
    let shapes: [&[usize]; 3] = [&[37, 13], &[5], &[1 << 17]];
    for kind in [OptimKind::Adamw, OptimKind::Adam, OptimKind::Sgd, OptimKind::Momentum, OptimKind::Nesterov] {
        for (i, s) in shapes.iter().enumerate() {
            let w0 = randn(i as u64, s, 0.5, 0.0);
            let mut finals = vec![];
            for d in [Device::Cpu, dev.clone()] {
                let w = Var::from_tensor(&w0.to_device(&d)?)?;
                let (mut m, mut v) = (optim::StateBuf::new(&d), optim::StateBuf::new(&d));
                let mut e = optim::StateBuf::new(&d);
                let hp = optim::AdamHp {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.1,
                    decoupled: kind == OptimKind::Adamw,
                };
                for step in 1..=5u64 {
                    let g = randn(1000 * step + i as u64, s, 0.1, 0.0).to_device(&d)?;
                    // the third step's gradient clipped: scaled inside the CPU op's pass, by
                    // candle's op before the GPU kernel
                    let gs = (step == 3).then_some(0.37);
                    let nesterov = kind == OptimKind::Nesterov;
                    match kind {
                        OptimKind::Adam | OptimKind::Adamw => {
                            optim::adamw_step(&w, &g, gs, &mut m, &mut v, &hp, step, 0.01)?
                        }
                        OptimKind::Sgd => optim::sgd_step(&w, &g, gs, None, 0.0, false, 0.1, 0.05)?,
                        _ => optim::sgd_step(&w, &g, gs, Some(&mut m), 0.9, nesterov, 0.1, 0.05)?,
                    }
                    optim::ema_step(w.as_tensor(), &mut e, 0.9)?;
                }
                let ema = e.to_tensor(w.shape(), &d)?.expect("an average");
                finals.push((w.as_tensor().flatten_all()?.to_vec1::<f32>()?, ema.flatten_all()?.to_vec1::<f32>()?));
            }
            let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&x, &y)| ulps(x, y)).max().unwrap_or(0);
            let (dw, de) = (worst(&finals[0].0, &finals[1].0), worst(&finals[0].1, &finals[1].1));
            assert!(dw <= 1 && de <= 1, "{kind:?} {s:?}: weights {dw} ulps apart, EMA {de}");
        }
    }
    Ok(())
}

/// Optimizer state saved from the GPU loads on the CPU and the reverse (checkpoints are f32
/// tensors on any device).
#[test]
fn optimizer_state_moves_between_devices() -> Result<()> {
    let Some(dev) = gpu_or_skip("optimizer_state_moves_between_devices") else { return Ok(()) };
    let t = randn(1, &[3, 4], 1.0, 0.0);
    let on_gpu = optim::StateBuf::from_tensor(Some(&t), &dev)?;
    let back = on_gpu.to_tensor(t.shape(), &dev)?.expect("state").to_device(&Device::Cpu)?;
    assert_eq!(back.to_vec2::<f32>()?, t.to_vec2::<f32>()?);
    let on_cpu = optim::StateBuf::from_tensor(Some(&back.to_device(&dev)?), &Device::Cpu)?;
    assert_eq!(on_cpu.to_tensor(t.shape(), &Device::Cpu)?.expect("state").to_vec2::<f32>()?, t.to_vec2::<f32>()?);
    Ok(())
}

/// The gpt workload (4 layers, 4 heads, embd 128, batch 32 × 64 tokens, AdamW) trained for 5
/// steps from the same weights and batches on the GPU and on the CPU: every step's loss within
/// 1e-3 relative (kernel and cuBLAS sums in other orders drift a little each step).
#[test]
fn gpt_training_steps_agree_on_gpu_and_cpu() -> anyhow::Result<()> {
    let Some(dev) = gpu_or_skip("gpt_training_steps_agree_on_gpu_and_cpu") else { return Ok(()) };
    use crate::engine::step::{train_step, Groups, Step};
    use crate::milestones::workloads;
    let w = workloads::get("gpt").expect("the gpt workload");
    let tc = workloads::train_config();
    let mut losses = vec![];
    for d in [Device::Cpu, dev] {
        let mut built = (w.build)(&d)?;
        let mut groups = Groups::new(built.exp.as_ref(), &tc, usize::MAX)?;
        let mut l = vec![];
        for step in 0..5 {
            match train_step(built.exp.as_mut(), &mut groups, None, &tc, step)? {
                Step::Updated(out) => l.push(out.loss()),
                Step::NotFinite { what } => anyhow::bail!("{what} became non-finite on {d:?} at step {step}"),
            }
        }
        losses.push(l);
    }
    for (step, (c, g)) in losses[0].iter().zip(&losses[1]).enumerate() {
        let rel = (c - g).abs() / c.abs().max(1e-6);
        assert!(rel <= 1e-3, "step {step}: CPU loss {c}, GPU loss {g} ({rel:.2e} apart)");
    }
    println!("gpt losses, CPU {:?}\n           GPU {:?}", losses[0], losses[1]);
    Ok(())
}
