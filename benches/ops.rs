//! Criterion benches of every fused op against its composed-candle reference, forward +
//! backward, on the shapes of the `dlhist bench` workloads. `cargo bench --bench ops`.
//! The ops register themselves in `dlhist::ops::all_benches()`.

use criterion::{criterion_group, criterion_main, Criterion};

fn ops(c: &mut Criterion) {
    let benches = dlhist::ops::all_benches().expect("op benches build");
    for b in &benches {
        let mut g = c.benchmark_group(format!("{} ({})", b.name, b.shape));
        g.sample_size(20);
        g.bench_function("fused", |it| it.iter(|| (b.fused)().unwrap()));
        g.bench_function("reference", |it| it.iter(|| (b.reference)().unwrap()));
        g.finish();
    }
}

criterion_group!(benches, ops);
criterion_main!(benches);
