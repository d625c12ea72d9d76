//! The four AF_XDP rings, mapped from the socket: single-producer/single-consumer queues
//! shared with the kernel, synchronised only by the acquire/release ordering of their
//! producer and consumer indices.
//!
//! Indices run freely over u32 and are masked on access, so "entries in flight" is
//! always `producer - consumer` in wrapping arithmetic.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// One mmap()ed ring: its indices, flags and descriptor array.
pub(crate) struct Ring<T: Copy> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    /// Our view of the producer index: for a ring we produce into, the next slot to
    /// write; for a ring we consume, the last value read from the kernel.
    cached_prod: u32,
    /// Likewise for the consumer index.
    cached_cons: u32,
}

// SAFETY: the ring is a plain shared-memory mapping; moving it to another thread is safe
// because only one owner (the worker that owns the socket) ever touches our side.
unsafe impl<T: Copy> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Maps the ring at page offset `pgoff` of the socket, laid out as `off` says.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: libc::off_t,
    ) -> Result<Self> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: mapping a region the kernel offers for this socket; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last_os("mmap of an AF_XDP ring"));
        }
        let base = ptr.cast::<u8>();
        // SAFETY: the kernel guarantees these offsets lie inside the mapping.
        let at = |o: u64| unsafe { NonNull::new_unchecked(base.add(o as usize)) };
        let producer = at(off.producer).cast::<AtomicU32>();
        let consumer = at(off.consumer).cast::<AtomicU32>();
        // SAFETY: valid, aligned u32 indices inside the mapping.
        let (prod, cons) = unsafe {
            (
                producer.as_ref().load(Ordering::Acquire),
                consumer.as_ref().load(Ordering::Acquire),
            )
        };
        Ok(Ring {
            // SAFETY: mmap succeeded, so ptr is non-null.
            map: unsafe { NonNull::new_unchecked(base) },
            map_len,
            producer,
            consumer,
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: size - 1,
            size,
            cached_prod: prod,
            cached_cons: cons,
        })
    }

    /// Descriptors it holds.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Whether the kernel asked to be woken (XDP_USE_NEED_WAKEUP) to make progress.
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: flags points into the live mapping.
        unsafe { self.flags.as_ref().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0 }
    }

    // ---- producer side (fill, TX) ----

    /// How many slots are free to produce into, asking the kernel only when our cached
    /// view says fewer than `wanted`.
    #[inline]
    pub(crate) fn free(&mut self, wanted: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= wanted {
            return free;
        }
        // SAFETY: consumer points into the live mapping.
        self.cached_cons = unsafe { self.consumer.as_ref().load(Ordering::Acquire) };
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes one entry at the next producer slot, not yet visible to the kernel.
    /// The caller has checked [`Ring::free`].
    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        debug_assert!(self.cached_prod.wrapping_sub(self.cached_cons) < self.size);
        // SAFETY: the index is masked into the descriptor array, and the slot is ours
        // until submit() publishes it.
        unsafe {
            self.descs
                .as_ptr()
                .add((self.cached_prod & self.mask) as usize)
                .write(value)
        };
        self.cached_prod = self.cached_prod.wrapping_add(1);
    }

    /// Publishes everything pushed so far to the kernel.
    #[inline]
    pub(crate) fn submit(&mut self) {
        // SAFETY: producer points into the live mapping; Release orders the descriptor
        // writes before the index the kernel reads.
        unsafe {
            self.producer
                .as_ref()
                .store(self.cached_prod, Ordering::Release)
        };
    }

    // ---- consumer side (RX, completion) ----

    /// How many entries are ready to consume.
    #[inline]
    pub(crate) fn available(&mut self) -> u32 {
        let ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready > 0 {
            return ready;
        }
        // SAFETY: producer points into the live mapping; Acquire pairs with the kernel's
        // release of the descriptors it wrote.
        self.cached_prod = unsafe { self.producer.as_ref().load(Ordering::Acquire) };
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// How many entries are in the ring now, the producer's index read afresh (where
    /// [`Ring::available`] reads it only once the cached entries are used up): one
    /// more load, for when the true fill matters.
    #[inline]
    pub(crate) fn fill(&mut self) -> u32 {
        // SAFETY: as in `available`.
        self.cached_prod = unsafe { self.producer.as_ref().load(Ordering::Acquire) };
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// The `i`-th ready entry. The caller has checked [`Ring::available`].
    #[inline]
    pub(crate) fn get(&self, i: u32) -> T {
        // SAFETY: masked index into the descriptor array; the slot was published to us.
        unsafe {
            self.descs
                .as_ptr()
                .add((self.cached_cons.wrapping_add(i) & self.mask) as usize)
                .read()
        }
    }

    /// Hands `n` consumed entries back to the kernel.
    #[inline]
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        // SAFETY: consumer points into the live mapping; Release orders our reads first.
        unsafe {
            self.consumer
                .as_ref()
                .store(self.cached_cons, Ordering::Release)
        };
    }

    /// Entries published by us and not yet consumed by the kernel (producer rings).
    pub(crate) fn outstanding(&self) -> u32 {
        // SAFETY: consumer points into the live mapping.
        let cons = unsafe { self.consumer.as_ref().load(Ordering::Acquire) };
        self.cached_prod.wrapping_sub(cons)
    }
}

impl<T: Copy> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped; nothing refers to it afterwards.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}
