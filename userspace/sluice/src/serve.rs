//! `sluice serve`: run the stack with listeners until SIGINT/SIGTERM.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use stack::{Backend, Flow, Listener, Listeners, Stack, StackConfig};

/// Options of `sluice serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The interface whose queues the AF_XDP backend serves (kernel backend: optional).
    #[arg(long)]
    iface: Option<String>,
    /// An address to serve (repeatable); the kernel backend serves every local address
    /// when none is given.
    #[arg(long = "addr")]
    addrs: Vec<Ipv4Addr>,
    /// A port and its handler, PORT=HANDLER (repeatable). Handlers: echo, discard.
    #[arg(long = "listen", value_parser = parse_listen, required = true)]
    listen: Vec<(u16, BuiltinHandler)>,
    /// Where the TCP runs: xdp (sluice's TCP over AF_XDP) or kernel (kernel sockets).
    #[arg(long, default_value = "kernel")]
    backend: Backend,
    /// Cores to pin workers to, e.g. 0-3,6.
    #[arg(long)]
    cores: Option<CoreList>,
    /// Workers of the kernel backend (default: one per core in --cores, or one).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds flows in progress get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// AF_XDP: run each queue's NAPI from the worker's own loop (preferred busy
    /// polling) for up to this many microseconds per call; 0 for off. Set the
    /// interface's napi_defer_hard_irqs and gro_flush_timeout too (deploy/nic-setup.sh).
    #[arg(long, default_value_t = 0)]
    napi_busy_poll: u32,
}

/// The handlers built into the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinHandler {
    /// Sends back what it reads; closes after the peer does.
    Echo,
    /// Reads and drops everything; closes after the peer does.
    Discard,
}

fn parse_listen(s: &str) -> Result<(u16, BuiltinHandler), String> {
    let (port, handler) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PORT=HANDLER, e.g. 7=echo"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    if port == 0 {
        return Err("port 0 cannot be listened on".into());
    }
    let handler = match handler {
        "echo" => BuiltinHandler::Echo,
        "discard" => BuiltinHandler::Discard,
        other => return Err(format!("unknown handler {other:?} (echo, discard)")),
    };
    Ok((port, handler))
}

/// A list of cores, as `0-3,6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreList(pub Vec<usize>);

impl std::str::FromStr for CoreList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_cores(s).map(CoreList)
    }
}

/// Parses a core list such as `0-3,6`.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not a core or a range of cores (e.g. 0-3,6)");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cores.is_empty() {
        return Err("the core list is empty".into());
    }
    Ok(cores)
}

/// Counters the built-in handlers keep, printed at exit.
#[derive(Default)]
struct HandlerStats {
    flows: AtomicU64,
    bytes: AtomicU64,
}

fn listener(handler: BuiltinHandler, stats: Arc<HandlerStats>) -> Listener {
    Listener::new(move |mut flow: Flow| {
        let stats = stats.clone();
        async move {
            stats.flows.fetch_add(1, Ordering::Relaxed);
            while let Ok(Some(data)) = flow.read().await {
                stats.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                if handler == BuiltinHandler::Echo && flow.write(data).await.is_err() {
                    return;
                }
            }
            flow.close().await;
        }
    })
}

pub fn run(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(iface) = &args.iface {
        xsk::iface::ifindex(iface)?;
    }
    let stats = Arc::new(HandlerStats::default());
    let mut listeners = Listeners::new();
    for (port, handler) in &args.listen {
        if listeners.get(*port).is_some() {
            return Err(format!("port {port} is given twice").into());
        }
        listeners.listen(*port, listener(*handler, stats.clone()));
    }
    let config = StackConfig {
        backend: args.backend,
        iface: args.iface.clone(),
        addrs: args.addrs.clone(),
        cores: args.cores.clone().map(|c| c.0).unwrap_or_default(),
        workers: args.workers,
        napi_busy_poll_us: args.napi_busy_poll,
        ..StackConfig::default()
    };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let mut stack = Stack::start(config, listeners)?;
    let ports: Vec<String> = args
        .listen
        .iter()
        .map(|(p, h)| format!("{p}={h:?}").to_lowercase())
        .collect();
    eprintln!(
        "sluice: serving {} on {} backend, {} worker(s)",
        ports.join(" "),
        format!("{:?}", args.backend).to_lowercase(),
        stack.workers()
    );
    let signal = signals.forever().next();
    eprintln!(
        "sluice: {} received, draining for up to {} s",
        signal.map(signal_name).unwrap_or("signal"),
        args.drain
    );
    stack.shutdown(Duration::from_secs_f64(args.drain.max(0.0)));
    eprintln!(
        "sluice: served {} flows, {} bytes",
        stats.flows.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed)
    );
    Ok(())
}

fn signal_name(s: i32) -> &'static str {
    match s {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs_parse() {
        assert_eq!(parse_listen("7=echo").unwrap(), (7, BuiltinHandler::Echo));
        assert_eq!(
            parse_listen("9=discard").unwrap(),
            (9, BuiltinHandler::Discard)
        );
        assert!(parse_listen("7").unwrap_err().contains("PORT=HANDLER"));
        assert!(parse_listen("0=echo").is_err());
        assert!(parse_listen("70000=echo").is_err());
        assert!(parse_listen("7=dns2")
            .unwrap_err()
            .contains("unknown handler"));
    }

    #[test]
    fn core_lists_parse() {
        assert_eq!(parse_cores("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_cores("1").unwrap(), vec![1]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("a").is_err());
        assert!(parse_cores("").is_err());
    }
}
