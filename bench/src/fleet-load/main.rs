//! fleet-load: DNS-over-TCP load that counts every query's fate, for the fleet demo
//! (deploy/fleet/demo.sh): persistent connections asking one query after another, and
//! one-query connections opened one after another, from kernel sockets, for
//! `--seconds`. When a connection is refused, reset or closed before the answer, the
//! query is asked again once on a new connection, as RFC 7766 (6.2.1) asks of DNS
//! clients whose connection closed with queries unanswered (an ECMP path that moves
//! takes a flow to a host that never saw it, which resets it); a query fails when that
//! fails too, or when an answer does not come within `--timeout-ms` (no retry then).
//! At the end it prints one line of JSON: queries, retried, failed, and when the first
//! and the last of the failed queries were sent (Unix milliseconds), so the caller can
//! tell which event lost which queries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

#[path = "../sluice-bench/queries.rs"]
#[allow(dead_code)]
mod queries;

/// DNS-over-TCP load that counts each query's fate.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The server (the fleet's service address), ADDR:PORT.
    #[arg(long)]
    server: SocketAddr,
    /// The name asked (type A).
    #[arg(long, default_value = "www.example.test")]
    name: String,
    /// Persistent connections, each asking one query after another.
    #[arg(long, default_value_t = 4)]
    persistent: usize,
    /// Clients opening one-query connections one after another.
    #[arg(long, default_value_t = 4)]
    one_query: usize,
    /// Pause between a client's queries, milliseconds (the load is paced, not a flood).
    #[arg(long, default_value_t = 10)]
    pause_ms: u64,
    /// A query unanswered for this long has failed.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// How long to run at most.
    #[arg(long)]
    seconds: f64,
    /// Stop as soon as this file exists (the caller says when its events are over).
    #[arg(long)]
    stop_file: Option<std::path::PathBuf>,
}

/// What every client adds to.
#[derive(Default)]
struct Tally {
    queries: AtomicU64,
    /// Queries asked again on a new connection after theirs closed.
    retried: AtomicU64,
    failed: AtomicU64,
    /// When the first and last failed queries were sent, Unix milliseconds (0: none).
    first_failure: AtomicU64,
    last_failure: AtomicU64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Tally {
    /// One query sent at `sent` (Unix milliseconds).
    fn record(&self, ok: bool, retried: bool, sent: u64) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.retried
            .fetch_add(u64::from(retried), Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_failure.fetch_min(sent, Ordering::Relaxed);
            self.last_failure.fetch_max(sent, Ordering::Relaxed);
        }
    }
}

/// Asks `query` (with `id`) on `c` and reads one answer with that ID.
fn ask(c: &mut TcpStream, query: &[u8], id: u16) -> std::io::Result<()> {
    let mut msg = Vec::with_capacity(query.len() + 2);
    msg.extend_from_slice(&(query.len() as u16).to_be_bytes());
    msg.extend_from_slice(query);
    msg[2..4].copy_from_slice(&id.to_be_bytes());
    c.write_all(&msg)?;
    let mut len = [0u8; 2];
    c.read_exact(&mut len)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    c.read_exact(&mut answer)?;
    if answer.get(..2) != Some(&id.to_be_bytes()[..]) {
        return Err(std::io::Error::other("an answer to another query"));
    }
    Ok(())
}

/// Whether `e` is a query that went unanswered in time (not retried), rather than a
/// connection refused, reset or closed (retried once).
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// Asks on a new connection; returns it for reuse when the answer came.
fn ask_new(
    server: SocketAddr,
    timeout: Duration,
    query: &[u8],
    id: u16,
) -> std::io::Result<TcpStream> {
    let mut c = connect(server, timeout)?;
    ask(&mut c, query, id)?;
    Ok(c)
}

/// One query with one retry on a new connection after a refused, reset or closed one:
/// whether it was answered, whether it was retried, and the connection to reuse.
fn ask_retrying(
    conn: Option<TcpStream>,
    server: SocketAddr,
    timeout: Duration,
    query: &[u8],
    id: u16,
) -> (bool, bool, Option<TcpStream>) {
    let first = match conn {
        Some(mut c) => ask(&mut c, query, id).map(|()| c),
        None => ask_new(server, timeout, query, id),
    };
    match first {
        Ok(c) => (true, false, Some(c)),
        Err(e) if timed_out(&e) => (false, false, None),
        Err(_) => match ask_new(server, timeout, query, id) {
            Ok(c) => (true, true, Some(c)),
            Err(_) => (false, true, None),
        },
    }
}

fn connect(server: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let c = TcpStream::connect_timeout(&server, timeout)?;
    c.set_read_timeout(Some(timeout))?;
    c.set_write_timeout(Some(timeout))?;
    c.set_nodelay(true)?;
    Ok(c)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let query = match queries::encode(&args.name, 1) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("fleet-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tally = Arc::new(Tally {
        first_failure: AtomicU64::new(u64::MAX),
        ..Tally::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let pause = Duration::from_millis(args.pause_ms);
    let started = unix_ms();
    let mut threads = Vec::new();
    for i in 0..args.persistent {
        let (tally, stop, query) = (tally.clone(), stop.clone(), query.clone());
        let server = args.server;
        threads.push(std::thread::spawn(move || {
            let mut conn: Option<TcpStream> = None;
            let mut id = (i as u16) << 12;
            while !stop.load(Ordering::Relaxed) {
                id = id.wrapping_add(1);
                // A connection that failed is opened again for the next query.
                let sent = unix_ms();
                let (ok, retried, c) = ask_retrying(conn.take(), server, timeout, &query, id);
                conn = c;
                tally.record(ok, retried, sent);
                std::thread::sleep(pause);
            }
        }));
    }
    for i in 0..args.one_query {
        let (tally, stop, query) = (tally.clone(), stop.clone(), query.clone());
        let server = args.server;
        threads.push(std::thread::spawn(move || {
            let mut id = 0x8000u16 | ((i as u16) << 10);
            while !stop.load(Ordering::Relaxed) {
                id = id.wrapping_add(1);
                let sent = unix_ms();
                let (ok, retried, _) = ask_retrying(None, server, timeout, &query, id);
                tally.record(ok, retried, sent);
                std::thread::sleep(pause);
            }
        }));
    }
    let end = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.0));
    while Instant::now() < end && !args.stop_file.as_ref().is_some_and(|f| f.exists()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "{{\"queries\": {}, \"retried\": {}, \"failed\": {}, \"started_ms\": {started}, \"first_failure_ms\": {}, \"last_failure_ms\": {}}}",
        g(&tally.queries),
        g(&tally.retried),
        g(&tally.failed),
        g(&tally.first_failure) % u64::MAX,
        g(&tally.last_failure)
    );
    ExitCode::SUCCESS
}
