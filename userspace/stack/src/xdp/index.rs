//! The 4-tuple → slot index of a worker's connection table: an open-addressing hash
//! table that grows without a stall.
//!
//! A general-purpose hash map rehashes every entry at once when it outgrows its
//! buckets: at a million connections that is tens of milliseconds during which the
//! worker receives nothing (50-70 ms for std's map growing past 1.8 M entries). This
//! index instead moves its entries to the doubled table a few buckets at a time, on
//! each insert, while lookups and removals look in both tables. No single operation
//! costs more than a handful of probes, whatever the size.
//!
//! Linear probing over 16-byte slots (four to a cache line), at most three quarters
//! full, with a byte of tag per slot in an array of its own (as SwissTable does). Keys are
//! hashed with a per-process random key (ahash), so a client that chooses its ports
//! cannot force collisions. An all-zero tag means empty, which lets a new table come
//! from zeroed memory (calloc: the kernel's zero pages, touched as the table fills)
//! instead of being written out in full when it is created.

use super::table::FourTuple;

/// `[local ip, remote ip, local port << 16 | remote port, value]`.
type Slot = [u32; 4];

/// Tag of an empty slot. Any other tag is a fragment of the hash of the slot's key, so
/// that a probe reads the dense tag array (a byte a slot) and touches a slot only when
/// its tag matches: on a large table each slot read is a cache and TLB miss, and a
/// lookup that finds nothing (every new connection's SYN) then makes none.
const EMPTY: u8 = 0;
/// Tag of an entry of the old table that was removed or moved: probes go on past it.
const GONE: u8 = 0xff;
/// Buckets of the old table moved to the new one per insert. Two would be enough to
/// empty the old table before the new one fills (it holds at most 3/4 of half the new
/// table's slots, and the new table takes 3/4 of its own); eight ends the time in
/// which lookups that miss look twice sooner.
const MIGRATE_PER_INSERT: usize = 8;
const MIN_SLOTS: usize = 1024;

/// The tag of a key's hash: its top bits, in 1..=0xfe.
fn tag(hash: u64) -> u8 {
    ((hash >> 56) as u8 % 0xfe) + 1
}

/// One open-addressing table.
struct Slots {
    tags: Vec<u8>,
    slots: Vec<Slot>,
    /// Entries present (not counting GONE).
    live: usize,
}

impl Slots {
    fn with_slots(n: usize) -> Slots {
        debug_assert!(n.is_power_of_two());
        Slots {
            // All zero (EMPTY): the allocator hands out zeroed memory without writing it.
            tags: vec![EMPTY; n],
            slots: vec![[0u32; 4]; n],
            live: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: [u32; 3], hash: u64) -> Option<usize> {
        let mask = self.mask();
        let want = tag(hash);
        let mut i = hash as usize & mask;
        loop {
            let t = self.tags[i];
            if t == EMPTY {
                return None;
            }
            if t == want {
                let s = &self.slots[i];
                if s[0] == key[0] && s[1] == key[1] && s[2] == key[2] {
                    return Some(i);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts `key` in the first free slot of its probe sequence; the caller knows it is
    /// absent and that there is room.
    fn place(&mut self, key: [u32; 3], hash: u64, value: u32) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.tags[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.tags[i] = tag(hash);
        self.slots[i] = [key[0], key[1], key[2], value];
        self.live += 1;
    }

    /// Removes slot `i` and shifts later entries of its cluster back, so that no probe
    /// sequence is broken and no tombstone is left (Knuth's algorithm R). Only for a
    /// table without GONE entries.
    fn remove_shifting(&mut self, mut i: usize, hasher: &ahash::RandomState) {
        let mask = self.mask();
        let mut j = i;
        loop {
            self.tags[i] = EMPTY;
            loop {
                j = (j + 1) & mask;
                if self.tags[j] == EMPTY {
                    self.live -= 1;
                    return;
                }
                let s = self.slots[j];
                let home = hash(hasher, [s[0], s[1], s[2]]) as usize & mask;
                // Move s back to i unless its home lies cyclically in (i, j].
                let stays = if i <= j {
                    i < home && home <= j
                } else {
                    i < home || home <= j
                };
                if !stays {
                    self.tags[i] = self.tags[j];
                    self.slots[i] = s;
                    i = j;
                    break;
                }
            }
        }
    }
}

/// The index: the current table and, while it grows, the previous one being emptied.
pub(crate) struct FlowIndex {
    hasher: ahash::RandomState,
    current: Slots,
    /// The table before the last growth and how far its buckets have been moved.
    old: Option<(Slots, usize)>,
}

fn hash(hasher: &ahash::RandomState, key: [u32; 3]) -> u64 {
    // Two integers, not the array: hashing a slice costs five times as much.
    hasher.hash_one(((u64::from(key[0]) << 32) | u64::from(key[1]), key[2]))
}

fn pack(t: &FourTuple) -> [u32; 3] {
    [
        u32::from(*t.local.ip()),
        u32::from(*t.remote.ip()),
        (u32::from(t.local.port()) << 16) | u32::from(t.remote.port()),
    ]
}

impl FlowIndex {
    pub fn new() -> FlowIndex {
        FlowIndex::with_hasher(ahash::RandomState::new())
    }

    fn with_hasher(hasher: ahash::RandomState) -> FlowIndex {
        FlowIndex {
            hasher,
            current: Slots::with_slots(MIN_SLOTS),
            old: None,
        }
    }

    pub fn len(&self) -> usize {
        self.current.live + self.old.as_ref().map_or(0, |(o, _)| o.live)
    }

    pub fn get(&self, t: &FourTuple) -> Option<u32> {
        let key = pack(t);
        let h = hash(&self.hasher, key);
        if let Some(i) = self.current.find(key, h) {
            return Some(self.current.slots[i][3]);
        }
        let (old, _) = self.old.as_ref()?;
        old.find(key, h).map(|i| old.slots[i][3])
    }

    /// Adds `t` → `value`; the caller has checked that `t` is not present.
    pub fn insert(&mut self, t: &FourTuple, value: u32) {
        if (self.current.live + 1) * 4 > self.current.slots.len() * 3 {
            self.grow();
        }
        let key = pack(t);
        let h = hash(&self.hasher, key);
        self.current.place(key, h, value);
        self.migrate(MIGRATE_PER_INSERT);
    }

    pub fn remove(&mut self, t: &FourTuple) -> Option<u32> {
        let key = pack(t);
        let h = hash(&self.hasher, key);
        if let Some(i) = self.current.find(key, h) {
            let value = self.current.slots[i][3];
            self.current.remove_shifting(i, &self.hasher);
            return Some(value);
        }
        let (old, _) = self.old.as_mut()?;
        let i = old.find(key, h)?;
        let value = old.slots[i][3];
        // The old table is being emptied front to back: shifting entries back could
        // carry them behind the migration cursor, so leave a marker instead.
        old.tags[i] = GONE;
        old.live -= 1;
        if old.live == 0 {
            self.old = None;
        }
        Some(value)
    }

    /// Starts moving to a table twice the size.
    fn grow(&mut self) {
        // By construction the previous growth has finished; if not, finish it now.
        self.migrate(usize::MAX);
        let bigger = Slots::with_slots(self.current.slots.len() * 2);
        let old = std::mem::replace(&mut self.current, bigger);
        self.old = Some((old, 0));
    }

    /// Moves up to `buckets` buckets of the old table into the current one.
    fn migrate(&mut self, buckets: usize) {
        let Some((old, cursor)) = self.old.as_mut() else {
            return;
        };
        let end = cursor.saturating_add(buckets).min(old.slots.len());
        for i in *cursor..end {
            if old.tags[i] != EMPTY && old.tags[i] != GONE {
                let s = old.slots[i];
                let key = [s[0], s[1], s[2]];
                self.current.place(key, hash(&self.hasher, key), s[3]);
                old.tags[i] = GONE;
                old.live -= 1;
            }
        }
        *cursor = end;
        if end == old.slots.len() || old.live == 0 {
            self.old = None;
        }
    }

    #[cfg(test)]
    fn growing(&self) -> bool {
        self.old.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn tuple(i: u32) -> FourTuple {
        FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 53),
            remote: SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + (i >> 16)), i as u16),
        }
    }

    /// Fixed hash keys, so that a failure replays.
    fn seeded() -> FlowIndex {
        FlowIndex::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4))
    }

    /// A small deterministic generator, with `seeded`, so that a failure replays.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }
    }

    #[test]
    fn agrees_with_a_map_through_growth_and_removals() {
        let mut index = seeded();
        let mut model = HashMap::new();
        let mut rng = Lcg(7);
        let mut saw_growth = false;
        for step in 0..200_000u32 {
            let k = rng.next() % 50_000;
            let t = tuple(k);
            // Mostly inserts early on, then a mix, so the table grows, shrinks in
            // content, and grows again with removals during growth.
            let insert = rng.next() % 100 < if step < 100_000 { 70 } else { 45 };
            if insert && !model.contains_key(&k) {
                index.insert(&t, step);
                model.insert(k, step);
            } else if !insert {
                assert_eq!(index.remove(&t), model.remove(&k), "remove {k} at {step}");
            }
            saw_growth |= index.growing();
            if step % 997 == 0 {
                for probe in 0..50_000 {
                    assert_eq!(index.get(&tuple(probe)), model.get(&probe).copied());
                }
            }
            assert_eq!(index.len(), model.len());
        }
        assert!(saw_growth);
        for (k, v) in &model {
            assert_eq!(index.get(&tuple(*k)), Some(*v));
        }
    }

    #[test]
    fn a_million_entries_then_none() {
        let mut index = seeded();
        for i in 0..1_000_000 {
            index.insert(&tuple(i), i);
        }
        assert_eq!(index.len(), 1_000_000);
        for i in (0..1_000_000).step_by(7) {
            assert_eq!(index.get(&tuple(i)), Some(i));
        }
        for i in 0..1_000_000 {
            assert_eq!(index.remove(&tuple(i)), Some(i), "{i}");
        }
        assert_eq!(index.len(), 0);
        assert_eq!(index.get(&tuple(5)), None);
    }

    #[test]
    fn removal_during_growth_leaves_the_rest_reachable() {
        let mut index = seeded();
        let mut n = 0;
        while !index.growing() {
            index.insert(&tuple(n), n);
            n += 1;
        }
        // Remove every other entry while the old table still holds most of them.
        for i in (0..n).step_by(2) {
            assert_eq!(index.remove(&tuple(i)), Some(i));
        }
        for i in 0..n {
            let want = (i % 2 == 1).then_some(i);
            assert_eq!(index.get(&tuple(i)), want, "{i}");
        }
        for i in n..n + 5_000 {
            index.insert(&tuple(i), i);
        }
        assert!(!index.growing(), "the old table was emptied");
        assert_eq!(index.len(), n as usize / 2 + 5_000);
    }

    #[test]
    fn clusters_that_wrap_around_the_end_survive_removals() {
        let keys = |index: &FlowIndex| {
            let home = |i: u32| hash(&index.hasher, pack(&tuple(i))) as usize % MIN_SLOTS;
            // Keys at home in the last four slots (their cluster runs past the end), and
            // keys at home in the first two (which the wrapped ones push along).
            let tail = (0..).filter(|&i| home(i) >= MIN_SLOTS - 4).take(8);
            let head = (0..).filter(|&i| home(i) <= 1).take(3);
            tail.chain(head).collect::<Vec<u32>>()
        };
        for order in ["tail first", "head first"] {
            let mut index = seeded();
            let mut all = keys(&index);
            for &k in &all {
                index.insert(&tuple(k), k);
            }
            assert!(!index.growing());
            let wrapped = all[..8].iter().any(|&k| {
                let key = pack(&tuple(k));
                index.current.find(key, hash(&index.hasher, key)).unwrap() < 8
            });
            assert!(wrapped, "the cluster wraps");
            if order == "head first" {
                all.reverse();
            }
            for (n, &k) in all.iter().enumerate() {
                assert_eq!(index.remove(&tuple(k)), Some(k), "{order}");
                for &other in &all[n + 1..] {
                    assert_eq!(index.get(&tuple(other)), Some(other), "{order}");
                }
            }
            assert_eq!(index.len(), 0);
        }
    }
}
