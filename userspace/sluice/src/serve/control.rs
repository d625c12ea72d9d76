//! The control socket: the daemon answers each connection with its counters
//! ([`report`], or [`report_json`] when the client's first line asks for `json`), and
//! `sluice stats` ([`print_stats`]) prints them.

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
            let d = &w.rx_drops;
            out.push_str(&format!(
                "  dropped by reason: malformed {} not-ipv4-tcp {} bad-ipv4-checksum {} bad-tcp-checksum {} \
                 not-our-address {}; syns to no listener {} (answered with RST)\n",
                d.malformed, d.not_ipv4_tcp, d.bad_ipv4_checksum, d.bad_tcp_checksum,
                d.not_our_address, w.syns_no_listener
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
                 dropped {} transfers {} refused (TSIG) {}; closed: garbage {} idle {} slow {} lifetime {}; \
                 evicted at the total limit {} at the per-source limit {}; refused by limits {}; overload mode {}\n",
                g(&d.connections), g(&d.queries), g(&d.noerror), g(&d.nxdomain), g(&d.refused),
                g(&d.formerr), g(&d.notimp), g(&d.other_rcode), g(&d.dropped), g(&d.transfers), g(&d.transfers_refused),
                g(&d.garbage_closed), g(&d.idle_closed), g(&d.slow_closed), g(&d.lifetime_closed),
                g(&d.evicted_total_limit), g(&d.evicted_source_limit),
                g(&d.limit_refused), g(&d.overload_sessions)
            ));
        }
    }
    match stack.steering_counters() {
        Some(Ok(c)) => out.push_str(&format!(
            "steering program: redirected {} passed {} malformed {} no-socket {} shed (syn budget) {} shed (ring filling) {}\n",
            c.redirected, c.passed, c.malformed, c.no_socket, c.shed, c.shed_ring
        )),
        Some(Err(e)) => out.push_str(&format!("steering program: counters unreadable: {e}\n")),
        None => {}
    }
    if let Some(d) = dns {
        out.push_str(&format!("zones: {}\n", d.catalog.load().len()));
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for z in &d.secondaries {
            out.push_str(&format!(
                "secondary {} from {}: serial {}; axfr {} ixfr {} up-to-date {} failed {}; notify {} refused {}; expired {}{}\n",
                z.name,
                z.primary,
                z.serial().map_or("none (SERVFAIL)".to_string(), |s| s.to_string()),
                g(&z.axfr), g(&z.ixfr), g(&z.up_to_date), g(&z.failed),
                g(&z.notifies), g(&z.notifies_refused), g(&z.expired),
                z.last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// The same counters as [`report`], as a JSON document for scripts (`sluice stats
/// --json`); a field the backend does not keep is absent or null.
pub fn report_json(stack: &Stack, dns: Option<&DnsService>) -> String {
    use serde_json::{json, Value};
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let workers: Vec<Value> = stack
        .stats()
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut v = json!({
                "worker": i,
                "connections": w.connections,
                "accepted": w.accepted,
            });
            if stack.backend() != Backend::Kernel {
                let d = &w.rx_drops;
                let t = &w.states;
                v["rx_frames"] = json!(w.rx_frames);
                v["tx_frames"] = json!(w.tx_frames);
                v["rx_dropped"] = json!(w.rx_dropped);
                v["rx_drops"] = json!({
                    "malformed": d.malformed,
                    "not_ipv4_tcp": d.not_ipv4_tcp,
                    "bad_ipv4_checksum": d.bad_ipv4_checksum,
                    "bad_tcp_checksum": d.bad_tcp_checksum,
                    "not_our_address": d.not_our_address,
                });
                v["syns_no_listener"] = json!(w.syns_no_listener);
                v["socket_drops"] = match w.socket_drops {
                    Some(s) => json!({
                        "rx_ring_full": s.rx_ring_full,
                        "fill_empty": s.fill_empty,
                        "other": s.other,
                    }),
                    None => Value::Null,
                };
                v["tx_ring_full"] = json!(w.tx_ring_full);
                v["tx_device_full"] = json!(w.tx_device_full);
                v["tx_kick_refused"] = json!(w.tx_kick_refused);
                v["resets_sent"] = json!(w.resets_sent);
                v["aborted_on_close"] = json!(w.aborted_on_close);
                v["sessions_reset"] = json!(w.sessions_reset);
                v["syn_cookies_sent"] = json!(w.syn_cookies_sent);
                v["syn_cookies_accepted"] = json!(w.syn_cookies_accepted);
                v["syns_received"] = json!(w.syns_received);
                v["handshakes"] = json!(w.handshakes);
                v["completed"] = json!(w.completed);
                v["time_wait_reopened"] = json!(w.time_wait_reopened);
                v["retransmits"] = json!(w.retransmits);
                v["timeouts"] = json!(w.timeouts);
                v["recoveries"] = json!(w.recoveries);
                v["undone_recoveries"] = json!(w.undone_recoveries);
                v["handed_out"] = json!(w.handed_out);
                v["handed_in"] = json!(w.handed_in);
                v["busy_us"] = json!(w.busy_us);
                v["idle_poll_us"] = json!(w.idle_poll_us);
                v["elapsed_us"] = json!(w.elapsed_us);
                v["rx_polls"] = json!(w.rx_polls);
                v["rx_polls_full"] = json!(w.rx_polls_full);
                v["syn_budget"] = json!(w.syn_budget);
                v["syn_budget_changes"] = json!(w.syn_budget_changes);
                v["tcp_states"] = json!({
                    "syn_sent": t.syn_sent,
                    "syn_received": t.syn_received,
                    "established": t.established,
                    "fin_wait_1": t.fin_wait_1,
                    "fin_wait_2": t.fin_wait_2,
                    "close_wait": t.close_wait,
                    "closing": t.closing,
                    "last_ack": t.last_ack,
                    "time_wait": t.time_wait,
                });
            }
            if let Some(d) = dns.and_then(|d| d.counters.get(i)) {
                v["dns"] = json!({
                    "connections": g(&d.connections),
                    "queries": g(&d.queries),
                    "answers": {
                        "NOERROR": g(&d.noerror),
                        "NXDOMAIN": g(&d.nxdomain),
                        "REFUSED": g(&d.refused),
                        "FORMERR": g(&d.formerr),
                        "NOTIMP": g(&d.notimp),
                        "other": g(&d.other_rcode),
                    },
                    "dropped": g(&d.dropped),
                    "transfers": g(&d.transfers),
                    "transfers_refused": g(&d.transfers_refused),
                    "closed": {
                        "garbage": g(&d.garbage_closed),
                        "idle": g(&d.idle_closed),
                        "slow": g(&d.slow_closed),
                        "lifetime": g(&d.lifetime_closed),
                    },
                    "evicted_total_limit": g(&d.evicted_total_limit),
                    "evicted_source_limit": g(&d.evicted_source_limit),
                    "limit_refused": g(&d.limit_refused),
                    "overload_sessions": g(&d.overload_sessions),
                });
            }
            v
        })
        .collect();
    let steering = match stack.steering_counters() {
        Some(Ok(c)) => json!({
            "redirected": c.redirected,
            "passed": c.passed,
            "malformed": c.malformed,
            "no_socket": c.no_socket,
            "shed": c.shed,
            "shed_ring": c.shed_ring,
        }),
        Some(Err(e)) => json!({ "error": e.to_string() }),
        None => Value::Null,
    };
    let doc = json!({
        "backend": format!("{:?}", stack.backend()).to_lowercase(),
        "workers": workers,
        "steering_program": steering,
        "zones": dns.map(|d| d.catalog.load().len()),
        "secondaries": dns.map(|d| d.secondaries.iter().map(|z| json!({
            "zone": z.name,
            "primary": z.primary.to_string(),
            "serial": z.serial(),
            "axfr": g(&z.axfr),
            "ixfr": g(&z.ixfr),
            "up_to_date": g(&z.up_to_date),
            "failed": g(&z.failed),
            "notifies": g(&z.notifies),
            "notifies_refused": g(&z.notifies_refused),
            "expired": g(&z.expired),
            "last_error": *z.last_error.lock().unwrap_or_else(|p| p.into_inner()),
        })).collect::<Vec<_>>()),
    });
    let mut text = doc.to_string();
    text.push('\n');
    text
}

/// What a control client asks for: its first line, within a short wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The counters as text (also for a client that sends nothing).
    Text,
    /// The counters as JSON.
    Json,
    /// Reload the zones, and say how it went.
    Reload,
}

/// Reads a control client's request.
pub fn request(conn: &mut std::os::unix::net::UnixStream) -> Request {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got += n;
                if buf[..got].contains(&b'\n') {
                    break;
                }
            }
        }
    }
    let line = &buf[..got];
    if line.starts_with(b"json") {
        Request::Json
    } else if line.starts_with(b"reload") {
        Request::Reload
    } else {
        Request::Text
    }
}

/// Sends `request` to the daemon at `control`; returns its answer.
pub(crate) fn ask(control: &Path, request: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::{Read, Write};
    let mut conn = std::os::unix::net::UnixStream::connect(control).map_err(|e| {
        format!(
            "{}: {e} (is `sluice serve` running, with this --control?)",
            control.display()
        )
    })?;
    conn.write_all(request)?;
    // A reload of big zones takes a while.
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    Ok(text)
}

/// `sluice reload`: the daemon at `control` reloads its zones (as on SIGHUP) and says
/// how it went; an error when the zones did not load (the old ones stay).
pub fn reload(control: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let text = ask(control, b"reload\n")?;
    if text.is_empty() {
        return Err(
            "the daemon closed the control connection without an answer (is it shutting down?)"
                .into(),
        );
    }
    match text.strip_prefix("ok: ") {
        Some(rest) => {
            print!("{rest}");
            Ok(())
        }
        None => Err(text.trim_end().to_string().into()),
    }
}

/// `sluice stats`: prints what the daemon at `control` reports.
pub fn print_stats(control: &Path, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    print!(
        "{}",
        ask(control, if json { b"json\n" } else { b"text\n" })?
    );
    Ok(())
}
