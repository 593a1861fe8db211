//! The vendored rayon-core's one change (vendor/rayon-core/src/sleep/mod.rs): an idle worker
//! keeps yielding for `RAYON_SPIN_MS` before it goes to sleep. This pins both halves of it: the
//! workers do spin for that long after work ends (the speed it buys), and then they sleep (an
//! idle dlhist must not burn its cores). One test in its own binary, because the spin time is
//! read once per process.

use rayon::prelude::*;
use std::time::{Duration, Instant};

/// CPU time of this process over all its threads (/proc/self/stat: utime + stime, in the
/// kernel's 100 Hz user ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')').expect("a ')' after the command name") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The CPU time this process spends while its main thread sleeps for `d`.
fn cpu_while_sleeping(d: Duration) -> Duration {
    let before = cpu_time();
    std::thread::sleep(d);
    cpu_time().saturating_sub(before)
}

#[test]
#[cfg(target_os = "linux")]
fn idle_workers_spin_for_the_set_time_then_sleep() {
    // before rayon's first use, which reads it; 400 ms, so that the spin spans a measurable
    // number of the kernel's 10 ms ticks
    std::env::set_var("RAYON_SPIN_MS", "400");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let sum: u64 = pool.install(|| (0..1_000_000u64).into_par_iter().sum());
    assert_eq!(sum, 999_999 * 1_000_000 / 2);
    let work_ended = Instant::now();

    // within the spin: both workers yield in a loop while the main thread sleeps. At full speed
    // that is 2 × 250 ms of CPU; a loaded machine gives less, but not below 50 ms
    let spinning = cpu_while_sleeping(Duration::from_millis(250));
    if work_ended.elapsed() >= Duration::from_millis(390) {
        // the window overran the spin: the machine is too loaded to tell either way
        eprintln!("skipped: 250 ms of sleep took {:?}", work_ended.elapsed());
        return;
    }
    assert!(
        spinning >= Duration::from_millis(50),
        "idle workers used {spinning:?} of CPU in the 250 ms after work: they did not spin"
    );

    // well after the spin: both asleep, the process idle (upstream rayon's behaviour after it)
    std::thread::sleep(Duration::from_millis(400).saturating_sub(work_ended.elapsed()) + Duration::from_millis(100));
    let asleep = cpu_while_sleeping(Duration::from_millis(500));
    assert!(
        asleep <= Duration::from_millis(40),
        "idle workers used {asleep:?} of CPU in 500 ms, long after their 400 ms spin: they never went to sleep"
    );
    drop(pool);
}
