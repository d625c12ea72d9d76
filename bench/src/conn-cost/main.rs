//! conn-cost: what sluice's own stack costs per DNS-over-TCP connection and per
//! pipelined query, without the kernel in the way.
//!
//! The server is the real thing (the AF_XDP worker's loop, sluice's TCP, the DNS
//! service the daemon serves) on one pinned core, on the in-memory device instead of
//! an AF_XDP socket. The load is a templated client (`client`) on another core that
//! writes the clients' frames straight into the device's rings, so that the server
//! core is the bound. Each figure is the server's busy time (the worker's own
//! accounting of the rounds that did work, and the flow tasks they woke) divided by
//! what was done in the same window, at saturation; `server core busy` says how much
//! of the window the server was busy, which is how one knows it was the bound.
//!
//! The last line, which bench/conn-cost.sh keeps, reads exactly:
//! `per-connection NNN ns, per-query NNN ns, server core busy 0.NN` (medians of the
//! runs; the busy fraction is the lower of the two workloads' medians).

/// mimalloc, as in the sluice daemon: the server's allocations should cost what they
/// cost there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;
#[path = "../common/memory_server.rs"]
mod memory_server;
#[path = "../sluice-bench/queries.rs"]
#[allow(dead_code)]
mod queries;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use client::{Clients, Workload};
use memory_server::{MemoryServer, Pinned, ServerSetup};
use sluice::dns_service::Limits;
use stack::{Admission, MemoryDeviceConfig};

/// Server-core cost of one-query DNS connections and of pipelined queries, on the
/// in-memory device.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Which workloads to run.
    #[arg(long, value_enum, default_value = "both")]
    workload: Which,
    /// Runs of each workload; the figures are their medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds measured per run, after the warm-up.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Seconds of warm-up per run.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Concurrent clients of the one-query workload.
    #[arg(long, default_value_t = 512)]
    clients: usize,
    /// Persistent connections of the pipelined workload (128 keep this machine's
    /// server core busy; 64 left it idle a tenth of the time).
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Queries per batch (one segment) of the pipelined workload.
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// The server's core.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// The load's core.
    #[arg(long, default_value_t = 1)]
    client_core: usize,
    /// The zone served.
    #[arg(long)]
    zone: PathBuf,
    /// The name asked (type A).
    #[arg(long, default_value = "www.example.test")]
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    OneQuery,
    Pipelined,
    Both,
}

/// One run's figures.
#[derive(Clone, Copy, Debug)]
struct Figures {
    /// Server-core nanoseconds per unit of work (connection or query).
    ns_per_unit: f64,
    /// Units per second.
    rate: f64,
    /// The share of the window the server was busy.
    busy: f64,
    /// The load's own nanoseconds per unit: the time of its polls that moved frames (it
    /// spins between them, on a core of its own).
    client_ns_per_unit: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conn-cost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<String, String> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for core in [args.server_core, args.client_core] {
        if !cores.iter().any(|c| c.id == core) {
            return Err(format!("no core {core} (this machine has {})", cores.len()));
        }
    }
    if args.runs == 0 || args.seconds <= 0.0 {
        return Err("--runs and --seconds must be positive".into());
    }
    let query = queries::encode(&args.name, 1)?;
    let mut parts = Vec::new();
    let mut busy = Vec::new();
    let workloads: &[(&str, &str, Workload)] = &[
        ("one-query", "per-connection", Workload::OneQuery),
        (
            "pipelined",
            "per-query",
            Workload::Pipelined { depth: args.depth },
        ),
    ];
    for &(name, label, workload) in workloads {
        let wanted = match args.workload {
            Which::Both => true,
            Which::OneQuery => workload == Workload::OneQuery,
            Which::Pipelined => workload != Workload::OneQuery,
        };
        if !wanted {
            continue;
        }
        let mut runs = Vec::new();
        for i in 1..=args.runs {
            let f = run_once(args, workload, &query)?;
            eprintln!(
                "{name} run {i}: {:.0} ns per {} on the server core, {:.0}/s, server busy {:.2}, load {:.0} ns per {}",
                f.ns_per_unit,
                if workload == Workload::OneQuery { "connection" } else { "query" },
                f.rate,
                f.busy,
                f.client_ns_per_unit,
                if workload == Workload::OneQuery { "connection" } else { "query" },
            );
            runs.push(f);
        }
        let ns = median(runs.iter().map(|f| f.ns_per_unit).collect());
        busy.push(median(runs.iter().map(|f| f.busy).collect()));
        parts.push(format!("{label} {ns:.0} ns"));
    }
    let busy = busy.into_iter().fold(f64::INFINITY, f64::min);
    Ok(format!("{}, server core busy {busy:.2}", parts.join(", ")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One run: a fresh stack with the DNS service on the in-memory device, loaded by the
/// templated clients from this thread.
fn run_once(args: &Args, workload: Workload, query: &[u8]) -> Result<Figures, String> {
    let limits = Limits {
        // The load holds at most a few hundred connections; the limits are not what is
        // measured, but their accounting is, so they stay on.
        max_connections: 1 << 20,
        max_per_source: 1 << 20,
        ..Limits::default()
    };
    let MemoryServer {
        mut stack,
        mut link,
        mac: server_mac,
    } = MemoryServer::start(ServerSetup {
        zone: &args.zone,
        core: args.server_core,
        device: MemoryDeviceConfig::default(),
        admission: Admission::Off,
        limits,
        // Never asleep during a run: the figures are of work, not of wake-ups.
        busy_poll: Duration::from_millis(100),
    })?;
    let _pinned = Pinned::to(args.client_core);
    let count = match workload {
        Workload::OneQuery => args.clients,
        Workload::Pipelined { .. } => args.connections,
    };
    let mut clients = Clients::new(count, workload, server_mac, query);
    let started = Instant::now();
    // Drives the clients until `until`; returns the time of the polls that moved
    // frames.
    let drive = |clients: &mut Clients, link: &mut stack::MemoryLink, until: Instant| {
        let mut working = Duration::ZERO;
        let mut last = Instant::now();
        loop {
            let worked = clients.poll(link);
            let now = Instant::now();
            if worked {
                working += now - last;
            }
            last = now;
            clients.ts_now = (now - started).as_millis() as u32 + 1;
            if now >= until {
                return working;
            }
        }
    };
    drive(
        &mut clients,
        &mut link,
        started + Duration::from_secs_f64(args.warmup),
    );
    let before = stack.stats().pop().ok_or("the worker did not report")?;
    let tally_before = clients.tally;
    let window_start = Instant::now();
    let working = drive(
        &mut clients,
        &mut link,
        window_start + Duration::from_secs_f64(args.seconds),
    );
    let after = stack.stats().pop().ok_or("the worker did not report")?;
    let tally = clients.tally;
    stack.shutdown(Duration::ZERO);
    let units = match workload {
        Workload::OneQuery => tally.connections - tally_before.connections,
        Workload::Pipelined { .. } => tally.answers - tally_before.answers,
    };
    if units == 0 {
        return Err(format!("nothing was answered: {tally:?}"));
    }
    if tally.resets > 0 {
        eprintln!("conn-cost: the server reset {} connections", tally.resets);
    }
    let busy_ns = (after.busy_us - before.busy_us) as f64 * 1e3;
    let elapsed_ns = (after.elapsed_us - before.elapsed_us).max(1) as f64 * 1e3;
    Ok(Figures {
        ns_per_unit: busy_ns / units as f64,
        rate: units as f64 / (elapsed_ns / 1e9),
        busy: busy_ns / elapsed_ns,
        client_ns_per_unit: working.as_nanos() as f64 / units as f64,
    })
}
