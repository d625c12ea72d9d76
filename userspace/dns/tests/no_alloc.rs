//! Answering a query allocates nothing: counted by a global allocator over every kind of
//! answer (positive, chains, negative, wildcard, referral, refused, EDNS).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dns::decode::query;
use dns::{answer, load_zone, rtype, Answer, Catalog, ResponderConfig};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the test's own thread counts: the harness's main thread may allocate while
    /// it waits.
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

#[test]
fn answering_allocates_nothing() {
    COUNTED.with(|c| c.set(true));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let before_load = ALLOCATIONS.load(Ordering::Relaxed);
    let catalog = Catalog::new(vec![
        load_zone(&dir.join("example.test.zone"), None).unwrap()
    ])
    .unwrap();
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > before_load,
        "the counter counts"
    );
    let cfg = ResponderConfig::default();
    let queries: Vec<Vec<u8>> = [
        ("www.example.test", rtype::A, false),
        ("example.test", rtype::MX, true),
        ("chain1.example.test", rtype::A, false),
        ("nope.example.test", rtype::A, true),
        ("x.wild.example.test", rtype::A, false),
        ("host.child.example.test", rtype::A, false),
        ("www.example.net", rtype::A, false),
        ("www.example.test", rtype::ANY, true),
    ]
    .iter()
    .map(|(n, t, e)| query(1, n, *t, *e))
    .collect();
    let mut out = vec![0u8; 65535];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..10_000 {
        for q in &queries {
            let a = answer(&catalog, &cfg, Ipv4Addr::LOCALHOST, q, &mut out);
            assert!(matches!(a, Answer::Message(_)));
        }
    }
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed) - before,
        0,
        "allocations over 80,000 answers"
    );
}
