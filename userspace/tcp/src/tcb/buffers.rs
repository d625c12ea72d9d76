//! The two byte rings of a connection. Each starts empty and grows (doubling, from
//! [`MIN_ALLOCATION`]) as far as its capacity when more bytes must be held, so a
//! connection that carries a DNS exchange holds a few KiB, not the full capacity:
//! allocating (and zeroing) 64 KiB twice per connection was the largest single cost of
//! a short connection.
//!
//! A ring of the smallest size gives its allocation back once it holds nothing (the
//! send ring when all is acknowledged, the receive ring when all is read and nothing
//! waits out of order), so an idle DNS connection holds no buffer memory: a million of
//! them held 1 KiB each in emptied rings. The allocations go to a pool of the thread's
//! (its worker's), which the next ring takes them from: a connection whose rings empty
//! between its queries, or a new one, allocates nothing. A ring that grew past the
//! smallest size keeps its allocation (a bulk transfer empties its rings at every
//! segment, and would allocate as often).

use std::cell::RefCell;

/// The first allocation of a ring.
pub(crate) const MIN_ALLOCATION: usize = 512;

/// The most allocations the pool keeps (2 MiB): beyond, they are freed.
const POOL_MAX: usize = 4096;

thread_local! {
    /// Emptied rings' smallest allocations, for the next ring of this thread.
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A ring of bytes: `len` bytes starting at `head`, in an allocation whose size is the
/// modulus. Growing re-lays the bytes from offset 0, so positions relative to `head` stay
/// valid (the receive side relies on that for out-of-order bytes beyond `len`).
#[derive(Debug, Default)]
struct Ring {
    buf: Vec<u8>,
    head: usize,
}

impl Ring {
    /// Makes the allocation hold at least `need` bytes from `head` (at most `cap`).
    fn reserve(&mut self, need: usize, cap: usize) {
        if need <= self.buf.len() {
            return;
        }
        let mut size = self.buf.len().max(MIN_ALLOCATION);
        while size < need {
            size *= 2;
        }
        let size = size.min(cap);
        if self.buf.is_empty() && size == MIN_ALLOCATION {
            // Stale bytes are never read: only what is written is.
            if let Some(b) = POOL.with_borrow_mut(|p| p.pop()) {
                self.buf = b;
                self.head = 0;
                return;
            }
        }
        let mut grown = vec![0u8; size];
        let old = self.buf.len();
        if old > 0 {
            grown[..old - self.head].copy_from_slice(&self.buf[self.head..]);
            grown[old - self.head..old].copy_from_slice(&self.buf[..self.head]);
        }
        self.buf = grown;
        self.head = 0;
    }

    /// Copies `data` in at `offset` from the head (the allocation already holds it).
    fn write(&mut self, offset: usize, data: &[u8]) {
        let size = self.buf.len();
        let start = (self.head + offset) % size;
        let first = data.len().min(size - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Copies `dst.len()` bytes out from `offset` after the head.
    fn read(&self, offset: usize, dst: &mut [u8]) {
        let size = self.buf.len();
        let start = (self.head + offset) % size;
        let first = dst.len().min(size - start);
        dst[..first].copy_from_slice(&self.buf[start..start + first]);
        let n = dst.len();
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
    }

    fn advance(&mut self, n: usize) {
        if !self.buf.is_empty() {
            self.head = (self.head + n) % self.buf.len();
        }
    }

    /// Gives an allocation of the smallest size back to the pool (the caller knows the
    /// ring holds nothing); keeps a larger one.
    fn release_if_smallest(&mut self) {
        if self.buf.len() == MIN_ALLOCATION {
            self.release();
        } else {
            self.head = 0;
        }
    }

    /// Gives the allocation back (to the pool, if it is the smallest size).
    fn release(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.head = 0;
        if buf.len() == MIN_ALLOCATION {
            // A thread that is exiting has no pool left: the allocation is freed.
            let _ = POOL.try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    p.push(buf);
                }
            });
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.release();
        }
    }
}

/// Bytes written by the application and not yet acknowledged. Offset 0 is SND.UNA.
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    ring: Ring,
    capacity: usize,
    len: usize,
}

impl SendBuffer {
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: Ring::default(),
            capacity: capacity.max(1),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn free(&self) -> usize {
        self.capacity - self.len
    }

    /// Appends what fits of `data`; returns how much.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        self.ring.reserve(self.len + n, self.capacity);
        self.ring.write(self.len, &data[..n]);
        self.len += n;
        n
    }

    /// Drops `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ring.advance(n);
        self.len -= n;
        if self.len == 0 {
            self.ring.release_if_smallest();
        }
    }

    /// Copies `dst.len()` bytes starting `offset` bytes after SND.UNA into `dst`.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        let n = dst.len().min(self.len.saturating_sub(offset));
        if n == 0 {
            return;
        }
        self.ring.read(offset, &mut dst[..n]);
    }

    /// Bytes held in memory (0 until first used).
    pub fn allocated(&self) -> usize {
        self.ring.buf.capacity()
    }
}

/// Received bytes not yet read by the application, in order, plus out-of-order bytes
/// placed where they belong (the assembler says which).
#[derive(Debug, Default)]
pub(crate) struct RecvBuffer {
    ring: Ring,
    capacity: usize,
    /// In-order bytes ready for the application.
    len: usize,
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Ring::default(),
            capacity: capacity.max(1),
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Room after the in-order bytes: the receive window.
    pub fn window(&self) -> usize {
        self.capacity - self.len
    }

    /// Writes `data` at `offset` bytes after the in-order end (0 = in order). The caller
    /// has clipped it to the window.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) {
        debug_assert!(offset + data.len() <= self.window());
        if data.is_empty() {
            return;
        }
        self.ring
            .reserve(self.len + offset + data.len(), self.capacity);
        self.ring.write(self.len + offset, data);
    }

    /// Makes `n` more bytes (already written) readable.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.window());
    }

    /// Copies readable bytes into `dst`; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        if n == 0 {
            return 0;
        }
        self.ring.read(0, &mut dst[..n]);
        // The head only ever moves forward: out-of-order bytes already placed beyond the
        // in-order end are positioned relative to it.
        self.ring.advance(n);
        self.len -= n;
        n
    }

    /// Bytes held in memory (0 until first used).
    pub fn allocated(&self) -> usize {
        self.ring.buf.capacity()
    }

    /// Gives the allocation back if nothing is held: the caller knows that no bytes
    /// wait out of order beyond the readable ones.
    pub fn release_if_empty(&mut self) {
        if self.len == 0 {
            self.ring.release_if_smallest();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptied_rings_give_their_memory_back_to_the_pool() {
        let pooled = || POOL.with_borrow(|p| p.len());
        let mut s = SendBuffer::new(64 * 1024);
        assert_eq!(s.push(b"an answer"), 9);
        assert_eq!(s.allocated(), MIN_ALLOCATION);
        let before = pooled();
        s.consume(5);
        assert_eq!(s.allocated(), MIN_ALLOCATION, "still holding 4 bytes");
        s.consume(4);
        assert_eq!(s.allocated(), 0, "all acknowledged: nothing held");
        assert_eq!(pooled(), before + 1);
        // The next ring to need memory takes it from the pool.
        let mut r = RecvBuffer::new(64 * 1024);
        r.write_at(0, b"a query");
        r.commit(7);
        assert_eq!((r.allocated(), pooled()), (MIN_ALLOCATION, before));
        let mut out = [0u8; 7];
        assert_eq!(r.read(&mut out), 7);
        assert_eq!(&out, b"a query");
        r.release_if_empty();
        assert_eq!((r.allocated(), pooled()), (0, before + 1));
        // A larger allocation stays with its ring (a bulk transfer empties it often).
        let mut big = SendBuffer::new(64 * 1024);
        big.push(&[7u8; 3000]);
        big.consume(3000);
        assert_eq!((big.allocated(), pooled()), (4096, before + 1));
    }

    #[test]
    fn send_ring_wraps() {
        let mut s = SendBuffer::new(8);
        assert_eq!(s.allocated(), 0, "nothing allocated before use");
        assert_eq!(s.push(b"abcdef"), 6);
        s.consume(4);
        assert_eq!(s.push(b"ghijklmn"), 6, "only the free room is taken");
        let mut out = [0u8; 8];
        s.copy_out(0, &mut out);
        assert_eq!(&out, b"efghijkl");
        let mut mid = [0u8; 3];
        s.copy_out(2, &mut mid);
        assert_eq!(&mid, b"ghi");
    }

    #[test]
    fn recv_ring_places_out_of_order_bytes() {
        let mut r = RecvBuffer::new(8);
        r.write_at(3, b"de");
        r.write_at(0, b"abc");
        r.commit(5);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        r.write_at(0, b"fghijk");
        r.commit(6);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out), 7);
        assert_eq!(&out[..7], b"efghijk");
    }

    #[test]
    fn rings_grow_on_demand_and_keep_their_bytes() {
        let mut s = SendBuffer::new(64 * 1024);
        assert_eq!(s.push(&[1u8; 100]), 100);
        assert_eq!(
            s.allocated(),
            MIN_ALLOCATION,
            "small writes, small allocation"
        );
        s.consume(60);
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        assert_eq!(s.push(&big), 10_000);
        assert_eq!(s.allocated(), 16 * 1024);
        let mut out = vec![0u8; 10_040];
        s.copy_out(0, &mut out);
        assert_eq!(&out[..40], &[1u8; 40]);
        assert_eq!(&out[40..], &big[..]);
        // Never beyond the capacity.
        let mut t = SendBuffer::new(3000);
        assert_eq!(t.push(&[0u8; 5000]), 3000);
        assert_eq!(t.allocated(), 3000);

        // Receive: out-of-order bytes placed before a growth stay where they belong.
        let mut r = RecvBuffer::new(64 * 1024);
        r.write_at(0, &[9u8; 1500]);
        r.commit(1500);
        let mut drain = [0u8; 1000];
        assert_eq!(r.read(&mut drain), 1000); // head moves: the ring wraps below
        r.write_at(5100, b"later"); // out of order, past the in-order 500
        r.write_at(100, &big[..5000]); // forces growth with a moved head
        r.write_at(0, &[7u8; 100]);
        r.commit(5105);
        let mut all = vec![0u8; r.len()];
        assert_eq!(r.read(&mut all), all.len());
        assert_eq!(&all[..500], &[9u8; 500]);
        assert_eq!(&all[500..600], &[7u8; 100]);
        assert_eq!(&all[600..5600], &big[..5000]);
        assert_eq!(&all[5600..], b"later");
    }

    #[test]
    fn draining_keeps_out_of_order_bytes_in_place() {
        let mut r = RecvBuffer::new(8);
        r.write_at(0, b"ab");
        r.commit(2);
        r.write_at(2, b"ef"); // bytes 4..6 arrive early
        let mut out = [0u8; 2];
        assert_eq!(r.read(&mut out), 2); // the reader empties the in-order part
        r.write_at(0, b"cd");
        r.commit(4);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"cdef");
    }
}
