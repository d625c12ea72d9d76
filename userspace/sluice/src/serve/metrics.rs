//! `--metrics ADDR:PORT`: Prometheus metrics at `/metrics` and a health check at
//! `/health`, served from the control thread (tiny_http takes the connections on a
//! thread of its own; the requests are answered here, never on a worker). Each scrape
//! adds up the workers' counters (their own, written without locks).
//!
//! The DNS metrics follow CoreDNS's (`coredns_dns_requests_total{server,zone,proto,
//! family,type}`, `..._responses_total{server,zone,rcode}`, the request duration and
//! size histograms with CoreDNS's buckets), under `sluice_`; the stack's own are
//! `sluice_tcp_*`, `sluice_xdp_*` and `sluice_worker_*`, per `worker`. The names and
//! help texts are listed in docs/metrics.md.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice::dns_service::metrics::{self as m, DURATION_BUCKETS, RCODES, SIZE_BUCKETS, TYPES};
use sluice::dns_service::DnsService;
use stack::{Backend, Stack};

/// The HTTP side.
pub struct Exporter {
    server: tiny_http::Server,
}

impl Exporter {
    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr) -> Result<Exporter, String> {
        tiny_http::Server::http(addr)
            .map(|server| Exporter { server })
            .map_err(|e| format!("--metrics {addr}: {e}"))
    }

    /// Answers the requests waiting, at most `wait` for the first: `/metrics` with
    /// what `metrics` renders, `/health` with 200 (`serving`) or, `stopping` (from
    /// SIGTERM on), 503.
    pub fn answer(
        &self,
        wait: std::time::Duration,
        draining: bool,
        metrics: &mut dyn FnMut() -> String,
    ) {
        let mut next = self.server.recv_timeout(wait);
        while let Ok(Some(req)) = next {
            let path = req.url().split('?').next().unwrap_or("").to_string();
            let get = matches!(
                req.method(),
                tiny_http::Method::Get | tiny_http::Method::Head
            );
            let (code, body, kind) = match path.as_str() {
                _ if !get => (405, "only GET\n".to_string(), "text/plain"),
                "/metrics" => (200, metrics(), "text/plain; version=0.0.4; charset=utf-8"),
                "/health" if draining => (503, "stopping\n".to_string(), "text/plain"),
                "/health" => (200, "serving\n".to_string(), "text/plain"),
                _ => (404, "/metrics or /health\n".to_string(), "text/plain"),
            };
            let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes())
                .expect("a valid header");
            let _ = req.respond(
                tiny_http::Response::from_string(body)
                    .with_status_code(code)
                    .with_header(header),
            );
            next = self.server.try_recv();
        }
    }
}

/// The text exposition format, one family at a time.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str) {
        self.family(name, "counter", help);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A histogram's series from per-bucket (not cumulative) counts and its sum.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, &c) in counts.iter().enumerate() {
            cumulative += c;
            let le = bounds.get(i).map_or("+Inf".to_string(), |b| format!("{b}"));
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An RCODE's name, as CoreDNS labels it.
fn rcode_name(rc: usize) -> String {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    NAMES.get(rc).map_or(rc.to_string(), |n| n.to_string())
}

/// Everything, as of now. `server` is the DNS listeners' label (CoreDNS's `server`,
/// `dns://ADDR:PORT`).
pub fn render(stack: &Stack, dns: Option<&DnsService>, server: &str) -> String {
    let mut t = Text(String::with_capacity(16 * 1024));
    if let Some(d) = dns {
        render_dns(&mut t, d, server, stack.workers());
    }
    render_stack(&mut t, stack);
    t.0
}

/// A histogram family: name, help, buckets, the scale of its observations, and where
/// a zone's is.
type HistogramFamily = (
    &'static str,
    &'static str,
    &'static [f64],
    f64,
    fn(&m::ZoneMetrics) -> &m::Histogram,
);
/// A per-worker DNS counter: name, help, and where a worker's is.
type WorkerCounter = (
    &'static str,
    &'static str,
    fn(&sluice::dns_service::DnsCounters) -> &AtomicU64,
);
/// A per-worker stack counter: name, help, and its value in a worker's stats.
type StackCounter = (&'static str, &'static str, fn(&stack::WorkerStats) -> u64);

fn render_dns(t: &mut Text, d: &DnsService, server: &str, running: usize) {
    let zones = d.zone_slots.labels();
    let workers = &d.counters;
    let total = |f: &dyn Fn(&m::ZoneMetrics) -> &AtomicU64, z: usize| -> u64 {
        workers
            .iter()
            .map(|w| f(&w.by_zone.zones[z]).load(Ordering::Relaxed))
            .sum()
    };
    let used = |z: usize| !zones[z].is_empty();
    t.family(
        "sluice_dns_requests_total",
        "counter",
        "Counter of DNS requests made per zone, protocol and family.",
    );
    for z in (0..zones.len()).filter(|&z| used(z)) {
        for (i, name) in TYPES.iter().map(|(_, n)| *n).chain(["other"]).enumerate() {
            let n = total(&|zm| &zm.requests[i], z);
            if n > 0 {
                t.sample(
                    "sluice_dns_requests_total",
                    &[
                        ("server", server),
                        ("zone", &zones[z]),
                        ("proto", "tcp"),
                        ("family", "1"),
                        ("type", name),
                    ],
                    n,
                );
            }
        }
    }
    t.family(
        "sluice_dns_responses_total",
        "counter",
        "Counter of response status codes.",
    );
    for z in (0..zones.len()).filter(|&z| used(z)) {
        for rc in 0..RCODES {
            let n = total(&|zm| &zm.responses[rc], z);
            if n > 0 {
                t.sample(
                    "sluice_dns_responses_total",
                    &[
                        ("server", server),
                        ("zone", &zones[z]),
                        ("rcode", &rcode_name(rc)),
                    ],
                    n,
                );
            }
        }
    }
    let histograms: [HistogramFamily; 3] = [
        (
            "sluice_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took, from the query whole in hand to its answer in the reply (one request in 16 timed).",
            DURATION_BUCKETS,
            1e9,
            |z| &z.duration,
        ),
        (
            "sluice_dns_request_size_bytes",
            "Size of the request in bytes (the DNS message, without TCP's length prefix).",
            SIZE_BUCKETS,
            1.0,
            |z| &z.request_size,
        ),
        (
            "sluice_dns_response_size_bytes",
            "Size of the returned response in bytes.",
            SIZE_BUCKETS,
            1.0,
            |z| &z.response_size,
        ),
    ];
    for (name, help, bounds, scale, of) in histograms {
        t.family(name, "histogram", help);
        for z in (0..zones.len()).filter(|&z| used(z)) {
            let mut counts = vec![0u64; bounds.len() + 1];
            let mut sum = 0u64;
            for w in workers {
                sum += of(&w.by_zone.zones[z]).add_to(&mut counts);
            }
            if counts.iter().all(|&c| c == 0) {
                continue;
            }
            let labels: Vec<(&str, &str)> = if name.contains("duration") {
                vec![("server", server), ("zone", &zones[z])]
            } else {
                vec![("server", server), ("zone", &zones[z]), ("proto", "tcp")]
            };
            t.histogram(name, &labels, bounds, &counts, sum as f64 / scale);
        }
    }
    // sluice's own, per worker: the workers running, and the other counter slots only
    // when they counted something (the last is threads that are not workers).
    let shown = |i: usize, v: u64| i < running || v > 0;
    let per_worker: [WorkerCounter; 7] = [
        (
            "sluice_dns_connections_total",
            "DNS connections admitted.",
            |c| &c.connections,
        ),
        (
            "sluice_dns_transfers_total",
            "Zone transfers (AXFR) served.",
            |c| &c.transfers,
        ),
        (
            "sluice_dns_transfers_refused_total",
            "Zone transfers refused for their TSIG (unsigned or badly signed).",
            |c| &c.transfers_refused,
        ),
        (
            "sluice_dns_dropped_total",
            "Queries left unanswered (not a question).",
            |c| &c.dropped,
        ),
        (
            "sluice_dns_connections_refused_total",
            "Connections refused by the total or per-source limit (nothing to evict).",
            |c| &c.limit_refused,
        ),
        (
            "sluice_dns_overload_sessions_total",
            "Connections served in overload mode (past 90 % of the connection limit).",
            |c| &c.overload_sessions,
        ),
        ("sluice_dns_queries_total", "Queries read.", |c| &c.queries),
    ];
    for (name, help, of) in per_worker {
        t.counter(name, help);
        for (i, w) in workers.iter().enumerate() {
            let v = of(w).load(Ordering::Relaxed);
            if shown(i, v) {
                t.sample(name, &[("worker", &worker_label(i, workers.len()))], v);
            }
        }
    }
    t.counter(
        "sluice_dns_connections_closed_total",
        "DNS connections closed by the server, by reason.",
    );
    for (i, w) in workers.iter().enumerate() {
        let reasons: [(&str, &AtomicU64); 6] = [
            ("garbage", &w.garbage_closed),
            ("idle", &w.idle_closed),
            ("slow", &w.slow_closed),
            ("lifetime", &w.lifetime_closed),
            ("evicted_total_limit", &w.evicted_total_limit),
            ("evicted_source_limit", &w.evicted_source_limit),
        ];
        for (reason, c) in reasons {
            let v = c.load(Ordering::Relaxed);
            if shown(i, v) {
                t.sample(
                    "sluice_dns_connections_closed_total",
                    &[
                        ("worker", &worker_label(i, workers.len())),
                        ("reason", reason),
                    ],
                    v,
                );
            }
        }
    }
}

/// Worker `i` of the DNS service's counters (the last is threads that are not workers).
fn worker_label(i: usize, slots: usize) -> String {
    if i + 1 == slots {
        "other".into()
    } else {
        i.to_string()
    }
}

fn render_stack(t: &mut Text, stack: &Stack) {
    let stats = stack.stats();
    let label = |i: usize| i.to_string();
    if stack.backend() == Backend::Kernel {
        t.family(
            "sluice_tcp_connections_open",
            "gauge",
            "Connections open (the kernel's TCP).",
        );
        for (i, w) in stats.iter().enumerate() {
            t.sample(
                "sluice_tcp_connections_open",
                &[("worker", &label(i))],
                w.connections,
            );
        }
        t.counter("sluice_tcp_accepted_total", "Connections accepted.");
        for (i, w) in stats.iter().enumerate() {
            t.sample(
                "sluice_tcp_accepted_total",
                &[("worker", &label(i))],
                w.accepted,
            );
        }
        return;
    }
    t.family(
        "sluice_tcp_connections",
        "gauge",
        "Connections open, by TCP state (RFC 9293's names).",
    );
    for (i, w) in stats.iter().enumerate() {
        let s = &w.states;
        let states: [(&str, u64); 9] = [
            ("syn_sent", s.syn_sent),
            ("syn_received", s.syn_received),
            ("established", s.established),
            ("fin_wait_1", s.fin_wait_1),
            ("fin_wait_2", s.fin_wait_2),
            ("close_wait", s.close_wait),
            ("closing", s.closing),
            ("last_ack", s.last_ack),
            ("time_wait", s.time_wait),
        ];
        for (state, v) in states {
            t.sample(
                "sluice_tcp_connections",
                &[("worker", &label(i)), ("state", state)],
                v,
            );
        }
    }
    let counters: [StackCounter; 13] = [
        (
            "sluice_tcp_accepted_total",
            "Connections accepted (passive opens begun).",
            |w| w.accepted,
        ),
        (
            "sluice_tcp_opened_total",
            "Passive opens whose handshake completed.",
            |w| w.handshakes,
        ),
        (
            "sluice_tcp_closed_total",
            "Connections served to their end (closed without a reset or a timeout).",
            |w| w.completed,
        ),
        (
            "sluice_tcp_syns_received_total",
            "SYNs to a listener that reached the worker.",
            |w| w.syns_received,
        ),
        (
            "sluice_tcp_syn_cookies_sent_total",
            "SYNs answered with a SYN cookie (the half-open backlog was full).",
            |w| w.syn_cookies_sent,
        ),
        (
            "sluice_tcp_syn_cookies_accepted_total",
            "Connections made from a returned SYN cookie.",
            |w| w.syn_cookies_accepted,
        ),
        (
            "sluice_tcp_resets_sent_total",
            "RSTs sent for segments that matched no connection or listener.",
            |w| w.resets_sent,
        ),
        (
            "sluice_tcp_aborted_on_close_total",
            "Connections reset because they were let go of with data unread.",
            |w| w.aborted_on_close,
        ),
        (
            "sluice_tcp_retransmits_total",
            "Segments sent again.",
            |w| w.retransmits,
        ),
        (
            "sluice_tcp_timeouts_total",
            "Retransmission timeouts.",
            |w| w.timeouts,
        ),
        (
            "sluice_tcp_fast_recoveries_total",
            "Fast recoveries entered.",
            |w| w.recoveries,
        ),
        (
            "sluice_tcp_time_wait_reopened_total",
            "SYNs that reopened a 4-tuple held in TIME-WAIT (RFC 6191).",
            |w| w.time_wait_reopened,
        ),
        (
            "sluice_tcp_syns_no_listener_total",
            "SYNs to a port nothing listens on, answered with a RST.",
            |w| w.syns_no_listener,
        ),
    ];
    let frames: [StackCounter; 5] = [
        (
            "sluice_xdp_rx_frames_total",
            "Frames received from the AF_XDP socket.",
            |w| w.rx_frames,
        ),
        ("sluice_xdp_tx_frames_total", "Frames transmitted.", |w| {
            w.tx_frames
        }),
        (
            "sluice_xdp_tx_ring_full_total",
            "Frames that found the TX ring full (TCP sends them again).",
            |w| w.tx_ring_full,
        ),
        (
            "sluice_xdp_tx_device_full_total",
            "TX kicks the kernel could take no frame from (copy mode; none lost).",
            |w| w.tx_device_full,
        ),
        (
            "sluice_xdp_tx_kick_refused_total",
            "TX kicks the kernel refused (EBUSY/ENOBUFS).",
            |w| w.tx_kick_refused,
        ),
    ];
    for (name, help, of) in counters.into_iter().chain(frames) {
        t.counter(name, help);
        for (i, w) in stats.iter().enumerate() {
            t.sample(name, &[("worker", &label(i))], of(w));
        }
    }
    t.counter(
        "sluice_xdp_rx_dropped_total",
        "Frames dropped before they reached a connection, by reason: by the worker (malformed, not_ipv4_tcp, bad_ipv4_checksum, bad_tcp_checksum, not_our_address) or by the kernel on its socket (rx_ring_full, fill_ring_empty, socket_other).",
    );
    for (i, w) in stats.iter().enumerate() {
        let d = &w.rx_drops;
        let mut reasons = vec![
            ("malformed", d.malformed),
            ("not_ipv4_tcp", d.not_ipv4_tcp),
            ("bad_ipv4_checksum", d.bad_ipv4_checksum),
            ("bad_tcp_checksum", d.bad_tcp_checksum),
            ("not_our_address", d.not_our_address),
        ];
        if let Some(s) = w.socket_drops {
            reasons.extend([
                ("rx_ring_full", s.rx_ring_full),
                ("fill_ring_empty", s.fill_empty),
                ("socket_other", s.other),
            ]);
        }
        for (reason, v) in reasons {
            t.sample(
                "sluice_xdp_rx_dropped_total",
                &[("worker", &label(i)), ("reason", reason)],
                v,
            );
        }
    }
    t.family(
        "sluice_xdp_syn_budget",
        "gauge",
        "SYNs a second the steering program admits on the worker's queue (0: every SYN).",
    );
    for (i, w) in stats.iter().enumerate() {
        t.sample(
            "sluice_xdp_syn_budget",
            &[("worker", &label(i))],
            w.syn_budget,
        );
    }
    if let Some(Ok(c)) = stack.steering_counters() {
        t.counter(
            "sluice_xdp_steering_frames_total",
            "Frames the steering program handled, by action: redirected to a socket, passed to the kernel (not for a service of ours), malformed (passed to the kernel), no_socket (ours, but no worker on the queue; passed to the kernel), shed (a SYN past the queue's admission budget, dropped), shed_ring (a SYN while the queue's socket ring was filling, dropped).",
        );
        for (action, v) in [
            ("redirected", c.redirected),
            ("passed", c.passed),
            ("malformed", c.malformed),
            ("no_socket", c.no_socket),
            ("shed", c.shed),
            ("shed_ring", c.shed_ring),
        ] {
            t.sample("sluice_xdp_steering_frames_total", &[("action", action)], v);
        }
    }
    t.counter(
        "sluice_worker_busy_seconds_total",
        "Time the worker spent on rounds that did work (a busy-polling worker shows a full core to the OS whatever its load).",
    );
    for (i, w) in stats.iter().enumerate() {
        t.sample(
            "sluice_worker_busy_seconds_total",
            &[("worker", &label(i))],
            w.busy_us as f64 / 1e6,
        );
    }
    t.counter(
        "sluice_worker_seconds_total",
        "Time since the worker started (busy over this is its load).",
    );
    for (i, w) in stats.iter().enumerate() {
        t.sample(
            "sluice_worker_seconds_total",
            &[("worker", &label(i))],
            w.elapsed_us as f64 / 1e6,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut t = Text(String::new());
        t.family("x_seconds", "histogram", "X.");
        t.histogram(
            "x_seconds",
            &[("zone", "a\"b.")],
            &[0.5, 1.0],
            &[1, 2, 3],
            4.25,
        );
        assert_eq!(
            t.0,
            "# HELP x_seconds X.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{zone=\"a\\\"b.\",le=\"0.5\"} 1\n\
             x_seconds_bucket{zone=\"a\\\"b.\",le=\"1\"} 3\n\
             x_seconds_bucket{zone=\"a\\\"b.\",le=\"+Inf\"} 6\n\
             x_seconds_sum{zone=\"a\\\"b.\"} 4.25\n\
             x_seconds_count{zone=\"a\\\"b.\"} 6\n"
        );
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(16), "16");
    }

    /// Every metric this file can render is documented in docs/metrics.md.
    #[test]
    fn every_metric_is_documented() {
        let docs = include_str!("../../../../docs/metrics.md");
        let source = include_str!("metrics.rs");
        let mut names: Vec<&str> = source
            .split('"')
            .filter(|s| s.starts_with("sluice_") && !s.contains(' ') && !s.contains('{'))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 30, "{names:?}");
        for n in names {
            assert!(
                docs.contains(&format!("`{n}`")),
                "{n} is not in docs/metrics.md"
            );
        }
    }
}
