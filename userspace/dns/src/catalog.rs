//! The zones being served, indexed for answering: per zone, a hash map from owner name
//! (lower-case wire form) to its node; every ancestor of a name up to the apex exists
//! as a node (an empty non-terminal if it owns nothing), which is what NODATA versus
//! NXDOMAIN and wildcard matching (RFC 4592's closest encloser) need.

use std::collections::HashMap;
use std::sync::Arc;

use crate::name::{self, Name};
use crate::rtype;
use crate::zone::{Rr, Zone};

type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// The records of one type at one name.
#[derive(Debug, Clone)]
pub struct RrSet {
    /// The type every record of the set has.
    pub rtype: u16,
    /// One TTL for the whole set: the lowest of its records' (RFC 2181 §5.2).
    pub ttl: u32,
    /// Each distinct RDATA once, in file order, wire form with names uncompressed, one
    /// after the other, each after its length in two bytes: one allocation per set,
    /// not one per record plus a vector (see [`RrSet::rdatas`]).
    packed: Box<[u8]>,
    /// How many RDATAs `packed` holds.
    count: u16,
    /// The names in its RDATAs that answers follow or add addresses for (CNAME, NS,
    /// MX, SRV targets), in RDATA order; empty for the other types, which keeps a set
    /// of addresses free of a slot per record.
    pub targets: Vec<Name>,
}

impl RrSet {
    /// A set of one record.
    fn new(rtype: u16, ttl: u32, rdata: &[u8], target: Option<Name>) -> RrSet {
        let mut set = RrSet {
            rtype,
            ttl,
            packed: Box::default(),
            count: 0,
            targets: Vec::new(),
        };
        set.add(rdata, target);
        set
    }

    /// Adds `item` to `v` growing it by exactly one: most names hold one or two sets,
    /// most sets one target, and a Vec's first push reserves four (a big zone's nodes
    /// then took 192 bytes each for their sets instead of 48-96).
    fn push_exact<T>(v: &mut Vec<T>, item: T) {
        v.reserve_exact(1);
        v.push(item);
    }

    /// Adds `rdata` unless the set has it already (a set holds each RDATA once), with
    /// the name it targets.
    fn add(&mut self, rdata: &[u8], target: Option<Name>) {
        if self.rdatas().any(|r| r == rdata) || self.count == u16::MAX {
            return;
        }
        let len = rdata.len().min(usize::from(u16::MAX));
        let mut v = Vec::with_capacity(self.packed.len() + 2 + len);
        v.extend_from_slice(&self.packed);
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.extend_from_slice(&rdata[..len]);
        self.packed = v.into_boxed_slice();
        self.count += 1;
        if let Some(t) = target {
            RrSet::push_exact(&mut self.targets, t);
        }
    }

    /// Its RDATAs, in file order.
    pub fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.packed[..];
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
            let (rdata, after) = tail.split_at(len);
            rest = after;
            Some(rdata)
        })
    }

    /// How many records it has.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// The target of its `k`-th RDATA, if its type has them.
    fn target_of(&self, k: usize) -> Option<Name> {
        self.targets.get(k).cloned()
    }

    /// Whether it has none (never, once indexed).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// One name of a zone.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// One set per type, in the order the types first appear. Empty for an empty
    /// non-terminal: a name that owns nothing but has names below it, so it is
    /// answered NODATA rather than NXDOMAIN.
    pub rrsets: Vec<RrSet>,
}

impl Node {
    /// Adds a record to the set of its type (a new set for a new type).
    fn add(&mut self, t: u16, ttl: u32, rdata: &[u8], target: Option<Name>) {
        match self.rrsets.iter_mut().find(|s| s.rtype == t) {
            Some(set) => {
                // RFC 2181 §5.2: one TTL per RRset; the lowest wins.
                set.ttl = set.ttl.min(ttl);
                set.add(rdata, target);
            }
            None => RrSet::push_exact(&mut self.rrsets, RrSet::new(t, ttl, rdata, target)),
        }
    }

    /// The set of type `t`, if the name has records of that type.
    pub fn get(&self, t: u16) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == t)
    }
}

/// One zone, indexed.
#[derive(Debug)]
pub struct IndexedZone {
    /// The zone's top name (wire form, lower-case), where its SOA is.
    pub apex: Name,
    /// Its place in the order the catalog was given its zones (0, 1, ...): how a
    /// caller keeps something per zone in an array, metrics for one.
    pub id: usize,
    /// Every owner name of the zone and every name between one and the apex, keyed by
    /// wire form.
    pub nodes: Map<Name, Node>,
    /// The SOA's RDATA, sent in the authority section of negative answers.
    pub soa_rdata: Box<[u8]>,
    /// The SOA record's own TTL.
    pub soa_ttl: u32,
    /// The TTL of the SOA in negative answers, which resolvers cache them for
    /// (RFC 2308: the lesser of the SOA's TTL and its MINIMUM field).
    pub negative_ttl: u32,
    /// Whether it has data to answer from. A secondary zone has none before its first
    /// transfer and after it expires: its queries are answered SERVFAIL (RFC 1035
    /// §5.2's "stop answering authoritatively"), never from stale data.
    pub available: bool,
}

/// One record as a zone transfer sends it: owner, type, TTL, RDATA.
pub type TransferRecord<'z> = (&'z [u8], u16, u32, &'z [u8]);

impl IndexedZone {
    /// Indexes `zone`, which gets `id` (see [`IndexedZone::id`]).
    pub fn new(zone: Zone, id: usize) -> IndexedZone {
        let mut z = index(zone);
        z.id = id;
        z
    }

    /// A zone known by name with no data: answered SERVFAIL.
    pub fn unavailable(apex: Name, id: usize) -> IndexedZone {
        IndexedZone {
            apex,
            id,
            nodes: Map::default(),
            soa_rdata: Box::default(),
            soa_ttl: 0,
            negative_ttl: 0,
            available: false,
        }
    }

    /// The SOA's serial (RFC 1035 §3.3.13: the RDATA's fifth-last 32 bits); None
    /// without data.
    pub fn serial(&self) -> Option<u32> {
        crate::xfr::soa_serial(&self.soa_rdata)
    }

    /// Every record as a zone holds them: what an incremental transfer is applied to.
    pub fn to_zone(&self) -> Zone {
        let from = Arc::new(std::path::PathBuf::from("(served)"));
        let mut records = Vec::new();
        // The SOA comes twice in a transfer: once here.
        for (i, (owner, rtype, ttl, rdata)) in self.transfer_records().enumerate() {
            if i > 0 && rtype == rtype::SOA && owner == &self.apex[..] {
                continue;
            }
            records.push(Rr::from_wire(owner, rtype, ttl, rdata, &from));
        }
        Zone {
            apex: self.apex.clone(),
            records,
        }
    }

    /// Every record, for a zone transfer (RFC 5936): the SOA, every other record (name
    /// by name, set by set, each with its set's TTL), the SOA again. Read from the
    /// index itself: a second copy of every record just for transfers would double a
    /// big zone's memory.
    pub fn transfer_records(&self) -> impl Iterator<Item = TransferRecord<'_>> {
        let soa = (
            &self.apex[..],
            rtype::SOA,
            self.soa_ttl,
            &self.soa_rdata[..],
        );
        let apex = &self.apex;
        let rest = self.nodes.iter().flat_map(move |(owner, node)| {
            node.rrsets
                .iter()
                .filter(move |set| !(set.rtype == rtype::SOA && owner == apex))
                .flat_map(move |set| {
                    set.rdatas()
                        .map(move |rd| (&owner[..], set.rtype, set.ttl, rd))
                })
        });
        std::iter::once(soa).chain(rest).chain(std::iter::once(soa))
    }
}

/// Every zone served.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Shared between catalogs: a secondary zone's new version is published as a new
    /// catalog that shares every other zone with the old.
    zones: Map<Name, Arc<IndexedZone>>,
    /// Zone apexes' label counts, largest first: the suffixes worth looking up.
    depths: Vec<usize>,
}

impl Catalog {
    /// Indexes `zones`. Two zones with one apex is an error (the caller says which files).
    pub fn new(zones: Vec<Zone>) -> Result<Catalog, String> {
        Catalog::from_indexed(
            zones
                .into_iter()
                .enumerate()
                .map(|(id, z)| Arc::new(IndexedZone::new(z, id)))
                .collect(),
        )
    }

    /// A catalog of zones indexed already (each keeps its id). Two zones with one
    /// apex is an error.
    pub fn from_indexed(zones: Vec<Arc<IndexedZone>>) -> Result<Catalog, String> {
        let mut c = Catalog::default();
        for z in zones {
            if c.zones.contains_key(&z.apex) {
                return Err(format!("zone {} is loaded twice", name::to_text(&z.apex)));
            }
            c.zones.insert(z.apex.clone(), z);
        }
        let mut offs = [0u8; 128];
        let mut depths: Vec<usize> = c
            .zones
            .keys()
            .map(|a| name::label_offsets(a, &mut offs).unwrap_or(0))
            .collect();
        depths.sort_unstable_by(|a, b| b.cmp(a));
        depths.dedup();
        c.depths = depths;
        Ok(c)
    }

    /// How many zones.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Whether no zone is loaded: every query would be REFUSED.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zones' apexes.
    pub fn apexes(&self) -> impl Iterator<Item = &Name> {
        self.zones.keys()
    }

    /// The zones' apexes by their [`IndexedZone::id`].
    pub fn apexes_by_id(&self) -> Vec<&Name> {
        let mut v: Vec<(usize, &Name)> = self.zones.values().map(|z| (z.id, &z.apex)).collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// The zones, by their [`IndexedZone::id`].
    pub fn zones_by_id(&self) -> Vec<Arc<IndexedZone>> {
        let mut v: Vec<Arc<IndexedZone>> = self.zones.values().cloned().collect();
        v.sort_unstable_by_key(|z| z.id);
        v
    }

    /// The zone `name` (wire, lower-case) belongs to: the deepest one whose apex is
    /// `name` or an ancestor of it.
    pub fn find_zone(&self, name: &[u8]) -> Option<&IndexedZone> {
        let mut offs = [0u8; 128];
        let labels = name::label_offsets(name, &mut offs)?;
        for &d in &self.depths {
            if d > labels {
                continue;
            }
            let suffix = &name[if d == 0 {
                name.len() - 1
            } else {
                offs[labels - d] as usize
            }..];
            if let Some(z) = self.zones.get(suffix) {
                return Some(&**z);
            }
        }
        None
    }

    /// The zone whose apex is exactly `apex`.
    pub fn zone(&self, apex: &[u8]) -> Option<&IndexedZone> {
        self.zones.get(apex).map(|z| &**z)
    }
}

fn index(z: Zone) -> IndexedZone {
    // Records of one name come together in a zone file: one node each run of them
    // (names less than runs when a name's records are scattered), sized once so the
    // map never rehashes on the way.
    let runs = 1 + z
        .records
        .windows(2)
        .filter(|w| w[0].owner != w[1].owner)
        .count();
    let mut ix = Indexer::with_capacity(runs);
    // The records are moved into the index, not copied: a big zone's parse would
    // otherwise be held twice at the peak of the load.
    ix.take(z.records.into_iter().map(Record::from).collect());
    ix.finish(z.apex, 0)
}

/// A record as the index takes it: owner, type, TTL, RDATA, target. Without the
/// file and line a parsed record carries: those are a shared `Arc` whose count the
/// parse's thread and the index's would fight over, record by record (half the
/// index's time when they did).
struct Record(Name, u16, u32, Box<[u8]>, Option<Name>);

impl From<Rr> for Record {
    fn from(r: Rr) -> Record {
        Record(r.owner, r.rtype, r.ttl, r.rdata, r.target)
    }
}

/// An index built from records as they come, the apex known only at the end: the
/// streaming load's (a batch at a time, beside the parse) and [`index`]'s.
struct Indexer {
    nodes: Map<Name, Node>,
    /// Every SOA seen: (owner, TTL, RDATA). A zone has one, at its apex.
    soas: Vec<(Name, u32, Box<[u8]>)>,
    /// Whether any CNAME was seen (a name with one may have nothing else).
    cnames: bool,
}

impl Indexer {
    fn with_capacity(names: usize) -> Indexer {
        Indexer {
            nodes: Map::with_capacity_and_hasher(names, Default::default()),
            soas: Vec::new(),
            cnames: false,
        }
    }

    /// Indexes `records`, run by run of one owner.
    fn take(&mut self, records: Vec<Record>) {
        let mut records = records.into_iter().peekable();
        while let Some(first) = records.next() {
            // The run's records make a node here, put in the map once, under the name
            // the first record brought.
            let mut node = Node::default();
            let Record(owner, t, ttl, rdata, target) = first;
            let mut next = Some((t, ttl, rdata, target));
            while let Some((t, ttl, rdata, target)) = next {
                if t == rtype::SOA {
                    self.soas.push((owner.clone(), ttl, rdata.clone()));
                }
                self.cnames |= t == rtype::CNAME;
                node.add(t, ttl, &rdata, target);
                next = records
                    .next_if(|n| n.0 == owner)
                    .map(|Record(_, t, ttl, rdata, target)| (t, ttl, rdata, target));
            }
            match self.nodes.entry(owner) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(node);
                }
                // A name whose records are not all together in the file.
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let into = e.get_mut();
                    for set in node.rrsets {
                        for (k, rdata) in set.rdatas().enumerate() {
                            into.add(set.rtype, set.ttl, rdata, set.target_of(k));
                        }
                    }
                }
            }
        }
    }

    /// The names that break a zone's rules (outside `apex`; a CNAME with other data).
    fn misfits(&self, apex: &[u8]) -> usize {
        let outside = self
            .nodes
            .keys()
            .filter(|n| !name::is_within(n, apex))
            .count();
        let cname_and_more = if self.cnames {
            self.nodes
                .values()
                .filter(|n| n.get(rtype::CNAME).is_some() && n.rrsets.len() > 1)
                .count()
        } else {
            0
        };
        outside + cname_and_more
    }

    /// The index of the zone at `apex`: every name between an owner and the apex made
    /// to exist (empty non-terminals, which answer NODATA rather than NXDOMAIN).
    fn finish(mut self, apex: Name, id: usize) -> IndexedZone {
        // Most names are the apex's children: nothing to climb for those.
        let deep: Vec<Name> = self
            .nodes
            .keys()
            .filter(|n| name::parent(n).is_some_and(|p| p != &apex[..]) && n[..] != apex[..])
            .cloned()
            .collect();
        for owner in deep {
            let mut n: &[u8] = &owner;
            while let Some(p) = name::parent(n) {
                if p == &apex[..] || self.nodes.contains_key(p) || !name::is_within(p, &apex) {
                    break;
                }
                self.nodes.insert(p.into(), Node::default());
                n = p;
            }
        }
        let (soa_ttl, soa_rdata) = self
            .soas
            .into_iter()
            .find(|(o, ..)| o[..] == apex[..])
            .map(|(_, ttl, rdata)| (ttl, rdata))
            .unwrap_or_default();
        // MINIMUM is the SOA RDATA's last 4 bytes.
        let minimum = soa_rdata
            .len()
            .checked_sub(4)
            .map(|i| u32::from_be_bytes(soa_rdata[i..].try_into().unwrap()))
            .unwrap_or(0);
        IndexedZone {
            id,
            apex,
            nodes: self.nodes,
            soa_rdata,
            soa_ttl,
            negative_ttl: soa_ttl.min(minimum),
            available: true,
        }
    }
}

/// The streaming load's side of the index: batches of records sent to the thread
/// that indexes them.
struct Batches {
    batch: Vec<Record>,
    to: std::sync::mpsc::SyncSender<Vec<Record>>,
    /// How many records the parse expects (its files' entries).
    expected: Arc<std::sync::atomic::AtomicUsize>,
}

/// Records a batch: big enough to pay for a channel send, small enough to stay in
/// the cache until indexed.
const BATCH: usize = 4096;

impl crate::zone::RecordSink for Batches {
    fn expect(&mut self, n: usize) {
        self.expected
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn push(&mut self, r: Rr) {
        self.batch.push(Record::from(r));
        if self.batch.len() == BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            let _ = self.to.send(full);
        }
    }
}

impl IndexedZone {
    /// Loads the zone file at `path` (`origin` as for [`crate::load_zone`]) straight
    /// into an index, with id `id`: the parse on this thread, the index built beside
    /// it on another from batches of records, so a big zone is never held as a list of
    /// records too. A zone that breaks a rule is read again the slow way, for its
    /// errors with their lines.
    pub fn load(
        path: &std::path::Path,
        origin: Option<&str>,
        id: usize,
    ) -> Result<IndexedZone, Vec<crate::ZoneError>> {
        // The one-thread way: a list of records, then the index.
        let listed = || crate::load_zone(path, origin).map(|z| IndexedZone::new(z, id));
        let expected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (to, from) = std::sync::mpsc::sync_channel::<Vec<Record>>(4);
        let seen = expected.clone();
        let indexer = std::thread::Builder::new()
            .name("sluice-index".into())
            .spawn(move || {
                let mut ix: Option<Indexer> = None;
                for batch in from {
                    // About two records a name in hosting zones: a map that rarely
                    // grows, and then once.
                    let ix = ix.get_or_insert_with(|| {
                        Indexer::with_capacity(seen.load(std::sync::atomic::Ordering::Relaxed) / 2)
                    });
                    ix.take(batch);
                }
                ix.unwrap_or_else(|| Indexer::with_capacity(0))
            });
        let Ok(indexer) = indexer else {
            // No thread to spare: the one-thread way.
            return listed();
        };
        let mut sink = Batches {
            batch: Vec::with_capacity(BATCH),
            to,
            expected,
        };
        let errors = crate::zone::scan(path, origin, &mut sink);
        let Batches { batch, to, .. } = sink;
        if !batch.is_empty() {
            let _ = to.send(batch);
        }
        drop(to);
        let Ok(ix) = indexer.join() else {
            return listed();
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        // The zone's rules: one SOA, its owner the apex (the configured name, if
        // any), every name within it, no CNAME beside other data. Any broken: the
        // slow way says where.
        let apex = match ix.soas.as_slice() {
            [(owner, ..)] => owner.clone(),
            _ => return listed(),
        };
        let named = origin.is_none_or(|o| name::from_text(o).is_some_and(|n| n == apex));
        if !named || ix.misfits(&apex) > 0 {
            return listed();
        }
        Ok(ix.finish(apex, id))
    }
}
