//! The control socket: the daemon answers each connection with its counters
//! ([`report`]), and `sluice stats` ([`print_stats`]) prints them.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stack::{Backend, Stack};

use sluice::dns_service::DnsService;

/// Where `sluice stats` finds a running daemon unless told otherwise.
pub const DEFAULT_CONTROL: &str = "/run/sluice/control.sock";

/// The control socket, if it can be had (a warning otherwise: stats are then off).
pub fn open_control(path: &Path) -> Option<UnixListener> {
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
pub fn report(stack: &Stack, dns: Option<&DnsService>) -> String {
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
                 busy {} idle-poll {} of {} us; syn budget {} (changed {})\n",
                w.rx_frames, w.tx_frames, w.rx_dropped, w.tx_ring_full, w.tx_device_full, w.tx_kick_refused, w.connections, w.accepted,
                w.resets_sent, w.aborted_on_close, w.syn_cookies_sent, w.syn_cookies_accepted, w.time_wait_reopened, w.retransmits, w.timeouts, w.recoveries, w.undone_recoveries,
                w.handed_out, w.handed_in, w.busy_us, w.idle_poll_us, w.elapsed_us,
                if w.syn_budget == 0 { "none".to_string() } else { format!("{}/s", w.syn_budget) }, w.syn_budget_changes
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
                 dropped {} transfers {}; closed: garbage {} idle {} slow {} lifetime {}; \
                 evicted at the total limit {} at the per-source limit {}; refused by limits {}; overload mode {}\n",
                g(&d.connections), g(&d.queries), g(&d.noerror), g(&d.nxdomain), g(&d.refused),
                g(&d.formerr), g(&d.notimp), g(&d.other_rcode), g(&d.dropped), g(&d.transfers),
                g(&d.garbage_closed), g(&d.idle_closed), g(&d.slow_closed), g(&d.lifetime_closed),
                g(&d.evicted_total_limit), g(&d.evicted_source_limit),
                g(&d.limit_refused), g(&d.overload_sessions)
            ));
        }
    }
    match stack.steering_counters() {
        Some(Ok(c)) => out.push_str(&format!(
            "steering program: redirected {} passed {} malformed {} no-socket {} shed (syn budget) {}\n",
            c.redirected, c.passed, c.malformed, c.no_socket, c.shed
        )),
        Some(Err(e)) => out.push_str(&format!("steering program: counters unreadable: {e}\n")),
        None => {}
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
