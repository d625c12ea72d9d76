//! The connection limits: a maximum of concurrent connections in total and one per
//! source address, kept without a lock that every worker takes for every connection
//! (which would serialize the workers at hundreds of thousands of connections a second
//! each):
//! - the total as leases: each worker takes the right to open connections from one
//!   atomic counter in batches and gives unused ones back, so the counter is touched
//!   once per batch, and the total never exceeds the limit. The price is that a worker
//!   may find the limit reached while others hold a few leased rights unused (fewer
//!   than a batch each, and a batch is at most an eighth of the limit shared by the
//!   workers);
//! - the per-source counts in a table split by source address into shards with a lock
//!   each: workers contend only when they admit connections from sources of the same
//!   shard at the same moment, and the limit is exact.
//!
//! At a limit the newcomer is not refused: it takes the place of the connection idle
//! longest in the limit's scope, which is closed (RFC 7766 §6.2.3 asks per-client
//! limits to be loose, since many clients can share one address; an attacker holding
//! idle connections must not lock out the others). The scope is the worker's own
//! connections ([`super::idle`]), for the total, and those of them from the same
//! address for the per-source limit (among the worker's 256 idle longest: the search is
//! bounded); only a worker with no connection in the scope refuses (or, past 64
//! workers, where threads share a slot, one whose candidate another thread serves).
//! The place passes from the one to the other, so the counts never pass the limits.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use stack::Wake;

use super::idle::IdleOrder;
use super::{add, DnsService};

/// Keeps each worker's (or shard's) lock on a cache line of its own, so that workers
/// touching their own do not slow each other down.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Padded<T>(pub(super) T);

/// A worker's share of the limits: its lease of the total and its connections.
#[derive(Default)]
pub(super) struct WorkerShare {
    /// Rights it holds.
    held: usize,
    /// Connections it has open (at most `held`).
    open: usize,
    /// Its connections, idle longest first: whom to evict.
    idle: IdleOrder,
}

/// Open connections by source address. aHash rather than SipHash: keyed with random
/// state all the same (a peer picks its address), at a fraction of the cost per
/// connection.
pub(super) type SourceCounts = HashMap<Ipv4Addr, u32, ahash::RandomState>;

/// Shards of the per-source table: enough that workers rarely meet on one.
pub(super) const SOURCE_SHARDS: usize = 64;

/// The largest lease: one atomic operation per this many connections.
pub(super) const MAX_LEASE_BATCH: usize = 64;

/// A connection's place in the limits, held until dropped (unless it was evicted:
/// then its place went to a newcomer).
pub(super) struct Place {
    svc: Arc<DnsService>,
    /// The worker share it counts against.
    slot: usize,
    /// Its node in that share's idle order.
    node: u32,
}

impl DnsService {
    /// Counts a new connection from `peer` against the limits, evicting to make room
    /// (see the module's comment); None when refused. `wake` ends its session early
    /// should it be evicted in turn.
    pub(super) fn admit(self: &Arc<Self>, peer: Ipv4Addr, wake: Wake) -> Option<Place> {
        let slot = self.slot();
        let c = self.counters();
        let at_source_limit = {
            let mut per = lock(self.source_shard(peer));
            let n = per.entry(peer).or_insert(0);
            if (*n as usize) < self.limits.max_per_source {
                *n += 1;
                false
            } else {
                if *n == 0 {
                    per.remove(&peer);
                }
                true
            }
        };
        let mut w = lock(&self.workers[slot].0);
        if at_source_limit {
            // The newcomer takes the place (and the source count) of this worker's
            // connection from the same address idle longest.
            // One this thread cannot wake would keep its connection open past the limit.
            let victim = w.idle.oldest_from(peer).filter(|&v| w.idle.wakeable(v))?;
            w.idle.evict(victim);
            add(&c.evicted_source_limit, 1);
        } else if w.open == w.held && !self.lease_more(&mut w) {
            let Some(victim) = w.idle.oldest().filter(|&v| w.idle.wakeable(v)) else {
                drop(w);
                self.release_source(peer);
                return None;
            };
            let victim_peer = w.idle.evict(victim);
            let node = w.idle.push(peer, wake);
            drop(w);
            // The lease's place passes on; the victim's source count goes.
            self.release_source(victim_peer);
            add(&c.evicted_total_limit, 1);
            return Some(self.place(slot, node));
        } else {
            w.open += 1;
        }
        let node = w.idle.push(peer, wake);
        Some(self.place(slot, node))
    }

    fn place(self: &Arc<Self>, slot: usize, node: u32) -> Place {
        Place {
            svc: self.clone(),
            slot,
            node,
        }
    }

    /// The connection was active (it is idle from now on). Returns whether it still
    /// holds its place: false if a newcomer took it.
    pub(super) fn touch(&self, place: &Place) -> bool {
        lock(&self.workers[place.slot].0).idle.touch(place.node)
    }

    /// Whether the connection's place went to a newcomer.
    pub(super) fn evicted(&self, place: &Place) -> bool {
        !lock(&self.workers[place.slot].0).idle.is_listed(place.node)
    }

    fn source_shard(&self, peer: Ipv4Addr) -> &Mutex<SourceCounts> {
        // Fibonacci hashing: the top bits of the product spread neighbouring
        // addresses (one client subnet) over the shards.
        let h = u32::from(peer).wrapping_mul(0x9E37_79B9);
        &self.per_source[(h >> 26) as usize % SOURCE_SHARDS].0
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
    pub(super) fn overloaded(&self) -> bool {
        self.leased.load(Ordering::Relaxed).saturating_mul(10)
            >= self.limits.max_connections.saturating_mul(9)
    }

    /// Leases up to a batch more rights from the total; false when none is left.
    fn lease_more(&self, share: &mut WorkerShare) -> bool {
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
                    share.held += take;
                    return true;
                }
                Err(now) => leased = now,
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let svc = &self.svc;
        let mut w = lock(&svc.workers[self.slot].0);
        let (peer, held_place) = w.idle.remove(self.node);
        if !held_place {
            // Evicted: its place is a newcomer's now.
            return;
        }
        w.open = w.open.saturating_sub(1);
        // A batch unused goes back, so that other workers can have it.
        let spare = w.held - w.open;
        if spare >= svc.lease_batch {
            w.held -= spare;
            svc.leased.fetch_sub(spare, Ordering::AcqRel);
        }
        drop(w);
        svc.release_source(peer);
    }
}

/// Locks `m`; a panic elsewhere while it was held leaves counts that are still counts.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dns_service::{Limits, ZoneSource};

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn service(max_connections: usize, max_per_source: usize) -> Arc<DnsService> {
        // A file per service: the tests run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-limits-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("example.test.zone");
        std::fs::write(
            &file,
            "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n\
             @ NS ns\nns A 192.0.2.53\n",
        )
        .unwrap();
        let limits = Limits {
            max_connections,
            max_per_source,
            idle_timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let zones = vec![ZoneSource { file, name: None }];
        let svc = DnsService::new(zones, Default::default(), limits, 1)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        svc
    }

    fn counter(
        svc: &DnsService,
        f: fn(&super::super::DnsCounters) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        f(svc.counters()).load(Ordering::Relaxed)
    }

    #[test]
    fn the_per_source_limit_evicts_that_sources_idle_longest() {
        let svc = service(100, 2);
        let a1 = svc.admit(A, Wake::nothing()).unwrap();
        let b1 = svc.admit(B, Wake::nothing()).unwrap();
        let a2 = svc.admit(A, Wake::nothing()).unwrap();
        // a1 is active again: a2 is now A's connection idle longest.
        svc.touch(&a1);
        let a3 = svc
            .admit(A, Wake::nothing())
            .expect("admitted in a2's place");
        assert!(svc.evicted(&a2) && !svc.evicted(&a1) && !svc.evicted(&b1));
        assert_eq!(counter(&svc, |c| &c.evicted_source_limit), 1);
        assert_eq!(
            lock(svc.source_shard(A)).get(&A),
            Some(&2),
            "still two from A"
        );
        drop(a2);
        assert_eq!(
            lock(svc.source_shard(A)).get(&A),
            Some(&2),
            "the evicted held none"
        );
        drop((a1, a3, b1));
        assert_eq!(lock(svc.source_shard(A)).get(&A), None);
        let w = lock(&svc.workers[svc.slot()].0);
        assert_eq!((w.open, w.idle.oldest()), (0, None));
    }

    #[test]
    fn the_total_limit_evicts_the_idle_longest_of_any_source() {
        let svc = service(2, 10);
        let a1 = svc.admit(A, Wake::nothing()).unwrap();
        let b1 = svc.admit(B, Wake::nothing()).unwrap();
        let b2 = svc
            .admit(B, Wake::nothing())
            .expect("admitted in a1's place");
        assert!(svc.evicted(&a1) && !svc.evicted(&b1) && !svc.evicted(&b2));
        assert_eq!(counter(&svc, |c| &c.evicted_total_limit), 1);
        assert_eq!(
            lock(svc.source_shard(A)).get(&A),
            None,
            "A's count went with a1"
        );
        assert_eq!(lock(svc.source_shard(B)).get(&B), Some(&2));
        assert_eq!(
            svc.leased.load(Ordering::Relaxed),
            2,
            "never past the limit"
        );
        drop((a1, b1, b2));
        assert_eq!(lock(svc.source_shard(B)).get(&B), None);
        assert_eq!(lock(&svc.workers[svc.slot()].0).open, 0);
    }

    #[test]
    fn refused_only_with_nothing_to_evict() {
        let svc = service(100, 0);
        assert!(
            svc.admit(A, Wake::nothing()).is_none(),
            "no place for A at all"
        );
        let svc = service(0, 10);
        assert!(svc.admit(A, Wake::nothing()).is_none(), "no place at all");
        assert!(
            lock(svc.source_shard(A)).is_empty(),
            "the refused one left no count"
        );
    }
}
