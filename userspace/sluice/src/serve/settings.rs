//! The settings of `sluice serve`, from its flags ([`ServeArgs`]) and from the TOML
//! file that can say everything they say (`--config`, [`FileConfig`]). Each source
//! becomes an [`Options`]: the options it gives. They merge in one place,
//! [`Options::or`], by one rule (the flags win over the file), and
//! [`Options::settings`] fills in the defaults of what neither gives and checks the
//! values.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use stack::{Admission, Backend, BackendConfig, KernelConfig, StackConfig, SynBudget, XdpConfig};

use super::control::DEFAULT_CONTROL;
use super::handlers::{parse_listen, BuiltinHandler};
use sluice::dns_service::{Limits, SecondaryZone, ZoneSource};

/// What a duration setting means by "never": a hundred years. Every duration is capped
/// here, so the timeouts and deadlines built from them cannot overflow the clock (1e20 s
/// overflows Duration itself, 1e19 s an Instant).
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

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
    /// A secondary zone (repeatable), NAME=PRIMARY with PRIMARY as ADDR or ADDR:PORT
    /// (port 53 by default): transferred from the primary (AXFR, then IXFR) and kept
    /// in step with it by its SOA's timers and its NOTIFYs; answered SERVFAIL before
    /// its first transfer and once expired.
    #[arg(long = "secondary", value_parser = parse_secondary)]
    secondaries: Vec<SecondaryZone>,
    /// A file with the TSIG key (ALGORITHM:NAME:SECRET, as `kdig -y` takes it) that
    /// the --secondary zones' transfers and NOTIFYs are signed with.
    #[arg(long)]
    secondary_key: Option<PathBuf>,
    /// Where NOTIFYs for the secondary zones are taken, over UDP and TCP (kernel
    /// sockets), e.g. 0.0.0.0:5300 [default: none; the SOA timers alone].
    #[arg(long, value_name = "ADDR:PORT")]
    notify_listen: Option<SocketAddr>,
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
    /// Seconds between SIGTERM (or SIGINT) and the drain, during which sluice serves
    /// as before, new connections included, while `/health` already answers 503: the
    /// time for a load balancer or an anycast route (deploy/fleet) to stop sending
    /// here, so that the drain refuses nobody [default: 0]. A second signal ends it.
    #[arg(long)]
    lameduck: Option<f64>,
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
    /// AF_XDP: how the steering program admits new connections (SYNs) on each queue:
    /// `adaptive` (at the rate the queue's worker opens connections, once new ones
    /// overload it; a worker with room admits every SYN), `off`, or a fixed budget per
    /// queue, `RATE` or `RATE/BURST` SYNs a second (BURST defaults to 20 ms at the
    /// rate) [default: adaptive]. SYNs past the budget are dropped in XDP, before they
    /// cost a copy (`sluice stats`: shed).
    #[arg(long, value_parser = parse_admission)]
    admission: Option<Admission>,
    /// DNS: seconds a connection may stay idle [default: 10]; advertised to clients in
    /// edns-tcp-keepalive (RFC 7828).
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// DNS: seconds a query may take to arrive once its first byte has (a client that
    /// dribbles it, slowloris, is cut off) [default: 0.5, as Knot's tcp-io-timeout].
    #[arg(long)]
    io_timeout: Option<f64>,
    /// DNS: seconds a connection may live at most [default: 120].
    #[arg(long)]
    max_lifetime: Option<f64>,
    /// DNS: concurrent connections at most; at the limit a newcomer takes the place of
    /// the connection idle longest on the worker that accepted it (refused if that
    /// worker has none) [default: 100000].
    #[arg(long)]
    max_connections: Option<usize>,
    /// DNS: concurrent connections from one source address at most; at the limit a
    /// newcomer takes the place of that address's connection idle longest among the
    /// 256 idle longest of the worker that accepted it (refused if there is none)
    /// [default: 1000].
    #[arg(long)]
    max_per_source: Option<usize>,
    /// DNS: a source prefix allowed to transfer zones (AXFR), e.g. 198.18.0.0/16
    /// (repeatable); none by default.
    #[arg(long = "transfer-allow", value_parser = parse_prefix)]
    transfer_allow: Vec<(Ipv4Addr, u8)>,
    /// DNS: a file with the TSIG key (ALGORITHM:NAME:SECRET, as `kdig -y` takes it)
    /// that zone transfers must be signed with; their answers are signed with it.
    /// With --transfer-allow, a transfer needs both; without, the key alone.
    #[arg(long)]
    transfer_key: Option<PathBuf>,
    /// The control socket `sluice stats` and `sluice reload` use [default:
    /// /run/sluice/control.sock].
    #[arg(long)]
    control: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, and /health (200 while
    /// serving, 503 from SIGTERM on: the lame-duck time and the drain), from the
    /// control thread [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
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
    notify_listen: Option<String>,
    backend: Option<String>,
    cores: Option<String>,
    workers: Option<usize>,
    drain: Option<f64>,
    lameduck: Option<f64>,
    napi_busy_poll: Option<u32>,
    busy_poll: Option<u64>,
    syn_backlog: Option<usize>,
    admission: Option<String>,
    idle_timeout: Option<f64>,
    io_timeout: Option<f64>,
    max_lifetime: Option<f64>,
    max_connections: Option<usize>,
    max_per_source: Option<usize>,
    #[serde(default)]
    transfer_allow: Vec<String>,
    transfer_key: Option<PathBuf>,
    control: Option<PathBuf>,
    metrics: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileZone {
    /// A zone file; or, for a secondary zone,
    file: Option<PathBuf>,
    name: Option<String>,
    /// its primary, ADDR or ADDR:PORT,
    primary: Option<String>,
    /// and the TSIG key file its transfers are signed with, if any.
    key: Option<PathBuf>,
}

/// An option's value, or what is wrong with the text given for it. The file's values
/// are checked only once chosen, so a flag overrides a bad one without an error.
type Given<T> = Result<T, String>;

/// The options one source gives (the flags, or the config file); `None` for each it
/// does not. A list given no items is not given.
#[derive(Debug, Default)]
struct Options {
    iface: Option<String>,
    addr: Option<Vec<Ipv4Addr>>,
    listen: Option<Given<Vec<(u16, BuiltinHandler)>>>,
    zone: Option<Vec<ZoneSource>>,
    secondary: Option<Given<Vec<SecondaryZone>>>,
    notify_listen: Option<Given<SocketAddr>>,
    backend: Option<Given<Backend>>,
    cores: Option<Given<Vec<usize>>>,
    workers: Option<usize>,
    drain: Option<f64>,
    lameduck: Option<f64>,
    napi_busy_poll: Option<u32>,
    busy_poll: Option<u64>,
    syn_backlog: Option<usize>,
    admission: Option<Given<Admission>>,
    idle_timeout: Option<f64>,
    io_timeout: Option<f64>,
    max_lifetime: Option<f64>,
    max_connections: Option<usize>,
    max_per_source: Option<usize>,
    transfer_allow: Option<Given<Vec<(Ipv4Addr, u8)>>>,
    transfer_key: Option<PathBuf>,
    control: Option<PathBuf>,
    metrics: Option<Given<SocketAddr>>,
}

/// A list as an option: not given when empty.
fn nonempty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// A list of texts as an option, each parsed by `parse`.
fn parse_each<T>(list: Vec<String>, parse: fn(&str) -> Result<T, String>) -> Option<Given<Vec<T>>> {
    nonempty(list).map(|l| l.iter().map(|s| parse(s)).collect())
}

impl From<&ServeArgs> for Options {
    /// The options the flags give (clap has checked their values).
    fn from(a: &ServeArgs) -> Options {
        Options {
            iface: a.iface.clone(),
            addr: nonempty(a.addrs.clone()),
            listen: nonempty(a.listen.clone()).map(Ok),
            zone: nonempty(a.zones.clone()),
            secondary: nonempty(a.secondaries.clone()).map(|zones| {
                Ok(zones
                    .into_iter()
                    .map(|z| SecondaryZone {
                        key: a.secondary_key.clone(),
                        ..z
                    })
                    .collect())
            }),
            notify_listen: a.notify_listen.map(Ok),
            backend: a.backend.map(Ok),
            cores: a.cores.clone().map(|c| Ok(c.0)),
            workers: a.workers,
            drain: a.drain,
            lameduck: a.lameduck,
            napi_busy_poll: a.napi_busy_poll,
            busy_poll: a.busy_poll,
            syn_backlog: a.syn_backlog,
            admission: a.admission.map(Ok),
            idle_timeout: a.idle_timeout,
            io_timeout: a.io_timeout,
            max_lifetime: a.max_lifetime,
            max_connections: a.max_connections,
            max_per_source: a.max_per_source,
            transfer_allow: nonempty(a.transfer_allow.clone()).map(Ok),
            transfer_key: a.transfer_key.clone(),
            control: a.control.clone(),
            metrics: a.metrics.map(Ok),
        }
    }
}

impl FileConfig {
    /// The file at `path`, read and parsed.
    fn read(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The options the file gives; its zone files are relative to `dir`, the file's
    /// directory.
    fn options(self, dir: &Path) -> Options {
        // A [[zone]] is a file, or a secondary zone with its primary.
        let mut files = Vec::new();
        let mut secondaries = Vec::new();
        for z in self.zone {
            match (z.file, z.primary, z.name) {
                (Some(file), None, name) if z.key.is_none() => files.push((file, name)),
                (None, Some(primary), Some(name)) => {
                    secondaries.push(parse_primary(&primary).map(|primary| SecondaryZone {
                        name,
                        primary,
                        key: z.key.map(|k| dir.join(k)),
                    }))
                }
                _ => secondaries.push(Err(
                    "a [[zone]] has a `file` (and maybe a `name`), or a `name` and a `primary` \
                     (and maybe a `key`)"
                        .to_string(),
                )),
            }
        }
        Options {
            iface: self.iface,
            addr: nonempty(self.addr),
            listen: parse_each(self.listen, parse_listen),
            zone: nonempty(
                files
                    .into_iter()
                    .map(|(file, name)| ZoneSource {
                        file: dir.join(file),
                        name,
                    })
                    .collect(),
            ),
            secondary: nonempty(secondaries).map(|zones| zones.into_iter().collect()),
            notify_listen: self.notify_listen.map(|m| {
                m.parse::<SocketAddr>()
                    .map_err(|_| format!("bad notify-listen address {m:?} (ADDR:PORT)"))
            }),
            backend: self.backend.map(|b| parse_backend(&b)),
            cores: self.cores.map(|c| parse_cores(&c)),
            workers: self.workers,
            drain: self.drain,
            lameduck: self.lameduck,
            napi_busy_poll: self.napi_busy_poll,
            busy_poll: self.busy_poll,
            syn_backlog: self.syn_backlog,
            admission: self.admission.map(|a| parse_admission(&a)),
            idle_timeout: self.idle_timeout,
            io_timeout: self.io_timeout,
            max_lifetime: self.max_lifetime,
            max_connections: self.max_connections,
            max_per_source: self.max_per_source,
            transfer_allow: parse_each(self.transfer_allow, parse_prefix),
            transfer_key: self.transfer_key.map(|k| dir.join(k)),
            control: self.control,
            metrics: self.metrics.map(|m| {
                m.parse::<SocketAddr>()
                    .map_err(|_| format!("bad metrics address {m:?} (ADDR:PORT)"))
            }),
        }
    }
}

impl Options {
    /// These options, and `lower`'s where these say nothing: the one rule by which the
    /// flags win over the file.
    fn or(self, lower: Options) -> Options {
        Options {
            iface: self.iface.or(lower.iface),
            addr: self.addr.or(lower.addr),
            listen: self.listen.or(lower.listen),
            zone: self.zone.or(lower.zone),
            secondary: self.secondary.or(lower.secondary),
            notify_listen: self.notify_listen.or(lower.notify_listen),
            backend: self.backend.or(lower.backend),
            cores: self.cores.or(lower.cores),
            workers: self.workers.or(lower.workers),
            drain: self.drain.or(lower.drain),
            lameduck: self.lameduck.or(lower.lameduck),
            napi_busy_poll: self.napi_busy_poll.or(lower.napi_busy_poll),
            busy_poll: self.busy_poll.or(lower.busy_poll),
            syn_backlog: self.syn_backlog.or(lower.syn_backlog),
            admission: self.admission.or(lower.admission),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            io_timeout: self.io_timeout.or(lower.io_timeout),
            max_lifetime: self.max_lifetime.or(lower.max_lifetime),
            max_connections: self.max_connections.or(lower.max_connections),
            max_per_source: self.max_per_source.or(lower.max_per_source),
            transfer_allow: self.transfer_allow.or(lower.transfer_allow),
            transfer_key: self.transfer_key.or(lower.transfer_key),
            control: self.control.or(lower.control),
            metrics: self.metrics.or(lower.metrics),
        }
    }

    /// The settings these options make: the defaults for the options not given, and
    /// the first bad value's error.
    fn settings(self) -> Result<Settings, String> {
        let listen = self.listen.transpose()?.unwrap_or_default();
        if listen.is_empty() {
            return Err(
                "nothing to serve: give --listen PORT=HANDLER (or `listen` in --config)".into(),
            );
        }
        let backend = self.backend.transpose()?.unwrap_or(Backend::Kernel);
        let admission = self.admission.transpose()?;
        let cores = self.cores.transpose()?.unwrap_or_default();
        let transfer_allow = self.transfer_allow.transpose()?.unwrap_or_default();
        let metrics = self.metrics.transpose()?;
        let secondaries = self.secondary.transpose()?.unwrap_or_default();
        let notify_listen = self.notify_listen.transpose()?;
        let defaults = Limits::default();
        let limits = Limits {
            idle_timeout: seconds(self.idle_timeout, defaults.idle_timeout, "--idle-timeout")?,
            io_timeout: seconds(self.io_timeout, defaults.io_timeout, "--io-timeout")?,
            max_lifetime: seconds(self.max_lifetime, defaults.max_lifetime, "--max-lifetime")?,
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_per_source: self.max_per_source.unwrap_or(defaults.max_per_source),
        };
        // The stack's own defaults for the options not given.
        let backend = match backend {
            Backend::Kernel => BackendConfig::Kernel(KernelConfig {
                workers: self.workers,
                ..KernelConfig::default()
            }),
            Backend::Xdp => {
                let iface = self.iface.clone().ok_or(
                    "the xdp backend needs --iface (the interface whose queues sluice serves)",
                )?;
                let mut xdp = XdpConfig::new(iface);
                if let Some(us) = self.napi_busy_poll {
                    xdp.napi_busy_poll_us = us;
                }
                if let Some(us) = self.busy_poll {
                    xdp.busy_poll = Duration::from_micros(us);
                }
                if let Some(n) = self.syn_backlog {
                    xdp.max_half_open = n;
                }
                if let Some(a) = admission {
                    xdp.admission = a;
                }
                BackendConfig::Xdp(xdp)
            }
            // Not a choice of the parsers above: the in-memory backend is for
            // benchmarks and tests, which build their configuration in code.
            Backend::Memory => return Err("the memory backend is not served by `serve`".into()),
        };
        Ok(Settings {
            stack: StackConfig {
                backend,
                addrs: self.addr.unwrap_or_default(),
                cores,
                ..StackConfig::kernel()
            },
            listen,
            zones: self.zone.unwrap_or_default(),
            secondaries,
            notify_listen,
            drain: seconds(self.drain, Duration::from_secs(5), "--drain")?,
            lameduck: seconds(self.lameduck, Duration::ZERO, "--lameduck")?,
            limits,
            transfer_allow,
            transfer_key: self.transfer_key,
            control: self
                .control
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL)),
            iface: self.iface,
            metrics,
        })
    }
}

/// A duration option in seconds, `default` when not given; "never" is [`NEVER`].
fn seconds(value: Option<f64>, default: Duration, what: &str) -> Result<Duration, String> {
    let v = value.unwrap_or(default.as_secs_f64());
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v.min(NEVER.as_secs_f64())))
    } else {
        Err(format!("{what} must be a number of seconds, not {v}"))
    }
}

/// The settings in force: flags over the config file over the defaults.
pub struct Settings {
    pub stack: StackConfig,
    pub listen: Vec<(u16, BuiltinHandler)>,
    pub zones: Vec<ZoneSource>,
    /// Zones transferred from a primary and followed.
    pub secondaries: Vec<SecondaryZone>,
    /// Where NOTIFYs are taken (UDP and TCP), if anywhere.
    pub notify_listen: Option<SocketAddr>,
    pub drain: Duration,
    /// How long to go on serving, `/health` at 503, between the signal and the drain.
    pub lameduck: Duration,
    pub limits: Limits,
    pub transfer_allow: Vec<(Ipv4Addr, u8)>,
    /// The TSIG key file transfers out must be signed with, if any.
    pub transfer_key: Option<PathBuf>,
    pub control: PathBuf,
    /// The interface given, checked to exist whichever the backend.
    pub iface: Option<String>,
    /// Where to serve Prometheus metrics and the health check, if anywhere.
    pub metrics: Option<SocketAddr>,
}

/// The settings `args` make, with the config file it names if any.
pub fn settings(args: &ServeArgs) -> Result<Settings, String> {
    if args.secondary_key.is_some() && args.secondaries.is_empty() {
        return Err(
            "--secondary-key signs the --secondary zones' transfers, and none is given \
             (in --config, each [[zone]] with a primary takes its own `key`)"
                .into(),
        );
    }
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?.options(path.parent().unwrap_or(Path::new(""))),
        None => Options::default(),
    };
    Options::from(args).or(file).settings()
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

/// NAME=PRIMARY (a --secondary zone; its key comes from --secondary-key).
fn parse_secondary(s: &str) -> Result<SecondaryZone, String> {
    let (name, primary) = s.split_once('=').ok_or_else(|| {
        format!("{s:?}: a secondary zone is NAME=PRIMARY, e.g. example.com=192.0.2.1")
    })?;
    if dns::name::from_text(name).is_none() {
        return Err(format!("{s:?}: bad zone name {name:?}"));
    }
    Ok(SecondaryZone {
        name: name.to_string(),
        primary: parse_primary(primary)?,
        key: None,
    })
}

/// A primary's address: ADDR:PORT, or ADDR for port 53.
fn parse_primary(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<Ipv4Addr>().map(|a| SocketAddr::from((a, 53))))
        .map_err(|_| format!("bad primary {s:?} (ADDR or ADDR:PORT)"))
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

/// `adaptive`, `off`, `RATE` or `RATE/BURST` (a fixed budget; the burst defaults to
/// 20 ms at the rate).
fn parse_admission(s: &str) -> Result<Admission, String> {
    let bad = || format!("bad admission {s:?} (adaptive, off, RATE or RATE/BURST SYNs a second)");
    match s {
        "adaptive" => Ok(Admission::Adaptive),
        "off" => Ok(Admission::Off),
        fixed => {
            let (rate, burst) = match fixed.split_once('/') {
                Some((r, b)) => (r, Some(b)),
                None => (fixed, None),
            };
            let per_second: u32 = rate.parse().map_err(|_| bad())?;
            if per_second == 0 {
                return Err(bad());
            }
            let burst = match burst {
                Some(b) => b.parse().map_err(|_| bad())?,
                None => (per_second / 50).max(1),
            };
            Ok(Admission::Fixed(SynBudget {
                per_second: f64::from(per_second),
                burst,
            }))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

        // Secondary zones: a [[zone]] with a primary (and a key, relative too).
        std::fs::write(
            &conf,
            "listen = [\"53=dns\"]\nnotify-listen = \"192.0.2.1:5300\"\ntransfer-key = \"out.key\"\n\
             [[zone]]\nname = \"example.test\"\nprimary = \"192.0.2.9\"\nkey = \"xfr.key\"\n\
             [[zone]]\nfile = \"example.zone\"\n",
        )
        .unwrap();
        let s = settings(&ServeArgs {
            config: Some(conf.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.secondaries,
            vec![SecondaryZone {
                name: "example.test".into(),
                primary: "192.0.2.9:53".parse().unwrap(),
                key: Some(dir.join("xfr.key")),
            }]
        );
        assert_eq!(s.zones.len(), 1);
        assert_eq!(s.notify_listen, Some("192.0.2.1:5300".parse().unwrap()));
        assert_eq!(s.transfer_key, Some(dir.join("out.key")));
        for bad in [
            "[[zone]]\nprimary = \"192.0.2.9\"\n",
            "[[zone]]\nname = \"a.test\"\nprimary = \"nowhere\"\n",
            "[[zone]]\nfile = \"a.zone\"\nprimary = \"192.0.2.9\"\n",
        ] {
            std::fs::write(&conf, format!("listen = [\"53=dns\"]\n{bad}")).unwrap();
            let r = settings(&ServeArgs {
                config: Some(conf.clone()),
                ..Default::default()
            });
            assert!(r.is_err(), "{bad}");
        }
        assert_eq!(
            parse_secondary("example.test=192.0.2.9:5353")
                .unwrap()
                .primary,
            "192.0.2.9:5353".parse().unwrap()
        );
        assert!(parse_secondary("example.test").is_err());
        // A key for flags' secondaries with none of them is a mistake, said.
        let lone_key = ServeArgs {
            config: Some(conf.clone()),
            secondary_key: Some(PathBuf::from("xfr.key")),
            ..Default::default()
        };
        assert!(settings(&lone_key).is_err_and(|e| e.contains("--secondary-key")));
        std::fs::write(
            &conf,
            "backend = \"xdp\"\niface = \"eth9\"\nlisten = [\"53=dns\"]\n",
        )
        .unwrap();
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
        assert_eq!(s.metrics, Some("127.0.0.1:9153".parse().unwrap()));
        assert_eq!(s.lameduck, Duration::from_secs(2));
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
        // The readiness probe's port.
        assert_eq!(s.metrics.map(|m| m.port()), Some(9153));
        // The ConfigMap puts the zone beside sluice.toml, as it is in the repository.
        let zone = dns::load_zone(&s.zones[0].file, s.zones[0].name.as_deref());
        assert!(zone.is_ok(), "{:?}", zone.err());
    }

    #[test]
    fn a_bad_metrics_address_is_an_error() {
        let Err(e) = file("listen = [\"53=dns\"]\nmetrics = \"9153\"").settings() else {
            panic!("accepted a port without an address");
        };
        assert!(e.contains("bad metrics address \"9153\""), "{e}");
        let ok = file("listen = [\"53=dns\"]\nmetrics = \"[::1]:9153\"").settings();
        assert_eq!(ok.unwrap().metrics, Some("[::1]:9153".parse().unwrap()));
    }

    #[test]
    fn core_lists_parse() {
        assert_eq!(parse_cores("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_cores("1").unwrap(), vec![1]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("a").is_err());
        assert!(parse_cores("").is_err());
    }

    /// The options a config file in /etc/sluice saying `text` gives.
    fn file(text: &str) -> Options {
        toml::from_str::<FileConfig>(text)
            .unwrap()
            .options(Path::new("/etc/sluice"))
    }

    /// The options the flags `args` give, parsed as on the command line.
    fn flags(args: &[&str]) -> Options {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let line = std::iter::once("serve").chain(args.iter().copied());
        Options::from(&<Serve as clap::Parser>::try_parse_from(line).unwrap().args)
    }

    #[test]
    fn a_flag_overrides_the_file() {
        let s = flags(&[
            "--listen",
            "7=echo",
            "--addr",
            "192.0.2.2",
            "--backend",
            "kernel",
            "--idle-timeout",
            "7",
            "--zone",
            "/srv/b.zone",
        ])
        .or(file(
            "listen = [\"53=dns\", \"9=discard\"]\naddr = [\"192.0.2.1\"]\nbackend = \"xdp\"\n\
             idle-timeout = 3\ncontrol = \"/tmp/c.sock\"\n[[zone]]\nfile = \"a.zone\"\n",
        ))
        .settings()
        .unwrap();
        assert_eq!(
            s.listen,
            vec![(7, BuiltinHandler::Echo)],
            "a list given replaces the file's whole"
        );
        assert_eq!(s.stack.addrs, vec![Ipv4Addr::new(192, 0, 2, 2)]);
        assert_eq!(s.stack.backend.kind(), Backend::Kernel);
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(7));
        assert_eq!(s.zones[0].file, Path::new("/srv/b.zone"));
        assert_eq!(
            s.control,
            Path::new("/tmp/c.sock"),
            "what the flags do not say, the file does"
        );
    }

    #[test]
    fn the_file_overrides_the_defaults() {
        let echo = || flags(&["--listen", "7=echo"]);
        let d = echo().or(file("")).settings().unwrap();
        assert_eq!(d.stack.backend.kind(), Backend::Kernel);
        assert_eq!(d.drain, Duration::from_secs(5));
        assert_eq!(d.limits.idle_timeout, Limits::default().idle_timeout);
        assert_eq!(d.limits.max_connections, Limits::default().max_connections);
        assert_eq!(d.control, Path::new(DEFAULT_CONTROL));
        assert!(d.stack.cores.is_empty() && d.stack.addrs.is_empty());
        assert!(d.transfer_allow.is_empty() && d.zones.is_empty());

        let s = echo()
            .or(file(
                "backend = \"xdp\"\niface = \"eth9\"\ncores = \"1,3\"\ndrain = 1\n\
                 idle-timeout = 2.5\nmax-connections = 10\nsyn-backlog = 64\nbusy-poll = 0\n\
                 napi-busy-poll = 50\ntransfer-allow = [\"10.0.0.0/8\"]\n\
                 control = \"/tmp/c.sock\"\n[[zone]]\nfile = \"a.zone\"\n",
            ))
            .settings()
            .unwrap();
        assert_eq!(s.stack.cores, vec![1, 3]);
        assert_eq!(s.drain, Duration::from_secs(1));
        assert_eq!(s.limits.idle_timeout, Duration::from_millis(2500));
        assert_eq!(s.limits.max_connections, 10);
        assert_eq!(s.transfer_allow, vec![(Ipv4Addr::new(10, 0, 0, 0), 8)]);
        assert_eq!(s.control, Path::new("/tmp/c.sock"));
        assert_eq!(s.zones[0].file, Path::new("/etc/sluice/a.zone"));
        let mut stack = s.stack;
        let x = stack.xdp_mut().unwrap();
        assert_eq!(
            (
                x.iface.as_str(),
                x.max_half_open,
                x.busy_poll,
                x.napi_busy_poll_us
            ),
            ("eth9", 64, Duration::ZERO, 50)
        );

        // What neither says, the stack's own defaults give.
        let mut stack = echo()
            .or(file("backend = \"xdp\"\niface = \"eth9\"\n"))
            .settings()
            .unwrap()
            .stack;
        let x = stack.xdp_mut().unwrap();
        let stack_defaults = XdpConfig::new("eth9");
        assert_eq!(
            (x.max_half_open, x.busy_poll, x.napi_busy_poll_us),
            (
                stack_defaults.max_half_open,
                stack_defaults.busy_poll,
                stack_defaults.napi_busy_poll_us
            )
        );
    }

    #[test]
    fn a_bad_value_in_the_file_gives_its_error() {
        let err = |text: &str| {
            flags(&["--listen", "7=echo"])
                .or(file(text))
                .settings()
                .err()
                .unwrap()
        };
        assert_eq!(
            file("listen = [\"53=dsn\"]").settings().err().unwrap(),
            "unknown handler \"dsn\" (dns, echo, discard)"
        );
        assert_eq!(
            err("backend = \"xpd\""),
            "unknown backend \"xpd\" (xdp, kernel)"
        );
        assert_eq!(
            err("cores = \"3-1\""),
            "\"3-1\" is not a core or a range of cores (e.g. 0-3,6)"
        );
        assert_eq!(
            err("transfer-allow = [\"10.0.0.0/33\"]"),
            "\"10.0.0.0/33\": the prefix length must be 0-32"
        );
        assert_eq!(
            err("idle-timeout = -1"),
            "--idle-timeout must be a number of seconds, not -1"
        );
        // A value a flag overrides is not used, nor checked.
        assert!(flags(&["--listen", "7=echo", "--backend", "kernel"])
            .or(file("backend = \"xpd\""))
            .settings()
            .is_ok());

        // A value of the wrong type is refused on reading the file, which is named.
        let dir = std::env::temp_dir().join(format!("sluice-bad-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sluice.toml");
        std::fs::write(&conf, "workers = \"many\"\n").unwrap();
        let err = settings(&ServeArgs {
            config: Some(conf.clone()),
            listen: vec![(7, BuiltinHandler::Echo)],
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(
            err.starts_with(&format!("{}: ", conf.display())) && err.contains("workers"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
