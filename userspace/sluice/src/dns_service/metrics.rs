//! What each worker counts of the queries it answers, by zone and type, for the
//! Prometheus endpoint (`sluice serve --metrics`), in the shape CoreDNS's metrics
//! have: requests by zone and type, responses by zone and RCODE, request and response
//! sizes and request durations as histograms with CoreDNS's buckets. Each worker
//! writes only its own counters (relaxed atomics: no lock, no shared cache line with
//! another worker); the control thread adds them up at each scrape.
//!
//! Zones are counted in slots: a zone keeps the slot it was first given for the life
//! of the process, across reloads ([`ZoneSlots`]), so that a counter never changes
//! zones under a scraper. Slot [`NO_ZONE`] counts queries outside every zone (CoreDNS's
//! catch-all zone "."), and past [`ZONE_SLOTS`] zones the rest share [`OTHER_ZONES`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Adds `n` to a counter: a load and a store where only its own worker writes (a
/// locked add per counter would cost a pipelined query a fifth more), a locked add in
/// the slot threads that are not workers share (`shared`), where two at once would
/// lose counts and a counter could go backwards.
fn bump(c: &AtomicU64, n: u64, shared: bool) {
    if shared {
        c.fetch_add(n, Ordering::Relaxed);
    } else {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

use dns::rtype;

/// Zone slots a worker counts in.
pub const ZONE_SLOTS: usize = 64;
/// The slot of queries that fell in no zone (answered REFUSED), labelled ".".
pub const NO_ZONE: usize = 0;
/// The slot shared by zones past the first `ZONE_SLOTS - 2`, labelled "other".
pub const OTHER_ZONES: usize = ZONE_SLOTS - 1;

/// The query types counted by name (CoreDNS's list, with the newer HTTPS and SVCB);
/// any other is counted as "other".
pub const TYPES: &[(u16, &str)] = &[
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::CNAME, "CNAME"),
    (rtype::MX, "MX"),
    (rtype::NS, "NS"),
    (rtype::PTR, "PTR"),
    (rtype::SOA, "SOA"),
    (rtype::SRV, "SRV"),
    (rtype::TXT, "TXT"),
    (rtype::CAA, "CAA"),
    (rtype::DS, "DS"),
    (48, "DNSKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (50, "NSEC3"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (rtype::IXFR, "IXFR"),
    (rtype::AXFR, "AXFR"),
    (rtype::ANY, "ANY"),
];
/// The index of "other" among the type counters.
pub const OTHER_TYPE: usize = TYPES.len();

/// RCODEs counted (the 4-bit header RCODE and the extended ones up to BADCOOKIE).
pub const RCODES: usize = 24;

/// CoreDNS's size buckets, bytes.
pub const SIZE_BUCKETS: &[f64] = &[
    0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16000.0, 32000.0,
    48000.0, 64000.0,
];
/// CoreDNS's duration buckets (0.25 ms doubling to 8.192 s), seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

/// A histogram's counters: per bucket (not cumulative; the last one past every bound)
/// and the sum of what was observed, in the unit `observe` is given.
#[derive(Debug)]
pub struct Histogram {
    /// The buckets' upper bounds, in the exposition's unit.
    pub bounds: &'static [f64],
    /// The same in the unit observations come in (bytes, nanoseconds).
    observed_bounds: Box<[u64]>,
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// Buckets `bounds` (the exposition's unit) for observations in that unit times
    /// `scale` (sizes: bytes, 1; durations: nanoseconds, 1e9).
    fn new(bounds: &'static [f64], scale: f64) -> Histogram {
        Histogram {
            bounds,
            observed_bounds: bounds.iter().map(|b| (b * scale).floor() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    fn observe(&self, value: u64, shared: bool) {
        // A scan from the smallest bound: DNS messages and durations are small, so it
        // stops within a few.
        let i = self
            .observed_bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.observed_bounds.len());
        bump(&self.counts[i], 1, shared);
        bump(&self.sum, value, shared);
    }

    /// Adds this histogram's counts into `into` (per bucket, not cumulative) and
    /// returns its sum.
    pub fn add_to(&self, into: &mut [u64]) -> u64 {
        for (a, c) in into.iter_mut().zip(self.counts.iter()) {
            *a += c.load(Ordering::Relaxed);
        }
        self.sum.load(Ordering::Relaxed)
    }
}

/// One worker's counters for one zone slot.
#[derive(Debug)]
pub struct ZoneMetrics {
    /// Requests by type (`TYPES`' order, then other).
    pub requests: Box<[AtomicU64]>,
    /// Responses by RCODE.
    pub responses: Box<[AtomicU64]>,
    /// Request sizes, bytes (the DNS message, without TCP's length prefix).
    pub request_size: Histogram,
    /// Response sizes, bytes (a zone transfer's messages together).
    pub response_size: Histogram,
    /// Request durations (from a query whole in hand to its answer in the reply),
    /// nanoseconds; timed for one query in [`TIMED_EVERY`] (two clock reads are a
    /// sixth of a pipelined query's cost), so its count is a sample of the requests.
    pub duration: Histogram,
}

/// One query in this many is timed for the duration histogram.
pub const TIMED_EVERY: u32 = 16;

impl ZoneMetrics {
    fn new() -> ZoneMetrics {
        ZoneMetrics {
            requests: (0..=TYPES.len()).map(|_| AtomicU64::new(0)).collect(),
            responses: (0..RCODES).map(|_| AtomicU64::new(0)).collect(),
            request_size: Histogram::new(SIZE_BUCKETS, 1.0),
            response_size: Histogram::new(SIZE_BUCKETS, 1.0),
            duration: Histogram::new(DURATION_BUCKETS, 1e9),
        }
    }
}

/// One worker's query metrics, a [`ZoneMetrics`] per zone slot.
#[derive(Debug)]
pub struct QueryMetrics {
    /// By zone slot.
    pub zones: Box<[ZoneMetrics]>,
    /// Written by more than one thread (the slot of threads that are not workers).
    pub shared: bool,
}

impl Default for QueryMetrics {
    fn default() -> Self {
        QueryMetrics {
            zones: (0..ZONE_SLOTS).map(|_| ZoneMetrics::new()).collect(),
            shared: false,
        }
    }
}

/// The index of `qtype` among the type counters.
pub fn type_index(qtype: Option<u16>) -> usize {
    match qtype {
        // The common ones first, without a scan.
        Some(rtype::A) => 0,
        Some(rtype::AAAA) => 1,
        Some(t) => TYPES
            .iter()
            .position(|&(v, _)| v == t)
            .unwrap_or(OTHER_TYPE),
        None => OTHER_TYPE,
    }
}

impl QueryMetrics {
    /// Counts one query: its slot, type, request size, and its answer (RCODE and size;
    /// None when none was sent).
    pub fn count(
        &self,
        slot: usize,
        qtype: Option<u16>,
        request: usize,
        answer: Option<(u16, usize)>,
    ) {
        let z = &self.zones[slot.min(ZONE_SLOTS - 1)];
        let shared = self.shared;
        bump(&z.requests[type_index(qtype)], 1, shared);
        z.request_size.observe(request as u64, shared);
        if let Some((rcode, size)) = answer {
            bump(&z.responses[usize::from(rcode).min(RCODES - 1)], 1, shared);
            z.response_size.observe(size as u64, shared);
        }
    }

    /// Counts one timed query's duration.
    pub fn time(&self, slot: usize, nanos: u64) {
        self.zones[slot.min(ZONE_SLOTS - 1)]
            .duration
            .observe(nanos, self.shared);
    }
}

/// Zone names by slot, for the whole process: a zone keeps its slot across reloads.
#[derive(Debug, Default)]
pub struct ZoneSlots {
    /// Slot `i + 1`'s zone name (text, with its final dot).
    names: Mutex<Vec<String>>,
}

impl ZoneSlots {
    /// The slot of each zone of a catalog, given its apexes by id (as text).
    pub fn assign(&self, apexes: &[String]) -> Vec<u8> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        apexes
            .iter()
            .map(|a| {
                let i = match names.iter().position(|n| n == a) {
                    Some(i) => i,
                    None if names.len() < OTHER_ZONES - 1 => {
                        names.push(a.clone());
                        names.len() - 1
                    }
                    None => return OTHER_ZONES as u8,
                };
                (i + 1) as u8
            })
            .collect()
    }

    /// The label of every slot, in slot order. Queries outside every zone are labelled
    /// "." (CoreDNS's catch-all zone), unless the root zone itself is served, which
    /// takes that label.
    pub fn labels(&self) -> Vec<String> {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let no_zone = if names.iter().any(|n| n == ".") {
            "(none)"
        } else {
            "."
        };
        let mut out = vec![no_zone.to_string()];
        out.extend(names.iter().cloned());
        while out.len() < OTHER_ZONES {
            out.push(String::new());
        }
        out.push("other".into());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_keeps_its_slot_across_reloads_and_extra_zones_share_one() {
        let slots = ZoneSlots::default();
        let a = slots.assign(&["a.test.".into(), "b.test.".into()]);
        assert_eq!(a, [1, 2]);
        // Reloaded in another order, with one zone more.
        let b = slots.assign(&["c.test.".into(), "b.test.".into(), "a.test.".into()]);
        assert_eq!(b, [3, 2, 1]);
        let many: Vec<String> = (0..100).map(|i| format!("z{i}.test.")).collect();
        let m = slots.assign(&many);
        assert_eq!(m[0], 4);
        assert_eq!(*m.last().unwrap(), OTHER_ZONES as u8);
        let labels = slots.labels();
        assert_eq!((labels[0].as_str(), labels[1].as_str()), (".", "a.test."));
        assert_eq!(labels[OTHER_ZONES], "other");
        assert_eq!(labels.len(), ZONE_SLOTS);
        // The root zone served takes "."; queries outside every zone get another label.
        let root = ZoneSlots::default();
        root.assign(&[".".into()]);
        assert_eq!(root.labels()[..2], ["(none)".to_string(), ".".to_string()]);
    }

    #[test]
    fn histograms_count_in_the_first_bucket_that_holds_the_value() {
        let m = QueryMetrics::default();
        m.count(1, Some(rtype::A), 40, Some((0, 100)));
        m.count(1, Some(999), 40, Some((3, 101)));
        m.count(1, None, 12, None);
        m.time(1, 300_000); // 0.3 ms: the 0.5 ms bucket
        let z = &m.zones[1];
        assert_eq!(z.requests[0].load(Ordering::Relaxed), 1);
        assert_eq!(z.requests[OTHER_TYPE].load(Ordering::Relaxed), 2);
        assert_eq!(z.responses[3].load(Ordering::Relaxed), 1);
        let mut sizes = vec![0; SIZE_BUCKETS.len() + 1];
        assert_eq!(z.response_size.add_to(&mut sizes), 201);
        // 100 bytes is in the "le 100" bucket; 101 in "le 200".
        assert_eq!((sizes[1], sizes[2]), (1, 1));
        let mut d = vec![0; DURATION_BUCKETS.len() + 1];
        assert_eq!(z.duration.add_to(&mut d), 300_000);
        assert_eq!(d[1], 1);
    }
}
