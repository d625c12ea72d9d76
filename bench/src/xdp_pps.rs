//! xdp-pps: packets per second through the AF_XDP datapath on a veth topology.
//!
//! The sender (peer namespace, pinned to one core) blasts 64-byte TCP frames from its
//! own AF_XDP socket at the server's steered port; the server (server namespace, pinned
//! to the other core) receives them and echoes each one back by swapping addresses in
//! place (the checksums stay valid: a swap does not change a ones' complement sum); the
//! sender's own XDP program steers the echoes into its socket, where they are counted.
//!
//! It reports, as medians over several runs: sent, received, echoed and echo-received
//! packets per second, and which side is the limit. The server is the limit when the
//! kernel drops frames for it (RX ring full, fill ring empty); otherwise it is waiting
//! on the sender, which its share of empty polls shows.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use netns::{Topology, TopologyConfig};
use wire::frame::emit_tcp_ipv4;
use wire::{EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, TcpFlags, TcpRepr};
use xsk::{AttachMode, KernelStats, RxAction, XdpProgram, XskConfig, XskSocket};

/// Packets per second received and echoed through AF_XDP on a veth pair.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Measured runs; the report gives their median.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Seconds measured per run (after a half-second warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Queues of the veth pair; each side binds a socket on every queue.
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Frames per RX/TX batch.
    #[arg(long, default_value_t = 64)]
    batch: u32,
    /// Frame length in bytes (at least 54: Ethernet + IPv4 + TCP headers).
    #[arg(long, default_value_t = 64)]
    frame_len: usize,
    /// Core for the server (receiver); the sender takes --sender-core.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core for the sender.
    #[arg(long, default_value_t = 1)]
    sender_core: usize,
    /// XDP attach mode on both ends: auto, driver or skb.
    #[arg(long, default_value = "auto")]
    mode: AttachMode,
    /// Receive only: the server recycles frames instead of echoing them.
    #[arg(long)]
    no_echo: bool,
    /// Microseconds the server keeps polling an empty ring before it sleeps in poll(2)
    /// (the stack's idle policy). 0 by default: here the NAPI thread that fills the ring
    /// shares the server's core, and every microsecond spent polling is taken from it
    /// (measured: 1.09 Mpps received at 0, 0.62 at 50).
    #[arg(long, default_value_t = 0)]
    busy_poll_us: u64,
    /// Leave veth's receive work (XDP program, copy into the UMEM) on the transmitting
    /// core instead of moving it into NAPI threads pinned beside each receiver.
    #[arg(long)]
    no_threaded_napi: bool,
}

const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;
const SERVER_PORT: u16 = 7000;
const SENDER_PORT: u16 = 5555;

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    rx: u64,
    tx: u64,
    polls: u64,
    empty_polls: u64,
    sleeps: u64,
    kernel: KernelStats,
}

impl Counts {
    fn minus(self, o: Counts) -> Counts {
        Counts {
            rx: self.rx - o.rx,
            tx: self.tx - o.tx,
            polls: self.polls - o.polls,
            empty_polls: self.empty_polls - o.empty_polls,
            sleeps: self.sleeps - o.sleeps,
            kernel: self.kernel,
        }
    }
}

fn kernel_sum(sockets: &[XskSocket]) -> KernelStats {
    let mut k = KernelStats::default();
    for s in sockets {
        if let Ok(s) = s.kernel_stats() {
            k.rx_dropped += s.rx_dropped;
            k.rx_ring_full += s.rx_ring_full;
            k.rx_fill_ring_empty += s.rx_fill_ring_empty;
        }
    }
    k
}

type BenchError = Box<dyn std::error::Error + Send + Sync>;

fn open(
    iface: &str,
    mode: AttachMode,
    addr: Ipv4Addr,
    port: u16,
) -> Result<(XdpProgram, Vec<XskSocket>), BenchError> {
    let mut program = XdpProgram::attach(iface, mode)?;
    // Deep rings: the NAPI thread fills them in bursts while our thread waits for the core.
    let config = XskConfig {
        frame_count: 32768,
        ring_size: 16384,
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
}

fn pin(core: usize) {
    let ok = core_affinity::get_core_ids()
        .and_then(|ids| ids.into_iter().find(|c| c.id == core))
        .map(core_affinity::set_for_current)
        .unwrap_or(false);
    if !ok {
        eprintln!("warning: could not pin to core {core}");
    }
}

/// Runs `body` once per poll round until the phase says stop; returns the counts of the
/// measured window.
fn measured_loop(phase: &AtomicU8, mut body: impl FnMut(&mut Counts)) -> Counts {
    let mut c = Counts::default();
    let mut start = None;
    loop {
        body(&mut c);
        c.polls += 1;
        match phase.load(Ordering::Relaxed) {
            PHASE_WARMUP => {}
            PHASE_MEASURE => {
                if start.is_none() {
                    start = Some(c);
                }
            }
            _ => return c.minus(start.unwrap_or(c)),
        }
    }
}

fn server(
    topo_iface: String,
    addr: Ipv4Addr,
    args: Arc<Args>,
    phase: Arc<AtomicU8>,
    ready: Arc<Barrier>,
) -> Result<Counts, BenchError> {
    pin(args.server_core);
    let (_program, mut sockets) = open(&topo_iface, args.mode, addr, SERVER_PORT)?;
    ready.wait();
    let batch = args.batch;
    let echo = !args.no_echo;
    let busy_poll = Duration::from_micros(args.busy_poll_us);
    let mut idle_since: Option<Instant> = None;
    let counts = measured_loop(&phase, |c| {
        let mut got = 0;
        for s in sockets.iter_mut() {
            s.reclaim();
            got += s.recv(batch, |frame| {
                if !echo {
                    return RxAction::Recycle;
                }
                echo_in_place(frame);
                RxAction::Transmit(frame.len() as u32)
            });
            let _ = s.flush();
            s.refill();
        }
        c.rx += got as u64;
        c.tx += if echo { got as u64 } else { 0 };
        c.empty_polls += (got == 0) as u64;
        if got > 0 {
            idle_since = None;
        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= busy_poll {
            // Sleep until a frame arrives (or 1 ms passes, to see the phase change).
            let _ = sockets[0].wait_readable(1);
            c.sleeps += 1;
        }
    });
    // Totals over the whole run: any drop at all says the server could not keep up.
    Ok(Counts {
        kernel: kernel_sum(&sockets),
        ..counts
    })
}

/// Swaps Ethernet, IPv4 and TCP source and destination in place. Checksums stay valid.
fn echo_in_place(frame: &mut [u8]) {
    if frame.len() < 54 {
        return;
    }
    for i in 0..6 {
        frame.swap(i, i + 6);
    }
    for i in 0..4 {
        frame.swap(26 + i, 30 + i);
    }
    let tcp = 14 + ((frame[14] & 0x0f) as usize) * 4;
    if frame.len() >= tcp + 4 {
        frame.swap(tcp, tcp + 2);
        frame.swap(tcp + 1, tcp + 3);
    }
}

fn sender(
    iface: String,
    template: Vec<u8>,
    addr: Ipv4Addr,
    args: Arc<Args>,
    phase: Arc<AtomicU8>,
    ready: Arc<Barrier>,
) -> Result<Counts, BenchError> {
    pin(args.sender_core);
    let (_program, mut sockets) = open(&iface, args.mode, addr, SENDER_PORT)?;
    ready.wait();
    let batch = args.batch;
    let counts = measured_loop(&phase, |c| {
        for s in sockets.iter_mut() {
            s.reclaim();
            let mut sent = 0;
            while sent < batch
                && s.transmit_with(|buf| {
                    buf[..template.len()].copy_from_slice(&template);
                    template.len()
                })
            {
                sent += 1;
            }
            let _ = s.flush();
            c.tx += sent as u64;
            let got = s.recv(batch, |_| RxAction::Recycle);
            c.rx += got as u64;
            c.empty_polls += (got == 0) as u64;
            s.refill();
        }
    });
    Ok(counts)
}

fn template(topo: &Topology, frame_len: usize) -> Result<Vec<u8>, BenchError> {
    let payload = vec![0x5au8; frame_len.saturating_sub(54)];
    let tcp = TcpRepr {
        src_port: SENDER_PORT,
        dst_port: SERVER_PORT,
        seq_number: 1,
        ack_number: Some(1),
        flags: TcpFlags::default(),
        window_len: 65535,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: None,
        payload: &payload,
    };
    let ip = Ipv4Repr {
        src_addr: topo.peer_ip,
        dst_addr: topo.server_ip,
        protocol: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(topo.peer_mac),
        dst_addr: EthernetAddress(topo.server_mac),
        ethertype: EtherType::Ipv4,
    };
    let mut buf = vec![0u8; 2048];
    let len = emit_tcp_ipv4(&mut buf, &eth, &ip, &tcp)?;
    buf.truncate(len);
    Ok(buf)
}

struct Run {
    sent: f64,
    server_rx: f64,
    echoed: f64,
    echo_rx: f64,
    server_idle: f64,
    server_drops: u64,
    drops: KernelStats,
}

fn one_run(args: &Arc<Args>) -> Result<Run, BenchError> {
    let topo = Topology::create(&TopologyConfig {
        purpose: "bench",
        queues: args.queues,
        ..Default::default()
    })?;
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let ready = Arc::new(Barrier::new(3));
    let frame = template(&topo, args.frame_len)?;
    let srv = {
        let (iface, addr, args, phase, ready) = (
            topo.server_if.clone(),
            topo.server_ip,
            args.clone(),
            phase.clone(),
            ready.clone(),
        );
        topo.spawn_in_server(move || server(iface, addr, args, phase, ready))?
    };
    let snd = {
        let (iface, addr, args, phase, ready) = (
            topo.peer_if.clone(),
            topo.peer_ip,
            args.clone(),
            phase.clone(),
            ready.clone(),
        );
        topo.spawn_in_peer(move || sender(iface, frame, addr, args, phase, ready))?
    };
    ready.wait();
    if !args.no_threaded_napi {
        threaded_napi(&topo.server_ns, &topo.server_if, args.server_core)?;
        threaded_napi(&topo.peer_ns, &topo.peer_if, args.sender_core)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    phase.store(PHASE_STOP, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let s = srv.join().map_err(|_| "server thread panicked")??;
    let p = snd.join().map_err(|_| "sender thread panicked")??;
    Ok(Run {
        sent: p.tx as f64 / secs,
        server_rx: s.rx as f64 / secs,
        echoed: s.tx as f64 / secs,
        echo_rx: p.rx as f64 / secs,
        server_idle: if s.polls == 0 {
            0.0
        } else {
            s.empty_polls as f64 / s.polls as f64
        },
        server_drops: s.kernel.rx_dropped + s.kernel.rx_ring_full + s.kernel.rx_fill_ring_empty,
        drops: s.kernel,
    })
}

/// Moves veth's receive processing for `iface` into NAPI kernel threads and pins them to
/// `core`, so each side's receive work is charged to that side's core (docs/design.md,
/// "Measuring on a 2-core machine"). Needs an XDP program attached (veth has NAPI then).
fn threaded_napi(ns: &str, iface: &str, core: usize) -> Result<(), BenchError> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            &format!("echo 1 > /sys/class/net/{iface}/threaded"),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "threaded NAPI on {iface}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    // The kernel names the threads napi/IFACE-ID; they appear right after the switch.
    let prefix = format!("napi/{iface}-");
    let mut pinned = 0;
    for _ in 0..50 {
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end().starts_with(&prefix) {
                // SAFETY: a zeroed cpu_set_t with one core set, for a thread we found.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(core, &mut set);
                    if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
                        == 0
                    {
                        pinned += 1;
                    }
                }
            }
        }
        if pinned > 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("no NAPI thread appeared for {iface}").into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = Arc::new(Args::parse());
    if !netns::have_privileges() {
        eprintln!("xdp-pps: needs root (network namespaces, XDP, AF_XDP)");
        std::process::exit(1);
    }
    if args.frame_len < 54 || args.frame_len > 1514 || args.runs == 0 {
        eprintln!("xdp-pps: --frame-len must be 54..=1514 and --runs at least 1");
        std::process::exit(2);
    }
    println!(
        "xdp-pps: {} run(s) of {} s, {} queue(s), {}-byte frames, batch {}, server on core {}, sender on core {}",
        args.runs, args.seconds, args.queues, args.frame_len, args.batch, args.server_core, args.sender_core
    );
    println!(
        "{:>4} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "run", "sent/s", "srv rx/s", "echoed/s", "echo rx/s", "srv idle", "srv drops"
    );
    let mut runs = Vec::new();
    for i in 0..args.runs {
        match one_run(&args) {
            Ok(r) => {
                println!(
                    "{:>4} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>9.1}% {:>10}",
                    i + 1,
                    r.sent,
                    r.server_rx,
                    r.echoed,
                    r.echo_rx,
                    r.server_idle * 100.0,
                    r.server_drops
                );
                runs.push(r);
            }
            Err(e) => {
                eprintln!("xdp-pps: run {} failed: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let (sent, rx, echoed, echo_rx, idle) = (
        m(|r| r.sent),
        m(|r| r.server_rx),
        m(|r| r.echoed),
        m(|r| r.echo_rx),
        m(|r| r.server_idle),
    );
    let drops: u64 = runs.iter().map(|r| r.server_drops).sum();
    let (full, empty, other): (u64, u64, u64) = runs.iter().fold((0, 0, 0), |a, r| {
        (
            a.0 + r.drops.rx_ring_full,
            a.1 + r.drops.rx_fill_ring_empty,
            a.2 + r.drops.rx_dropped,
        )
    });
    println!(
        "median {:>9.3} Mpps {:>7.3} Mpps {:>7.3} Mpps {:>7.3} Mpps {:>9.1}%",
        sent / 1e6,
        rx / 1e6,
        echoed / 1e6,
        echo_rx / 1e6,
        idle * 100.0
    );
    let received: f64 = runs.iter().map(|r| r.server_rx).sum::<f64>() * args.seconds;
    let drop_share = drops as f64 / (received + drops as f64).max(1.0);
    let verdict = if drop_share > 0.01 {
        format!(
            "the receiving core: the kernel dropped {:.1}% of what was sent to it (RX ring full {full}, fill ring empty {empty}, other {other}); {}",
            drop_share * 100.0,
            if args.no_threaded_napi { "its thread did not run often enough" } else { "its NAPI thread and our loop share that core" }
        )
    } else if rx < sent * 0.95 {
        format!(
            "the receiving core: {:.0}% of what was sent never reached the XDP program (veth's queue to the receiver overflowed{})",
            (1.0 - rx / sent) * 100.0,
            if args.no_threaded_napi { "" } else { ": its NAPI thread, on the server's core, could not keep up" }
        )
    } else if idle > 0.05 {
        format!(
            "the sender: the server dropped nothing and found its rings empty on {:.0}% of polls",
            idle * 100.0
        )
    } else {
        "balanced: the server was never idle but dropped nothing".to_string()
    };
    println!("limit: {verdict}");
    if args.no_threaded_napi {
        println!("note: veth's receive work (XDP program, copy into the UMEM) ran on the transmitting core");
    } else {
        println!("note: veth's receive work ran in NAPI threads pinned to each receiver's core");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn echo_swaps_every_address_pair() {
        let mut f: Vec<u8> = (0u8..64).collect();
        f[14] = 0x45;
        let before = f.clone();
        echo_in_place(&mut f);
        assert_eq!(&f[0..6], &before[6..12]);
        assert_eq!(&f[26..30], &before[30..34]);
        assert_eq!(&f[34..36], &before[36..38]);
        echo_in_place(&mut f);
        assert_eq!(f, before);
    }
}
