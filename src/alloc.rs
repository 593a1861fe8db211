//! The global allocator: the system's, wrapped in a counter of live and peak bytes so benches
//! can report peak memory (the counter costs nothing measurable: two relaxed atomics per call).
//!
//! mimalloc was tried and measured (kernels/README.md, "process-level fixes"): it cut the page
//! faults of 400 MNIST mlp steps from 134k to 5.7k but added 0.7 s of system time and made the
//! whole run ~30% slower on this machine, so we keep glibc's allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub struct Counting<A> {
    inner: A,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl<A> Counting<A> {
    pub const fn new(inner: A) -> Self {
        Self { inner, live: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    fn grew(&self, n: usize) {
        let now = self.live.fetch_add(n, Relaxed) + n;
        self.peak.fetch_max(now, Relaxed);
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.inner.alloc(layout);
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.inner.alloc_zeroed(layout);
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.inner.dealloc(ptr, layout);
        self.live.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.inner.realloc(ptr, layout, new_size);
        if !p.is_null() {
            self.live.fetch_sub(layout.size(), Relaxed);
            self.grew(new_size);
        }
        p
    }
}

#[global_allocator]
pub static ALLOC: Counting<std::alloc::System> = Counting::new(std::alloc::System);

/// Bytes allocated now.
pub fn live_bytes() -> usize {
    ALLOC.live.load(Relaxed)
}

/// Starts a new peak measurement from the current live size.
pub fn reset_peak() {
    ALLOC.peak.store(ALLOC.live.load(Relaxed), Relaxed);
}

/// Highest live size since the last `reset_peak`.
pub fn peak_bytes() -> usize {
    ALLOC.peak.load(Relaxed)
}

/// Makes glibc keep freed memory mapped instead of handing it back to the kernel.
///
/// A training step allocates and frees the same tensor sizes every step (up to a few MB
/// each). By default glibc trims the top of the heap with `brk` once >128 KB is free there
/// (and serves big blocks with mmap/munmap), so the next step faults every page back in and
/// the kernel zeroes it: perf showed `__brk` -> munmap and `exc_page_fault` at ~15% of a gpt
/// step. Fixing both thresholds (which also turns off glibc's dynamic adjustment) keeps the
/// heap at its high-water mark: blocks below 32 MB (glibc's maximum) come from the heap,
/// which is never trimmed below 1 GB of free top.
///
/// The commands run on a rayon worker (main.rs), whose allocations come from a thread arena: a
/// chain of heaps of at most 64 MB that glibc grows and shrinks in steps of `M_TOP_PAD` (128 KB
/// by default). An evaluation batch's tensors (25 MB each for 1,000 images through the CIFAR
/// net's first stage) still faulted their pages in again and again: 1.66 million minor faults
/// and 3.6 s of system time in `dlhist --threads 2 train plain --steps 20`. A 128 MB top pad
/// (virtual: a page costs memory only once touched) took that to 157 thousand and 0.4 s, wall
/// 39 s to 36 s, with the same peak memory.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 128 << 20);
    }
}
