//! sluice-bench: DNS-over-TCP load from sluice's own stack (its `connect`), over
//! AF_XDP or kernel sockets, with latencies in an HdrHistogram.
//!
//! Modes: persistent connections with N queries in flight (pipelined), persistent one at
//! a time (serial), one query per connection. Closed loop by default; `--rate` makes it
//! open loop with latencies corrected for coordinated omission, each query sent at its
//! due time to the microsecond (a timerfd, see `pacer`). Queries come from a
//! dnsperf-format file. It prints a progress line each second and, at the end, a table;
//! `--json` and `--plot` write the same figures as JSON and as an SVG percentile plot.

/// mimalloc, as in the sluice daemon.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod load;
mod pacer;
mod queries;
mod report;

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use load::{Counters, Mode, Plan, Protocol, Task, PHASE_MEASURE, PHASE_STOP};
use stack::{Backend, BackendConfig, KernelConfig, Listeners, Stack, StackConfig, XdpConfig};

/// DNS-over-TCP load generator on sluice's stack.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The server, ADDRESS:PORT.
    #[arg(long)]
    server: SocketAddrV4,
    /// How connections are used.
    #[arg(long, value_enum, default_value = "pipelined")]
    mode: Mode,
    /// What the server speaks: dns, or echo (the queries are sent to an echo server and
    /// any echoed frame with our ID counts as the answer).
    #[arg(long, value_enum, default_value = "dns")]
    protocol: Protocol,
    /// Concurrent connections (tasks), spread over the workers.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Queries in flight per connection in pipelined mode.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Open loop: total queries per second (per-connection mode: connections per second),
    /// each sent at its due time to the microsecond while its connection's window has
    /// room; latencies count from the due time, and what is due but unanswered when the
    /// run stops counts at its age then.
    /// Without it the load is closed loop: as fast as the answers come.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up, not measured; it starts once every connection's first connect
    /// has finished.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds before an unanswered query (or a connect) counts as a timeout. A query
    /// given up on also enters the latencies at its age (in per-connection mode, a
    /// connect that timed out too); in persistent modes the queries that fall due while
    /// a connection is re-opened go out late and are charged for it.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// Queries in dnsperf's format (NAME TYPE per line). Default: a few over example.test.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Where the client's TCP runs: kernel sockets, or sluice's own TCP on AF_XDP
    /// (then --iface and --addr say where; the generator is then much cheaper per
    /// connection than kernel sockets).
    #[arg(long, default_value = "kernel")]
    backend: Backend,
    /// AF_XDP backend: the interface the client's queues are on.
    #[arg(long)]
    iface: Option<String>,
    /// AF_XDP backend: the client's own IPv4 address on that interface.
    #[arg(long = "addr")]
    addrs: Vec<std::net::Ipv4Addr>,
    /// AF_XDP backend: preferred busy polling of the queues, microseconds per call (0: off).
    #[arg(long, default_value_t = 0)]
    napi_busy_poll: u32,
    /// AF_XDP backend: how long an idle worker keeps polling before it sleeps on its
    /// socket, in microseconds (the stack's default is 200). On veth the receive work runs in a NAPI
    /// thread on the worker's own core, which a polling worker only lets run when the
    /// scheduler preempts it.
    #[arg(long)]
    busy_poll: Option<u64>,
    /// Cores for the client's workers, e.g. 1 or 1-3 (one worker per core).
    #[arg(long, value_parser = parse_cores, default_value = "1")]
    cores: Vec<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a latency-percentile plot (SVG) here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// A label for this run in the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?}: a rate is a positive number of queries per second"
        )),
    }
}

fn parse_cores(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| format!("{s:?} is not a core number"))
}

const DEFAULT_QUERIES: &str = "\
example.test A
www.example.test A
www.example.test AAAA
example.test MX
example.test NS
txt.example.test TXT
mail.example.test A
nonexistent.example.test A
";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(clean) => {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let text = match &args.queries {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => DEFAULT_QUERIES.to_string(),
    };
    let queries = queries::parse(&text).map_err(|e| {
        format!(
            "{}: {e}",
            args.queries
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    })?;
    if args.connections == 0 || args.duration <= 0.0 {
        return Err("--connections and --duration must be positive".into());
    }
    let workers = args.cores.len().max(1);
    let plan = Arc::new(Plan {
        protocol: args.protocol,
        mode: args.mode,
        server: args.server,
        in_flight: args.in_flight,
        rate_per_connection: args.rate.map(|r| r / args.connections as f64),
        timeout: Duration::from_secs_f64(args.timeout),
        queries,
    });
    let backend = match args.backend {
        Backend::Kernel => BackendConfig::Kernel(KernelConfig {
            workers: Some(workers),
            ..KernelConfig::default()
        }),
        Backend::Xdp => {
            let iface = args
                .iface
                .clone()
                .ok_or("--backend xdp needs --iface (the interface the client's queues are on)")?;
            let mut xdp = XdpConfig {
                napi_busy_poll_us: args.napi_busy_poll,
                // A load generator opening tens of thousands of connections a second
                // needs its ports back soon: a wide client range, and TIME-WAIT held
                // 250 ms rather than 2 MSL (what tcp_tw_reuse gives the kernel-socket
                // client; the server side is not affected).
                client_ports: stack::PortRange {
                    first: 10000,
                    last: 60999,
                },
                tcp: tcp::tcb::Config {
                    time_wait: Duration::from_millis(250),
                    ..tcp::tcb::Config::default()
                },
                ..XdpConfig::new(iface)
            };
            if let Some(us) = args.busy_poll {
                xdp.busy_poll = Duration::from_micros(us);
            }
            BackendConfig::Xdp(xdp)
        }
        // clap's parser (Backend's FromStr) offers xdp and kernel only.
        Backend::Memory => {
            return Err("the memory backend has its own benchmark (conn-cost)".into())
        }
    };
    let config = StackConfig {
        backend,
        addrs: args.addrs.clone(),
        cores: args.cores.clone(),
        connect_timeout: Duration::from_secs_f64(args.timeout),
    };
    let mut stack = Stack::start(config, Listeners::new())?;
    // The AF_XDP backend has a worker per queue, whatever the core list says.
    let workers = stack.workers();
    let counters = Arc::new(Counters::default());
    let phase = Arc::new(AtomicU8::new(load::PHASE_WARMUP));
    let (hist_tx, hist_rx) = mpsc::channel();
    for w in 0..workers {
        let share = args.connections / workers + usize::from(w < args.connections % workers);
        let (plan, counters, phase, hist_tx) = (
            plan.clone(),
            counters.clone(),
            phase.clone(),
            hist_tx.clone(),
        );
        stack.spawn(w, move |ctx| async move {
            let latencies = std::rc::Rc::new(std::cell::RefCell::new(load::new_histogram()));
            let pacer = plan.rate_per_connection.and_then(|_| {
                pacer::Pacer::start(share)
                    .inspect_err(|e| {
                        eprintln!(
                            "sluice-bench: no timerfd for the open loop ({e}): pacing falls back \
                             to tokio's millisecond timers"
                        )
                    })
                    .ok()
            });
            let tasks: Vec<_> = (0..share)
                .map(|i| {
                    let task = Task {
                        ctx: ctx.clone(),
                        plan: plan.clone(),
                        counters: counters.clone(),
                        phase: phase.clone(),
                        latencies: latencies.clone(),
                        first_query: i * 7 + w,
                        pacer: pacer.clone().map(|p| (p, i)),
                        connected_once: std::cell::Cell::new(false),
                    };
                    tokio::task::spawn_local(task.run())
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
            let h = latencies.borrow().clone();
            let _ = hist_tx.send(h);
        })?;
    }
    drop(hist_tx);

    // The warm-up starts once every task's first connect has finished (each is bounded
    // by the timeout): a connect that needs its SYN retransmitted takes a second, which
    // would otherwise land in the measurement.
    let opening = Instant::now();
    while counters.first_connects.load(Ordering::Relaxed) < args.connections as u64
        && opening.elapsed() < Duration::from_secs_f64(args.timeout) + Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !args.quiet && opening.elapsed() > Duration::from_millis(500) {
        eprintln!(
            "sluice-bench: the connections took {:.1}s to open",
            opening.elapsed().as_secs_f64()
        );
    }
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let duration = Duration::from_secs_f64(args.duration);
    std::thread::sleep(warmup);
    let before = report::Snapshot::take(&counters);
    let stats_before = stack.stats();
    phase.store(PHASE_MEASURE, Ordering::Release);
    let started = Instant::now();
    let mut last = before;
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(started.elapsed())));
        let now = report::Snapshot::take(&counters);
        let max_latency_us = counters.max_latency_us.swap(0, Ordering::Relaxed);
        if !args.quiet {
            eprintln!(
                "{}",
                report::progress(started.elapsed(), &before, &last, &now, max_latency_us)
            );
        }
        last = now;
    }
    let _ = counters.stopped_at.set(Instant::now());
    phase.store(PHASE_STOP, Ordering::Release);
    let elapsed = started.elapsed();
    let after = report::Snapshot::take(&counters);
    let generator_busy = busy_share(&stats_before, &stack.stats());
    let mut merged = load::new_histogram();
    for h in hist_rx.iter().take(workers) {
        merged.add(&h)?;
    }
    stack.shutdown(Duration::from_secs(1));

    let mut result = report::Result::new(
        args.label.clone(),
        format!("{:?}", args.mode).to_lowercase(),
        args.connections,
        args.in_flight,
        args.rate,
        elapsed,
        &before,
        &after,
        &merged,
        generator_busy,
    );
    // Every task has charged its unanswered queries by now (the histograms are in).
    result.unanswered = counters.unanswered.load(Ordering::Relaxed);
    println!("{}", result.table());
    if let Some(path) = &args.json {
        std::fs::write(path, result.json(&merged))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, report::svg(&[(&result, &merged)]))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(result.errors() == 0)
}

/// The share of their time the workers were busy, and polled with nothing to do,
/// between two snapshots of their stats; None when the backend does not account for
/// it (kernel sockets).
fn busy_share(
    before: &[stack::WorkerStats],
    after: &[stack::WorkerStats],
) -> Option<report::GeneratorLoad> {
    let (busy, idle, elapsed) =
        before
            .iter()
            .zip(after)
            .fold((0u64, 0u64, 0u64), |(b, i, e), (x, y)| {
                (
                    b + y.busy_us.saturating_sub(x.busy_us),
                    i + y.idle_poll_us.saturating_sub(x.idle_poll_us),
                    e + y.elapsed_us.saturating_sub(x.elapsed_us),
                )
            });
    (elapsed > 0).then(|| report::GeneratorLoad {
        busy: busy as f64 / elapsed as f64,
        idle_poll: idle as f64 / elapsed as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "sluice-bench",
            "--server",
            "198.18.0.1:53",
            "--mode",
            "per-connection",
            "--rate",
            "1000",
            "--cores",
            "1",
            "--protocol",
            "echo",
        ])
        .unwrap();
        assert_eq!(a.mode, Mode::PerConnection);
        assert!(Args::try_parse_from(["sluice-bench", "--server", "nowhere"]).is_err());
        for bad in ["0", "-5", "inf", "NaN", "fast"] {
            let r = Args::try_parse_from(["sluice-bench", "--server", "1.2.3.4:53", "--rate", bad]);
            assert!(r.is_err(), "--rate {bad} accepted");
        }
    }
}
