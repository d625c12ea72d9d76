//! One DNS-over-TCP connection's session: RFC 7766 framing and answers, its idle,
//! I/O and lifetime deadlines, overload mode, and its place in the limits.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dns::session::Framer;
use dns::{answer_noting, transfer, transfer_signed, Answer, Asked};
use stack::{Next, Session, Wake};

use super::limits::Place;
use super::{add, metrics, DnsCounters, DnsService};

/// The most reply one call makes (bar the one answer or transfer that crosses it):
/// the rest of what a read brought is answered once this is on its way.
const REPLY_CAP: usize = 64 * 1024;

thread_local! {
    /// Where a worker encodes answers: borrowed only while one is encoded, so every
    /// session of the worker shares it.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 65535]);
}

/// One DNS-over-TCP session (the synchronous form of the stack's listeners: the
/// worker calls it with each read, no task per connection).
pub(super) struct DnsSession {
    svc: Arc<DnsService>,
    peer: Ipv4Addr,
    /// Counts against the limits until the session ends, or until a newcomer takes it.
    place: Place,
    framer: Framer,
    /// The lifetime's end: the idle deadline never passes it (from `on_start`).
    end_of_life: Option<Instant>,
    /// When the idle timeout ends the connection.
    idle_until: Option<Instant>,
    /// When the query now arriving in pieces must be whole (the I/O timeout from its
    /// first byte); None when no query is partly here.
    partial_until: Option<Instant>,
    /// Opened past 90 % of the total limit: it gets one query's worth of answers and a
    /// short idle timeout, and is told so (see `DnsService::overloaded`).
    overloaded: bool,
}

impl DnsSession {
    /// The idle timeout: a quarter of the configured one in overload mode.
    fn idle_timeout(&self) -> Duration {
        if self.overloaded {
            self.svc.limits.idle_timeout / 4
        } else {
            self.svc.limits.idle_timeout
        }
    }

    /// The earlier of the idle and the I/O deadline.
    fn deadline(&self) -> Option<Instant> {
        match (self.idle_until, self.partial_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the connection's lifetime ends, fixed on the first call (`on_start`).
    fn end_of_life(&mut self, now: Instant) -> Instant {
        // `serve` caps the limits at a century, so this sum cannot overflow.
        *self
            .end_of_life
            .get_or_insert_with(|| now + self.svc.limits.max_lifetime)
    }

    /// Answers every whole query of what has arrived (`data` after what the framer
    /// holds) into `reply`; false on garbage.
    /// Stops once the reply holds `REPLY_CAP` bytes: `capped` then says the rest waits
    /// in the framer for the next call.
    fn answer_all(&mut self, data: &[u8], reply: &mut Vec<u8>, capped: &mut bool) -> bool {
        let c = self.svc.counters();
        let catalog = self.svc.catalog.load();
        let (svc, peer) = (&self.svc, self.peer);
        let responder = if self.overloaded {
            &svc.responder_overloaded
        } else {
            &svc.responder
        };
        let by_zone = svc.counts_queries_by_zone();
        let fed = self.framer.feed(data, |q| {
            // One query in TIMED_EVERY is timed: two clock reads for each would cost a
            // sixth of a pipelined query.
            let nth = c.queries.fetch_add(1, Ordering::Relaxed);
            let timed = (by_zone && nth.is_multiple_of(u64::from(metrics::TIMED_EVERY)))
                .then(std::time::Instant::now);
            let mut asked = Asked::default();
            // One answer at a time is encoded into the worker's scratch buffer (zeroed
            // once per worker, not per connection), then framed into the reply.
            let (a, rcode) = SCRATCH.with_borrow_mut(|scratch| {
                let a = answer_noting(&catalog, responder, peer, q, scratch, &mut asked);
                let mut rcode = 0;
                if let Answer::Message(n) = a {
                    rcode = rcode_of(scratch);
                    count_rcode(c, rcode);
                    reply.extend_from_slice(&(n as u16).to_be_bytes());
                    reply.extend_from_slice(&scratch[..n]);
                }
                (a, rcode)
            });
            let slot = catalog.slot(asked.zone);
            let answered = match a {
                Answer::Message(n) => Some((u16::from(rcode), n)),
                Answer::Transfer => {
                    let before = reply.len();
                    let mut messages = 0;
                    let emit = |m: &[u8]| {
                        reply.extend_from_slice(&(m.len() as u16).to_be_bytes());
                        reply.extend_from_slice(m);
                        messages += 1;
                    };
                    let refused = match &responder.transfer_key {
                        None => {
                            transfer(&catalog, q, 16 * 1024, emit);
                            false
                        }
                        Some(key) => match transfer_signed(&catalog, q, 16 * 1024, key, emit) {
                            Ok(_) => false,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "a zone transfer refused");
                                true
                            }
                        },
                    };
                    // A refused transfer's one message is REFUSED or NOTAUTH (counted
                    // as other).
                    let rcode = if refused {
                        add(&c.transfers_refused, 1);
                        reply
                            .get(before + 2..)
                            .map_or(dns::rcode::REFUSED, rcode_of)
                    } else {
                        add(&c.transfers, 1);
                        0
                    };
                    count_rcode(c, rcode);
                    Some((u16::from(rcode), reply.len() - before - 2 * messages))
                }
                Answer::Drop => {
                    add(&c.dropped, 1);
                    None
                }
            };
            if by_zone {
                c.by_zone.count(slot, asked.qtype, q.len(), answered);
            }
            if let Some(t) = timed {
                c.by_zone.time(slot, t.elapsed().as_nanos() as u64);
            }
            *capped = reply.len() >= REPLY_CAP;
            !*capped
        });
        match fed {
            Ok(()) => true,
            Err(why) => {
                tracing::debug!(peer = %self.peer, why, "closing a DNS connection");
                add(&c.garbage_closed, 1);
                false
            }
        }
    }
}

impl Session for DnsSession {
    fn on_start(&mut self, now: Instant) -> Next {
        let end = self.end_of_life(now);
        self.idle_until = Some((now + self.idle_timeout()).min(end));
        Next::Wait(self.deadline())
    }

    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, now: Instant) -> Next {
        let mut capped = false;
        if !self.answer_all(data, reply, &mut capped) {
            // The answers to what came before the garbage still leave, then the FIN.
            return Next::Close;
        }
        if !self.svc.touch(&self.place) {
            // Its place went to a newcomer as this arrived: answered, then closed.
            return Next::Close;
        }
        if self.overloaded && !reply.is_empty() {
            // One read's answers, then the connection's place goes to someone else.
            return Next::Close;
        }
        if capped && self.framer.pending() > 0 {
            // The rest once this part is on its way: a read full of queries does not
            // make a reply of megabytes at once.
            return Next::More;
        }
        // A client that always has more to send is never idle: its lifetime still ends.
        let end = self.end_of_life(now);
        if now >= end {
            add(&self.svc.counters().lifetime_closed, 1);
            return Next::Close;
        }
        // Idle from here, after the answers.
        self.idle_until = Some((now + self.idle_timeout()).min(end));
        // A query partly here must be whole within the I/O timeout of its first byte.
        self.partial_until = match (self.framer.pending(), self.partial_until) {
            (0, _) => None,
            (_, Some(t)) => Some(t),
            (_, None) => Some(now + self.svc.limits.io_timeout),
        };
        Next::Wait(self.deadline())
    }

    fn on_deadline(&mut self, now: Instant) -> Next {
        if self.svc.evicted(&self.place) {
            // Woken by the eviction (counted there).
            return Next::Close;
        }
        if self.deadline().is_some_and(|d| now < d) {
            // Woken early, by nothing this session knows of.
            return Next::Wait(self.deadline());
        }
        let ended = now >= self.end_of_life(now);
        let slow = self.partial_until.is_some_and(|t| now >= t);
        let c = self.svc.counters();
        if ended {
            add(&c.lifetime_closed, 1);
        } else if slow {
            add(&c.slow_closed, 1);
        } else {
            add(&c.idle_closed, 1);
        }
        Next::Close
    }
}

/// The session of a new connection from `peer`, or None when the limits refuse it.
pub(super) fn new_session(svc: &Arc<DnsService>, peer: Ipv4Addr, wake: Wake) -> Option<DnsSession> {
    let c = svc.counters();
    let Some(place) = svc.admit(peer, wake) else {
        add(&c.limit_refused, 1);
        return None;
    };
    add(&c.connections, 1);
    let overloaded = svc.overloaded();
    if overloaded {
        add(&c.overload_sessions, 1);
    }
    Some(DnsSession {
        svc: svc.clone(),
        peer,
        place,
        framer: Framer::new(4096),
        // Until on_start says.
        end_of_life: None,
        idle_until: None,
        partial_until: None,
        overloaded,
    })
}

fn count_rcode(c: &DnsCounters, rc: u8) {
    let counter = match rc {
        dns::rcode::NOERROR => &c.noerror,
        dns::rcode::NXDOMAIN => &c.nxdomain,
        dns::rcode::REFUSED => &c.refused,
        dns::rcode::FORMERR => &c.formerr,
        dns::rcode::NOTIMP => &c.notimp,
        _ => &c.other_rcode,
    };
    add(counter, 1);
}

/// The response code of the DNS message at the start of `message` (0 if it is too
/// short to have one, which an answer the responder wrote never is).
fn rcode_of(message: &[u8]) -> u8 {
    let flags = dns::header::get(message, dns::header::FLAGS).unwrap_or(0);
    (flags & dns::header::RCODE_MASK) as u8
}
