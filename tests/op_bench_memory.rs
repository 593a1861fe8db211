//! `dlhist bench --ops` timing and peak memory on a toy op bench. Alone in its own test binary
//! (one process, one test): the allocator's live/peak counter is global, so a test running
//! beside it would move the peak.

use candle_core::{DType, Device, Tensor};
use dlhist::engine::bench::time_op;
use dlhist::ops::OpBench;

#[test]
fn an_op_bench_is_timed_and_its_peak_extra_memory_measured() {
    // the reference side allocates a 4 MiB tensor per call, the fused side nothing
    let b = OpBench {
        name: "toy",
        shape: "1M".into(),
        fused: Box::new(|| Ok(())),
        reference: Box::new(|| {
            let t = Tensor::zeros(1 << 20, DType::F32, &Device::Cpu)?;
            std::hint::black_box(&t);
            Ok(())
        }),
    };
    let t = time_op(&b, 3, Some(2)).unwrap();
    assert_eq!((t.fused.trial_ms.len(), t.fused.calls, t.reference.trial_ms.len()), (3, 2, 3));
    assert!(t.fused.median() >= 0.0 && t.reference.median() > 0.0);
    assert!((4 << 20..5 << 20).contains(&t.reference_peak_bytes), "{}", t.reference_peak_bytes);
    assert!(t.fused_peak_bytes < 4096, "{}", t.fused_peak_bytes);
}
