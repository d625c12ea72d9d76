//! `sluice serve`: run the stack with listeners until SIGINT/SIGTERM (drain, then exit);
//! SIGHUP reloads the zones. Everything the flags say a TOML file (`--config`) can say;
//! flags win over the file.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use stack::{
    Backend, BackendConfig, Flow, KernelConfig, Listener, Listeners, Stack, StackConfig, XdpConfig,
};

use crate::dns_service::{DnsService, Limits, ZoneSource};

/// What a duration setting means by "never": a hundred years. Every duration is capped
/// here, so the timeouts and deadlines built from them cannot overflow the clock (1e20 s
/// overflows Duration itself, 1e19 s an Instant).
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Where `sluice stats` finds a running daemon unless told otherwise.
pub const DEFAULT_CONTROL: &str = "/run/sluice/control.sock";

/// Options of `sluice serve`.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// A TOML file with any of these settings (same names, `listen` and `zone` as
    /// lists); flags given on the command line win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The interface whose queues the AF_XDP backend serves (kernel backend: optional).
    #[arg(long)]
    iface: Option<String>,
    /// An address to serve (repeatable); the kernel backend serves every local address
    /// when none is given.
    #[arg(long = "addr")]
    addrs: Vec<Ipv4Addr>,
    /// A port and its handler, PORT=HANDLER (repeatable). Handlers: dns (needs --zone),
    /// echo, discard.
    #[arg(long = "listen", value_parser = parse_listen)]
    listen: Vec<(u16, BuiltinHandler)>,
    /// A zone file to serve (repeatable), optionally as FILE=ZONE-NAME when the file
    /// does not say its origin.
    #[arg(long = "zone", value_parser = parse_zone)]
    zones: Vec<ZoneSource>,
    /// Where the TCP runs: xdp (sluice's TCP over AF_XDP) or kernel (kernel sockets)
    /// [default: kernel].
    #[arg(long)]
    backend: Option<Backend>,
    /// Cores to pin workers to, e.g. 0-3,6.
    #[arg(long)]
    cores: Option<CoreList>,
    /// Workers of the kernel backend (default: one per core in --cores, or one).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds flows in progress get to finish after SIGINT/SIGTERM [default: 5].
    #[arg(long)]
    drain: Option<f64>,
    /// AF_XDP: run each queue's NAPI from the worker's own loop (preferred busy
    /// polling) for up to this many microseconds per call; 0 for off. Set the
    /// interface's napi_defer_hard_irqs and gro_flush_timeout too (deploy/nic-setup.sh).
    #[arg(long)]
    napi_busy_poll: Option<u32>,
    /// AF_XDP: microseconds an idle worker keeps polling its rings before it sleeps
    /// [default: 200]. Polling answers the next frame sooner; sleeping gives the core
    /// to whatever shares it (a NAPI thread, on veth or a threaded-NAPI NIC).
    #[arg(long)]
    busy_poll: Option<u64>,
    /// AF_XDP: half-open handshakes a worker holds at most [default: 4096]; past that,
    /// SYNs are answered with SYN cookies and no state (a flood then costs no memory).
    #[arg(long)]
    syn_backlog: Option<usize>,
    /// DNS: seconds a connection may stay idle [default: 10]; advertised to clients in
    /// edns-tcp-keepalive (RFC 7828).
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// DNS: seconds a connection may live at most [default: 120].
    #[arg(long)]
    max_lifetime: Option<f64>,
    /// DNS: concurrent connections at most [default: 100000].
    #[arg(long)]
    max_connections: Option<usize>,
    /// DNS: concurrent connections from one source address at most [default: 1000].
    #[arg(long)]
    max_per_source: Option<usize>,
    /// DNS: a source prefix allowed to transfer zones (AXFR), e.g. 198.18.0.0/16
    /// (repeatable); none by default.
    #[arg(long = "transfer-allow", value_parser = parse_prefix)]
    transfer_allow: Vec<(Ipv4Addr, u8)>,
    /// The control socket `sluice stats` reads [default: /run/sluice/control.sock].
    #[arg(long)]
    control: Option<PathBuf>,
}

/// The config file: the flags' names, every field optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    iface: Option<String>,
    #[serde(default)]
    addr: Vec<Ipv4Addr>,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    zone: Vec<FileZone>,
    backend: Option<String>,
    cores: Option<String>,
    workers: Option<usize>,
    drain: Option<f64>,
    napi_busy_poll: Option<u32>,
    busy_poll: Option<u64>,
    syn_backlog: Option<usize>,
    idle_timeout: Option<f64>,
    max_lifetime: Option<f64>,
    max_connections: Option<usize>,
    max_per_source: Option<usize>,
    #[serde(default)]
    transfer_allow: Vec<String>,
    control: Option<PathBuf>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileZone {
    file: PathBuf,
    name: Option<String>,
}

/// The handlers built into the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinHandler {
    /// Authoritative DNS over TCP from the zones given.
    Dns,
    /// Sends back what it reads; closes after the peer does.
    Echo,
    /// Reads and drops everything; closes after the peer does.
    Discard,
}

fn parse_listen(s: &str) -> Result<(u16, BuiltinHandler), String> {
    let (port, handler) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PORT=HANDLER, e.g. 53=dns"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    if port == 0 {
        return Err("port 0 cannot be listened on".into());
    }
    let handler = match handler {
        "dns" => BuiltinHandler::Dns,
        "echo" => BuiltinHandler::Echo,
        "discard" => BuiltinHandler::Discard,
        other => return Err(format!("unknown handler {other:?} (dns, echo, discard)")),
    };
    Ok((port, handler))
}

fn parse_zone(s: &str) -> Result<ZoneSource, String> {
    let (file, name) = match s.rsplit_once('=') {
        Some((f, n)) if !n.is_empty() && !n.contains('/') => (f, Some(n.to_string())),
        _ => (s, None),
    };
    if file.is_empty() {
        return Err("an empty zone file name".into());
    }
    Ok(ZoneSource {
        file: PathBuf::from(file),
        name,
    })
}

fn parse_prefix(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, len) = s.split_once('/').unwrap_or((s, "32"));
    let a: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("{s:?}: not an IPv4 prefix"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{s:?}: the prefix length must be 0-32"))?;
    Ok((a, len))
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    match s {
        "xdp" => Ok(Backend::Xdp),
        "kernel" => Ok(Backend::Kernel),
        other => Err(format!("unknown backend {other:?} (xdp, kernel)")),
    }
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

/// Counters the built-in echo and discard handlers keep, printed at exit.
#[derive(Default)]
struct HandlerStats {
    flows: AtomicU64,
    bytes: AtomicU64,
}

fn stream_listener(handler: BuiltinHandler, stats: Arc<HandlerStats>) -> Listener {
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

/// The settings in force: flags over the config file over the defaults.
struct Settings {
    stack: StackConfig,
    listen: Vec<(u16, BuiltinHandler)>,
    zones: Vec<ZoneSource>,
    drain: Duration,
    limits: Limits,
    transfer_allow: Vec<(Ipv4Addr, u8)>,
    control: PathBuf,
    /// The interface given, checked to exist whichever the backend.
    iface: Option<String>,
}

fn settings(args: &ServeArgs) -> Result<Settings, String> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let base = args
        .config
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    let listen = if !args.listen.is_empty() {
        args.listen.clone()
    } else {
        file.listen
            .iter()
            .map(|l| parse_listen(l))
            .collect::<Result<_, _>>()?
    };
    if listen.is_empty() {
        return Err(
            "nothing to serve: give --listen PORT=HANDLER (or `listen` in --config)".into(),
        );
    }
    let zones = if !args.zones.is_empty() {
        args.zones.clone()
    } else {
        file.zone
            .iter()
            .map(|z| ZoneSource {
                file: base.join(&z.file),
                name: z.name.clone(),
            })
            .collect()
    };
    let backend = match (&args.backend, &file.backend) {
        (Some(b), _) => *b,
        (None, Some(b)) => parse_backend(b)?,
        (None, None) => Backend::Kernel,
    };
    let cores = match (&args.cores, &file.cores) {
        (Some(c), _) => c.0.clone(),
        (None, Some(c)) => parse_cores(c)?,
        (None, None) => Vec::new(),
    };
    let transfer_allow = if !args.transfer_allow.is_empty() {
        args.transfer_allow.clone()
    } else {
        file.transfer_allow
            .iter()
            .map(|p| parse_prefix(p))
            .collect::<Result<_, _>>()?
    };
    let secs = |flag: Option<f64>, conf: Option<f64>, default: f64, what: &str| {
        let v = flag.or(conf).unwrap_or(default);
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v.min(NEVER.as_secs_f64())))
        } else {
            Err(format!("{what} must be a number of seconds, not {v}"))
        }
    };
    let defaults = Limits::default();
    let limits = Limits {
        idle_timeout: secs(
            args.idle_timeout,
            file.idle_timeout,
            defaults.idle_timeout.as_secs_f64(),
            "--idle-timeout",
        )?,
        max_lifetime: secs(
            args.max_lifetime,
            file.max_lifetime,
            defaults.max_lifetime.as_secs_f64(),
            "--max-lifetime",
        )?,
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections),
        max_per_source: args
            .max_per_source
            .or(file.max_per_source)
            .unwrap_or(defaults.max_per_source),
    };
    let iface = args.iface.clone().or(file.iface);
    Ok(Settings {
        stack: StackConfig {
            backend: match backend {
                Backend::Kernel => BackendConfig::Kernel(KernelConfig {
                    workers: args.workers.or(file.workers),
                    ..KernelConfig::default()
                }),
                Backend::Xdp => {
                    let iface = iface.clone().ok_or(
                        "the xdp backend needs --iface (the interface whose queues sluice serves)",
                    )?;
                    let mut xdp = XdpConfig::new(iface);
                    xdp.napi_busy_poll_us =
                        args.napi_busy_poll.or(file.napi_busy_poll).unwrap_or(0);
                    if let Some(us) = args.busy_poll.or(file.busy_poll) {
                        xdp.busy_poll = Duration::from_micros(us);
                    }
                    if let Some(n) = args.syn_backlog.or(file.syn_backlog) {
                        xdp.max_half_open = n;
                    }
                    BackendConfig::Xdp(xdp)
                }
            },
            addrs: if args.addrs.is_empty() {
                file.addr
            } else {
                args.addrs.clone()
            },
            cores,
            ..StackConfig::kernel()
        },
        listen,
        zones,
        drain: secs(args.drain, file.drain, 5.0, "--drain")?,
        limits,
        transfer_allow,
        control: args
            .control
            .clone()
            .or(file.control)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL)),
        iface,
    })
}

pub fn run(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let s = settings(args)?;
    if let Some(iface) = &s.iface {
        xsk::iface::ifindex(iface)?;
    }
    let wants_dns = s.listen.iter().any(|(_, h)| *h == BuiltinHandler::Dns);
    if wants_dns && s.zones.is_empty() {
        return Err("the dns handler needs at least one --zone".into());
    }
    if !wants_dns && !s.zones.is_empty() {
        tracing::warn!("zones given but no port is served by the dns handler");
    }
    // Counter slots: one per worker (the AF_XDP backend has one per queue, known only
    // once started), up to 64; more share the last slot.
    let counter_slots = 64;
    let dns_service = if wants_dns {
        let keepalive = (s.limits.idle_timeout.as_millis() / 100).min(u16::MAX as u128) as u16;
        let responder = dns::ResponderConfig {
            tcp_keepalive_100ms: Some(keepalive),
            transfer_allowed: s.transfer_allow.clone(),
            ..Default::default()
        };
        let svc = DnsService::new(s.zones.clone(), responder, s.limits.clone(), counter_slots)
            .map_err(|errors| format!("bad zone:\n  {}", errors.join("\n  ")))?;
        let catalog = svc.catalog.load();
        tracing::info!(zones = catalog.len(), "zones loaded");
        Some(svc)
    } else {
        None
    };
    let stats = Arc::new(HandlerStats::default());
    let mut listeners = Listeners::new();
    for (port, handler) in &s.listen {
        if listeners.get(*port).is_some() {
            return Err(format!("port {port} is given twice").into());
        }
        let l = match (handler, &dns_service) {
            (BuiltinHandler::Dns, Some(svc)) => svc.listener(),
            _ => stream_listener(*handler, stats.clone()),
        };
        listeners.listen(*port, l);
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])?;
    let backend = s.stack.backend.kind();
    let mut stack = Stack::start(s.stack, listeners)?;
    let control = open_control(&s.control);
    let ports: Vec<String> = s
        .listen
        .iter()
        .map(|(p, h)| format!("{p}={h:?}").to_lowercase())
        .collect();
    tracing::info!(
        ports = %ports.join(" "),
        backend = %format!("{backend:?}").to_lowercase(),
        workers = stack.workers(),
        control = %s.control.display(),
        "serving"
    );
    let signal = 'serving: loop {
        for sig in signals.pending() {
            if sig == signal_hook::consts::SIGHUP {
                match &dns_service {
                    Some(svc) => match svc.reload() {
                        Ok(n) => tracing::info!(zones = n, "SIGHUP: zones reloaded"),
                        Err(errors) => tracing::error!(
                            "SIGHUP: the zones did not load, the old ones stay:\n  {}",
                            errors.join("\n  ")
                        ),
                    },
                    None => tracing::info!("SIGHUP: no zones to reload"),
                }
            } else {
                break 'serving sig;
            }
        }
        if let Some(l) = &control {
            while let Ok((mut conn, _)) = l.accept() {
                let _ = conn.set_nonblocking(false);
                let _ = conn.write_all(report(&stack, dns_service.as_deref()).as_bytes());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    tracing::info!(
        signal = signal_name(signal),
        drain_s = s.drain.as_secs_f64(),
        "stopping: no new connections, draining"
    );
    stack.shutdown(s.drain);
    if control.is_some() {
        let _ = std::fs::remove_file(&s.control);
    }
    tracing::info!(
        flows = stats.flows.load(Ordering::Relaxed),
        bytes = stats.bytes.load(Ordering::Relaxed),
        "stopped"
    );
    Ok(())
}

/// The control socket, if it can be had (a warning otherwise: stats are then off).
fn open_control(path: &Path) -> Option<UnixListener> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A socket left by a daemon that died; a live one answers, and then we do not steal it.
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        tracing::warn!(path = %path.display(), "another sluice answers on this control socket: stats are off for this one");
        return None;
    }
    let _ = std::fs::remove_file(path);
    match UnixListener::bind(path) {
        Ok(l) => {
            let _ = l.set_nonblocking(true);
            Some(l)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "no control socket: `sluice stats` will not reach this daemon");
            None
        }
    }
}

/// What `sluice stats` prints: per worker, the stack's counters and the DNS service's.
fn report(stack: &Stack, dns: Option<&DnsService>) -> String {
    let mut out = String::new();
    let stats = stack.stats();
    for (i, w) in stats.iter().enumerate() {
        if stack.backend() == Backend::Kernel {
            // The kernel's TCP keeps the packet and state counters (`ss`, `nstat`).
            out.push_str(&format!(
                "worker {i}: connections open {} accepted {}\n",
                w.connections, w.accepted
            ));
        } else {
            // A failed read of the kernel's drop counters must not pass for "nothing lost".
            let lost = match w.socket_drops {
                Some(d) => format!(
                    "rx-ring-full {} fill-empty {} other {}",
                    d.rx_ring_full, d.fill_empty, d.other
                ),
                None => "unknown (XDP_STATISTICS unreadable)".into(),
            };
            out.push_str(&format!(
                "worker {i}: packets rx {} tx {} dropped {} tx-ring-full {} tx-device-full {} tx-kick-refused {}; \
                 lost in the kernel: {lost}; connections open {} accepted {}; \
                 resets {} (aborted on close {}); syn-cookies {}/{}; time-wait reopened {}; retransmits {} timeouts {} fast recoveries {} (undone {}); handed over {}/{}; \
                 busy {} idle-poll {} of {} us\n",
                w.rx_frames, w.tx_frames, w.rx_dropped, w.tx_ring_full, w.tx_device_full, w.tx_kick_refused, w.connections, w.accepted,
                w.resets_sent, w.aborted_on_close, w.syn_cookies_sent, w.syn_cookies_accepted, w.time_wait_reopened, w.retransmits, w.timeouts, w.recoveries, w.undone_recoveries,
                w.handed_out, w.handed_in, w.busy_us, w.idle_poll_us, w.elapsed_us
            ));
            let t = &w.states;
            out.push_str(&format!(
                "  tcp states: syn-sent {} syn-received {} established {} fin-wait-1 {} fin-wait-2 {} \
                 close-wait {} closing {} last-ack {} time-wait {}\n",
                t.syn_sent, t.syn_received, t.established, t.fin_wait_1, t.fin_wait_2,
                t.close_wait, t.closing, t.last_ack, t.time_wait
            ));
        }
        if let Some(d) = dns.and_then(|d| d.counters.get(i)) {
            let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
            out.push_str(&format!(
                "  dns: connections {} queries {}; answers NOERROR {} NXDOMAIN {} REFUSED {} FORMERR {} NOTIMP {} other {}; \
                 dropped {} transfers {}; closed: garbage {} idle {} lifetime {}; refused by limits {}\n",
                g(&d.connections), g(&d.queries), g(&d.noerror), g(&d.nxdomain), g(&d.refused),
                g(&d.formerr), g(&d.notimp), g(&d.other_rcode), g(&d.dropped), g(&d.transfers),
                g(&d.garbage_closed), g(&d.idle_closed), g(&d.lifetime_closed), g(&d.limit_refused)
            ));
        }
    }
    if let Some(d) = dns {
        out.push_str(&format!("zones: {}\n", d.catalog.load().len()));
    }
    out
}

/// `sluice stats`: prints what the daemon at `control` reports.
pub fn print_stats(control: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Read;
    let mut conn = std::os::unix::net::UnixStream::connect(control).map_err(|e| {
        format!(
            "{}: {e} (is `sluice serve` running, with this --control?)",
            control.display()
        )
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    print!("{text}");
    Ok(())
}

/// `sluice check-zone`: loads a zone file and says what is wrong with it.
pub fn check_zone(file: &Path, name: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    match dns::load_zone(file, name) {
        Ok(z) => {
            println!(
                "{}: zone {} OK, {} records",
                file.display(),
                dns::name::to_text(&z.apex),
                z.records.len()
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            Err(format!("{}: {} problem(s)", file.display(), errors.len()).into())
        }
    }
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
        assert_eq!(parse_listen("53=dns").unwrap(), (53, BuiltinHandler::Dns));
        assert!(parse_listen("7").unwrap_err().contains("PORT=HANDLER"));
        assert!(parse_listen("0=echo").is_err());
        assert!(parse_listen("70000=echo").is_err());
        assert!(parse_listen("7=dns2")
            .unwrap_err()
            .contains("unknown handler"));
    }

    #[test]
    fn zones_and_prefixes_parse() {
        assert_eq!(parse_zone("a.zone").unwrap().name, None);
        assert_eq!(
            parse_zone("a.zone=example.test").unwrap().name.as_deref(),
            Some("example.test")
        );
        assert_eq!(
            parse_prefix("198.18.0.0/16").unwrap(),
            (Ipv4Addr::new(198, 18, 0, 0), 16)
        );
        assert_eq!(parse_prefix("192.0.2.1").unwrap().1, 32);
        assert!(parse_prefix("192.0.2.1/33").is_err());
    }

    #[test]
    fn a_config_file_says_what_flags_say_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("sluice-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sluice.toml");
        std::fs::write(
            &conf,
            "backend = \"xdp\"\niface = \"eth9\"\naddr = [\"192.0.2.1\"]\nlisten = [\"53=dns\"]\n\
             cores = \"0-1\"\nidle-timeout = 3\ntransfer-allow = [\"10.0.0.0/8\"]\n\
             [[zone]]\nfile = \"example.zone\"\nname = \"example.test\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(conf.clone()),
            ..Default::default()
        };
        let s = settings(&args).unwrap();
        assert!(
            matches!(&s.stack.backend, BackendConfig::Xdp(x) if x.iface == "eth9"),
            "{:?}",
            s.stack.backend
        );
        assert_eq!(s.stack.cores, vec![0, 1]);
        assert_eq!(s.listen, vec![(53, BuiltinHandler::Dns)]);
        assert_eq!(
            s.zones[0].file,
            dir.join("example.zone"),
            "relative to the config file"
        );
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(3));
        assert_eq!(s.transfer_allow, vec![(Ipv4Addr::new(10, 0, 0, 0), 8)]);
        let args = ServeArgs {
            config: Some(conf.clone()),
            backend: Some(Backend::Kernel),
            ..Default::default()
        };
        assert_eq!(
            settings(&args).unwrap().stack.backend.kind(),
            Backend::Kernel,
            "the flag wins"
        );
        std::fs::write(&conf, "bogus = 1\n").unwrap();
        let args = ServeArgs {
            config: Some(conf.clone()),
            ..Default::default()
        };
        assert!(
            settings(&args).err().unwrap().contains("bogus"),
            "unknown keys are errors"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_xdp_backend_without_an_interface_is_refused_before_starting() {
        let err = settings(&ServeArgs {
            listen: vec![(7, BuiltinHandler::Echo)],
            backend: Some(Backend::Xdp),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("--iface"), "{err}");
    }

    #[test]
    fn durations_meant_as_never_are_capped_and_bad_ones_refused() {
        let with = |idle: f64, drain: f64| {
            settings(&ServeArgs {
                listen: vec![(7, BuiltinHandler::Echo)],
                idle_timeout: Some(idle),
                drain: Some(drain),
                ..Default::default()
            })
        };
        let s = with(1e19, 1e300).unwrap();
        assert_eq!((s.limits.idle_timeout, s.drain), (NEVER, NEVER));
        // Deadlines from now stay representable.
        assert!(std::time::Instant::now().checked_add(s.drain).is_some());
        assert!(with(-1.0, 1.0).err().unwrap().contains("--idle-timeout"));
        assert!(with(1.0, f64::NAN).err().unwrap().contains("--drain"));
    }

    /// The settings a config file under deploy/ gives.
    fn deploy_settings(file: &str) -> Settings {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy")
            .join(file);
        let args = ServeArgs {
            config: Some(conf),
            ..Default::default()
        };
        settings(&args).unwrap()
    }

    #[test]
    fn the_deploy_example_config_is_valid() {
        let s = deploy_settings("sluice.toml");
        assert_eq!(s.stack.backend.kind(), Backend::Xdp);
        assert_eq!(s.listen, vec![(53, BuiltinHandler::Dns)]);
        assert_eq!(s.stack.cores, vec![2, 3, 4, 5]);
        assert_eq!(s.zones.len(), 1);
        assert_eq!(s.limits.max_per_source, 1000);
        let mut stack = s.stack;
        assert_eq!(stack.xdp_mut().map(|x| x.max_half_open), Some(4096));
    }

    #[test]
    fn the_kubernetes_config_and_zone_are_valid() {
        let s = deploy_settings("kubernetes/sluice.toml");
        assert_eq!(s.stack.backend.kind(), Backend::Xdp);
        assert_eq!(s.listen, vec![(53, BuiltinHandler::Dns)]);
        assert_eq!(s.stack.cores, vec![2, 3]);
        assert_eq!(s.zones.len(), 1);
        // The ConfigMap puts the zone beside sluice.toml, as it is in the repository.
        let zone = dns::load_zone(&s.zones[0].file, s.zones[0].name.as_deref());
        assert!(zone.is_ok(), "{:?}", zone.err());
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
