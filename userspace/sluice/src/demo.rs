//! `sluice demo`: the datapath demo.
//!
//! Until the TCP stack is wired in, the demo shows the layer it stands on: the XDP
//! program steering one (address, port) into AF_XDP sockets on every queue, frames
//! rewritten in place and sent back through the TX ring, and everything else still
//! served by the kernel. The server side answers each SYN with a SYN-ACK (and anything
//! later with a RST), so the peer's kernel completes real TCP handshakes against the
//! AF_XDP path; the demo then checks that ping and a kernel TCP server on another port
//! of the same address still work.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Args;
use netns::{Topology, TopologyConfig};
use wire::frame::{emit_tcp_ipv4, parse_tcp_ipv4};
use wire::{ChecksumMode, EthernetRepr, Ipv4Repr, TcpFlags, TcpRepr};
use xsk::{
    AttachMode, KernelStats, RxAction, SteeringCounters, XdpProgram, XskConfig, XskSocket, XskStats,
};

/// Options of `sluice demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Queues of the veth pair (a socket is bound on each).
    #[arg(long, default_value_t = 2)]
    queues: u32,
    /// Kernel TCP connections the peer opens to the steered port.
    #[arg(long, default_value_t = 200)]
    connections: u32,
    /// The steered port.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// XDP attach mode: auto, driver or skb.
    #[arg(long, default_value = "auto")]
    mode: AttachMode,
}

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// What the server side saw.
#[derive(Default, Debug)]
struct ServerReport {
    mode: Option<AttachMode>,
    zero_copy: bool,
    syns: u64,
    handshakes_completed: u64,
    resets_sent: u64,
    other_frames: u64,
    counters: SteeringCounters,
    sockets: Vec<(u32, XskStats, KernelStats)>,
}

pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    if !netns::have_privileges() {
        return Err(
            "the demo needs root: it creates network namespaces and attaches XDP programs".into(),
        );
    }
    println!("== sluice datapath demo ==");
    let topo = Topology::create(&TopologyConfig {
        purpose: "demo",
        queues: args.queues,
        ..Default::default()
    })?;
    println!(
        "topology: netns {} [{} {}] <== veth, {} queue(s) ==> netns {} [{} {}]",
        topo.server_ns,
        topo.server_if,
        topo.server_ip,
        topo.queues,
        topo.peer_ns,
        topo.peer_if,
        topo.peer_ip
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let server = {
        let (iface, addr, port, mode, stop) = (
            topo.server_if.clone(),
            topo.server_ip,
            args.port,
            args.mode,
            stop.clone(),
        );
        topo.spawn_in_server(move || serve(&iface, addr, port, mode, &stop, ready_tx))?
    };
    let kernel_server = {
        let addr = topo.server_ip;
        let stop = stop.clone();
        topo.spawn_in_server(move || kernel_echo(addr, 9000, &stop))?
    };
    match ready_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = server.join();
            return Err(e.into());
        }
        Err(_) => return Err("the server side did not start within 20 s".into()),
    }

    // 1. Kernel TCP handshakes against the AF_XDP path.
    let target = SocketAddr::from((topo.server_ip, args.port));
    let n = args.connections;
    let started = Instant::now();
    let latencies = topo.run_in(&topo.peer_ns.clone(), move || {
        let mut latencies = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let t = Instant::now();
            if TcpStream::connect_timeout(&target, Duration::from_secs(2)).is_ok() {
                latencies.push(t.elapsed());
            }
        }
        latencies
    })?;
    let elapsed = started.elapsed();

    // 2. What we do not own still reaches the kernel.
    let ping = topo
        .peer_cmd("ping")
        .args([
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            &topo.server_ip.to_string(),
        ])
        .output();
    let ping_ok = ping.as_ref().is_ok_and(|o| o.status.success());
    let server_ip = topo.server_ip;
    let kernel_tcp = topo.run_in(&topo.peer_ns.clone(), move || -> std::io::Result<bool> {
        let mut c = TcpStream::connect_timeout(
            &SocketAddr::from((server_ip, 9000)),
            Duration::from_secs(3),
        )?;
        c.set_read_timeout(Some(Duration::from_secs(3)))?;
        c.write_all(b"sluice")?;
        let mut buf = [0u8; 6];
        c.read_exact(&mut buf)?;
        Ok(&buf == b"sluice")
    })?;

    stop.store(true, Ordering::Relaxed);
    let report = server.join().map_err(|_| "the server thread panicked")??;
    let _ = kernel_server.join();

    let mut sorted = latencies.clone();
    sorted.sort();
    let pct = |p: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "XDP program: {} mode; AF_XDP sockets: {} on {} queue(s), {}",
        report.mode.map(|m| m.to_string()).unwrap_or_default(),
        report.sockets.len(),
        topo.queues,
        if report.zero_copy {
            "zero-copy"
        } else {
            "copy mode"
        }
    );
    println!(
        "kernel TCP handshakes answered from AF_XDP: {} of {} in {:.2?} (SYN->SYN-ACK latency p50 {:?}, p99 {:?})",
        latencies.len(),
        n,
        elapsed,
        pct(0.5),
        pct(0.99)
    );
    println!(
        "server side: {} SYNs answered with SYN-ACK in place, {} handshakes completed, {} RSTs sent, {} other frames",
        report.syns, report.handshakes_completed, report.resets_sent, report.other_frames
    );
    for (queue, ours, kernel) in &report.sockets {
        println!(
            "  queue {queue}: rx {} in {} batches, tx {} ({} kicks), fill wakeups {}; kernel: rx dropped {}, ring full {}, fill empty {}",
            ours.rx_packets, ours.rx_batches, ours.tx_packets, ours.tx_kicks, ours.fill_wakeups, kernel.rx_dropped, kernel.rx_ring_full, kernel.rx_fill_ring_empty
        );
    }
    let c = report.counters;
    println!(
        "XDP counters: redirected {}, passed {}, malformed {}, no socket {}",
        c.redirected, c.passed, c.malformed, c.no_socket
    );
    println!(
        "passthrough while attached: ping {}, kernel TCP on port 9000 {}",
        ok(ping_ok),
        ok(matches!(kernel_tcp, Ok(true)))
    );
    drop(topo);
    println!("topology removed");
    if latencies.len() as u32 != n || !ping_ok || !matches!(kernel_tcp, Ok(true)) {
        return Err("the demo saw failures (see above)".into());
    }
    Ok(())
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "FAILED"
    }
}

/// The server side: steer `addr:port`, answer SYNs with SYN-ACKs and everything after
/// the handshake with a RST, rewriting each frame in place.
fn serve(
    iface: &str,
    addr: Ipv4Addr,
    port: u16,
    mode: AttachMode,
    stop: &AtomicBool,
    ready: mpsc::Sender<Result<(), String>>,
) -> Result<ServerReport, DemoError> {
    let setup = || -> Result<(XdpProgram, Vec<XskSocket>), xsk::Error> {
        let mut program = XdpProgram::attach(iface, mode)?;
        let config = XskConfig {
            frame_count: 4096,
            ring_size: 1024,
            ..XskConfig::default()
        };
        let mut sockets = Vec::new();
        for q in 0..xsk::iface::rx_queue_count(iface)? {
            let s = XskSocket::bind(iface, q, &config)?;
            program.register_socket(&s)?;
            sockets.push(s);
        }
        program.add_service(addr, port)?;
        Ok((program, sockets))
    };
    let (program, mut sockets) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return Err(e.into());
        }
    };
    let _ = ready.send(Ok(()));
    let mut report = ServerReport {
        mode: Some(program.mode()),
        zero_copy: sockets.iter().all(|s| s.is_zero_copy()),
        ..Default::default()
    };
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0;
        for s in sockets.iter_mut() {
            s.reclaim();
            got += s.recv(64, |frame| answer(frame, &mut report));
            s.flush()?;
            s.refill();
        }
        if got == 0 {
            // Idle: block briefly on the first socket rather than spin.
            sockets[0].wait_readable(1)?;
        }
    }
    report.counters = program.counters()?;
    report.sockets = sockets
        .iter()
        .map(|s| Ok((s.queue(), s.stats(), s.kernel_stats()?)))
        .collect::<Result<_, xsk::Error>>()?;
    Ok(report)
}

/// Rewrites a steered frame into its answer, in place.
fn answer(frame: &mut [u8], report: &mut ServerReport) -> RxAction {
    let Ok(f) = parse_tcp_ipv4(frame, ChecksumMode::Verify) else {
        report.other_frames += 1;
        return RxAction::Recycle;
    };
    let (eth, ip, tcp) = (f.eth, f.ip, &f.tcp);
    let syn = tcp.flags.syn() && tcp.ack_number.is_none();
    let (flags, seq, ack, mss) = if syn {
        report.syns += 1;
        let mut flags = TcpFlags::default();
        flags.set_syn(true);
        // A fixed ISN derived from the peer's is enough for a handshake demo.
        (
            flags,
            tcp.seq_number.rotate_left(13) ^ 0x5a5a_5a5a,
            Some(tcp.seq_number.wrapping_add(1)),
            Some(1460),
        )
    } else if tcp.flags.rst() {
        report.other_frames += 1;
        return RxAction::Recycle;
    } else if tcp.payload.is_empty() && !tcp.flags.fin() {
        report.handshakes_completed += 1;
        return RxAction::Recycle;
    } else {
        report.resets_sent += 1;
        let mut flags = TcpFlags::default();
        flags.set_rst(true);
        (flags, tcp.ack_number.unwrap_or(0), None, None)
    };
    let reply = TcpRepr {
        src_port: tcp.dst_port,
        dst_port: tcp.src_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        window_len: 65535,
        urgent_pointer: 0,
        max_seg_size: mss,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: None,
        payload: &[],
    };
    let ip_reply = Ipv4Repr {
        src_addr: ip.dst_addr,
        dst_addr: ip.src_addr,
        payload_len: reply.buffer_len(),
        ttl: 64,
        ..ip
    };
    let eth_reply = EthernetRepr {
        src_addr: eth.dst_addr,
        dst_addr: eth.src_addr,
        ethertype: eth.ethertype,
    };
    match emit_tcp_ipv4(frame, &eth_reply, &ip_reply, &reply) {
        Ok(len) => RxAction::Transmit(len as u32),
        Err(_) => RxAction::Recycle,
    }
}

/// A kernel TCP echo server on another port of the same address.
fn kernel_echo(addr: Ipv4Addr, port: u16, stop: &AtomicBool) -> std::io::Result<()> {
    let listener = TcpListener::bind((addr, port))?;
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut c, _)) => {
                c.set_nonblocking(false)?;
                c.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut buf = [0u8; 64];
                if let Ok(n) = c.read(&mut buf) {
                    let _ = c.write_all(&buf[..n]);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(())
}
