//! Fused CPU ops with forward AND backward (candle `CustomOp`s). Each op sits beside a
//! reference composed of candle ops; its tests compare outputs and gradients within a stated
//! tolerance, and `dlhist bench` / `cargo bench` time both (kernels/README.md has the numbers).

pub mod attention;
pub mod lstm;
pub mod vmath;

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
    all.extend(lstm::benches()?);
    all.extend(attention::benches()?);
    Ok(all)
}

/// CPU seconds this process has used so far (user + system, all threads).
#[cfg(test)]
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Prints the wall and CPU milliseconds per call of a bench's fused and reference closures
/// (one warm-up call, then `n`): the rough timing the ignored `timing` tests report.
#[cfg(test)]
fn time_bench(b: &OpBench, n: usize) -> candle_core::Result<()> {
    for (what, f) in [("fused", &b.fused), ("reference", &b.reference)] {
        f()?;
        let (t0, c0) = (std::time::Instant::now(), cpu_seconds());
        for _ in 0..n {
            f()?;
        }
        let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        println!(
            "{} ({}) {what}: {:.2} ms wall, {:.2} ms CPU, {} threads",
            b.name,
            b.shape,
            wall * 1e3 / n as f64,
            cpu * 1e3 / n as f64,
            rayon::current_num_threads()
        );
    }
    Ok(())
}
