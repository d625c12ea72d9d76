//! The DNS-over-TCP service: the `dns` handler of `sluice serve`. Each connection is an
//! RFC 7766 session, served in the stack's synchronous form (`stack::Session`: no task
//! per connection; on the kernel backend the stack runs it on a flow): queries framed
//! by their 2-byte length (dns::session, in place when a read holds them whole), each
//! answered as soon as it is whole (dns::answer), the answers to what one read brought
//! leaving together; idle timeout (from the last answers) and maximum lifetime per
//! connection; a maximum of concurrent connections and a per-source one. The zone
//! catalog is swapped whole on reload, so a query sees either the old zones or the new
//! ones.
//!
//! The connection limits are kept without a lock that every worker takes for every
//! connection (which would serialize the workers at hundreds of thousands of
//! connections a second each):
//! - the total as leases: each worker takes the right to open connections from one
//!   atomic counter in batches and gives unused ones back, so the counter is touched
//!   once per batch, and the total never exceeds the limit. The price is that a worker
//!   may refuse while others hold a few leased rights unused (fewer than a batch each,
//!   and a batch is at most an eighth of the limit shared by the workers);
//! - the per-source counts in a table split by source address into shards with a lock
//!   each: workers contend only when they admit connections from sources of the same
//!   shard at the same moment, and the limit is exact.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dns::session::Framer;
use dns::{answer, transfer, Answer, Catalog, ResponderConfig};
use stack::{Listener, Next, Session};

/// Connection limits (RFC 7766 §6.2 leaves them to the operator).
#[derive(Clone, Debug)]
pub struct Limits {
    /// A connection with no query for this long is closed.
    pub idle_timeout: Duration,
    /// A query must arrive whole within this long of its first byte (Knot's
    /// `tcp-io-timeout`): a client that dribbles it (slowloris) is cut off.
    pub io_timeout: Duration,
    /// A connection is closed after this long, busy or not.
    pub max_lifetime: Duration,
    /// Concurrent connections at most, in total.
    pub max_connections: usize,
    /// Concurrent connections at most from one source address.
    pub max_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_millis(500),
            max_lifetime: Duration::from_secs(120),
            max_connections: 100_000,
            max_per_source: 1_000,
        }
    }
}

/// A zone to serve: its file and, optionally, the name it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSource {
    /// The zone file.
    pub file: PathBuf,
    /// The origin the file must have (checked at load), if given.
    pub name: Option<String>,
}

/// Counters of one worker's DNS sessions.
#[derive(Default, Debug)]
pub struct DnsCounters {
    /// Connections admitted.
    pub connections: AtomicU64,
    /// Queries read (answered, transferred or dropped).
    pub queries: AtomicU64,
    /// Answers with RCODE NOERROR.
    pub noerror: AtomicU64,
    /// Answers with RCODE NXDOMAIN.
    pub nxdomain: AtomicU64,
    /// Answers with RCODE REFUSED.
    pub refused: AtomicU64,
    /// Answers with RCODE FORMERR.
    pub formerr: AtomicU64,
    /// Answers with RCODE NOTIMP.
    pub notimp: AtomicU64,
    /// Answers with any other RCODE.
    pub other_rcode: AtomicU64,
    /// Queries left unanswered (the responder said to drop them).
    pub dropped: AtomicU64,
    /// Zone transfers (AXFR) served.
    pub transfers: AtomicU64,
    /// Connections closed for a malformed frame.
    pub garbage_closed: AtomicU64,
    /// Connections closed at the idle timeout.
    pub idle_closed: AtomicU64,
    /// Connections closed because a query did not arrive whole within the I/O timeout
    /// (a client dribbling it, or one whose unread answers stopped its queries being
    /// read).
    pub slow_closed: AtomicU64,
    /// Connections closed at the maximum lifetime.
    pub lifetime_closed: AtomicU64,
    /// Connections refused by the total or per-source limit.
    pub limit_refused: AtomicU64,
    /// Connections served in overload mode (one query, a short idle timeout).
    pub overload_sessions: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The service shared by every worker.
pub struct DnsService {
    /// The zones served, swapped whole on reload.
    pub catalog: ArcSwap<Catalog>,
    /// Where the zones come from, for reloads.
    pub sources: Vec<ZoneSource>,
    /// How the responder answers.
    pub responder: ResponderConfig,
    /// How it answers in overload mode: edns-tcp-keepalive advertises 0 ("close as
    /// soon as you can", RFC 7828 §3.3.2).
    responder_overloaded: ResponderConfig,
    /// Connection limits.
    pub limits: Limits,
    /// Per worker (by thread name), then one for threads that are not workers.
    pub counters: Vec<DnsCounters>,
    /// Rights to open connections leased to workers (see the module's comment).
    leased: AtomicUsize,
    /// How many rights a worker leases at a time.
    lease_batch: usize,
    /// Per worker as `counters`: its leased rights and open connections.
    leases: Vec<Padded<Mutex<Lease>>>,
    /// Open connections per source address, in shards by address.
    per_source: Vec<Padded<Mutex<SourceCounts>>>,
}

/// Keeps each worker's (or shard's) lock on a cache line of its own, so that workers
/// touching their own do not slow each other down.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// A worker's share of the total limit.
#[derive(Default)]
struct Lease {
    /// Rights it holds.
    held: usize,
    /// Connections it has open (at most `held`).
    open: usize,
}

/// Open connections by source address. aHash rather than SipHash: keyed with random
/// state all the same (a peer picks its address), at a fraction of the cost per
/// connection.
type SourceCounts = HashMap<Ipv4Addr, u32, ahash::RandomState>;

/// Shards of the per-source table: enough that workers rarely meet on one.
const SOURCE_SHARDS: usize = 64;

/// The largest lease: one atomic operation per this many connections.
const MAX_LEASE_BATCH: usize = 64;

/// Loads every zone; all problems, with their lines, or the catalog.
pub fn load_catalog(sources: &[ZoneSource]) -> Result<Catalog, Vec<String>> {
    let mut zones = Vec::new();
    let mut errors = Vec::new();
    for s in sources {
        match dns::load_zone(&s.file, s.name.as_deref()) {
            Ok(z) => zones.push(z),
            Err(es) => errors.extend(es.into_iter().map(|e| e.to_string())),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Catalog::new(zones).map_err(|e| vec![e])
}

impl DnsService {
    /// Loads the zones and sets up the service for `workers` workers (their counters
    /// and leases; threads that are not workers share one more).
    pub fn new(
        sources: Vec<ZoneSource>,
        responder: ResponderConfig,
        limits: Limits,
        workers: usize,
    ) -> Result<Arc<DnsService>, Vec<String>> {
        let catalog = load_catalog(&sources)?;
        let lease_batch = (limits.max_connections / (8 * (workers + 1))).clamp(1, MAX_LEASE_BATCH);
        Ok(Arc::new(DnsService {
            catalog: ArcSwap::from_pointee(catalog),
            sources,
            responder_overloaded: ResponderConfig {
                tcp_keepalive_100ms: responder.tcp_keepalive_100ms.map(|_| 0),
                ..responder.clone()
            },
            responder,
            limits,
            counters: (0..=workers).map(|_| DnsCounters::default()).collect(),
            leased: AtomicUsize::new(0),
            lease_batch,
            leases: (0..=workers).map(|_| Padded::default()).collect(),
            per_source: (0..SOURCE_SHARDS).map(|_| Padded::default()).collect(),
        }))
    }

    /// Reloads every zone; on any error the old zones stay and the errors are returned.
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        let c = load_catalog(&self.sources)?;
        let n = c.len();
        self.catalog.store(Arc::new(c));
        Ok(n)
    }

    /// The calling thread's slot in `counters` and `leases`: its worker number, or the
    /// last slot for threads that are not workers.
    fn slot(&self) -> usize {
        thread_local! {
            /// This thread's worker number, from its name (read once per thread).
            static WORKER: Option<usize> = std::thread::current()
                .name()
                .and_then(|n| n.strip_prefix("sluice-w"))
                .and_then(|i| i.parse::<usize>().ok());
        }
        WORKER
            .with(|w| *w)
            .filter(|&i| i + 1 < self.counters.len())
            .unwrap_or(self.counters.len() - 1)
    }

    /// The counters of the calling worker thread.
    fn counters(&self) -> &DnsCounters {
        &self.counters[self.slot()]
    }

    fn source_shard(&self, peer: Ipv4Addr) -> &Mutex<SourceCounts> {
        // Fibonacci hashing: the top bits of the product spread neighbouring
        // addresses (one client subnet) over the shards.
        let h = u32::from(peer).wrapping_mul(0x9E37_79B9);
        &self.per_source[(h >> 26) as usize % SOURCE_SHARDS].0
    }

    /// Counts a new connection from `peer` against the limits.
    fn admit(self: &Arc<Self>, peer: Ipv4Addr) -> Option<Admitted> {
        let slot = self.slot();
        {
            let mut per = lock(self.source_shard(peer));
            let n = per.entry(peer).or_insert(0);
            if *n as usize >= self.limits.max_per_source {
                if *n == 0 {
                    per.remove(&peer);
                }
                return None;
            }
            *n += 1;
        }
        let mut lease = lock(&self.leases[slot].0);
        if lease.open == lease.held && !self.lease_more(&mut lease) {
            drop(lease);
            self.release_source(peer);
            return None;
        }
        lease.open += 1;
        Some(Admitted {
            svc: self.clone(),
            peer,
            slot,
        })
    }

    /// Takes one connection of `peer` off the per-source table.
    fn release_source(&self, peer: Ipv4Addr) {
        let mut per = lock(self.source_shard(peer));
        if let Some(n) = per.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&peer);
            }
        }
    }

    /// Whether the service is past 90 % of its total connection limit (by the rights
    /// leased to workers, which run ahead of the open connections by less than a batch
    /// each): new connections then get overload mode, in the spirit of dnsdist's (one
    /// query, a quarter of the idle timeout, edns-tcp-keepalive 0 advertised), so that
    /// the places free up for the clients to come.
    fn overloaded(&self) -> bool {
        self.leased.load(Ordering::Relaxed).saturating_mul(10)
            >= self.limits.max_connections.saturating_mul(9)
    }

    /// Leases up to a batch more rights from the total; false when none is left.
    fn lease_more(&self, lease: &mut Lease) -> bool {
        let max = self.limits.max_connections;
        let mut leased = self.leased.load(Ordering::Relaxed);
        loop {
            if leased >= max {
                return false;
            }
            let take = self.lease_batch.min(max - leased);
            match self.leased.compare_exchange_weak(
                leased,
                leased + take,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    lease.held += take;
                    return true;
                }
                Err(now) => leased = now,
            }
        }
    }

    /// The `dns` handler for a listener: a session per connection (the stack's
    /// synchronous form, see `stack::session`), the idle timeout armed after each
    /// batch of answers and bounded by the lifetime.
    pub fn listener(self: &Arc<Self>) -> Listener {
        let svc = self.clone();
        Listener::session(move |peer, _wake| {
            new_session(&svc, *peer.ip()).map(|s| Box::new(s) as Box<dyn Session>)
        })
    }
}

/// A connection counted against the limits until dropped.
struct Admitted {
    svc: Arc<DnsService>,
    peer: Ipv4Addr,
    /// The lease it counts against.
    slot: usize,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.svc.release_source(self.peer);
        let mut lease = lock(&self.svc.leases[self.slot].0);
        lease.open = lease.open.saturating_sub(1);
        // A batch unused goes back, so that other workers can have it.
        let spare = lease.held - lease.open;
        if spare >= self.svc.lease_batch {
            lease.held -= spare;
            self.svc.leased.fetch_sub(spare, Ordering::AcqRel);
        }
    }
}

/// Locks `m`; a panic elsewhere while it was held leaves counts that are still counts.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
struct DnsSession {
    svc: Arc<DnsService>,
    peer: Ipv4Addr,
    /// Counts against the limits until the session ends.
    _admitted: Admitted,
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
        let fed = self.framer.feed(data, |q| {
            add(&c.queries, 1);
            // One answer at a time is encoded into the worker's scratch buffer (zeroed
            // once per worker, not per connection), then framed into the reply.
            let a = SCRATCH.with_borrow_mut(|scratch| {
                let a = answer(&catalog, responder, peer, q, scratch);
                if let Answer::Message(n) = a {
                    count_rcode(c, rcode_of(scratch));
                    reply.extend_from_slice(&(n as u16).to_be_bytes());
                    reply.extend_from_slice(&scratch[..n]);
                }
                a
            });
            match a {
                Answer::Message(_) => {}
                Answer::Transfer => {
                    add(&c.transfers, 1);
                    count_rcode(c, 0);
                    transfer(&catalog, q, 16 * 1024, |m| {
                        reply.extend_from_slice(&(m.len() as u16).to_be_bytes());
                        reply.extend_from_slice(m);
                    });
                }
                Answer::Drop => add(&c.dropped, 1),
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
fn new_session(svc: &Arc<DnsService>, peer: Ipv4Addr) -> Option<DnsSession> {
    let c = svc.counters();
    let Some(admitted) = svc.admit(peer) else {
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
        _admitted: admitted,
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
