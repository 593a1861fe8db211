//! Fused CPU ops with forward AND backward (candle `CustomOp`s). Each op sits beside a
//! reference composed of candle ops; its tests compare outputs and gradients within a stated
//! tolerance, and `dlhist bench` / `cargo bench` time both (kernels/README.md has the numbers).
//!
//! On a GPU (`--features cuda`), the ops with a CUDA kernel (kernels/*.cu, launched from
//! `cuda.rs`) run it as the `cuda_fwd` of the same op and of its backward; every other op runs
//! its composed reference, which candle runs on any device. [`fused_on`] is that rule, asked at
//! the top of each op's entry function.

use candle_core::{Device, Tensor};

pub mod attention;
pub mod attention_cross;
pub mod attention_qkv;
mod attention_small;
pub mod batchnorm;
pub mod batchnorm_eval;
pub mod benches_nn;
pub mod bernoulli;
pub mod conv2d;
mod conv2d_direct;
pub mod cpu;
pub mod cross_entropy;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod embedding;
pub mod flops;
pub mod groupnorm;
pub mod layernorm;
pub mod linear;
pub mod lstm;
pub mod maxpool;
pub mod optim;
pub mod relu;
#[cfg(test)]
mod simd_levels;
pub mod small_gemm;
pub mod sum_squares;
#[cfg(test)]
pub(crate) mod testutil;
pub mod upsample;
pub mod vmath;

/// Whether an op's fused code runs on `dev`: always on the CPU; on a CUDA GPU when the op has a
/// CUDA kernel (`cuda_kernel`) and this build has CUDA. Where it returns false the op's entry
/// function runs the composed reference (`*_ref`) instead, which candle runs on every device,
/// gradients included. The CPU path is the fused op, unchanged.
pub fn fused_on(dev: &Device, cuda_kernel: bool) -> bool {
    match dev {
        Device::Cpu => true,
        Device::Cuda(_) => cuda_kernel && cfg!(feature = "cuda"),
        _ => false,
    }
}

thread_local! {
    /// Inside [`no_grad`] on this thread.
    static NO_GRAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the fused ops recording no backward graph (evaluation and sampling).
///
/// candle has no such mode: an op records its inputs for backward whenever one of them is a
/// variable or computed from one, and the weights are variables, so a forward pass kept every
/// intermediate tensor alive until its output was dropped. An evaluation batch of 1,000 images
/// through the 56-layer CIFAR net held gigabytes that way. Inside `no_grad` each fused op takes
/// detached inputs ([`arg`]), so its output records nothing and each intermediate is freed as
/// soon as the next op has read it. Nothing inside may call `backward` (the weights would get no
/// gradient): the engine evaluates and samples in it, and only trains outside it.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD.set(self.0);
        }
    }
    let _restore = Restore(NO_GRAD.replace(true));
    f()
}

/// `t` as a fused op's input: itself, or detached inside [`no_grad`].
pub(crate) fn arg(t: &Tensor) -> Tensor {
    if NO_GRAD.get() {
        t.detach()
    } else {
        t.clone()
    }
}

/// The work of one op bench call (forward + backward), for achieved rates: floating-point
/// operations (matmul-bound kernels) or bytes moved to and from memory (memory-bound ones);
/// 0 where not counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Work {
    pub flops: f64,
    pub bytes: f64,
}

/// The op benches for `dlhist bench --ops --device D`: on the CPU every fused op against its
/// reference; on a GPU every CUDA kernel against candle's composed ops on that GPU, with the
/// work each call does.
pub fn device_benches(dev: &Device) -> candle_core::Result<Vec<(OpBench, Work)>> {
    match dev {
        Device::Cpu => Ok(all_benches()?.into_iter().map(|b| (b, Work::default())).collect()),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::benches(dev),
        _ => candle_core::bail!("op benches run on the CPU or on a CUDA GPU, not on {dev:?}"),
    }
}

/// One op benchmark: the fused op and its composed reference on the same inputs, each closure
/// running forward + backward once.
pub struct OpBench {
    pub name: &'static str,
    /// the shapes, in words, e.g. "B=128, C=10"
    pub shape: String,
    pub fused: Box<dyn Fn() -> candle_core::Result<()>>,
    pub reference: Box<dyn Fn() -> candle_core::Result<()>>,
}

/// Every op bench, for `dlhist bench --ops`.
pub fn all_benches() -> candle_core::Result<Vec<OpBench>> {
    let mut out = vec![];
    out.extend(linear::benches()?);
    out.extend(layernorm::benches()?);
    out.extend(cross_entropy::benches()?);
    out.extend(optim::benches()?);
    out.extend(conv2d::benches()?);
    out.extend(maxpool::benches()?);
    out.extend(embedding::benches()?);
    out.extend(lstm::benches()?);
    out.extend(attention_qkv::benches()?);
    out.extend(attention_cross::benches()?);
    out.extend(batchnorm::benches()?);
    out.extend(batchnorm_eval::benches()?);
    out.extend(upsample::benches()?);
    out.extend(relu::benches()?);
    out.extend(bernoulli::benches()?);
    out.extend(groupnorm::benches()?);
    out.extend(benches_nn::skipgram()?);
    Ok(out)
}

/// Seeded inputs of a normalisation op (its tests and benches): x of shape `dims` drawn from
/// s·N(0, 1) + o with `(s, o) = x_dist` (an offset, so μ matters), γ ~ 1 + 0.3·N and β ~ 0.3·N
/// over the `dims[channel_dim]` channels, and a random upstream weight w of x's shape.
pub(crate) fn norm_inputs(
    dims: &[usize],
    channel_dim: usize,
    x_dist: (f64, f64),
    seed: u64,
) -> candle_core::Result<(Tensor, Tensor, Tensor, Tensor)> {
    let mut rng = crate::rng::Rng::new(seed);
    let c = dims.get(channel_dim).copied().unwrap_or(1);
    let n: usize = dims.iter().product();
    let dev = candle_core::Device::Cpu;
    let mut randn = |k: usize, s: f64, o: f64| -> Vec<f32> { (0..k).map(|_| (o + s * rng.normal()) as f32).collect() };
    let x = Tensor::from_vec(randn(n, x_dist.0, x_dist.1), dims, &dev)?;
    let gamma = Tensor::from_vec(randn(c, 0.3, 1.0), c, &dev)?;
    let beta = Tensor::from_vec(randn(c, 0.3, 0.0), c, &dev)?;
    let w = Tensor::from_vec(randn(n, 1.0, 0.0), dims, &dev)?;
    Ok((x, gamma, beta, w))
}

#[cfg(test)]
mod timing {
    /// Rough fused-vs-reference timings of every op bench (forward + backward), the minimum of a
    /// few interleaved runs, which is the figure least disturbed by other work on the machine.
    /// `RAYON_NUM_THREADS=2 cargo test --release --lib ops::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn rough_timings() -> candle_core::Result<()> {
        let min_ms = |f: &dyn Fn() -> candle_core::Result<()>, reps: usize| -> candle_core::Result<f64> {
            let mut best = f64::INFINITY;
            for _ in 0..reps {
                let t = std::time::Instant::now();
                f()?;
                best = best.min(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok(best)
        };
        for b in super::all_benches()? {
            (b.fused)()?;
            (b.reference)()?;
            let (mut fused, mut reference) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..5 {
                fused = fused.min(min_ms(&*b.fused, 2)?);
                reference = reference.min(min_ms(&*b.reference, 2)?);
            }
            println!(
                "{:<22} {:<44} fused {fused:>8.3} ms  reference {reference:>8.3} ms  ({:.1}x)",
                b.name,
                b.shape,
                reference / fused
            );
        }
        Ok(())
    }

    /// Inside `no_grad` the fused ops' outputs record no graph and equal the recorded ones
    /// bitwise; the mode ends with the closure, also when it panics, and nests.
    #[test]
    fn no_grad_records_no_graph_and_changes_no_value() -> candle_core::Result<()> {
        use candle_core::{Device, Tensor, Var};
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2. * 3. * 5. * 5., &dev)?.reshape((2, 3, 5, 5))?.affine(0.01, -0.3)?;
        let w =
            Var::from_tensor(&Tensor::arange(0f32, 4. * 3. * 9., &dev)?.reshape((4, 3, 3, 3))?.affine(0.02, -1.0)?)?;
        let forward =
            || -> candle_core::Result<Tensor> { super::relu::relu(&super::conv2d::conv2d(&x, &w, None, 1, 1)?) };
        let tracked = forward()?;
        assert!(tracked.track_op());
        let free = super::no_grad(|| super::no_grad(forward))?;
        assert!(!free.track_op());
        let (a, b) = (tracked.flatten_all()?.to_vec1::<f32>()?, free.flatten_all()?.to_vec1::<f32>()?);
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(forward()?.track_op(), "the mode ended with the closures");
        let _ = std::panic::catch_unwind(|| super::no_grad(|| panic!("inside")));
        assert!(forward()?.track_op(), "the mode ended with the panicking closure");
        Ok(())
    }
}
