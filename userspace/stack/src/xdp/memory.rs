//! The in-memory device: the AF_XDP worker's whole frame path (parse, 4-tuple index,
//! TCB, flows and handlers, emit, timers) driven through rings in memory instead of an
//! AF_XDP socket, with no system call on the packet path. It exists to measure what the
//! stack itself costs, which veth's copy-mode AF_XDP hides under the kernel's own work,
//! and to test the worker without root.
//!
//! Its shape is AF_XDP's: a region of fixed-size frames shared by the two sides (the
//! UMEM), and single-producer single-consumer rings of frame descriptors between them.
//! The worker's side is [`MemoryDevice`], which implements [`Device`]; the other side,
//! [`MemoryLink`], is what a load generator or a test holds: it builds frames "on the
//! wire" for the worker to receive and takes the frames the worker sends. A frame
//! belongs to exactly one side at a time, the one that took its descriptor off a ring
//! or a free list, which is what makes the shared region sound.
//!
//! The worker sleeps, when idle, on an eventfd that the link signals only if the worker
//! said it was going to sleep ([`Device::prepare_to_sleep`]): a busy worker costs the
//! link no system call either.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use rtrb::{Consumer, Producer, RingBuffer};
use xsk::RxAction;

use super::device::{Device, DeviceCounters};

/// Bytes per frame, as the AF_XDP sockets use.
pub const FRAME_SIZE: usize = 2048;

/// A frame descriptor on a ring: the frame's index and the length of what it holds.
#[derive(Clone, Copy, Debug, Default)]
struct Desc {
    frame: u32,
    len: u32,
}

/// The frames both sides share. It owns the region through `base` alone (taken with
/// `Box::into_raw`, given back in `Drop`): a `Box` kept alongside would claim unique
/// access to memory the other side writes through the pointer.
struct Umem {
    base: *mut u8,
    frames: u32,
}

// SAFETY: the region is only reached through `frame`, and a frame is used by the one
// side that holds its descriptor (see the module's comment); the pointer itself is
// never written after construction.
unsafe impl Send for Umem {}
// SAFETY: as above.
unsafe impl Sync for Umem {}

impl Umem {
    fn new(frames: u32) -> Umem {
        let memory = vec![0u8; frames as usize * FRAME_SIZE].into_boxed_slice();
        Umem {
            base: Box::into_raw(memory).cast::<u8>(),
            frames,
        }
    }

    /// The whole of frame `index`.
    ///
    /// # Safety
    /// The caller holds `index`'s descriptor (so nobody else touches that frame while
    /// the slice lives), and `index < self.frames`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn frame(&self, index: u32) -> &mut [u8] {
        debug_assert!(index < self.frames);
        // SAFETY: in bounds (index < frames), and exclusive by the caller's contract.
        unsafe {
            std::slice::from_raw_parts_mut(self.base.add(index as usize * FRAME_SIZE), FRAME_SIZE)
        }
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        let len = self.frames as usize * FRAME_SIZE;
        // SAFETY: `base` and `len` are those of the boxed slice leaked in `new`, given
        // back once, when both sides (which share the Umem through an Arc) are gone.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.base, len)) });
    }
}

/// What both sides see of the worker's sleep.
struct Wake {
    /// The worker is about to sleep, or sleeps: the link must signal `eventfd` after
    /// it next hands over frames.
    asleep: AtomicBool,
    eventfd: OwnedFd,
}

impl Wake {
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. A failure
        // (the counter at its maximum) leaves it readable, which is all that matters.
        unsafe { libc::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.eventfd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

/// How the in-memory device is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryDeviceConfig {
    /// Frames in the shared region (half start with each side).
    pub frames: u32,
    /// Descriptors each ring holds.
    pub ring: u32,
}

impl Default for MemoryDeviceConfig {
    /// 4096 frames (8 MiB) and rings of 2048, as an AF_XDP socket's defaults.
    fn default() -> Self {
        MemoryDeviceConfig {
            frames: 4096,
            ring: 2048,
        }
    }
}

/// Builds a connected pair: the worker's device and the link a load side holds.
pub(crate) fn pair(config: MemoryDeviceConfig) -> std::io::Result<(MemoryDevice, MemoryLink)> {
    let frames = config.frames.max(4);
    let ring = config.ring.max(2) as usize;
    // SAFETY: plain eventfd(2); the descriptor is owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wake = Arc::new(Wake {
        asleep: AtomicBool::new(false),
        // SAFETY: fd is a fresh descriptor nobody else owns.
        eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
    });
    let umem = Arc::new(Umem::new(frames));
    let (rx_tx, rx_rx) = RingBuffer::new(ring);
    let (tx_tx, tx_rx) = RingBuffer::new(ring);
    let (fill_tx, fill_rx) = RingBuffer::new(frames as usize);
    let (comp_tx, comp_rx) = RingBuffer::new(frames as usize);
    let half = frames / 2;
    let device = MemoryDevice {
        umem: umem.clone(),
        wake: wake.clone(),
        rx: rx_rx,
        tx: tx_tx,
        fill: fill_tx,
        completion: comp_rx,
        free: (0..half).collect(),
        keep: half as usize,
        pending: Vec::with_capacity(ring),
        tx_full: false,
        no_buffer: 0,
        tx_ring_full: 0,
    };
    let link = MemoryLink {
        umem,
        wake,
        rx: rx_tx,
        tx: tx_rx,
        fill: fill_rx,
        completion: comp_tx,
        free: (half..frames).collect(),
        keep: (frames - half) as usize,
    };
    Ok((device, link))
}

/// The worker's side of the in-memory device.
pub(crate) struct MemoryDevice {
    umem: Arc<Umem>,
    wake: Arc<Wake>,
    /// Frames from the link to receive.
    rx: Consumer<Desc>,
    /// Frames sent, to the link.
    tx: Producer<Desc>,
    /// Spare frames back to the link, for it to build frames in.
    fill: Producer<Desc>,
    /// Frames the link has read, back to this side.
    completion: Consumer<Desc>,
    /// Frames this side may build in.
    free: Vec<u32>,
    /// How many free frames this side keeps before it gives the rest back.
    keep: usize,
    /// Frames built since the last kick, and those a full ring left behind.
    pending: Vec<Desc>,
    tx_full: bool,
    no_buffer: u64,
    tx_ring_full: u64,
}

impl Device for MemoryDevice {
    #[inline]
    fn recv<F: FnMut(&mut [u8]) -> RxAction>(&mut self, max: u32, mut handle: F) -> u32 {
        let mut n = 0;
        while n < max {
            let Ok(d) = self.rx.pop() else {
                break;
            };
            n += 1;
            // SAFETY: popping the descriptor made the frame this side's.
            let frame = unsafe { self.umem.frame(d.frame) };
            let len = (d.len as usize).min(FRAME_SIZE);
            match handle(&mut frame[..len]) {
                RxAction::Recycle => self.free.push(d.frame),
                RxAction::Transmit(len) => self.pending.push(Desc {
                    frame: d.frame,
                    len: len.min(FRAME_SIZE as u32),
                }),
            }
        }
        n
    }

    #[inline]
    fn transmit_with<F: FnOnce(&mut [u8]) -> usize>(&mut self, build: F) -> bool {
        let Some(index) = self.free.pop() else {
            self.no_buffer += 1;
            return false;
        };
        // SAFETY: taking it off the free list made the frame this side's.
        let frame = unsafe { self.umem.frame(index) };
        let len = build(frame).min(FRAME_SIZE);
        if len == 0 {
            self.free.push(index);
            return true;
        }
        self.pending.push(Desc {
            frame: index,
            len: len as u32,
        });
        true
    }

    #[inline]
    fn kick(&mut self) {
        let mut sent = 0;
        for d in &self.pending {
            if self.tx.push(*d).is_err() {
                break;
            }
            sent += 1;
        }
        self.tx_full = sent < self.pending.len();
        if self.tx_full {
            self.tx_ring_full += 1;
        }
        // The link polls (it never sleeps in the kernel): nobody to wake.
        self.pending.drain(..sent);
    }

    #[inline]
    fn complete(&mut self) {
        while let Ok(d) = self.completion.pop() {
            self.free.push(d.frame);
        }
    }

    #[inline]
    fn fill(&mut self) {
        while self.free.len() > self.keep {
            let Some(index) = self.free.pop() else {
                break;
            };
            if self
                .fill
                .push(Desc {
                    frame: index,
                    len: 0,
                })
                .is_err()
            {
                self.free.push(index);
                break;
            }
        }
    }

    fn busy_poll(&mut self) {}

    fn tx_backlog(&self) -> u32 {
        self.pending.len() as u32
    }

    fn tx_device_full(&self) -> bool {
        self.tx_full
    }

    fn tx_no_buffer(&self) -> u64 {
        self.no_buffer
    }

    fn counters(&self) -> DeviceCounters {
        DeviceCounters {
            tx_ring_full: self.tx_ring_full,
            ..DeviceCounters::default()
        }
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.wake.eventfd.as_raw_fd())
    }

    fn prepare_to_sleep(&mut self) -> bool {
        self.wake.asleep.store(true, Ordering::SeqCst);
        // Pairs with the link's fence between handing over frames and reading
        // `asleep`: either the link sees the flag and signals, or this sees its frames.
        fence(Ordering::SeqCst);
        if !self.rx.is_empty() || !self.completion.is_empty() {
            self.wake.asleep.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn woke(&mut self) {
        self.wake.asleep.store(false, Ordering::Relaxed);
        self.wake.drain();
    }
}

/// The far side of a worker's in-memory device: what a load generator or a test holds
/// to put frames on the worker's "wire" and take the frames it sends. `Send`, so it can
/// live on another core; not `Sync`: one thread drives it.
pub struct MemoryLink {
    umem: Arc<Umem>,
    wake: Arc<Wake>,
    rx: Producer<Desc>,
    tx: Consumer<Desc>,
    fill: Consumer<Desc>,
    completion: Producer<Desc>,
    free: Vec<u32>,
    keep: usize,
}

impl std::fmt::Debug for MemoryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLink")
            .field("frames", &self.umem.frames)
            .field("free", &self.free.len())
            .finish()
    }
}

impl MemoryLink {
    /// Builds one frame for the worker to receive: `build` writes it into a free frame
    /// and returns its length (0 to give the frame back). False when no frame is free or
    /// the worker's receive ring is full; nothing is lost then, the caller tries later.
    /// The worker sees the frame once [`MemoryLink::flush`] is called.
    #[inline]
    pub fn send_with(&mut self, build: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if self.rx.is_full() {
            return false;
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => match self.fill.pop() {
                Ok(d) => d.frame,
                Err(_) => return false,
            },
        };
        // SAFETY: off the free list or the fill ring, the frame is this side's.
        let frame = unsafe { self.umem.frame(index) };
        let len = build(frame).min(FRAME_SIZE);
        if len == 0 {
            self.free.push(index);
            return true;
        }
        let pushed = self.rx.push(Desc {
            frame: index,
            len: len as u32,
        });
        debug_assert!(pushed.is_ok(), "checked for room above; one producer");
        true
    }

    /// Wakes the worker if it went to sleep: call after a batch of
    /// [`MemoryLink::send_with`]. Costs a system call only when the worker sleeps.
    #[inline]
    pub fn flush(&mut self) {
        // Pairs with the worker's fence in `prepare_to_sleep`.
        fence(Ordering::SeqCst);
        if self.wake.asleep.load(Ordering::Relaxed)
            && self.wake.asleep.swap(false, Ordering::SeqCst)
        {
            self.wake.signal();
        }
    }

    /// Hands up to `max` frames the worker sent to `handle`, in order; returns how many.
    #[inline]
    pub fn recv(&mut self, max: usize, mut handle: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Ok(d) = self.tx.pop() else {
                break;
            };
            n += 1;
            // SAFETY: popping the descriptor made the frame this side's.
            let frame = unsafe { self.umem.frame(d.frame) };
            handle(&frame[..(d.len as usize).min(FRAME_SIZE)]);
            if self.free.len() < self.keep {
                self.free.push(d.frame);
            } else if let Err(e) = self.completion.push(Desc {
                frame: d.frame,
                len: 0,
            }) {
                // The completion ring holds every frame, so this cannot happen; keep
                // the frame rather than lose it.
                let rtrb::PushError::Full(d) = e;
                self.free.push(d.frame);
            }
        }
        n
    }

    /// Frames the worker has sent that wait to be read.
    pub fn pending(&self) -> usize {
        self.tx.slots()
    }
}
