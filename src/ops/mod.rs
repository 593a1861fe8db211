//! Fused CPU ops with forward AND backward (candle `CustomOp`s). Each op sits beside a
//! reference composed of candle ops; its tests compare outputs and gradients within a stated
//! tolerance, and `dlhist bench` / `cargo bench` time both (kernels/README.md has the numbers).

pub mod conv2d;
pub mod embedding;
pub mod maxpool;

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
    let mut all = Vec::new();
    all.extend(conv2d::benches()?);
    all.extend(maxpool::benches()?);
    all.extend(embedding::benches()?);
    Ok(all)
}
