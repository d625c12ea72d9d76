//! overload: how much of its capacity sluice keeps answering when offered more new
//! connections than it can finish (bench/overload.sh runs it in the peer namespace).
//!
//! The load is templated (`gen`) on an AF_XDP socket of its own, so that an attempt the
//! server never answers costs it little and it can offer many times the server's rate
//! from one core. It runs, in order:
//! 1. the persistent connections alone (their query rate unloaded);
//! 2. one-query connections closed loop, `--concurrency` at a time: the capacity;
//! 3. open loop at each of `--multipliers` times the capacity, `--seconds` each, SYNs
//!    sent in batches at the rate, with the persistent connections throughout. Each
//!    load runs in slices (`--slice-seconds`), each at its multiple of the capacity
//!    last measured; after each, once its attempts are over and the server has fallen
//!    quiet, the capacity is measured again closed loop on tuples the load never used:
//!    this VM's speed drifts by half within seconds, so a load's share is taken
//!    against the capacity measured beside it (each slice against the mean of the
//!    measurements before and after it). A server that does not fall quiet within
//!    10 s is not measured: the last capacity stands (its wreckage is not the
//!    machine's speed). So a load is a series of slices with rests between them, not
//!    one stretch: `--slice-seconds` as long as `--seconds` makes it one.
//!
//! For each phase it prints what was offered (SYNs actually sent), answered (per
//! second and as a share of the capacity beside it), given up, the latency of the
//! answered (SYN to answer) and the persistent connections' query rate as a share of
//! the unloaded one, and a line per slice. The last line, which bench/overload.sh
//! keeps, reads exactly:
//! `capacity C conn/s; at 3x offered answered A conn/s (R %); at 10x (R10 %)`
//! (C: the median of the capacity measurements; R: A over the capacity beside it).
//!
//! With `--device memory` (no root, no network) the server is in this process: the
//! real worker on an in-memory device whose link plays the NIC and the steering
//! program (admission by the same algorithm, drops when the worker's receive ring is
//! full), on `--server-core`; the generator drives the link from `--core`. This shows
//! what the stack and its admission do when the kernel's own receive path (on veth,
//! about 1.5 µs a packet before XDP, on the server's core) is not the bound, as on a
//! NIC with zero-copy AF_XDP. After each phase it prints the server's side: its
//! budget, what was shed and dropped, and how busy its core was.
//!
//! With `--hold N` (bench/million.sh) it instead opens N connections at `--rate`, each
//! answered once, acknowledged and then held open, idle; reads the server's resident
//! memory (`--server-pid`) before and after; asks new clients one at a time for 2 s
//! while the rest are held; and ends with exactly:
//! `held N connections, NNN bytes each, new client answered in NN ms`.

#[path = "../conn-cost/client.rs"]
#[allow(dead_code)]
mod client;
mod gen;
#[path = "../common/memory_server.rs"]
#[allow(dead_code)]
mod memory_server;
#[path = "../sluice-bench/queries.rs"]
#[allow(dead_code)]
mod queries;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use gen::{Generator, Port, Tally, PERSISTENT_SOURCE, SOURCES, SOURCE_BASE};
use memory_server::{MemoryServer, ServerSetup};
use stack::{MemoryDeviceConfig, MemoryLink, WorkerStats};
use xsk::{XdpProgram, XskConfig, XskSocket};

/// mimalloc, as in the sluice daemon: with `--device memory` the server runs in this
/// process, and its allocations should cost what they cost there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Device {
    /// Behind `--iface`, reached over AF_XDP.
    Xdp,
    /// In this process, on an in-memory device.
    Memory,
}

/// The in-process server's admission of new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AdmissionArg {
    Adaptive,
    Off,
}

/// Offers one-query DNS connections open loop at multiples of the server's capacity,
/// from a templated client on AF_XDP.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Where the server is: behind `--iface` (xdp), or in this process (memory).
    #[arg(long, value_enum, default_value = "xdp")]
    device: Device,
    /// The interface towards the server (its AF_XDP socket and steering program).
    #[arg(long, required_if_eq("device", "xdp"))]
    iface: Option<String>,
    /// The server's MAC address (aa:bb:cc:dd:ee:ff).
    #[arg(long, value_parser = parse_mac, required_if_eq("device", "xdp"))]
    server_mac: Option<[u8; 6]>,
    /// With `--device memory`: the zone the server serves.
    #[arg(long, required_if_eq("device", "memory"))]
    zone: Option<std::path::PathBuf>,
    /// With `--device memory`: the server's core.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// With `--device memory`: descriptors in each of the device's rings (its frames
    /// are four times as many); 4096 as sluice's AF_XDP sockets.
    #[arg(long, default_value_t = 4096)]
    ring: u32,
    /// With `--device memory`: the server's admission of new connections.
    #[arg(long, value_enum, default_value = "adaptive")]
    admission: AdmissionArg,
    /// The name asked (type A).
    #[arg(long, default_value = "www.example.test")]
    name: String,
    /// The core the generator runs on.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Connections in flight while the capacity is measured (closed loop).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Seconds of the first capacity measurement (after one of warm-up); those between
    /// slices take `--reference-seconds`.
    #[arg(long, default_value_t = 5.0)]
    capacity_seconds: f64,
    /// The offered loads, as multiples of the capacity.
    #[arg(long, value_delimiter = ',', default_value = "1.5,3,10")]
    multipliers: Vec<f64>,
    /// Seconds of each offered load.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Each offered load runs in slices of this many seconds, each followed by a
    /// closed-loop measurement of the capacity (after the slice's attempts are answered
    /// or given up): a load's share R is its answers over the capacity measured beside
    /// it. On a shared VM the capacity alone drifted from 391 to 666 k conn/s within
    /// 30 s, which made a ratio to a C taken once a minute earlier mostly noise.
    #[arg(long, default_value_t = 2.0)]
    slice_seconds: f64,
    /// Seconds of each capacity measurement between slices (after 0.2 s of warm-up).
    #[arg(long, default_value_t = 1.0)]
    reference_seconds: f64,
    /// An attempt unanswered for this long is given up.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Persistent connections beside the load.
    #[arg(long, default_value_t = 16)]
    persistent: usize,
    /// Queries a second of each persistent connection.
    #[arg(long, default_value_t = 500)]
    persistent_rate: u64,
    /// Write the phases as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Instead of the overload phases: open this many connections (at `--rate`), each
    /// answered once and then held open, idle; report the server's resident memory per
    /// held connection (`--server-pid`) and how fast a new client is answered.
    #[arg(long)]
    hold: Option<u64>,
    /// Connections opened a second, with `--hold` (at 50 000 a second a quarter were
    /// lost to the server's RX ring on the development machine).
    #[arg(long, default_value_t = 25_000.0)]
    rate: f64,
    /// The server's process, whose resident memory `--hold` reports.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC address {s:?}"))?;
    bytes
        .try_into()
        .map_err(|_| format!("bad MAC address {s:?}"))
}

/// New attempts waiting for room in the socket at most: past that, the generator is
/// the limit, and the rate it really offers is lower.
const MAX_SYN_BACKLOG: usize = 4096;

/// One phase's figures.
struct Phase {
    name: String,
    seconds: f64,
    tally: Tally,
    /// Frames the kernel dropped on the generator's own socket (its RX ring full or
    /// fill ring empty): then the generator, not the server, lost them.
    own_drops: u64,
    /// Attempts answered in each whole second of the phase: a dip at its start is a
    /// transient, one throughout is the steady state.
    per_second: Vec<u64>,
    /// The closed-loop capacity measured beside it (see `--slice-seconds`).
    beside: Option<f64>,
}

impl Phase {
    /// Adds a later slice of the same load.
    fn add(&mut self, other: &Phase) {
        self.seconds += other.seconds;
        self.tally.add(&other.tally);
        self.own_drops += other.own_drops;
        self.per_second.extend_from_slice(&other.per_second);
    }
    /// Answered over the capacity measured beside it.
    fn share_of_beside(&self) -> f64 {
        self.beside.map_or(f64::NAN, |c| self.answered() / c)
    }
    fn offered(&self) -> f64 {
        self.tally.started as f64 / self.seconds
    }
    fn answered(&self) -> f64 {
        self.tally.answered as f64 / self.seconds
    }
    fn persistent(&self) -> f64 {
        self.tally.persistent_answers as f64 / self.seconds
    }
}

/// How attempts start in a phase.
#[derive(Clone, Copy)]
enum Load {
    /// Only the persistent connections.
    None,
    /// Keep this many in flight.
    Closed(usize),
    /// This many a second.
    Open(f64),
}

struct Run<P> {
    gen: Generator,
    sock: P,
    epoch: Instant,
}

/// How long the server may take, once a load stops, to fall quiet (no frame for what
/// the load left for [`QUIET_FOR`], half its first retransmission timeout) before the
/// capacity is measured again.
const QUIET_WITHIN: Duration = Duration::from_secs(10);
const QUIET_FOR: f64 = 0.5;

/// An attempt of a capacity measurement unanswered for this long is given up and
/// replaced (its p99 is under 2 ms on veth): a SYN the server dropped (past its
/// ring-fill bound, which a closed loop of 256 can reach) would otherwise hold its
/// place in the loop for the load's whole timeout, and the loop would measure less
/// than the server can do.
const CAPACITY_TIMEOUT_US: u64 = 50_000;

impl<P: Port> Run<P> {
    /// Measures the capacity closed loop, `concurrency` attempts in flight, on the
    /// measurements' own tuples; its attempts all over when it returns (the given up
    /// among them counted in its tally).
    fn capacity(&mut self, concurrency: usize, warmup: f64, seconds: f64) -> Phase {
        let timeout = self.gen.timeout_us();
        self.gen.reference = true;
        self.gen.set_timeout_us(CAPACITY_TIMEOUT_US);
        let mut p = self.phase(
            "capacity (closed loop)",
            Load::Closed(concurrency),
            warmup,
            seconds,
        );
        p.tally.given_up += self.drain(0.2).given_up;
        self.gen.set_timeout_us(timeout);
        self.gen.reference = false;
        p
    }

    /// Waits, no new attempt started, until every attempt in flight is answered or
    /// given up, for `within` at most; what happened meanwhile.
    fn drain(&mut self, within: f64) -> Tally {
        let deadline = Instant::now() + Duration::from_secs_f64(within);
        let mut all = Tally::default();
        while self.gen.in_flight() > 0 && Instant::now() < deadline {
            all.add(&self.phase("drain", Load::None, 0.0, 0.005).tally);
        }
        all
    }

    /// Waits, the load paused, until the server sends nothing for what the load left
    /// (retransmissions, SYN-ACKs of given-up attempts) for [`QUIET_FOR`]; false if it
    /// has not within `within`.
    fn quiet(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self
                .phase("quiet", Load::None, 0.0, QUIET_FOR)
                .tally
                .load_frames
                == 0
            {
                return true;
            }
        }
        false
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Runs `load` for `warmup` then `seconds`; the tally is the second part's.
    fn phase(&mut self, name: &str, load: Load, warmup: f64, seconds: f64) -> Phase {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(warmup);
        let end = measure_from + Duration::from_secs_f64(seconds);
        let mut measuring = false;
        let mut started = 0u64;
        let mut drops_before = self.sock.own_drops();
        let mut per_second = Vec::new();
        let mut next_second = measure_from + Duration::from_secs(1);
        let mut answered_before = 0;
        loop {
            let t = Instant::now();
            if !measuring && t >= measure_from {
                measuring = true;
                self.gen.take_tally();
                drops_before = self.sock.own_drops();
            }
            if measuring && t >= next_second && next_second <= end {
                let answered = self.gen.tally.answered;
                per_second.push(answered - answered_before);
                answered_before = answered;
                next_second += Duration::from_secs(1);
            }
            if t >= end {
                break;
            }
            let now = self.now_us();
            self.gen.set_time(now);
            match load {
                Load::None => {}
                Load::Closed(n) => {
                    let want = n.saturating_sub(self.gen.in_flight());
                    self.gen.start(want.min(64));
                }
                Load::Open(rate) => {
                    // SYNs in batches as the time comes: due minus scheduled so far.
                    // What the socket cannot take in time is dropped, not sent late:
                    // the offered rate printed is what really left.
                    let due = (t.duration_since(start).as_secs_f64() * rate) as u64;
                    let n = due.saturating_sub(started);
                    let room = MAX_SYN_BACKLOG.saturating_sub(self.gen.backlog()) as u64;
                    self.gen.start(n.min(room) as usize);
                    started += n;
                }
            }
            self.gen.pump(&mut self.sock);
        }
        Phase {
            name: name.to_string(),
            seconds,
            tally: self.gen.take_tally(),
            own_drops: self.sock.own_drops().saturating_sub(drops_before),
            per_second,
            beside: None,
        }
    }
}

fn print_phase(p: &Phase, capacity: f64, unloaded: f64) {
    let l = &p.tally.latency;
    let pct = |v: f64, of: f64| if of > 0.0 { v / of * 100.0 } else { f64::NAN };
    println!(
        "{}: offered {:.0} conn/s, answered {:.0} conn/s ({:.0} % of capacity), given up {}, reset {} (by us {}), \
         latency p50 {:.1} ms p99 {:.1} ms, persistent {:.0} q/s ({:.0} % of unloaded; \
         p50 {:.1} ms p99 {:.1} ms, {} resent), dropped at the generator {}, answered each second {}",
        p.name,
        p.offered(),
        p.answered(),
        pct(p.answered(), capacity),
        p.tally.given_up,
        p.tally.reset,
        p.tally.resets_sent,
        l.value_at_quantile(0.5) as f64 / 1000.0,
        l.value_at_quantile(0.99) as f64 / 1000.0,
        p.persistent(),
        pct(p.persistent(), unloaded),
        p.tally.persistent_latency.value_at_quantile(0.5) as f64 / 1000.0,
        p.tally.persistent_latency.value_at_quantile(0.99) as f64 / 1000.0,
        p.tally.persistent_resends,
        p.own_drops,
        p.per_second
            .iter()
            .map(|n| format!("{}k", n / 1000))
            .collect::<Vec<_>>()
            .join(" "),
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("overload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading the server's /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// `--hold`: opens `n` connections that stay open, then measures.
fn hold(run: &mut Run<XskSocket>, args: &Args, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let pid = args.server_pid.ok_or("--hold needs --server-pid")?;
    if n as usize > gen::RING {
        return Err(format!("--hold holds at most {} connections", gen::RING).into());
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "sluice" {
        return Err(format!("process {pid} is {:?}, not sluice", comm.trim()).into());
    }
    let before = rss(pid)?;
    run.gen.hold = true;
    let start = Instant::now();
    let mut started = 0u64;
    let mut held = 0u64;
    let mut closed = 0u64;
    let mut given_up = 0u64;
    let mut last_report = Instant::now();
    loop {
        let t = Instant::now();
        let now = run.now_us();
        run.gen.set_time(now);
        if started < n {
            let due = ((t.duration_since(start).as_secs_f64() * args.rate) as u64).min(n);
            let room = MAX_SYN_BACKLOG.saturating_sub(run.gen.backlog()) as u64;
            let k = due.saturating_sub(started).min(room);
            run.gen.start(k as usize);
            started += k;
        } else if run.gen.in_flight() == 0 && run.gen.backlog() == 0 {
            break;
        }
        run.gen.pump(&mut run.sock);
        if last_report.elapsed() >= Duration::from_secs(1) {
            let tally = run.gen.take_tally();
            held += tally.held;
            closed += tally.held_closed;
            given_up += tally.given_up;
            eprintln!(
                "{:.0} s: held {} (closed by the server {}), given up {}, in flight {}",
                start.elapsed().as_secs_f64(),
                held - closed,
                closed,
                given_up,
                run.gen.in_flight()
            );
            last_report = Instant::now();
        }
        if start.elapsed() > Duration::from_secs_f64(n as f64 / args.rate.max(1.0) + 30.0) {
            return Err("the connections did not all open or fail within 30 s of the last".into());
        }
    }
    let tally = run.gen.take_tally();
    held += tally.held;
    closed += tally.held_closed;
    given_up += tally.given_up;
    let holding = held - closed;
    let after = rss(pid)?;
    let each = after.saturating_sub(before) / holding.max(1);
    println!(
        "opened {n} at {:.0}/s: held {holding}, closed by the server {closed}, given up {given_up}; \
         server resident memory {} MiB before, {} MiB after",
        args.rate,
        before >> 20,
        after >> 20
    );
    // New clients, one at a time, while the rest are held.
    run.gen.hold = false;
    run.gen.take_tally();
    let p = run.phase("new clients", Load::Closed(1), 0.0, 2.0);
    let l = &p.tally.latency;
    if p.tally.answered == 0 {
        return Err(format!("no new client answered while {holding} are held").into());
    }
    println!(
        "new clients: {} answered one at a time in 2 s, p50 {:.2} ms, max {:.2} ms",
        p.tally.answered,
        l.value_at_quantile(0.5) as f64 / 1000.0,
        l.max() as f64 / 1000.0
    );
    // The format has whole milliseconds: the median, rounded up (the line above
    // has it to the hundredth).
    println!(
        "held {holding} connections, {each} bytes each, new client answered in {:.0} ms",
        (l.value_at_quantile(0.5) as f64 / 1000.0).ceil()
    );
    Ok(())
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let query = queries::encode(&args.name, 1)?;
    let generator = |server_mac: [u8; 6]| {
        Generator::new(
            server_mac,
            &query,
            args.timeout_ms * 1000,
            if args.hold.is_some() {
                0
            } else {
                args.persistent
            },
            1_000_000 / args.persistent_rate.max(1),
        )
    };
    match args.device {
        Device::Xdp => {
            let (Some(iface), Some(server_mac)) = (&args.iface, args.server_mac) else {
                return Err("--device xdp needs --iface and --server-mac".into());
            };
            let mut program = XdpProgram::attach(iface, xsk::AttachMode::Auto)?;
            for i in 0..SOURCES {
                program.own_address(std::net::Ipv4Addr::from(u32::from(SOURCE_BASE) + i))?;
            }
            program.own_address(PERSISTENT_SOURCE)?;
            program.set_client_ports(32768, 65535)?;
            let sock = XskSocket::bind(iface, 0, &XskConfig::default())?;
            program.register_socket(&sock)?;
            pin(args.core)?;
            let mut run = Run {
                gen: generator(server_mac),
                sock,
                epoch: Instant::now(),
            };
            if let Some(n) = args.hold {
                return hold(&mut run, args, n);
            }
            overload(&mut run, args, &mut |_, _| {})
        }
        Device::Memory => {
            if args.hold.is_some() {
                return Err("--hold measures a sluice process: it needs --device xdp".into());
            }
            let zone = args.zone.as_deref().ok_or("--device memory needs --zone")?;
            let mut server = MemoryServer::start(ServerSetup {
                zone,
                core: args.server_core,
                device: MemoryDeviceConfig {
                    lossy: true,
                    ring: args.ring,
                    frames: args.ring.saturating_mul(4),
                },
                admission: match args.admission {
                    AdmissionArg::Adaptive => stack::Admission::Adaptive,
                    AdmissionArg::Off => stack::Admission::Off,
                },
                limits: sluice::dns_service::Limits::default(),
                busy_poll: stack::XdpConfig::new("").busy_poll,
            })?;
            pin(args.core)?;
            let mut run = Run {
                gen: generator(server.mac),
                sock: server.link,
                epoch: Instant::now(),
            };
            let stack = &mut server.stack;
            let mut last = (stack.stats().pop().unwrap_or_default(), 0, 0);
            let mut report = |link: &MemoryLink, print: bool| {
                let now = (
                    stack.stats().pop().unwrap_or_default(),
                    link.shed() + link.shed_ring(),
                    link.ring_full_drops(),
                );
                if print {
                    print_server(&last.0, &now.0, now.1 - last.1, now.2 - last.2);
                }
                last = now;
            };
            let result = overload(&mut run, args, &mut report);
            server.stack.shutdown(Duration::ZERO);
            result
        }
    }
}

fn pin(core: usize) -> Result<(), String> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(format!("cannot pin to core {core}"))
    }
}

/// The in-process server's side of the phase that just ended (counters `before` and
/// `after` it; `shed` (SYNs past the budget or while the ring filled) and `ring_full`,
/// what the link dropped in it).
fn print_server(before: &WorkerStats, after: &WorkerStats, shed: u64, ring_full: u64) {
    let busy = (after.busy_us - before.busy_us) as f64
        / (after.elapsed_us - before.elapsed_us).max(1) as f64;
    println!(
        "  server: syn budget {} /s (changed {} times), shed {shed}, dropped for a full ring {ring_full}, \
         SYNs reached it {}, handshakes {}, served {}, retransmitted {}, tx ring full {}, \
         connections {} ({:?}), core busy {busy:.2}",
        after.syn_budget,
        after.syn_budget_changes - before.syn_budget_changes,
        after.syns_received - before.syns_received,
        after.handshakes - before.handshakes,
        after.completed - before.completed,
        after.retransmits - before.retransmits,
        after.tx_ring_full - before.tx_ring_full,
        after.connections,
        after.states,
    );
}

/// The overload phases; `after_phase` reports the server's side of the phase that just
/// ended, if it can (and prints it when told to).
fn overload<P: Port>(
    run: &mut Run<P>,
    args: &Args,
    after_phase: &mut dyn FnMut(&P, bool),
) -> Result<(), Box<dyn std::error::Error>> {
    // Long enough for every persistent connection to be open and paced.
    let unloaded = run.phase("persistent alone", Load::None, 2.0, 3.0);
    let base = unloaded.persistent();
    after_phase(&run.sock, true);
    let cap = run.capacity(args.concurrency, 1.0, args.capacity_seconds);
    let mut reference = cap.answered();
    let mut references = vec![reference];
    println!(
        "persistent alone: {:.0} q/s from {} connections (paced at {} q/s in all)",
        base,
        args.persistent,
        args.persistent as u64 * args.persistent_rate
    );
    print_phase(&cap, reference, base);
    after_phase(&run.sock, true);
    // Long enough for the last attempts to be answered or given up, and the server's
    // budget, its demand gone, lifted.
    let settle = (args.timeout_ms as f64 / 1000.0).max(1.0) + 0.05;
    let mut phases = Vec::new();
    for &m in &args.multipliers {
        let mut total: Option<Phase> = None;
        // The capacity beside the slices: each slice's mean of the references before and
        // after it, weighted by its length.
        let mut beside = 0.0;
        let mut left = args.seconds;
        while left > 1e-9 {
            let seconds = left.min(args.slice_seconds.max(0.1));
            left -= seconds;
            // The reference's last attempts answered or given up first: they are not
            // the slice's.
            run.drain(settle);
            after_phase(&run.sock, false);
            let mut p = run.phase(&format!("{m}x"), Load::Open(reference * m), 0.0, seconds);
            after_phase(&run.sock, true);
            // The slice's attempts still in flight are answered (the slowest) or given
            // up in the pause, and its last SYNs may leave in it: they are the slice's.
            let pause = run.phase("pause", Load::None, 0.0, settle);
            p.tally.add_attempts(&pause.tally);
            let quiet = run.quiet(QUIET_WITHIN);
            after_phase(&run.sock, false);
            let after = if quiet {
                let r = run.capacity(args.concurrency, 0.2, args.reference_seconds);
                after_phase(&run.sock, false);
                Some(r)
            } else {
                None
            };
            println!(
                "  {m}x slice: offered {:.0} conn/s, answered {:.0} conn/s, capacity before {:.0} and after {}",
                p.offered(),
                p.answered(),
                reference,
                after.as_ref().map_or_else(
                    || format!("not measured (the server still busy with the load {} s after)", QUIET_WITHIN.as_secs()),
                    // An attempt of the closed loop given up held its place for the
                    // timeout: the measurement is low by about as many.
                    |r| format!("{:.0} ({} of its attempts given up)", r.answered(), r.tally.given_up)
                ),
            );
            // A server that has not recovered would measure its own wreckage, not the
            // machine's speed, and flatter the load's share: the last capacity
            // measured on a quiet server stands.
            let after = after.map_or(reference, |r| {
                references.push(r.answered());
                r.answered()
            });
            beside += (reference + after) / 2.0 * seconds;
            reference = after;
            match &mut total {
                None => total = Some(p),
                Some(t) => t.add(&p),
            }
        }
        let Some(mut p) = total else { continue };
        p.beside = Some(beside / p.seconds);
        print_phase(&p, p.beside.unwrap_or(f64::NAN), base);
        phases.push((m, p));
    }
    references.sort_by(f64::total_cmp);
    let capacity = references[references.len() / 2];
    if let Some(path) = &args.json {
        let mut out = format!(
            "{{\"capacity\": {capacity:.0}, \"capacity_measured\": {:?}, \"persistent_unloaded\": {base:.0}, \"phases\": [",
            references.iter().map(|r| r.round() as u64).collect::<Vec<_>>()
        );
        for (i, (m, p)) in phases.iter().enumerate() {
            let l = &p.tally.latency;
            out.push_str(&format!(
                "{}{{\"multiplier\": {m}, \"capacity_beside\": {:.0}, \"offered\": {:.0}, \"answered\": {:.0}, \
                 \"given_up\": {}, \"reset\": {}, \"p50_us\": {}, \"p99_us\": {}, \"persistent\": {:.0}}}",
                if i > 0 { ", " } else { "" },
                p.beside.unwrap_or(f64::NAN),
                p.offered(),
                p.answered(),
                p.tally.given_up,
                p.tally.reset,
                l.value_at_quantile(0.5),
                l.value_at_quantile(0.99),
                p.persistent()
            ));
        }
        out.push_str("]}\n");
        std::fs::write(path, out)?;
    }
    let at = |m: f64| phases.iter().find(|(x, _)| *x == m).map(|(_, p)| p);
    // R against the capacity measured beside the phase, not the median: this machine's
    // speed drifts by half within seconds.
    let share = |p: Option<&Phase>| p.map_or(f64::NAN, |p| p.share_of_beside() * 100.0);
    println!(
        "capacity {:.0} conn/s; at 3x offered answered {:.0} conn/s ({:.0} %); at 10x ({:.0} %)",
        capacity,
        at(3.0).map_or(f64::NAN, Phase::answered),
        share(at(3.0)),
        share(at(10.0)),
    );
    Ok(())
}
