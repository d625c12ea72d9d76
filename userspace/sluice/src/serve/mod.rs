//! `sluice serve`: run the stack with listeners until SIGINT/SIGTERM (drain, then exit);
//! SIGHUP reloads the zones. Here, the serve loop and its signals; its settings (the
//! flags and the config file) in [`settings`], its built-in handlers in [`handlers`],
//! the control socket `sluice stats` reads in [`control`].

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use stack::{Backend, Listeners, Stack};

use sluice::dns_service::{give_back_freed_memory, secondary, DnsService};

mod control;
mod handlers;
mod metrics;
mod settings;
mod watch;

pub(crate) use control::ask;
use control::{open_control, report, report_json};
pub use control::{print_stats, reload, DEFAULT_CONTROL};
use handlers::{stream_listener, BuiltinHandler, HandlerStats};
use settings::settings;
pub use settings::ServeArgs;

/// Preferred busy polling keeps the device's interrupts (or veth's NAPI thread) quiet
/// only while the interface defers them: with `napi_defer_hard_irqs` or
/// `gro_flush_timeout` at 0, every packet still wakes the receive path, and the worker
/// pays its polling on top (measured on veth: 60 µs of core per one-query connection
/// instead of 22). Says so, and how to set them, rather than failing: the setting is
/// the host's.
fn warn_without_moderation(iface: &str) {
    let read = |knob: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{iface}/{knob}"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let (defer, flush) = (read("napi_defer_hard_irqs"), read("gro_flush_timeout"));
    if defer == Some(0) || flush == Some(0) {
        tracing::warn!(
            iface,
            napi_defer_hard_irqs = defer,
            gro_flush_timeout_ns = flush,
            "--napi-busy-poll without interrupt deferral on this interface: set both \
             (deploy/nic-setup.sh does, e.g. 2 and 200000) or the receive path still \
             wakes for every packet"
        );
    }
}

/// Zone transfers go out over kernel sockets from the kernel's ephemeral ports, and
/// their answers reach the kernel only if the steering program does not take those
/// ports for the stack's own connections: says so when the two ranges overlap.
fn warn_if_ports_overlap(first: u16, last: u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let kernel: Option<(u16, u16)> = range.and_then(|r| {
        let mut it = r.split_whitespace().filter_map(|p| p.parse().ok());
        Some((it.next()?, it.next()?))
    });
    if let Some((lo, hi)) = kernel {
        if lo <= last && first <= hi {
            tracing::warn!(
                kernel_ports = %format!("{lo}-{hi}"),
                stack_ports = %format!("{first}-{last}"),
                "the kernel's ephemeral ports (net.ipv4.ip_local_port_range) overlap the stack's: \
                 a zone transfer from such a port has its answers taken by the stack and reset; \
                 narrow the kernel's range"
            );
        }
    }
}

/// `sluice serve`: serves until SIGINT or SIGTERM, then drains and returns.
pub fn run(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let s = settings(args)?;
    if let Some(iface) = &s.iface {
        xsk::iface::ifindex(iface)?;
    }
    if let stack::BackendConfig::Xdp(x) = &s.stack.backend {
        if x.napi_busy_poll_us > 0 {
            warn_without_moderation(&x.iface);
        }
    }
    let wants_dns = s.listen.iter().any(|(_, h)| *h == BuiltinHandler::Dns);
    let no_zones = s.zones.is_empty() && s.secondaries.is_empty();
    if wants_dns && no_zones {
        return Err("the dns handler needs at least one --zone or --secondary".into());
    }
    if !wants_dns && !no_zones {
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
            transfer_key: s
                .transfer_key
                .as_deref()
                .map(secondary::read_key)
                .transpose()?,
            ..Default::default()
        };
        let svc = DnsService::with_secondaries(
            s.zones.clone(),
            &s.secondaries,
            responder,
            s.limits.clone(),
            counter_slots,
        )
        .map_err(|errors| format!("bad zone:\n  {}", errors.join("\n  ")))?;
        let catalog = svc.catalog.load();
        give_back_freed_memory();
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
    // Bound before the stack starts: a taken port is an error, not a silent loss.
    let exporter = s.metrics.map(metrics::Exporter::bind).transpose()?;
    if let (Some(_), Some(svc)) = (&exporter, &dns_service) {
        svc.count_queries_by_zone(true);
    }
    // CoreDNS's `server` label: where the DNS handler listens.
    let dns_server = {
        let addr = s
            .stack
            .addrs
            .first()
            .map_or("0.0.0.0".to_string(), |a| a.to_string());
        let ports: Vec<String> = s
            .listen
            .iter()
            .filter(|(_, h)| *h == BuiltinHandler::Dns)
            .map(|(p, _)| p.to_string())
            .collect();
        format!("dns://{addr}:{}", ports.join(","))
    };
    if let (stack::BackendConfig::Xdp(x), false) = (&s.stack.backend, s.secondaries.is_empty()) {
        warn_if_ports_overlap(x.client_ports.first, x.client_ports.last);
    }
    if s.notify_listen.is_some() && s.secondaries.is_empty() {
        tracing::warn!("--notify-listen without secondary zones: NOTIFYs are taken for none");
    }
    // The secondary zones' transfers start at once, on a thread of their own.
    let _follower = match &dns_service {
        Some(svc) if !s.secondaries.is_empty() => Some(secondary::start(
            svc.clone(),
            &s.secondaries,
            s.notify_listen,
        )?),
        _ => None,
    };
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
    let mut drop_watch = watch::DropWatch::new();
    // Zones load on a thread of their own: a big zone must not stall the control thread,
    // whose /health a fleet's announcer polls (deploy/fleet/announce.sh).
    let reloading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if !s.lameduck.is_zero() && exporter.is_none() {
        tracing::warn!(
            "--lameduck without --metrics: nothing can see the health check go down, so the lame-duck time only delays the shutdown"
        );
    }
    let mut worker_lost = false;
    // One turn of the control thread's work, about every 50 ms: the drop watch, the
    // control socket, the metrics endpoint (`/health` at 503 when `health_down`).
    let mut tick = |health_down: bool| {
        let now = std::time::Instant::now();
        if backend != Backend::Kernel && drop_watch.due(now) {
            let steering = stack.steering_counters().and_then(Result::ok);
            let totals = watch::Totals::of(&stack.stats(), steering.as_ref());
            for (reason, message) in drop_watch.look(now, totals) {
                tracing::warn!(?reason, "{message}");
            }
        }
        if let Some(l) = &control {
            while let Ok((mut conn, _)) = l.accept() {
                let _ = conn.set_nonblocking(false);
                let text = match control::request(&mut conn) {
                    control::Request::Json => report_json(&stack, dns_service.as_deref()),
                    control::Request::Text => report(&stack, dns_service.as_deref()),
                    control::Request::Reload => {
                        // Answered by the reload's thread once it is done.
                        reload_in_background(&dns_service, &reloading, "sluice reload", Some(conn));
                        continue;
                    }
                };
                let _ = conn.write_all(text.as_bytes());
            }
        }
        match &exporter {
            Some(e) => e.answer(Duration::from_millis(50), health_down, &mut || {
                metrics::render(&stack, dns_service.as_deref(), &dns_server)
            }),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let signal = 'serving: loop {
        for sig in signals.pending() {
            if sig == signal_hook::consts::SIGHUP {
                reload_in_background(&dns_service, &reloading, "SIGHUP", None);
            } else {
                break 'serving sig;
            }
        }
        if stack.lost_a_worker() {
            // Its queue's packets now go to the kernel, which resets them: better to
            // stop, health check down, and let the supervisor start it again.
            tracing::error!("a worker stopped on its own: shutting down (see the messages above)");
            worker_lost = true;
            break 'serving signal_hook::consts::SIGTERM;
        }
        tick(false);
    };
    if !s.lameduck.is_zero() {
        // Lame duck: /health says 503 so that whatever sends clients here stops, while
        // everything is served as before; a second signal cuts it short.
        tracing::info!(
            signal = signal_name(signal),
            lameduck_s = s.lameduck.as_secs_f64(),
            "stopping: health check down, still serving for the lame-duck time"
        );
        let until = std::time::Instant::now() + s.lameduck;
        while std::time::Instant::now() < until {
            let again = signals
                .pending()
                .any(|sig| sig != signal_hook::consts::SIGHUP);
            if again {
                break;
            }
            tick(true);
        }
    }
    tracing::info!(
        signal = signal_name(signal),
        drain_s = s.drain.as_secs_f64(),
        "stopping: no new connections, draining"
    );
    stack.begin_shutdown(s.drain);
    // While the workers drain, the health check says so (load balancers stop sending)
    // and the metrics still answer.
    let give_up = std::time::Instant::now() + s.drain + Duration::from_secs(5);
    while !stack.stopped() && std::time::Instant::now() < give_up {
        tick(true);
    }
    stack.shutdown(Duration::ZERO);
    if control.is_some() {
        let _ = std::fs::remove_file(&s.control);
    }
    tracing::info!(
        flows = stats.flows.load(Ordering::Relaxed),
        bytes = stats.bytes.load(Ordering::Relaxed),
        "stopped"
    );
    if worker_lost {
        return Err("a worker stopped on its own (see the log)".into());
    }
    Ok(())
}

/// Reloads the zones on a thread of its own (one at a time) and, for `sluice reload`,
/// answers the control client on it when done.
fn reload_in_background(
    dns: &Option<Arc<DnsService>>,
    busy: &Arc<std::sync::atomic::AtomicBool>,
    why: &'static str,
    reply: Option<std::os::unix::net::UnixStream>,
) {
    if busy.swap(true, Ordering::AcqRel) {
        if let Some(mut c) = reply {
            let _ = c.write_all(b"a reload is already running; try again when it is done\n");
        }
        return;
    }
    let (dns, busy) = (dns.clone(), busy.clone());
    let spawned = std::thread::Builder::new()
        .name("sluice-reload".into())
        .spawn(move || {
            let text = reload_zones(dns.as_deref(), why);
            busy.store(false, Ordering::Release);
            if let Some(mut c) = reply {
                let _ = c.write_all(text.as_bytes());
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "{why}: cannot start the reload's thread");
    }
}

/// Reloads the zones (on SIGHUP, or `sluice reload`), logs how it went, and says so
/// for a control client: `ok: ...` or the errors (the old zones stay).
fn reload_zones(dns: Option<&DnsService>, why: &str) -> String {
    match dns {
        Some(svc) => match svc.reload() {
            Ok(n) => {
                give_back_freed_memory();
                tracing::info!(zones = n, "{why}: zones reloaded");
                format!("ok: {n} zones reloaded\n")
            }
            Err(errors) => {
                tracing::error!(
                    "{why}: the zones did not load, the old ones stay:\n  {}",
                    errors.join("\n  ")
                );
                format!(
                    "the zones did not load, the old ones stay:\n  {}\n",
                    errors.join("\n  ")
                )
            }
        },
        None => {
            tracing::info!("{why}: no zones to reload");
            "ok: no zones to reload\n".into()
        }
    }
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
