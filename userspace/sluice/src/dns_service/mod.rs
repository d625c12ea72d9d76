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
//! The limits, and the eviction of the connection idle longest when one is reached,
//! are in `limits`; the sessions in `session`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use dns::catalog::IndexedZone;
use dns::{Catalog, ResponderConfig};
use stack::{Listener, Session};

mod idle;
mod limits;
pub mod metrics;
pub mod secondary;
mod session;

pub use secondary::SecondaryZone;

use limits::{Padded, SourceCounts, WorkerShare, MAX_LEASE_BATCH, SOURCE_SHARDS};

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
    /// Zone transfers refused for their TSIG: unsigned or badly signed when
    /// `--transfer-key` requires a key.
    pub transfers_refused: AtomicU64,
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
    /// Connections refused by the total or per-source limit (the worker had no
    /// connection in the limit's scope to evict).
    pub limit_refused: AtomicU64,
    /// Connections closed to admit a newcomer at the total limit: the worker's
    /// connection idle longest.
    pub evicted_total_limit: AtomicU64,
    /// Connections closed to admit a newcomer from the same address at the per-source
    /// limit: the worker's connection from it idle longest.
    pub evicted_source_limit: AtomicU64,
    /// Connections served in overload mode (one query, a short idle timeout).
    pub overload_sessions: AtomicU64,
    /// Queries by zone and type, answers by RCODE, sizes and durations (the
    /// Prometheus endpoint's).
    pub by_zone: metrics::QueryMetrics,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The zones served, and each zone's metrics slot (by its id in the catalog): swapped
/// together on reload, so that a query is counted under the zone it was answered from.
pub struct Served {
    /// The zones.
    pub catalog: Catalog,
    /// Each zone's slot, by its id.
    pub slots: Vec<u8>,
}

impl std::ops::Deref for Served {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        &self.catalog
    }
}

impl Served {
    /// The metrics slot of the zone a query fell in (None: no zone).
    pub fn slot(&self, zone: Option<usize>) -> usize {
        zone.map_or(metrics::NO_ZONE, |id| {
            self.slots
                .get(id)
                .map_or(metrics::OTHER_ZONES, |&s| usize::from(s))
        })
    }
}

/// The service shared by every worker.
pub struct DnsService {
    /// The zones served, swapped whole on reload.
    pub catalog: ArcSwap<Served>,
    /// The zones' metrics slots, kept across reloads.
    pub zone_slots: metrics::ZoneSlots,
    /// Whether queries are counted by zone and type (`by_zone`): only when someone
    /// reads them (`--metrics`), as they cost a pipelined query about a tenth more.
    query_metrics: std::sync::atomic::AtomicBool,
    /// Where the zones come from, for reloads.
    pub sources: Vec<ZoneSource>,
    /// Every zone by id: the files' first (in `sources`' order), then the secondary
    /// zones'. Changed under its lock, one change at a time (a reload, a transfer), and
    /// then published whole in `catalog`.
    zones: Mutex<Vec<Arc<IndexedZone>>>,
    /// The secondary zones, by id less `sources.len()`: how each follows its primary.
    pub secondaries: Vec<secondary::Status>,
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
    /// Per worker as `counters`: its leased rights, open connections and their idle
    /// order.
    workers: Vec<Padded<Mutex<WorkerShare>>>,
    /// Open connections per source address, in shards by address.
    per_source: Vec<Padded<Mutex<SourceCounts>>>,
}

/// Loads every zone file, each indexed with its id (its place in `sources`); all
/// problems, with their lines, or the zones.
pub fn load_zones(sources: &[ZoneSource]) -> Result<Vec<Arc<IndexedZone>>, Vec<String>> {
    let mut zones = Vec::new();
    let mut errors = Vec::new();
    for (id, s) in sources.iter().enumerate() {
        match IndexedZone::load(&s.file, s.name.as_deref(), id) {
            Ok(z) => zones.push(Arc::new(z)),
            Err(es) => errors.extend(es.into_iter().map(|e| e.to_string())),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(zones)
}

/// Returns the memory this thread freed to the OS now: a zone load frees the parsed
/// records once they are indexed, and mimalloc would otherwise keep those pages for
/// reuse (a million-record zone kept about 120 bytes a record resident).
pub fn give_back_freed_memory() {
    // SAFETY: mi_collect only walks mimalloc's own structures for this thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// A catalog with its zones' metrics slots.
fn served(catalog: Catalog, zone_slots: &metrics::ZoneSlots) -> Served {
    let apexes: Vec<String> = catalog
        .apexes_by_id()
        .into_iter()
        .map(|a| dns::name::to_text(a))
        .collect();
    let slots = zone_slots.assign(&apexes);
    Served { catalog, slots }
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
        Self::with_secondaries(sources, &[], responder, limits, workers)
    }

    /// As [`DnsService::new`], with secondary zones too: known by name from the
    /// start, answered SERVFAIL until their first transfer (see [`secondary`]).
    pub fn with_secondaries(
        sources: Vec<ZoneSource>,
        secondaries: &[SecondaryZone],
        responder: ResponderConfig,
        limits: Limits,
        workers: usize,
    ) -> Result<Arc<DnsService>, Vec<String>> {
        let mut zones = load_zones(&sources)?;
        for (i, z) in secondaries.iter().enumerate() {
            let apex = dns::name::from_text(&z.name)
                .ok_or_else(|| vec![format!("bad secondary zone name {:?}", z.name)])?;
            zones.push(Arc::new(IndexedZone::unavailable(apex, sources.len() + i)));
        }
        let catalog = Catalog::from_indexed(zones.clone()).map_err(|e| vec![e])?;
        let zone_slots = metrics::ZoneSlots::default();
        let served = served(catalog, &zone_slots);
        let lease_batch = (limits.max_connections / (8 * (workers + 1))).clamp(1, MAX_LEASE_BATCH);
        Ok(Arc::new(DnsService {
            catalog: ArcSwap::from_pointee(served),
            zone_slots,
            query_metrics: std::sync::atomic::AtomicBool::new(false),
            sources,
            zones: Mutex::new(zones),
            secondaries: secondaries.iter().map(secondary::Status::new).collect(),
            responder_overloaded: ResponderConfig {
                tcp_keepalive_100ms: responder.tcp_keepalive_100ms.map(|_| 0),
                ..responder.clone()
            },
            responder,
            limits,
            counters: (0..=workers)
                .map(|i| {
                    let mut c = DnsCounters::default();
                    // The last slot is every thread's that is not a worker.
                    c.by_zone.shared = i == workers;
                    c
                })
                .collect(),
            leased: AtomicUsize::new(0),
            lease_batch,
            workers: (0..=workers).map(|_| Padded::default()).collect(),
            per_source: (0..SOURCE_SHARDS).map(|_| Padded::default()).collect(),
        }))
    }

    /// Reloads every zone; on any error the old zones stay and the errors are returned.
    /// Secondary zones keep the version they have.
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        let files = load_zones(&self.sources)?;
        let n = files.len();
        let mut zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        zones.splice(..n, files);
        self.publish(&zones).map_err(|e| vec![e])?;
        Ok(n)
    }

    /// The zone with id `id` as served now.
    pub fn zone(&self, id: usize) -> Option<Arc<IndexedZone>> {
        let zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        zones.get(id).cloned()
    }

    /// Serves `zone` in place of the zone with its id (a secondary zone's new version,
    /// or its expiry): the other zones are shared with the catalog served until now.
    pub fn replace_zone(&self, zone: IndexedZone) -> Result<(), String> {
        let mut zones = self.zones.lock().unwrap_or_else(|p| p.into_inner());
        let id = zone.id;
        let slot = zones
            .get_mut(id)
            .ok_or_else(|| format!("no zone has id {id}"))?;
        *slot = Arc::new(zone);
        self.publish(&zones)
    }

    /// Makes `zones` the catalog served.
    fn publish(&self, zones: &[Arc<IndexedZone>]) -> Result<(), String> {
        let c = Catalog::from_indexed(zones.to_vec())?;
        self.catalog.store(Arc::new(served(c, &self.zone_slots)));
        Ok(())
    }

    /// Counts queries by zone and type from now on (`DnsCounters::by_zone`), or stops.
    pub fn count_queries_by_zone(&self, on: bool) {
        self.query_metrics.store(on, Ordering::Relaxed);
    }

    /// Whether queries are counted by zone and type.
    pub(crate) fn counts_queries_by_zone(&self) -> bool {
        self.query_metrics.load(Ordering::Relaxed)
    }

    /// The calling thread's slot in `counters` and `workers`: its worker number, or the
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

    /// The `dns` handler for a listener: a session per connection (the stack's
    /// synchronous form, see `stack::session`), the idle timeout armed after each
    /// batch of answers and bounded by the lifetime.
    pub fn listener(self: &Arc<Self>) -> Listener {
        let svc = self.clone();
        Listener::session(move |peer, wake| {
            session::new_session(&svc, *peer.ip(), wake).map(|s| Box::new(s) as Box<dyn Session>)
        })
    }
}
