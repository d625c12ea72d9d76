//! The running stack end to end over veth, with the Linux kernel's TCP as the peer, in
//! both directions: the kernel's clients against our listeners, our `connect` against
//! the kernel's servers. Every case runs on every backend.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e::{require_root, Impairment, Pattern, Topology, TopologyConfig};
use stack::{
    Backend, Bytes, Error, Flow, Keepalive, Listener, Listeners, Stack, StackConfig, WriteError,
    XdpConfig,
};

/// One case at a time: each moves up to hundreds of megabytes through two stacks on a
/// 2-core machine; run together they mostly measure the scheduler, and a case's timeouts
/// would fire for want of CPU rather than for a fault.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const ECHO: u16 = 7;
const SOURCE: u16 = 19; // sends a fixed amount, then closes
const SOURCE_BYTES: usize = 8 << 20;
const GREETING: u16 = 13; // writes a line, then closes first (so it holds TIME-WAIT)
const GREETING_TEXT: &[u8] = b"sluice\n";
const DEAF: u16 = 9; // waits a while, then drops the flow without reading a byte
const HALF_DEAF: u16 = 10; // reads one byte (the flow takes in all there is), waits, drops
const DEAF_WAIT: Duration = Duration::from_millis(500);
const PANICS: u16 = 11; // reads, then panics (a handler's bug)
const PANICS_AT_ONCE: u16 = 12; // panics before it returns its future

struct Rig {
    topo: Topology,
    stack: Stack,
}

fn echo_listener() -> Listener {
    Listener::new(|mut flow: Flow| async move {
        while let Ok(Some(data)) = flow.read().await {
            if flow.write(data).await.is_err() {
                return;
            }
        }
        flow.close().await;
    })
}

fn source_listener() -> Listener {
    Listener::new(|mut flow: Flow| async move {
        let mut pattern = Pattern::new(SOURCE as u64);
        let mut left = SOURCE_BYTES;
        while left > 0 {
            let mut chunk = vec![0u8; left.min(64 * 1024)];
            pattern.fill(&mut chunk);
            left -= chunk.len();
            if flow.write(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
        flow.close().await;
    })
}

fn greeting_listener() -> Listener {
    Listener::new(|mut flow: Flow| async move {
        let _ = flow.write(Bytes::from_static(GREETING_TEXT)).await;
        flow.close().await;
    })
}

fn deaf_listener(read_one: bool) -> Listener {
    Listener::new(move |mut flow: Flow| async move {
        if read_one {
            use tokio::io::AsyncReadExt;
            let mut one = [0u8; 1];
            let _ = flow.read_exact(&mut one).await;
        }
        tokio::time::sleep(DEAF_WAIT).await;
        drop(flow);
    })
}

fn panicking_listener() -> Listener {
    Listener::new(|mut flow: Flow| async move {
        let _ = flow.read().await;
        panic!("a handler's bug (the e2e test's PANICS listener)");
    })
}

fn panicking_at_once_listener() -> Listener {
    Listener::new(|flow: Flow| {
        if flow.dst().port() != 0 {
            panic!("a handler's bug before its future (the e2e test's PANICS_AT_ONCE listener)");
        }
        async move { drop(flow) }
    })
}

fn rig(backend: Backend) -> Rig {
    rig_with(backend, |_| {})
}

/// A rig whose stack configuration `tweak` adjusts.
fn rig_with(backend: Backend, tweak: impl FnOnce(&mut StackConfig) + Send + 'static) -> Rig {
    rig_queues(backend, 1, tweak)
}

/// A rig on veths of `queues` queues (a worker per queue on the AF_XDP backend).
fn rig_queues(
    backend: Backend,
    queues: u32,
    tweak: impl FnOnce(&mut StackConfig) + Send + 'static,
) -> Rig {
    let topo = Topology::create(&TopologyConfig {
        queues,
        ..TopologyConfig::default()
    })
    .expect("topology");
    let (server_ip, iface) = (topo.server_ip, topo.server_if.clone());
    let stack = topo
        .run_in(&topo.server_ns.clone(), move || {
            let mut listeners = Listeners::new();
            listeners.listen(ECHO, echo_listener());
            listeners.listen(SOURCE, source_listener());
            listeners.listen(GREETING, greeting_listener());
            listeners.listen(DEAF, deaf_listener(false));
            listeners.listen(HALF_DEAF, deaf_listener(true));
            listeners.listen(PANICS, panicking_listener());
            listeners.listen(PANICS_AT_ONCE, panicking_at_once_listener());
            let mut config = match backend {
                Backend::Kernel => StackConfig::kernel(),
                Backend::Xdp => StackConfig::xdp(XdpConfig::new(iface)),
                Backend::Memory => unreachable!("these tests run over the veth pair"),
            };
            config.addrs = vec![server_ip];
            config.cores = vec![0];
            config.connect_timeout = Duration::from_secs(3);
            tweak(&mut config);
            Stack::start(config, listeners)
        })
        .unwrap()
        .expect("starting the stack");
    Rig { topo, stack }
}

impl Rig {
    fn server(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.topo.server_ip, port))
    }

    fn peer<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.topo.run_in(&self.topo.peer_ns.clone(), f).unwrap()
    }

    /// Runs `task` on worker 0 of our stack and waits for its result.
    fn ours<T: Send + 'static, Fut: std::future::Future<Output = T> + 'static>(
        &self,
        timeout: Duration,
        task: impl FnOnce(stack::WorkerContext) -> Fut + Send + 'static,
    ) -> T {
        self.ours_on(0, timeout, task)
    }

    /// Runs `task` on worker `worker` of our stack and waits for its result.
    fn ours_on<T: Send + 'static, Fut: std::future::Future<Output = T> + 'static>(
        &self,
        worker: usize,
        timeout: Duration,
        task: impl FnOnce(stack::WorkerContext) -> Fut + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        self.stack
            .spawn(worker, move |ctx| async move {
                let _ = tx.send(task(ctx).await);
            })
            .unwrap();
        rx.recv_timeout(timeout)
            .expect("our task did not finish in time")
    }

    /// A kernel echo server in the peer namespace (tokio, with a deep accept backlog so
    /// that a thousand simultaneous connects are all accepted).
    fn kernel_echo_server(&self, port: u16) {
        let addr = SocketAddr::from((self.topo.peer_ip, port));
        let (tx, rx) = mpsc::channel();
        self.topo
            .spawn_in_peer(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.set_reuseaddr(true).unwrap();
                    socket.bind(addr).unwrap();
                    let listener = socket.listen(4096).unwrap();
                    tx.send(()).unwrap();
                    loop {
                        let Ok((mut c, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(async move {
                            use tokio::io::AsyncWriteExt;
                            let (mut rd, mut wr) = c.split();
                            let _ = tokio::io::copy(&mut rd, &mut wr).await;
                            let _ = wr.shutdown().await;
                        });
                    }
                })
            })
            .unwrap();
        rx.recv().unwrap();
    }
}

/// Streams `total` bytes of a pattern through an echo over `c`, writing and reading at
/// once, and checks every byte that comes back.
fn echo_through(mut c: TcpStream, total: usize, seed: u64) {
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut p = Pattern::new(seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len());
            p.fill(&mut buf[..n]);
            w.write_all(&buf[..n]).unwrap();
            left -= n;
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut p = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = c.read(&mut buf).expect("reading the echo");
        if n == 0 {
            break;
        }
        p.verify(&buf[..n])
            .unwrap_or_else(|i| panic!("byte {} of the echo is wrong", got + i));
        got += n;
    }
    writer.join().unwrap();
    assert_eq!(got, total, "the echo ended early");
}

fn kernel_client_bulk_echo(backend: Backend) {
    let r = rig(backend);
    let addr = r.server(ECHO);
    r.peer(move || echo_through(TcpStream::connect(addr).unwrap(), 100 << 20, 1));
}

fn kernel_clients_concurrent(backend: Backend) {
    const CLIENTS: usize = 1000;
    const BYTES: usize = 16 * 1024;
    let r = rig(backend);
    let addr = r.server(ECHO);
    let ok = r.peer(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tasks = Vec::new();
            for i in 0..CLIENTS {
                tasks.push(tokio::spawn(async move {
                    let mut c = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connect {i}: {e}"))?;
                    let mut data = vec![0u8; BYTES];
                    Pattern::new(i as u64).fill(&mut data);
                    let (mut rd, mut wr) = c.split();
                    let write = async {
                        wr.write_all(&data).await?;
                        wr.shutdown().await
                    };
                    let mut back = Vec::new();
                    let read = rd.read_to_end(&mut back);
                    let (w, rr) = tokio::join!(write, read);
                    w.map_err(|e| format!("write {i}: {e}"))?;
                    rr.map_err(|e| format!("read {i}: {e}"))?;
                    if back != data {
                        return Err(format!(
                            "flow {i}: echo differs ({} of {} bytes)",
                            back.len(),
                            data.len()
                        ));
                    }
                    Ok::<_, String>(())
                }));
            }
            let mut ok = 0;
            for t in tasks {
                // A stall must fail the test, not hang it.
                tokio::time::timeout(Duration::from_secs(60), t)
                    .await
                    .expect("a client stalled for 60 s")
                    .unwrap()
                    .unwrap();
                ok += 1;
            }
            ok
        })
    });
    assert_eq!(ok, CLIENTS);
}

fn our_connect_bulk_echo(backend: Backend) {
    const TOTAL: usize = 100 << 20;
    let r = rig(backend);
    r.kernel_echo_server(9007);
    let dst = SocketAddrV4::new(r.topo.peer_ip, 9007);
    let received = r.ours(Duration::from_secs(120), move |ctx| async move {
        let mut flow = ctx.connect(dst, None).await.expect("connect");
        let (mut out, mut back) = (Pattern::new(5), Pattern::new(5));
        let (mut sent, mut got) = (0usize, 0usize);
        while got < TOTAL {
            // Keep at most 48 KiB unanswered: this task cannot read while it waits to
            // write, so more than the buffers between us and back (our 64 KiB send and
            // receive buffers included) could deadlock the echo.
            if sent < TOTAL && sent - got < 48 * 1024 {
                let mut chunk = vec![0u8; (TOTAL - sent).min(64 * 1024)];
                out.fill(&mut chunk);
                sent += chunk.len();
                flow.write(Bytes::from(chunk)).await.expect("write");
                if sent == TOTAL {
                    flow.close().await;
                }
                continue;
            }
            match flow.read().await.expect("read") {
                Some(data) => {
                    back.verify(&data)
                        .unwrap_or_else(|i| panic!("byte {} wrong", got + i));
                    got += data.len();
                }
                None => break,
            }
        }
        let eof = flow.read().await.expect("read at the end");
        (got, eof.is_none())
    });
    assert_eq!(received, (TOTAL, true));
}

fn our_connects_concurrent(backend: Backend) {
    let r = rig(backend);
    r.kernel_echo_server(9008);
    let dst = SocketAddrV4::new(r.topo.peer_ip, 9008);
    assert_eq!(connect_and_echo(&r, 0, dst, 1000), 1000);
}

/// `flows` active opens from worker `worker` to the echo server at `dst`, all at once,
/// each echoing 4 KiB. Returns how many completed intact (panics on the first failure).
fn connect_and_echo(r: &Rig, worker: usize, dst: SocketAddrV4, flows: usize) -> usize {
    r.ours_on(worker, Duration::from_secs(120), move |ctx| async move {
        let tasks: Vec<_> = (0..flows)
            .map(|i| {
                let ctx = ctx.clone();
                tokio::task::spawn_local(async move {
                    let mut flow = ctx
                        .connect(dst, None)
                        .await
                        .map_err(|e| format!("connect {i}: {e}"))?;
                    let mut data = vec![0u8; 4096];
                    Pattern::new(i as u64).fill(&mut data);
                    flow.write(Bytes::from(data.clone()))
                        .await
                        .map_err(|e| format!("write {i}: {e}"))?;
                    flow.close().await;
                    let mut back = Vec::new();
                    while let Some(d) = flow.read().await.map_err(|e| format!("read {i}: {e}"))? {
                        back.extend_from_slice(&d);
                    }
                    if back != data {
                        return Err(format!("flow {i}: echo differs"));
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            t.await.unwrap().unwrap();
            ok += 1;
        }
        ok
    })
}

/// Two queues, a worker on each: the kernel peer picks the queue of each reply by its
/// own hash, so about half the replies to each worker's active opens land on the other
/// worker's queue and must be handed over.
#[test]
fn xdp_active_opens_on_two_queues() {
    require_root!();
    let _serial = serial();
    let r = rig_queues(Backend::Xdp, 2, |c| c.cores = vec![0, 1]);
    assert_eq!(r.stack.workers(), 2);
    r.kernel_echo_server(9010);
    let dst = SocketAddrV4::new(r.topo.peer_ip, 9010);
    for worker in 0..2 {
        assert_eq!(connect_and_echo(&r, worker, dst, 300), 300);
    }
    // Passive opens on both queues too.
    let addr = r.server(ECHO);
    let ok = r.peer(move || {
        let threads: Vec<_> = (0..50)
            .map(|i| {
                std::thread::spawn(move || {
                    echo_through(TcpStream::connect(addr).unwrap(), 50_000, i)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().is_ok() as usize)
            .sum::<usize>()
    });
    assert_eq!(ok, 50);
    let stats = r.stack.stats();
    let handed: u64 = stats.iter().map(|s| s.handed_in).sum();
    eprintln!("two queues: {handed} frames handed over; {stats:?}");
    assert!(
        handed > 0,
        "some replies arrived on the other worker's queue"
    );
    assert_eq!(handed, stats.iter().map(|s| s.handed_out).sum::<u64>());
}

fn half_close_both_ways(backend: Backend) {
    let r = rig(backend);
    // Kernel client half-closes first: our echo keeps answering, then closes.
    let addr = r.server(ECHO);
    r.peer(move || echo_through(TcpStream::connect(addr).unwrap(), 300_000, 9));
    // We half-close first: the kernel server still sends everything it has.
    let peer = r.topo.peer_ip;
    let (tx, rx) = mpsc::channel();
    r.topo
        .spawn_in_peer(move || {
            let l = TcpListener::bind((peer, 9009)).unwrap();
            tx.send(()).unwrap();
            let (mut c, _) = l.accept().unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap(); // our FIN ends this
            assert_eq!(got, b"request");
            let mut reply = vec![0u8; 1 << 20];
            Pattern::new(3).fill(&mut reply);
            c.write_all(&reply).unwrap(); // still allowed: half-closed, not closed
        })
        .unwrap();
    rx.recv().unwrap();
    let dst = SocketAddrV4::new(peer, 9009);
    let got = r.ours(Duration::from_secs(30), move |ctx| async move {
        let mut flow = ctx.connect(dst, None).await.unwrap();
        flow.write(Bytes::from_static(b"request")).await.unwrap();
        flow.close().await;
        let late = flow.write(Bytes::from_static(b"late")).await;
        assert!(matches!(late, Err(WriteError::Closed)), "{late:?}");
        let mut p = Pattern::new(3);
        let mut n = 0;
        while let Some(d) = flow.read().await.unwrap() {
            p.verify(&d).unwrap();
            n += d.len();
        }
        n
    });
    assert_eq!(got, 1 << 20);
}

/// A client that reuses its port while the server still holds the old connection in
/// TIME-WAIT (the server closed first) gets a new connection at once: its SYN is newer
/// (RFC 6191), so the old incarnation gives way instead of answering with a challenge
/// ACK that costs the client a reset and a SYN retransmission a second later.
fn reopen_a_port_in_time_wait(backend: Backend) {
    const ROUNDS: u64 = 3;
    const CLIENT_PORT: u16 = 40_013;
    let r = rig(backend);
    let (addr, peer_ip) = (r.server(GREETING), r.topo.peer_ip);
    r.peer(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use tokio::io::AsyncReadExt;
            for round in 0..ROUNDS {
                // The client's own side of the last round may still wait for the ACK of
                // its FIN (LAST-ACK): the kernel refuses the 4-tuple until it is gone.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut c = loop {
                    let s = tokio::net::TcpSocket::new_v4().unwrap();
                    s.set_reuseaddr(true).unwrap();
                    s.bind(SocketAddr::from((peer_ip, CLIENT_PORT))).unwrap();
                    match tokio::time::timeout(Duration::from_secs(10), s.connect(addr)).await {
                        Ok(Ok(c)) => break c,
                        Ok(Err(e))
                            if e.kind() == std::io::ErrorKind::AddrNotAvailable
                                && Instant::now() < deadline =>
                        {
                            tokio::time::sleep(Duration::from_millis(10)).await
                        }
                        other => panic!("round {round}: connect: {other:?}"),
                    }
                };
                let mut got = Vec::new();
                c.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, GREETING_TEXT, "round {round}");
            }
        })
    });
    if backend == Backend::Xdp {
        let w = r.stack.stats()[0];
        assert_eq!(w.accepted, ROUNDS, "{w:?}");
        assert_eq!(
            w.time_wait_reopened,
            ROUNDS - 1,
            "every later round reopened the last one's TIME-WAIT: {w:?}"
        );
        assert_eq!(w.resets_sent, 0, "{w:?}");
    }
}

/// A flow dropped while received data sits unread resets the connection instead of
/// closing it (RFC 1122 §4.2.2.13, RFC 2525 §2.17, as Linux's close()): the peer must not
/// take the loss of what it sent for a clean end.
fn unread_data_resets(backend: Backend) {
    let r = rig(backend);
    // Unread in the connection's buffer, then in the flow's own (taken from the
    // connection by the one-byte read, not consumed).
    for port in [DEAF, HALF_DEAF] {
        let addr = r.server(port);
        let err = r.peer(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            // Long before the handler lets go of the flow (DEAF_WAIT).
            c.write_all(b"nobody reads this").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 64];
            c.read(&mut buf)
        });
        assert_eq!(
            err.as_ref().map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset),
            "port {port}: a clean close instead of a reset: {err:?}"
        );
    }
    if backend == Backend::Xdp {
        let w = r.stack.stats()[0];
        assert_eq!(w.aborted_on_close, 2, "{w:?}");
    }
}

/// A handler that panics, in its future or before it returns one, loses its own
/// connection, which its peer sees end, and nothing else: the worker (the rig has one)
/// goes on serving (its own loops' panics abort, see `stack::worker::abort_on_panic`).
fn a_panicking_handler_ends_only_its_flow(backend: Backend) {
    for port in [PANICS, PANICS_AT_ONCE] {
        a_panicking_handler_ends_only_its_flow_on(backend, port);
    }
}

fn a_panicking_handler_ends_only_its_flow_on(backend: Backend, port: u16) {
    let r = rig(backend);
    let (panics, echo) = (r.server(port), r.server(ECHO));
    let (ended, echoed) = r.peer(move || {
        let mut held = TcpStream::connect(echo).unwrap();
        let mut c = TcpStream::connect(panics).unwrap();
        c.write_all(b"trip").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        let ended = c.read(&mut buf).map_err(|e| e.kind());
        // The connection opened before the panic, and a new one, still echo.
        let mut fresh = TcpStream::connect(echo).unwrap();
        let mut echoed = Vec::new();
        for s in [&mut held, &mut fresh] {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"still here").unwrap();
            let mut got = [0u8; 10];
            echoed.push(
                s.read_exact(&mut got)
                    .map(|_| got.to_vec())
                    .map_err(|e| e.kind()),
            );
        }
        (ended, echoed)
    });
    assert!(
        matches!(ended, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "port {port}: the panicked handler's connection did not end: {ended:?}"
    );
    for e in echoed {
        assert_eq!(e, Ok(b"still here".to_vec()), "port {port}");
    }
}

fn closed_port_refused_and_timeout(backend: Backend) {
    let r = rig(backend);
    // A SYN to a port with no listener is answered with RST.
    let addr = r.server(4444);
    let err =
        r.peer(move || TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap_err());
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // Our connect to a closed kernel port: Refused.
    let dst = SocketAddrV4::new(r.topo.peer_ip, 4445);
    let refused = r.ours(Duration::from_secs(10), move |ctx| async move {
        ctx.connect(dst, None).await.err()
    });
    assert!(matches!(refused, Some(Error::Refused)), "{refused:?}");
    // Our connect into a blackhole: Timeout (the rig's connect timeout is 3 s).
    let iface = r.topo.peer_if.clone();
    let imp = r.peer(move || Impairment::attach(&iface).unwrap());
    let mut imp = imp;
    imp.set_blackhole(true);
    let started = Instant::now();
    let timeout = r.ours(Duration::from_secs(30), move |ctx| async move {
        ctx.connect(dst, None).await.err()
    });
    assert!(matches!(timeout, Some(Error::Timeout)), "{timeout:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "timed out too early: {:?}",
        started.elapsed()
    );
    assert!(imp.counts().1 > 0, "the blackhole dropped nothing");
}

fn keepalive_detects_a_silent_peer(backend: Backend) {
    let r = rig(backend);
    r.kernel_echo_server(9010);
    let iface = r.topo.peer_if.clone();
    let mut imp = r.peer(move || Impairment::attach(&iface).unwrap());
    let dst = SocketAddrV4::new(r.topo.peer_ip, 9010);
    let (tx, rx) = mpsc::channel();
    r.stack
        .spawn(0, move |ctx| async move {
            let ka = Keepalive {
                after: Duration::from_secs(1),
                interval: Duration::from_secs(1),
                probes: 2,
            };
            let mut flow = ctx.connect(dst, Some(ka)).await.unwrap();
            flow.write(Bytes::from_static(b"hi")).await.unwrap();
            let echo = flow.read().await.unwrap();
            tx.send(("echoed", echo.is_some())).unwrap();
            // Now the peer goes silent: keepalive must notice within after + probes * interval.
            let started = Instant::now();
            let eof = flow.read().await;
            tx.send(("lost", matches!(eof, Ok(None)))).unwrap();
            let w = flow.write(Bytes::from_static(b"x")).await;
            tx.send(("write", matches!(w, Err(WriteError::Closed))))
                .unwrap();
            tx.send(("elapsed-ok", started.elapsed() < Duration::from_secs(15)))
                .unwrap();
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        ("echoed", true)
    );
    imp.set_blackhole(true);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        ("lost", true)
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        ("write", true)
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        ("elapsed-ok", true)
    );
}

fn zero_window_then_resume(backend: Backend) {
    let r = rig(backend);
    let addr = r.server(SOURCE);
    let got = r.peer(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        // Let the window close: our server keeps writing into a full receive buffer.
        std::thread::sleep(Duration::from_secs(2));
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut p = Pattern::new(SOURCE as u64);
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        loop {
            let k = c.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            p.verify(&buf[..k])
                .unwrap_or_else(|i| panic!("byte {} wrong", n + i));
            n += k;
            if n < SOURCE_BYTES / 2 {
                // Read slowly for a while, so the window opens and closes repeatedly.
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        n
    });
    assert_eq!(got, SOURCE_BYTES);
}

fn loss_on_the_wire(backend: Backend) {
    let r = rig(backend);
    let iface = r.topo.peer_if.clone();
    let mut imp = r.peer(move || Impairment::attach(&iface).unwrap());
    let addr = r.server(ECHO);
    for (percent, seed) in [(1.0, 11), (5.0, 12)] {
        imp.set_loss_percent(percent);
        let before = imp.counts();
        r.peer(move || echo_through(TcpStream::connect(addr).unwrap(), 8 << 20, seed));
        let after = imp.counts();
        let (seen, dropped) = (after.0 - before.0, after.1 - before.1);
        assert!(
            dropped > 0,
            "{percent}% loss dropped nothing of {seen} packets"
        );
        eprintln!("{percent}% loss: dropped {dropped} of {seen} TCP packets, transfer complete");
    }
}

/// With the half-open backlog full every SYN is answered with a SYN cookie, and the
/// connections the returning ACKs build work like any other.
fn syn_cookies_when_the_backlog_is_full(max_half_open: usize) {
    const CLIENTS: usize = 200;
    let r = rig_with(Backend::Xdp, move |c| {
        c.xdp_mut().unwrap().max_half_open = max_half_open
    });
    let addr = r.server(ECHO);
    let ok = r.peer(move || {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|i| {
                std::thread::spawn(move || {
                    let c = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                        .unwrap_or_else(|e| panic!("client {i}: {e}"));
                    echo_through(c, 20_000, i as u64);
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().is_ok() as usize)
            .sum::<usize>()
    });
    assert_eq!(ok, CLIENTS, "every client's echo came back");
    let stats = r.stack.stats();
    let sent: u64 = stats.iter().map(|s| s.syn_cookies_sent).sum();
    let accepted: u64 = stats.iter().map(|s| s.syn_cookies_accepted).sum();
    eprintln!("backlog {max_half_open}: {sent} cookies sent, {accepted} accepted; {stats:?}");
    if max_half_open == 0 {
        assert_eq!(
            accepted, CLIENTS as u64,
            "every connection came from a cookie"
        );
    } else {
        assert!(accepted > 0, "some connections came from cookies");
    }
}

/// The AF_XDP worker sends the ACK a segment calls for after the flow tasks it woke have
/// run, so it rides on their data or FIN: an echo exchange costs the server three
/// segments (SYN-ACK, the echo, FIN), not a bare ACK of the peer's FIN besides. Its own
/// account of busy time is kept too.
#[test]
fn xdp_acks_ride_on_answers_and_fins() {
    require_root!();
    let _serial = serial();
    let r = rig(Backend::Xdp);
    let addr = r.server(ECHO);
    const EXCHANGES: u64 = 5;
    r.peer(move || {
        for i in 0..EXCHANGES {
            let mut c = TcpStream::connect(addr).unwrap();
            let msg = [i as u8; 20];
            c.write_all(&msg).unwrap();
            let mut back = [0u8; 20];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg);
            c.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap(); // our FIN
            assert!(rest.is_empty());
        }
    });
    // The last ACK closes the last connection on our side.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = r.stack.stats();
        if stats[0].connections == 0 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let w = &stats[0];
    assert_eq!(w.connections, 0, "{w:?}");
    assert_eq!(w.accepted, EXCHANGES, "{w:?}");
    assert_eq!(
        w.tx_frames,
        3 * EXCHANGES,
        "SYN-ACK, echo and FIN per exchange, no bare ACKs: {w:?}"
    );
    assert!(
        w.busy_us > 0 && w.busy_us + w.idle_poll_us <= w.elapsed_us,
        "{w:?}"
    );
}

/// A connect its caller gives up on (an outer timeout, a select!) lets its connection
/// go: no half-open entry and no port stays behind for the stack's own timeout.
#[test]
fn xdp_an_abandoned_connect_leaves_nothing_behind() {
    require_root!();
    let _serial = serial();
    let r = rig_with(Backend::Xdp, |c| {
        c.connect_timeout = Duration::from_secs(30);
    });
    let iface = r.topo.peer_if.clone();
    let mut imp = r.peer(move || Impairment::attach(&iface).unwrap());
    imp.set_blackhole(true);
    let dst = SocketAddrV4::new(r.topo.peer_ip, 4446);
    let gave_up = r.ours(Duration::from_secs(10), move |ctx| async move {
        tokio::time::timeout(Duration::from_millis(300), ctx.connect(dst, None))
            .await
            .is_err()
    });
    assert!(gave_up, "the connect should still have been waiting");
    let gone = e2e::wait_for(Duration::from_secs(5), || {
        let w = r.stack.stats()[0];
        (w.connections == 0).then_some(())
    });
    assert!(gone.is_some(), "still held: {:?}", r.stack.stats());
    assert!(imp.counts().1 > 0, "the blackhole dropped nothing");
}

/// A connect whose next hop never answers ARP waits on the worker's timers while the
/// worker goes on serving its other flows. It used to sleep in the worker's thread for
/// up to a second, stalling every connection of the queue: then the echoes below could
/// only come back after the connect had failed.
#[test]
fn xdp_a_connect_waiting_for_arp_does_not_stall_the_worker() {
    require_root!();
    let _serial = serial();
    let r = rig(Backend::Xdp);
    let addr = r.server(ECHO);
    let mut echo = r.peer(move || {
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    });
    // On the subnet, so the route is on-link, but nobody has it: ARP goes unanswered.
    let nobody = SocketAddrV4::new(std::net::Ipv4Addr::new(198, 18, 0, 99), ECHO);
    let (done_tx, done_rx) = mpsc::channel();
    r.stack
        .spawn(0, move |ctx| async move {
            let _ = done_tx.send(ctx.connect(nobody, None).await.err());
        })
        .unwrap();
    // The connect has reached its ARP wait once the kernel holds the request.
    let ns = r.topo.server_ns.clone();
    let asked = e2e::wait_for(Duration::from_secs(5), || {
        let out = std::process::Command::new("ip")
            .args(["-n", &ns, "neigh", "show", "198.18.0.99"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (text.contains("INCOMPLETE") || text.contains("FAILED")).then_some(())
    });
    assert!(
        asked.is_some(),
        "the worker never asked the kernel to resolve 198.18.0.99"
    );
    for i in 0..20u8 {
        let msg = [i; 100];
        echo.write_all(&msg).unwrap();
        let mut back = [0u8; 100];
        echo.read_exact(&mut back)
            .expect("the worker stopped serving while a connect waited for ARP");
        assert_eq!(back, msg);
    }
    assert!(
        done_rx.try_recv().is_err(),
        "the connect ended before the echoes came back: the worker was blocked"
    );
    let failed = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the connect did not end");
    assert!(
        matches!(&failed, Some(Error::Unreachable(m)) if m.contains("did not answer ARP")),
        "{failed:?}"
    );
}

/// A handler that closes and returns leaves an orphan: when the peer acknowledges our
/// FIN and never sends its own, FIN-WAIT-2 ends after `fin_wait_2_timeout` with a RST
/// (as Linux's tcp_fin_timeout), instead of holding the connection for ever.
#[test]
fn xdp_orphan_in_fin_wait_2_is_reset_after_the_timeout() {
    require_root!();
    let _serial = serial();
    let r = rig_with(Backend::Xdp, |c| {
        c.xdp_mut().unwrap().tcp.fin_wait_2_timeout = Duration::from_secs(1);
    });
    let addr = r.server(GREETING);
    let c = r.peer(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap(); // the greeting and our FIN; no close from here
        assert_eq!(got, GREETING_TEXT);
        c
    });
    let in_fin_wait_2 = e2e::wait_for(Duration::from_secs(5), || {
        let w = r.stack.stats()[0];
        (w.states.fin_wait_2 == 1).then_some(w)
    });
    assert!(in_fin_wait_2.is_some(), "{:?}", r.stack.stats());
    let gone = e2e::wait_for(Duration::from_secs(10), || {
        let w = r.stack.stats()[0];
        (w.connections == 0).then_some(())
    });
    assert!(gone.is_some(), "still held: {:?}", r.stack.stats());
    // The peer's socket (in CLOSE-WAIT, having sent nothing) saw the RST: Linux records
    // it as EPIPE on the socket. Without it the socket would hold no error.
    let err = e2e::wait_for(Duration::from_secs(5), || c.take_error().unwrap());
    assert_eq!(
        err.as_ref().and_then(|e| e.raw_os_error()),
        Some(libc::EPIPE),
        "the peer was not reset: {err:?}"
    );
}

#[test]
fn xdp_syn_cookies_for_every_connection() {
    require_root!();
    let _serial = serial();
    syn_cookies_when_the_backlog_is_full(0);
}

#[test]
fn xdp_syn_cookies_past_a_small_backlog() {
    require_root!();
    let _serial = serial();
    syn_cookies_when_the_backlog_is_full(2);
}

macro_rules! every_case {
    ($backend:ident, $value:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn kernel_client_bulk_echo_100mb() {
                require_root!();
                let _serial = serial();
                super::kernel_client_bulk_echo($value);
            }

            #[test]
            fn kernel_clients_1000_concurrent() {
                require_root!();
                let _serial = serial();
                super::kernel_clients_concurrent($value);
            }

            #[test]
            fn our_connect_bulk_echo_100mb() {
                require_root!();
                let _serial = serial();
                super::our_connect_bulk_echo($value);
            }

            #[test]
            fn our_connects_1000_concurrent() {
                require_root!();
                let _serial = serial();
                super::our_connects_concurrent($value);
            }

            #[test]
            fn half_close_both_ways() {
                require_root!();
                let _serial = serial();
                super::half_close_both_ways($value);
            }

            #[test]
            fn reopen_a_port_in_time_wait() {
                require_root!();
                let _serial = serial();
                super::reopen_a_port_in_time_wait($value);
            }

            #[test]
            fn unread_data_resets() {
                require_root!();
                let _serial = serial();
                super::unread_data_resets($value);
            }

            #[test]
            fn a_panicking_handler_ends_only_its_flow() {
                require_root!();
                let _serial = serial();
                super::a_panicking_handler_ends_only_its_flow($value);
            }

            #[test]
            fn closed_port_refused_and_timeout() {
                require_root!();
                let _serial = serial();
                super::closed_port_refused_and_timeout($value);
            }

            #[test]
            fn keepalive_detects_a_silent_peer() {
                require_root!();
                let _serial = serial();
                super::keepalive_detects_a_silent_peer($value);
            }

            #[test]
            fn zero_window_then_resume() {
                require_root!();
                let _serial = serial();
                super::zero_window_then_resume($value);
            }

            #[test]
            fn loss_1_then_5_percent() {
                require_root!();
                let _serial = serial();
                super::loss_on_the_wire($value);
            }
        }
    };
}

every_case!(kernel, Backend::Kernel);
every_case!(xdp, Backend::Xdp);
