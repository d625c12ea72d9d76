//! The AF_XDP worker's steady path allocates nothing per packet: on the in-memory
//! device, a persistent connection to a session listener exchanges requests and
//! replies while a counting allocator watches the worker's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stack::{Listener, Listeners, MemoryConfig, Next, Session, Stack, StackConfig};
use tcp::tcb::{Config, State, Tcb};
use tcp::SeqNumber;
use wire::{EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr};

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

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 9);

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
        Listener::session(|_| Some(Box::new(Reverse) as Box<dyn Session>)),
    );
    let memory = MemoryConfig::default();
    let server_mac = memory.mac;
    let mut config = StackConfig::memory(memory);
    config.addrs = vec![SERVER];
    let mut stack = Stack::start(config, listeners).unwrap();
    let mut link = stack.take_memory_links().pop().unwrap();

    let epoch = Instant::now();
    let now = || tcp::Instant::from_micros(epoch.elapsed().as_micros() as u64 + 1);
    let mut tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 41000),
        SocketAddrV4::new(SERVER, 9),
        SeqNumber(77),
        now(),
    );
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 9]),
        dst_addr: EthernetAddress(server_mac),
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src_addr: CLIENT,
        dst_addr: SERVER,
        protocol: IpProtocol::Tcp,
        payload_len: 0,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    // Moves segments both ways once.
    let mut pump = |tcb: &mut Tcb| {
        let t_now = now();
        if tcb.poll_timeout().is_some_and(|t| t <= t_now) {
            tcb.on_timeout(t_now);
        }
        while let Some(t) = tcb.poll_transmit(t_now) {
            let header = t.header();
            let conn = &*tcb;
            link.send_with(|buf| {
                wire::frame::emit_tcp_ipv4_with(buf, &eth, &ip, &header, t.payload_len(), |d| {
                    conn.write_payload(&t, d)
                })
                .unwrap()
            });
        }
        link.flush();
        let mut frames = Vec::new();
        link.recv(64, |f| frames.push(f.to_vec()));
        for f in &frames {
            let p = wire::frame::parse_tcp_ipv4(f, wire::ChecksumMode::Verify).unwrap();
            tcb.on_segment(&p.tcp, t_now);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcb.state() != State::Established {
        assert!(Instant::now() < deadline, "no handshake");
        pump(&mut tcb);
    }
    // Request/reply rounds; returns when `rounds` replies came back.
    let mut exchange = |tcb: &mut Tcb, rounds: usize| {
        let request: Vec<u8> = (0..64u8).collect();
        let mut got = [0u8; 64];
        for _ in 0..rounds {
            assert_eq!(tcb.send_nodelay(&request), 64);
            let mut have = 0;
            while have < 64 {
                assert!(Instant::now() < deadline, "no reply");
                pump(tcb);
                have += tcb.recv(&mut got[have..]);
            }
            assert_eq!(got[0], 63, "the reply is the request reversed");
        }
    };
    // Warm up (buffers, the wheel's slots, the index), then count on the worker.
    exchange(&mut tcb, 200);
    stack
        .spawn(0, |_| async {
            COUNTED.with(|c| c.set(true));
        })
        .unwrap();
    exchange(&mut tcb, 20);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    exchange(&mut tcb, 2000);
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
