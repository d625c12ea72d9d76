//! A worker's connections: a slab of connection slots and a 4-tuple index into it.
//!
//! Slots are reused through a free list and carry a generation, so a handle to a closed
//! connection (a flow that outlived it, a stale timer entry) never reaches its successor.
//! They live in fixed chunks that never move: a connection is about a kilobyte, and a
//! single growing vector would copy every one of them each time the count doubles (half
//! a gigabyte, a stall of a good fraction of a second on the packet path, on the way to a
//! million connections).
//! The 4-tuple index (`index.rs`) likewise grows a few buckets at a time instead of
//! rehashing everything at once; lookups and inserts are O(1) at any table size.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::index::FlowIndex;

/// A connection's identity: (local address, local port, remote address, remote port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FourTuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

impl FourTuple {
    /// Which of `workers` owns this connection. Every worker computes the same answer
    /// for a flow whichever queue its packets arrive on, so segments that land on the
    /// wrong queue (RSS, or the peer re-hashing its flow after a timeout) are handed to
    /// the owner instead of being lost.
    pub fn owner(&self, workers: usize) -> usize {
        if workers <= 1 {
            return 0;
        }
        // A fixed, symmetric-free mix: it must agree across threads and runs, so no
        // random key here (the table's own hashing is keyed).
        let a = u32::from(*self.local.ip()) as u64;
        let b = u32::from(*self.remote.ip()) as u64;
        let p = ((self.local.port() as u64) << 16) | self.remote.port() as u64;
        let mut h = a.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ b.rotate_left(29)
            ^ p.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 29;
        (h % workers as u64) as usize
    }
}

/// A handle to a slot: index plus generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handle {
    pub index: u32,
    pub generation: u32,
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Slots per chunk: a chunk of connections is about a megabyte.
const CHUNK: usize = 1024;

/// The table.
pub(crate) struct Table<T> {
    /// Each chunk is allocated with room for CHUNK slots and never grows past it, so
    /// slots never move; only this vector of chunk headers does.
    chunks: Vec<Vec<Slot<T>>>,
    free: Vec<u32>,
    index: FlowIndex,
}

impl<T> Table<T> {
    pub fn new() -> Table<T> {
        Table {
            chunks: Vec::new(),
            free: Vec::new(),
            index: FlowIndex::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.index.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        let i = index as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        let i = index as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    pub fn lookup(&self, key: &FourTuple) -> Option<Handle> {
        let index = self.index.get(key)?;
        Some(Handle {
            index,
            generation: self.slot(index)?.generation,
        })
    }

    /// Inserts a connection; the caller has checked that `key` is not present.
    pub fn insert(&mut self, key: FourTuple, value: T) -> Handle {
        let (index, generation) = match self.free.pop() {
            Some(i) => {
                let slot = self.slot_mut(i).expect("a freed slot exists");
                slot.value = Some(value);
                (i, slot.generation)
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let n = self.chunks.len();
                let chunk = &mut self.chunks[n - 1];
                chunk.push(Slot {
                    generation: 0,
                    value: Some(value),
                });
                (((n - 1) * CHUNK + chunk.len() - 1) as u32, 0)
            }
        };
        self.index.insert(&key, index);
        Handle { index, generation }
    }

    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        let slot = self.slot_mut(h.index)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The live handle of slot `index`, if any (timer entries carry bare indices).
    pub fn handle_at(&self, index: u32) -> Option<Handle> {
        let slot = self.slot(index)?;
        slot.value.as_ref()?;
        Some(Handle {
            index,
            generation: slot.generation,
        })
    }

    /// Every live connection, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flatten()
            .filter_map(|s| s.value.as_ref())
    }

    /// Removes the connection, dropped where it lies (a connection is about a kilobyte:
    /// handing it back would copy it out only to drop it); its handle (and every copy)
    /// goes stale. Returns whether the handle was live.
    pub fn remove(&mut self, key: &FourTuple, h: Handle) -> bool {
        let Some(slot) = self.slot_mut(h.index) else {
            return false;
        };
        // A live handle's generation finds its connection: removal bumps it.
        if slot.generation != h.generation {
            return false;
        }
        slot.value = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.index.remove(key);
        self.free.push(h.index);
        true
    }
}

/// The local address for a connect: the configured address the route prefers, or the
/// first configured one.
pub(crate) fn pick_source(addrs: &[Ipv4Addr], preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    match preferred {
        Some(p) if addrs.contains(&p) => Some(p),
        _ => addrs.first().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 53),
            remote: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), port),
        }
    }

    #[test]
    fn stale_handles_do_not_reach_successors() {
        let mut t = Table::new();
        let h1 = t.insert(key(1), "first");
        assert_eq!(t.lookup(&key(1)), Some(h1));
        assert!(t.remove(&key(1), h1));
        let h2 = t.insert(key(2), "second");
        assert_eq!(h2.index, h1.index, "the slot is reused");
        assert!(t.get_mut(h1).is_none(), "the old handle is stale");
        assert_eq!(t.get_mut(h2), Some(&mut "second"));
        assert!(!t.remove(&key(2), h1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn owners_spread_and_agree() {
        let mut counts = [0usize; 4];
        for p in 1000..5000 {
            counts[key(p).owner(4)] += 1;
            assert_eq!(key(p).owner(4), key(p).owner(4));
            assert_eq!(key(p).owner(1), 0);
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn a_million_connections_fit() {
        let mut t = Table::new();
        for i in 0..1_000_000u32 {
            let k = FourTuple {
                local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 53),
                remote: SocketAddrV4::new(
                    Ipv4Addr::from(0x0a00_0000 + (i >> 16)),
                    (i & 0xffff) as u16,
                ),
            };
            t.insert(k, i);
        }
        assert_eq!(t.len(), 1_000_000);
        assert_eq!(t.chunks.len(), 1_000_000usize.div_ceil(CHUNK));
        assert!(
            t.chunks.iter().all(|c| c.capacity() == CHUNK),
            "no chunk grew"
        );
        assert_eq!(t.iter().count(), 1_000_000);
    }

    #[test]
    fn slots_do_not_move_as_the_table_grows() {
        let mut t = Table::new();
        let h0 = t.insert(key(0), 0u64);
        let first = t.get_mut(h0).unwrap() as *mut u64;
        for p in 1..5 * CHUNK as u16 {
            let h = t.insert(key(p), p as u64);
            assert_eq!(t.get_mut(h), Some(&mut (p as u64)));
            assert_eq!(t.handle_at(h.index), Some(h));
        }
        assert_eq!(t.get_mut(h0).unwrap() as *mut u64, first);
        // Slots freed anywhere are reused before a new chunk is started.
        let h = t.lookup(&key(1500)).unwrap();
        assert!(t.remove(&key(1500), h));
        assert_eq!(t.insert(key(60_000), 7).index, h.index);
    }
}
