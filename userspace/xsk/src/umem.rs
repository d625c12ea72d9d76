//! The UMEM: one anonymous mapping cut into equal frames, and the free list of frames
//! that are neither with the kernel (fill, RX, TX, completion rings) nor in use.

use std::ptr::NonNull;

use crate::error::{Error, Result};

/// The packet memory of one socket.
pub(crate) struct Umem {
    area: NonNull<u8>,
    len: usize,
    frame_size: u32,
    frame_count: u32,
}

// SAFETY: the mapping is owned by one socket, used by one thread at a time.
unsafe impl Send for Umem {}

impl Umem {
    pub(crate) fn new(frame_size: u32, frame_count: u32) -> Result<Umem> {
        let len = frame_size as usize * frame_count as usize;
        // SAFETY: a fresh private anonymous mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last_os("mmap of the UMEM"));
        }
        // Transparent huge pages, asked for before the pages exist: with 4 KiB pages, each
        // frame the worker touches costs a TLB miss (the fill ring spreads reception over
        // megabytes). Best effort: without THP the mapping works as is.
        // SAFETY: advice on our own fresh mapping.
        unsafe {
            libc::madvise(ptr, len, libc::MADV_HUGEPAGE);
            // Populate now, as MAP_POPULATE did (before Linux 5.14 this fails, and the
            // UMEM registration faults the pages in anyway).
            libc::madvise(ptr, len, libc::MADV_POPULATE_WRITE);
        }
        Ok(Umem {
            // SAFETY: mmap succeeded.
            area: unsafe { NonNull::new_unchecked(ptr.cast()) },
            len,
            frame_size,
            frame_count,
        })
    }

    pub(crate) fn addr(&self) -> u64 {
        self.area.as_ptr() as u64
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    pub(crate) fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// The frame that contains UMEM offset `addr` (descriptors point past the headroom).
    #[inline]
    pub(crate) fn frame_base(&self, addr: u64) -> u64 {
        addr & !(self.frame_size as u64 - 1)
    }

    /// `len` bytes at UMEM offset `addr`, clamped to the end of its frame so a bogus
    /// descriptor can never reach another frame or outside the mapping.
    #[inline]
    pub(crate) fn slice_mut(&mut self, addr: u64, len: u32) -> &mut [u8] {
        let base = self.frame_base(addr);
        let start = addr.min(base + self.frame_size as u64 - 1);
        let end = (addr + len as u64).min(base + self.frame_size as u64);
        if base >= self.len as u64 {
            return &mut [];
        }
        // SAFETY: [start, end) lies inside one frame of the mapping (checked above), and
        // the frame is ours (the caller holds it), so no one else writes it meanwhile.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.area.as_ptr().add(start as usize),
                (end - start) as usize,
            )
        }
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping. The socket (closed before this runs,
        // see XskSocket's field order) no longer refers to it.
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.len) };
    }
}
