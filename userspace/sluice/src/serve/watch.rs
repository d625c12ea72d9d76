//! Tells the operator, in the log, when frames are dropped for a reason they can act
//! on: the control thread looks at the workers' counters every [`LOOK_EVERY`] and
//! warns, at most once per [`QUIET`] for each reason, naming the cause and the fix.
//! The counters themselves (`sluice stats`) stay the record; this is the nudge that
//! someone should read them. Drops by design (SYNs shed by admission, connections
//! refused by limits) are not warned about.

use std::time::{Duration, Instant};

use stack::{SteeringCounters, WorkerStats};

/// How often the counters are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(10);
/// The least time between two warnings for the same reason.
pub const QUIET: Duration = Duration::from_secs(60);
/// Bad checksums in one look from which they are "in bulk": a stray damaged frame is
/// the network's business, a stream of them is a misconfiguration.
const BULK: u64 = 10;

/// The counters the watch follows, summed over the workers (and the steering
/// program's), cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub bad_tcp_checksum: u64,
    pub bad_ipv4_checksum: u64,
    pub not_our_address: u64,
    pub syns_no_listener: u64,
    /// Frames the kernel dropped for a full RX ring or an empty fill ring.
    pub ring_full: u64,
    /// Frames the steering program passed to the kernel for want of a socket.
    pub no_socket: u64,
}

impl Totals {
    pub fn of(workers: &[WorkerStats], steering: Option<&SteeringCounters>) -> Totals {
        let mut t = Totals::default();
        for w in workers {
            t.bad_tcp_checksum += w.rx_drops.bad_tcp_checksum;
            t.bad_ipv4_checksum += w.rx_drops.bad_ipv4_checksum;
            t.not_our_address += w.rx_drops.not_our_address;
            t.syns_no_listener += w.syns_no_listener;
            if let Some(d) = w.socket_drops {
                t.ring_full += d.rx_ring_full + d.fill_empty;
            }
        }
        t.no_socket = steering.map_or(0, |s| s.no_socket);
        t
    }
}

/// Why frames were dropped, for the rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    BadTcpChecksum,
    BadIpv4Checksum,
    NotOurAddress,
    NoListener,
    RingFull,
    NoSocket,
}

const REASONS: usize = 6;

/// The watch's memory: the last counters looked at and when each reason last warned.
#[derive(Debug)]
pub struct DropWatch {
    last: Option<(Instant, Totals)>,
    warned: [Option<Instant>; REASONS],
}

impl Default for DropWatch {
    fn default() -> Self {
        DropWatch::new()
    }
}

impl DropWatch {
    pub fn new() -> DropWatch {
        DropWatch {
            last: None,
            warned: [None; REASONS],
        }
    }

    /// Whether it is time to look (the first look sets the baseline).
    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|(at, _)| now.saturating_duration_since(at) >= LOOK_EVERY)
    }

    /// Looks at the counters `now`; returns the warnings to log.
    pub fn look(&mut self, now: Instant, totals: Totals) -> Vec<(Reason, String)> {
        let Some((then, last)) = self.last.replace((now, totals)) else {
            return Vec::new();
        };
        let secs = now.saturating_duration_since(then).as_secs().max(1);
        let d = |now: u64, then: u64| now.saturating_sub(then);
        let mut out = Vec::new();
        let n = d(totals.bad_tcp_checksum, last.bad_tcp_checksum);
        if n >= BULK {
            out.push((
                Reason::BadTcpChecksum,
                format!(
                    "{n} frames dropped for a bad TCP checksum in the last {secs} s. If the clients \
                     are on this host (a veth peer, a container, a bridge), their kernel left the \
                     checksum to an offload that never ran: turn it off at the sender (`ethtool -K \
                     IFACE tx off`), or serve on the veth itself, where sluice accepts such frames. \
                     Otherwise frames are damaged on the way: check the NIC's counters (`ethtool -S`)"
                ),
            ));
        }
        let n = d(totals.bad_ipv4_checksum, last.bad_ipv4_checksum);
        if n >= BULK {
            out.push((
                Reason::BadIpv4Checksum,
                format!(
                    "{n} frames dropped for a bad IPv4 header checksum in the last {secs} s: frames \
                     are damaged on the way; check the NIC's counters (`ethtool -S`), its link and \
                     what is between it and the clients"
                ),
            ));
        }
        let n = d(totals.not_our_address, last.not_our_address);
        if n > 0 {
            out.push((
                Reason::NotOurAddress,
                format!(
                    "{n} frames for addresses sluice does not serve reached a worker in the last \
                     {secs} s and were dropped: another program's XDP setup, or a stale steering map; \
                     check `--addr` and `ip link show` for the XDP program attached"
                ),
            ));
        }
        let n = d(totals.syns_no_listener, last.syns_no_listener);
        if n > 0 {
            out.push((
                Reason::NoListener,
                format!(
                    "{n} connection attempts in the last {secs} s were for a port nothing listens \
                     on here and were answered with a reset: if they are meant for sluice, serve \
                     the port (`--listen PORT=HANDLER`); if not, the clients have the wrong port"
                ),
            ));
        }
        let n = d(totals.ring_full, last.ring_full);
        if n > 0 {
            out.push((
                Reason::RingFull,
                format!(
                    "{n} frames lost in the last {secs} s because a worker's RX ring was full (or \
                     its fill ring empty): it falls behind its queue. Spread the load over more \
                     queues and cores (`ethtool -L`, `--cores`), keep `--admission adaptive`, and \
                     cut the cost per packet with interrupt moderation and `--napi-busy-poll` \
                     (deploy/nic-setup.sh); `sluice stats` says which worker"
                ),
            ));
        }
        let n = d(totals.no_socket, last.no_socket);
        if n > 0 {
            out.push((
                Reason::NoSocket,
                format!(
                    "{n} frames for sluice arrived in the last {secs} s on a queue no worker serves \
                     and went to the kernel, which resets them: give every RX queue a worker \
                     (`--cores` as many as `ethtool -l` shows, or fewer queues with `ethtool -L`)"
                ),
            ));
        }
        out.retain(|(reason, _)| {
            let slot = &mut self.warned[*reason as usize];
            if slot.is_some_and(|at| now.saturating_duration_since(at) < QUIET) {
                return false;
            }
            *slot = Some(now);
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_a_minute_per_reason_and_only_on_new_drops() {
        let mut w = DropWatch::new();
        let t0 = Instant::now();
        assert!(w.due(t0));
        assert!(w.look(t0, Totals::default()).is_empty(), "the baseline");
        assert!(!w.due(t0 + Duration::from_secs(1)));
        let t1 = t0 + LOOK_EVERY;
        let mut c = Totals {
            bad_tcp_checksum: 50,
            ring_full: 3,
            ..Totals::default()
        };
        let got = w.look(t1, c);
        let reasons: Vec<Reason> = got.iter().map(|(r, _)| *r).collect();
        assert_eq!(reasons, [Reason::BadTcpChecksum, Reason::RingFull]);
        assert!(got[0]
            .1
            .starts_with("50 frames dropped for a bad TCP checksum in the last 10 s"));
        assert!(
            got[0].1.contains("ethtool -K"),
            "names the fix: {}",
            got[0].1
        );
        // More of the same ten seconds later: quiet for a minute.
        c.bad_tcp_checksum += 50;
        c.ring_full += 1;
        assert!(w.look(t1 + LOOK_EVERY, c).is_empty());
        // A new reason is not held back by another's quiet time.
        c.syns_no_listener = 1;
        let got = w.look(t1 + LOOK_EVERY * 2, c);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Reason::NoListener);
        // A stray bad checksum is not "in bulk"; a minute on, bulk warns again.
        c.bad_tcp_checksum += 1;
        assert!(w.look(t1 + QUIET, c).is_empty());
        c.bad_tcp_checksum += BULK;
        let got = w.look(t1 + QUIET + LOOK_EVERY, c);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Reason::BadTcpChecksum);
    }
}
