//! `dlhist bench`: training-step speed of the issue-3 workloads (the milestones' own models on
//! synthetic data, through the runner's own training step), and with `--ops` each fused op
//! against its composed reference.

use super::common::print_json;
use crate::engine::bench::{time_op, time_training, OpTiming};
use crate::engine::threads;
use crate::error::{closest, DlError};
use crate::milestones::workloads::{self, Workload, WORKLOADS};
use crate::report::table::Table;
use candle_core::Device;
use serde::Serialize;

/// Time training steps of the speed workloads (mlp, lenet, lstm, gpt, unet, gan), and with --ops the fused ops
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Time training steps of the speed workloads: the mlp, lenet, lstm and gpt milestones' models at their default sizes, the diffusion U-Net and the GAN (a discriminator update, then a generator update, as `dlhist train gan` steps), each on a fixed batch of seeded synthetic data, trained with AdamW (lr 1e-3, weight decay 0.01) through the same training step as `dlhist train` (loss, backward, NaN check, clipping, update).\n\nEach workload runs a warm-up, then --trials trials of --steps steps; it reports the median ms/step, steps/s, the range over trials, the thread count (--threads) and the achieved GFLOP/s, from a FLOP count of 3x the forward pass's matmul and conv FLOPs.\n\nWith --json: an array with one object per workload (workload, ms_per_step, steps_per_s, threads, gflops, gflop_per_step, trials, steps_per_trial, min_ms, max_ms, shapes); with --ops, an object {\"device\": ..., \"workloads\": [...], \"ops\": [...]} whose op rows are {op, shape, fused_ms, reference_ms, speedup, fused_peak_bytes, reference_peak_bytes}, and on a GPU fused_tflops or fused_gbps.\n\nWith --device cuda:0 (a build with --features cuda) the workloads train on the GPU and --ops times each CUDA kernel (forward + backward) against candle's composed ops on the same GPU, with the achieved TFLOP/s or GB/s; the device is printed with the results.",
    after_help = "Examples:\n  dlhist bench\n  dlhist bench gpt lstm --trials 7\n  dlhist --threads 1 bench mlp --steps 50\n  dlhist bench --json | jq '.[] | {workload, ms_per_step, gflops}'\n  dlhist bench lenet --ops\n  dlhist bench gpt --ops --device cuda:0"
)]
pub struct Args {
    /// workloads to time: mlp, lenet, lstm, gpt, unet, gan (default: all)
    #[arg(value_name = "WORKLOAD")]
    pub workloads: Vec<String>,
    /// timed trials per workload (and per op); the median is reported
    #[arg(long, default_value_t = 5, value_parser = super::sample::positive, allow_hyphen_values = true)]
    pub trials: usize,
    /// training steps (op calls) per trial [default: as many as take about 1 s (0.2 s per op)]
    #[arg(long, value_parser = super::sample::positive, allow_hyphen_values = true)]
    pub steps: Option<usize>,
    /// also time every fused op against its composed reference: time and peak extra memory (on
    /// a GPU: each CUDA kernel against candle's composed ops, with achieved TFLOP/s or GB/s)
    #[arg(long)]
    pub ops: bool,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Serialize)]
struct WorkloadRow {
    workload: &'static str,
    device: String,
    shapes: &'static str,
    ms_per_step: f64,
    steps_per_s: f64,
    threads: usize,
    /// achieved: gflop_per_step / (ms_per_step / 1000)
    gflops: f64,
    gflop_per_step: f64,
    trials: usize,
    steps_per_trial: usize,
    min_ms: f64,
    max_ms: f64,
}

#[derive(Serialize)]
struct OpRow {
    op: &'static str,
    shape: String,
    fused_ms: f64,
    reference_ms: f64,
    /// reference_ms / fused_ms
    speedup: f64,
    fused_peak_bytes: usize,
    reference_peak_bytes: usize,
    /// on a GPU: the fused call's achieved TFLOP/s (matmul-bound kernels) or GB/s (memory-bound)
    #[serde(skip_serializing_if = "Option::is_none")]
    fused_tflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fused_gbps: Option<f64>,
}

/// The named workloads in the order given, duplicates dropped; all when none is named.
fn select(names: &[String]) -> Result<Vec<&'static Workload>, DlError> {
    if names.is_empty() {
        return Ok(WORKLOADS.iter().collect());
    }
    let mut out: Vec<&'static Workload> = vec![];
    for n in names {
        let w = workloads::get(n).ok_or_else(|| DlError::UnknownName {
            what: "workload",
            name: n.clone(),
            suggestion: closest(n, WORKLOADS.iter().map(|w| w.name)),
            hint: format!("The workloads are: {}", WORKLOADS.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")),
        })?;
        if !out.iter().any(|o| o.name == w.name) {
            out.push(w);
        }
    }
    Ok(out)
}

fn bench_workload(w: &Workload, trials: usize, steps: Option<usize>, dev: &Device) -> anyhow::Result<WorkloadRow> {
    let mut built = (w.build)(dev)?;
    let t = time_training(built.exp.as_mut(), &workloads::train_config(), trials, steps)?;
    let ms = t.median();
    Ok(WorkloadRow {
        workload: w.name,
        device: crate::device::describe(dev),
        shapes: w.shapes,
        ms_per_step: ms,
        steps_per_s: 1e3 / ms,
        threads: threads(),
        gflops: built.flops_per_step / 1e9 / (ms / 1e3),
        gflop_per_step: built.flops_per_step / 1e9,
        trials,
        steps_per_trial: t.calls,
        min_ms: t.min(),
        max_ms: t.max(),
    })
}

fn op_row(name: &'static str, shape: String, t: &OpTiming, work: crate::ops::Work) -> OpRow {
    let (f, r) = (t.fused.median(), t.reference.median());
    let per_s = |x: f64| (x > 0.0).then(|| x / (f / 1e3));
    OpRow {
        op: name,
        shape,
        fused_ms: f,
        reference_ms: r,
        speedup: r / f,
        fused_peak_bytes: t.fused_peak_bytes,
        reference_peak_bytes: t.reference_peak_bytes,
        fused_tflops: per_s(work.flops / 1e12),
        fused_gbps: per_s(work.bytes / 1e9),
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / (1 << 20) as f64)
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let chosen = select(&a.workloads)?;
    let trials = a.trials;
    let steps = a.steps;
    let dev = super::common::device(&a.device)?;
    let on = crate::device::describe(&dev);
    let mut rows = vec![];
    for w in &chosen {
        eprintln!("bench: {} on {on} ({} threads) ...", w.name, threads());
        rows.push(bench_workload(w, trials, steps, &dev)?);
    }
    let mut ops = vec![];
    if a.ops {
        for (b, work) in crate::ops::device_benches(&dev)? {
            eprintln!("bench: op {} ({}) on {on} ...", b.name, b.shape);
            let t = time_op(&b, trials, steps)?;
            ops.push(op_row(b.name, b.shape.clone(), &t, work));
        }
    }
    if json {
        if a.ops {
            print_json(&serde_json::json!({ "device": on, "workloads": rows, "ops": ops }));
        } else {
            print_json(&rows);
        }
        return Ok(());
    }
    let mut t =
        Table::new(&["workload", "ms/step", "steps/s", "min-max ms", "GFLOP/step", "GFLOP/s", "trials x steps"]);
    for r in &rows {
        t.row(vec![
            r.workload.into(),
            format!("{:.2}", r.ms_per_step),
            format!("{:.1}", r.steps_per_s),
            format!("{:.2}-{:.2}", r.min_ms, r.max_ms),
            format!("{:.3}", r.gflop_per_step),
            format!("{:.1}", r.gflops),
            format!("{} x {}", r.trials, r.steps_per_trial),
        ]);
    }
    print!("{}", t.render());
    println!(
        "\nDevice: {on}. Median of {trials} trials after a warm-up; {} threads; AdamW lr 1e-3, weight decay 0.01; synthetic data.",
        threads()
    );
    println!("GFLOP/step counts 3x the forward pass's matmul and conv FLOPs (forward + backward).");
    for r in &rows {
        println!("  {:<6} {}", r.workload, r.shapes);
    }
    if a.ops {
        if ops.is_empty() {
            println!("\nNo op benches are registered yet (src/ops/mod.rs, all_benches).");
        } else {
            let gpu = !dev.is_cpu();
            let mut head = vec!["op", "shape", "fused ms", "reference ms", "speedup"];
            head.extend(if gpu { ["fused TFLOP/s", "fused GB/s"] } else { ["fused peak MiB", "ref peak MiB"] });
            let mut t = Table::new(&head);
            let opt = |v: Option<f64>, p: usize| v.map(|v| format!("{v:.p$}")).unwrap_or_else(|| "-".into());
            for o in &ops {
                let mut row = vec![
                    o.op.into(),
                    o.shape.clone(),
                    format!("{:.3}", o.fused_ms),
                    format!("{:.3}", o.reference_ms),
                    format!("{:.2}x", o.speedup),
                ];
                if gpu {
                    row.extend([opt(o.fused_tflops, 2), opt(o.fused_gbps, 0)]);
                } else {
                    row.extend([mib(o.fused_peak_bytes), mib(o.reference_peak_bytes)]);
                }
                t.row(row);
            }
            println!(
                "\nOps on {on}, forward + backward per call (median of {trials} trials); {}:",
                if gpu {
                    "reference: candle's composed ops on the same device"
                } else {
                    "peak: extra heap during one call"
                }
            );
            print!("{}", t.render());
        }
    }
    Ok(())
}
