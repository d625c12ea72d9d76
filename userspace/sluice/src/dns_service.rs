//! The DNS-over-TCP service: the `dns` handler of `sluice serve`. Each flow is an RFC 7766
//! session: queries framed by their 2-byte length (dns::session), each answered as soon
//! as it is whole (dns::answer), the answers to what one read brought leaving together
//! in one writev; idle timeout and maximum lifetime per connection; a maximum of
//! concurrent connections and a per-source one. The zone catalog is swapped whole on
//! reload, so a query sees either the old zones or the new ones.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::BytesMut;
use dns::session::{Frame, Framer};
use dns::{answer, transfer, Answer, Catalog, ResponderConfig};
use stack::{Flow, Listener};

/// Connection limits (RFC 7766 §6.2 leaves them to the operator).
#[derive(Clone, Debug)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub max_connections: usize,
    pub max_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(120),
            max_connections: 100_000,
            max_per_source: 1_000,
        }
    }
}

/// A zone to serve: its file and, optionally, the name it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSource {
    pub file: PathBuf,
    pub name: Option<String>,
}

/// Counters of one worker's DNS sessions.
#[derive(Default, Debug)]
pub struct DnsCounters {
    pub connections: AtomicU64,
    pub queries: AtomicU64,
    pub noerror: AtomicU64,
    pub nxdomain: AtomicU64,
    pub refused: AtomicU64,
    pub formerr: AtomicU64,
    pub notimp: AtomicU64,
    pub other_rcode: AtomicU64,
    pub dropped: AtomicU64,
    pub transfers: AtomicU64,
    pub garbage_closed: AtomicU64,
    pub idle_closed: AtomicU64,
    pub lifetime_closed: AtomicU64,
    pub limit_refused: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The service shared by every worker.
pub struct DnsService {
    pub catalog: ArcSwap<Catalog>,
    pub sources: Vec<ZoneSource>,
    pub responder: ResponderConfig,
    pub limits: Limits,
    /// Per worker (by thread name), then one for threads that are not workers.
    pub counters: Vec<DnsCounters>,
    open: Mutex<(usize, HashMap<Ipv4Addr, usize>)>,
}

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
    pub fn new(
        sources: Vec<ZoneSource>,
        responder: ResponderConfig,
        limits: Limits,
        workers: usize,
    ) -> Result<Arc<DnsService>, Vec<String>> {
        let catalog = load_catalog(&sources)?;
        Ok(Arc::new(DnsService {
            catalog: ArcSwap::from_pointee(catalog),
            sources,
            responder,
            limits,
            counters: (0..=workers).map(|_| DnsCounters::default()).collect(),
            open: Mutex::new((0, HashMap::new())),
        }))
    }

    /// Reloads every zone; on any error the old zones stay and the errors are returned.
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        let c = load_catalog(&self.sources)?;
        let n = c.len();
        self.catalog.store(Arc::new(c));
        Ok(n)
    }

    /// The counters of the calling worker thread.
    fn counters(&self) -> &DnsCounters {
        thread_local! {
            /// This thread's worker number, from its name (read once per thread).
            static WORKER: Option<usize> = std::thread::current()
                .name()
                .and_then(|n| n.strip_prefix("sluice-w"))
                .and_then(|i| i.parse::<usize>().ok());
        }
        let index = WORKER
            .with(|w| *w)
            .filter(|&i| i + 1 < self.counters.len())
            .unwrap_or(self.counters.len() - 1);
        &self.counters[index]
    }

    /// Counts a new connection from `peer` against the limits.
    fn admit(self: &Arc<Self>, peer: Ipv4Addr) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let per = open.1.get(&peer).copied().unwrap_or(0);
        if open.0 >= self.limits.max_connections || per >= self.limits.max_per_source {
            return None;
        }
        open.0 += 1;
        *open.1.entry(peer).or_insert(0) += 1;
        Some(Admitted {
            svc: self.clone(),
            peer,
        })
    }

    /// The `dns` handler for a listener.
    pub fn listener(self: &Arc<Self>) -> Listener {
        let svc = self.clone();
        Listener::new(move |flow: Flow| serve_flow(svc.clone(), flow))
    }
}

/// A connection counted against the limits until dropped.
struct Admitted {
    svc: Arc<DnsService>,
    peer: Ipv4Addr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.svc.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.peer);
            }
        }
    }
}

thread_local! {
    /// Where a worker encodes answers: borrowed only while one is encoded (never across
    /// an await), so every session of the worker shares it.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 65535]);
}

/// One DNS-over-TCP session.
async fn serve_flow(svc: Arc<DnsService>, mut flow: Flow) {
    let peer = *flow.dst().ip();
    let c = svc.counters();
    let Some(_admitted) = svc.admit(peer) else {
        add(&c.limit_refused, 1);
        flow.close().await;
        return;
    };
    add(&c.connections, 1);
    let started = Instant::now();
    let mut framer = Framer::new(4096);
    // One answer at a time is encoded into the worker's scratch buffer (zeroed once per
    // worker, not per connection: 64 KiB of memset per connection was 16 % of a worker's
    // time under one-query connections), then copied into `pending`, whose allocation
    // the batches share and that is reused once they are sent. It is allocated with the
    // first answer, to that answer's size, and in chunks of PENDING_CHUNK only once the
    // connection asks again: a connection that never gets an answer (a flood of
    // abandoned handshakes) costs no buffer, and tens of thousands of one-query
    // connections do not each hold 16 KiB (fresh pages for those, zeroed by the kernel
    // on first touch, were a third of the worker's time under kxdpgun's open loop).
    let mut pending = BytesMut::new();
    let mut answered = false;
    let mut batch = Vec::new();
    // The idle timeout runs from when the answers to the last read went out, and the
    // lifetime bounds it. One timer for the session, armed lazily: a read only moves
    // `deadline`, and the timer, when it fires early, is set again to where the
    // deadline has got to. A timer set and cleared for each read was 6 % of a worker's
    // time under one-query connections.
    // (`serve` caps the limits at a century, so these sums cannot overflow.)
    let end_of_life = started + svc.limits.max_lifetime;
    let mut deadline = (started + svc.limits.idle_timeout).min(end_of_life);
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    loop {
        let read = tokio::select! {
            biased;
            read = flow.read() => read,
            () = &mut timer => {
                if Instant::now() < deadline {
                    timer.as_mut().reset(deadline.into());
                    continue;
                }
                if deadline >= end_of_life {
                    add(&c.lifetime_closed, 1);
                } else {
                    add(&c.idle_closed, 1);
                }
                break;
            }
        };
        let data = match read {
            Ok(Some(d)) => d,
            Ok(None) | Err(_) => break,
        };
        framer.push(&data);
        let catalog = svc.catalog.load();
        let mut garbage = false;
        loop {
            let q = match framer.next_frame() {
                Frame::Query(q) => q,
                Frame::NeedMore => break,
                Frame::Garbage(why) => {
                    tracing::debug!(%peer, why, "closing a DNS connection");
                    add(&c.garbage_closed, 1);
                    garbage = true;
                    break;
                }
            };
            let a = SCRATCH.with_borrow_mut(|scratch| {
                let a = answer(&catalog, &svc.responder, peer, q, scratch);
                if let Answer::Message(n) = a {
                    count_rcode(c, rcode_of(scratch));
                    reserve_chunk(&mut pending, 2 + n, answered);
                    answered = true;
                    pending.extend_from_slice(&(n as u16).to_be_bytes());
                    pending.extend_from_slice(&scratch[..n]);
                }
                a
            });
            add(&c.queries, 1);
            match a {
                Answer::Message(_) => batch.push(pending.split().freeze()),
                Answer::Transfer => {
                    add(&c.transfers, 1);
                    count_rcode(c, 0);
                    transfer(&catalog, q, 16 * 1024, |m| {
                        reserve_chunk(&mut pending, 2 + m.len(), answered);
                        answered = true;
                        pending.extend_from_slice(&(m.len() as u16).to_be_bytes());
                        pending.extend_from_slice(m);
                        batch.push(pending.split().freeze());
                    });
                }
                Answer::Drop => add(&c.dropped, 1),
            }
        }
        if !batch.is_empty() {
            // A peer that stops reading (a zero window) would hold the write, and the
            // connection, for ever: the lifetime bounds that too. (The timer is only
            // armed if the write has to wait.)
            let sent = tokio::select! {
                biased;
                sent = flow.writev(&batch) => sent,
                () = tokio::time::sleep_until(end_of_life.into()) => {
                    add(&c.lifetime_closed, 1);
                    break;
                }
            };
            batch.clear();
            if sent.is_err() {
                return;
            }
        }
        if garbage {
            break;
        }
        // A client that always has more to send is never idle: its lifetime still ends.
        let now = Instant::now();
        if now >= end_of_life {
            add(&c.lifetime_closed, 1);
            break;
        }
        // Idle from here: after the answers went out, however long that took.
        deadline = (now + svc.limits.idle_timeout).min(end_of_life);
    }
    flow.close().await;
}

/// What `pending` grows by once a connection has had an answer: many answers' worth,
/// so that pipelined answers share one allocation (reclaimed once they are sent).
const PENDING_CHUNK: usize = 16 * 1024;

/// Makes room for `need` more bytes in `pending`: just that for a connection's first
/// answer, a chunk at a time after it.
fn reserve_chunk(pending: &mut BytesMut, need: usize, answered: bool) {
    if pending.capacity() - pending.len() < need {
        pending.reserve(if answered {
            need.max(PENDING_CHUNK)
        } else {
            need
        });
    }
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
