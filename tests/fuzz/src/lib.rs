//! The checks behind drover's fuzz targets (`fuzz_targets/*.rs` are one line each).
//!
//! Every check feeds arbitrary bytes to a public library API and then asserts what must hold of
//! the answer, not only that nothing panicked:
//!
//! - [`plan`]: `drover_plan::load`, its diagnostics (places, order, rendering) and, for a valid
//!   plan, its graph and outlines;
//! - [`journal`]: `Journal::read_from` on raw bytes, then `RunState::replay`;
//! - [`journal_replay`]: the same on records sealed with the journal's hash chain by [`seal`],
//!   so that the fuzzer reaches the record parser and the state machines.
//!
//! Memory is bounded twice: libFuzzer's `-rss_limit_mb` for the process, and [`bounded`] for
//! each input (a counting global allocator: the heap an input may use grows with its length).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

mod journal;
mod plan;

pub use journal::{journal, journal_replay, seal};
pub use plan::plan;

/// Heap any input may use, plus [`HEAP_PER_INPUT_BYTE`] per byte of input.
pub const HEAP_BASE: usize = 64 << 20;
/// Heap each byte of input may add to [`HEAP_BASE`].
pub const HEAP_PER_INPUT_BYTE: usize = 1024;

/// Counts live heap bytes and their peak, for [`bounded`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `check` on `input` and fails when it used more heap than
/// `HEAP_BASE + HEAP_PER_INPUT_BYTE * input.len()` at any moment: memory grows at most linearly
/// with the input, so no small input (an alias bomb, a huge repeat count) can exhaust it.
///
/// # Panics
/// When the bound is exceeded.
pub fn bounded(input: &[u8], check: impl FnOnce(&[u8])) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    check(input);
    let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let limit = HEAP_BASE.saturating_add(HEAP_PER_INPUT_BYTE.saturating_mul(input.len()));
    assert!(
        used <= limit,
        "an input of {} bytes used {used} bytes of heap (limit {limit})",
        input.len()
    );
    if std::env::var_os("DROVER_FUZZ_HEAP").is_some() {
        // Measuring (README.md): the peak heap of each input, for setting the bound.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("heap: {} bytes in, {used} bytes peak", input.len());
        }
    }
}
