//! Thin entry point: parse, set up threads and Ctrl-C, run, print the error, exit.

use clap::Parser;
use dlhist::cli::{self, Cli};
use dlhist::engine::runner::{CONTINUE_HINT, FINAL_EVALUATION, INTERRUPTED, TRAINING};
use std::sync::atomic::{AtomicUsize, Ordering};

fn physical_cores() -> usize {
    // distinct (physical id, core id) pairs; falls back to the logical count
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut cores = std::collections::BTreeSet::new();
    let (mut phys, mut core) = (None, None);
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "physical id" => phys = Some(v.trim().to_string()),
                "core id" => core = Some(v.trim().to_string()),
                _ => {}
            }
        }
        if line.trim().is_empty() {
            if let (Some(p), Some(c)) = (phys.take(), core.take()) {
                cores.insert((p, c));
            }
        }
    }
    if cores.is_empty() {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        cores.len()
    }
}

fn main() {
    // Die quietly on a closed pipe (`dlhist list | head -1`), like other Unix tools, instead of
    // panicking inside println!.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            if code != 0 && std::env::args().any(|a| a == "--json") {
                println!("{}", serde_json::json!({"error": e.kind().to_string(), "exit_code": code}));
            }
            e.exit();
        }
    };
    dlhist::alloc::keep_freed_memory();
    // DLHIST_LOG=debug prints each phase's span as it closes, with its time; --trace FILE
    // records every span for a timeline view. With neither, the spans are disabled at their
    // call sites and cost nothing.
    use tracing_subscriber::prelude::*;
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_filter(tracing_subscriber::EnvFilter::from_env("DLHIST_LOG"));
    let (chrome, trace_guard) = match &cli.trace {
        Some(path) => {
            cli::trace::start();
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new().file(path).include_args(true).build();
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(log).with(chrome).init();
    // Set once, before any math: candle otherwise re-reads /proc/cpuinfo on every op.
    let threads = cli
        .threads
        .or_else(|| std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()))
        .unwrap_or_else(physical_cores);
    std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string());
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > logical {
        // idle workers spin before they sleep (RAYON_SPIN_MS), so extra threads steal the cores
        eprintln!(
            "note: {threads} threads on {logical} logical cores: the extra ones only take turns with the others and slow every step down; use --threads {} or fewer",
            physical_cores().min(logical)
        );
    }
    // candle 0.11.1 runs its elementwise ops (the gradient sums of backward among them) on a
    // second pool, the "barrier pool", whose workers spin ~25k rounds after every op and whose
    // caller spins until they finish. Beside rayon's pool (matmuls and our fused ops) that puts
    // up to four busy threads on two cores: perf showed 30% of a gpt step spinning, and under
    // load steps ran 2-3x slower. With one candle thread the pool has no workers, and our
    // candle-core patch (vendor/candle-core/src/utils.rs) hands those ops' chunks to rayon's pool
    // instead (measured without workers: mlp 16.9 -> 5.1 ms, gpt 593 -> 258 ms, lenet 26.9 -> 8.1
    // ms, a loaded machine). CANDLE_NUM_THREADS, if set, still wins.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }

    // nohup's SIGHUP is ignored on the way in; ctrlc would catch it like the others
    #[cfg(unix)]
    let hup_ignored = {
        // SAFETY: a query (no new action), into a zeroed struct
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        (unsafe { libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) }) == 0 && old.sa_sigaction == libc::SIG_IGN
    };
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    let handled = ctrlc::set_handler(|| {
        if cli::common::PAGING.load(Ordering::SeqCst) {
            return;
        }
        if PRESSES.fetch_add(1, Ordering::SeqCst) > 0 {
            eprintln!("\ninterrupted again: exiting without a checkpoint");
            std::process::exit(dlhist::error::interrupted_exit_code());
        }
        if TRAINING.load(Ordering::SeqCst) == 0 {
            // how the command goes on (a comparison's own command finishes a variant's
            // evaluation and trains the rest), else how the run's evaluation does
            let go_on = CONTINUE_HINT.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let final_evaluation = FINAL_EVALUATION.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // a run's final evaluation (its checkpoint is written), evaluating, sampling, between
            // the runs of a comparison: nothing is lost by quitting
            match go_on.or(final_evaluation) {
                Some(hint) => eprintln!("\ninterrupted: {hint}"),
                None => eprintln!("\ninterrupted"),
            }
            std::process::exit(dlhist::error::interrupted_exit_code());
        }
        eprintln!("\ninterrupt: finishing this step and writing a checkpoint (press Ctrl-C again to quit at once)");
        INTERRUPTED.store(true, Ordering::SeqCst);
    })
    .is_ok();
    // ctrlc handles SIGTERM and SIGHUP as it does Ctrl-C but cannot tell which signal came.
    // These handlers, installed over its own for the two, note the signal and raise SIGINT for
    // ctrlc's: the same graceful stop, with the exit code 128 + the signal (143 for SIGTERM, as
    // process managers expect). Both calls are async-signal-safe.
    #[cfg(not(unix))]
    let _ = handled;
    // Only where ctrlc's own handler is in place: else SIGINT would kill at once.
    #[cfg(unix)]
    if handled {
        extern "C" fn note_and_forward(sig: libc::c_int) {
            dlhist::error::STOP_SIGNAL.store(sig, Ordering::SeqCst);
            // SAFETY: kill and getpid are async-signal-safe
            unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
        }
        for sig in [libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: an action with SA_RESTART whose handler only stores an atomic and sends a
            // signal; SIG_IGN for a SIGHUP that was ignored on the way in
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = if sig == libc::SIGHUP && hup_ignored {
                    libc::SIG_IGN
                } else {
                    note_and_forward as extern "C" fn(libc::c_int) as libc::sighandler_t
                };
                act.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
    }

    let json = cli.json;
    let trace = cli.trace.clone();
    // The command runs on a worker of the math pool, so its parallel loops start there instead of
    // being handed from the main thread to the pool and waited for (a wake-up per op: hundreds per
    // step of a small model). The workers get the main thread's stack room (candle's backward
    // walks the graph recursively).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).stack_size(64 << 20).build();
    let result = match pool {
        Ok(pool) => pool.install(|| cli::run(cli)),
        Err(_) => cli::run(cli),
    };
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            let code = dlhist::error::exit_code(&err);
            // a stopped `replay --jobs` child: its claim's INTERRUPTED line said it, and the
            // parent says how many claims its finished studies decided
            let counted_by_parent = std::env::var_os(cli::replay::STOP_PIPE_ENV).is_some()
                && matches!(err.downcast_ref(), Some(dlhist::error::DlError::ReplayInterrupted { .. }));
            if !counted_by_parent {
                eprintln!("error: {err:#}");
            }
            if json && !dlhist::error::already_reported(&err) {
                println!("{}", serde_json::json!({"error": format!("{err:#}"), "exit_code": code}));
            }
            code
        }
    };
    // the trace file is complete only once its guard is dropped
    drop(trace_guard);
    // a `replay --jobs` child's trace is a part its parent merges, and the parent names the file
    if let (Some(p), None) = (trace, std::env::var_os(cli::trace::PART_ENV)) {
        match cli::trace::merge_parts(&p) {
            Ok(0) => {}
            Ok(n) => eprintln!("trace: merged the traces of {n} child processes (one per study)"),
            Err(e) => eprintln!("trace: {e:#}"),
        }
        eprintln!("trace: {} (open it at https://ui.perfetto.dev or chrome://tracing)", p.display());
    }
    std::process::exit(code);
}
