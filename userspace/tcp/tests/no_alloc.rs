//! The steady path allocates nothing per segment: in-order data received, read and
//! ACKed, and data sent and ACKed, counted by a global allocator that counts.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use support::steady::{Receiver, Sender};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the test's own thread counts: the harness's main thread allocates now and
    /// then while it waits (it made the count 4 once in a few runs).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// One test function: the counter is global, and tests in one binary run in parallel.
#[test]
fn the_steady_path_allocates_nothing() {
    COUNTED.with(|c| c.set(true));
    let at_start = ALLOCATIONS.load(Ordering::Relaxed);
    let mut r = Receiver::new();
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > at_start,
        "the counter counts: setting up (buffers on first use) allocates"
    );
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100_000 {
        r.segment();
    }
    let rx = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(r.acks >= 50_000, "b ACKed every second segment: {}", r.acks);

    let mut s = Sender::new();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100_000 {
        s.segment();
    }
    let tx = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        (rx, tx),
        (0, 0),
        "allocations over 100,000 segments (receive, send)"
    );
}
