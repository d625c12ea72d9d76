//! The AF_XDP worker's steady path allocates nothing per packet: on the in-memory
//! device, a persistent connection to a session listener exchanges requests and
//! replies while a counting allocator watches the worker's own thread.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stack::{Listener, Listeners, Next, Session};
use support::Client;
use tcp::tcb::State;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the worker's thread only: the test's own (client) thread allocates freely.
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

/// Answers each 64-byte request with its bytes reversed.
struct Reverse;

impl Session for Reverse {
    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, _now: Instant) -> Next {
        reply.extend(data.iter().rev());
        Next::Wait(None)
    }
    fn on_deadline(&mut self, _now: Instant) -> Next {
        Next::Close
    }
}

#[test]
fn the_workers_steady_path_allocates_nothing() {
    let mut listeners = Listeners::new();
    listeners.listen(
        9,
        Listener::session(|_, _| Some(Box::new(Reverse) as Box<dyn Session>)),
    );
    let (mut stack, mut link, mac) = support::start(listeners);
    let mut c = Client::connect(&mut link, mac, 41000, 9);
    // Back to back: what is counted is the packet path, not the worker's sleeps.
    c.pause = Duration::ZERO;
    c.until(|t, _| t.state() == State::Established);
    // Request/reply rounds; returns when `rounds` replies came back.
    let exchange = |c: &mut Client, rounds: usize| {
        let request: Vec<u8> = (0..64u8).collect();
        let mut got = [0u8; 64];
        for _ in 0..rounds {
            assert_eq!(c.tcb.send_nodelay(&request), 64);
            let mut have = 0;
            c.until(|t, _| {
                have += t.recv(&mut got[have..]);
                have == 64
            });
            assert_eq!(got[0], 63, "the reply is the request reversed");
        }
    };
    // Warm up (buffers, the wheel's slots, the index), then count on the worker.
    exchange(&mut c, 200);
    stack
        .spawn(0, |_| async {
            COUNTED.with(|c| c.set(true));
        })
        .unwrap();
    exchange(&mut c, 20);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(&mut c, 2000);
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        during, 0,
        "allocations on the worker over 2000 request/reply rounds"
    );
    // The counter does count the worker's allocations (a task spawned there is one).
    let (done, ran) = std::sync::mpsc::channel();
    stack
        .spawn(0, move |_| async move {
            std::hint::black_box(vec![1u8; 100]);
            let _ = done.send(());
        })
        .unwrap();
    ran.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > before,
        "the counter counts"
    );
    stack.shutdown(Duration::ZERO);
}
