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
//!
//! By default the link is lossless: a frame that finds the worker's receive ring full
//! stays with the caller, which tries again (what a cost measurement wants). A `lossy`
//! device plays what stands in front of an AF_XDP socket instead (for overload
//! measurements): the steering program's admission of new connections (SYNs past the
//! budget the worker sets are shed, by the same algorithm) and the kernel's drop of a
//! frame that finds the ring full, both counted. That work runs on the link's core,
//! as a NIC's receive work runs on the core its interrupt is bound to.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtrb::{Consumer, Producer, RingBuffer};
use xsk::RxAction;

use super::device::{Device, DeviceCounters};
use crate::stats::SocketDrops;

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

/// What a lossy link does in front of the worker's receive ring, as the steering
/// program and the kernel do for an AF_XDP socket; the worker sets the budget, the link
/// applies it and counts.
#[derive(Debug, Default)]
pub(crate) struct Steering {
    /// The admission budget, as [`xsk::SynBudget::gcra`] encodes it (0: every SYN).
    interval_ns: AtomicU64,
    tolerance_ns: AtomicU64,
    /// SYNs past the budget, dropped.
    shed: AtomicU64,
    /// Frames dropped for a full receive ring.
    ring_full: AtomicU64,
    /// The program's `ring_levels` entry (see [`xsk::RingLevel`]): frames steered to
    /// the ring, the worker's base at its last poll, and the fill past which SYNs are
    /// dropped (0: never).
    steered: AtomicU64,
    base: AtomicU64,
    limit: AtomicU64,
    /// SYNs dropped for the ring's fill.
    shed_ring: AtomicU64,
}

impl Steering {
    /// Sets the fill (frames) past which SYNs are dropped; 0 never drops them.
    pub(crate) fn set_ring_limit(&self, frames: u64) {
        self.limit.store(frames, Ordering::Relaxed);
    }

    /// Whether a SYN arriving now finds the ring filling past the limit, as far as the
    /// steering program can tell: what it steered less the base the worker last set.
    fn ring_filling(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != 0
            && self
                .steered
                .load(Ordering::Relaxed)
                .wrapping_sub(self.base.load(Ordering::Relaxed))
                > limit
    }

    /// Sets the budget the link admits new connections within (None: every SYN).
    pub(crate) fn set_budget(&self, budget: Option<xsk::SynBudget>) {
        let (interval, tolerance) = xsk::SynBudget::gcra(budget);
        // Two stores, not one: a SYN judged between them by half an old budget is
        // judged by a budget that is being replaced anyway.
        self.tolerance_ns.store(tolerance, Ordering::Relaxed);
        self.interval_ns.store(interval, Ordering::Relaxed);
    }
}

/// How the in-memory device is sized, and whether it loses frames as a NIC does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryDeviceConfig {
    /// Frames in the shared region (half start with each side).
    pub frames: u32,
    /// Descriptors each ring holds.
    pub ring: u32,
    /// A frame that finds the worker's receive ring full is dropped and counted, and
    /// SYNs past the worker's admission budget are shed (see the module's comment);
    /// otherwise the link keeps the frame and the caller tries again.
    pub lossy: bool,
}

impl Default for MemoryDeviceConfig {
    /// 4096 frames (8 MiB) and rings of 2048, as an AF_XDP socket's defaults; lossless.
    fn default() -> Self {
        MemoryDeviceConfig {
            frames: 4096,
            ring: 2048,
            lossy: false,
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
    let steering = Arc::new(Steering::default());
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
        steering: steering.clone(),
        lossy: config.lossy,
    };
    let link = MemoryLink {
        umem,
        wake,
        steering,
        lossy: config.lossy,
        epoch: Instant::now(),
        tat_ns: 0,
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
    /// Where the worker's admission budget goes, and a lossy link's counts.
    steering: Arc<Steering>,
    lossy: bool,
}

impl MemoryDevice {
    /// Where the worker's admission budget goes: the link applies it when lossy.
    pub(crate) fn steering(&self) -> Arc<Steering> {
        self.steering.clone()
    }
}

impl Device for MemoryDevice {
    #[inline]
    fn recv<F: FnMut(&mut [u8]) -> RxAction>(&mut self, max: u32, mut handle: F) -> u32 {
        if self.lossy {
            // What the worker tells the steering program at each poll (see
            // `xsk::XskSocket::recv`): the count first, then the ring.
            let steered = self.steering.steered.load(Ordering::Relaxed);
            let left = self.rx.slots().saturating_sub(max as usize) as u64;
            self.steering
                .base
                .store(steered.wrapping_sub(left), Ordering::Relaxed);
        }
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
            drops: self.lossy.then(|| SocketDrops {
                rx_ring_full: self.steering.ring_full.load(Ordering::Relaxed),
                ..SocketDrops::default()
            }),
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
    steering: Arc<Steering>,
    lossy: bool,
    /// The admission's clock, and its one state: the theoretical arrival time of the
    /// next SYN, as the steering program keeps it per queue.
    epoch: Instant,
    tat_ns: u64,
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
    /// and returns its length (0 to give the frame back). False when no frame is free,
    /// or, lossless, when the worker's receive ring is full: nothing is lost then, the
    /// caller tries later. Lossy, a frame the ring has no room for, or a SYN past the
    /// admission budget, is dropped and counted, and the call says true: it went on
    /// the wire. The worker sees the frame once [`MemoryLink::flush`] is called.
    #[inline]
    pub fn send_with(&mut self, build: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if !self.lossy && self.rx.is_full() {
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
        if self.lossy {
            // The steering program's order: a SYN is judged by the ring's fill, then by
            // the budget (a SYN it admits takes its share even if the ring then has no
            // room); every frame let through counts as steered, then the ring may be
            // full.
            if is_syn(&frame[..len]) {
                let dropped = if self.steering.ring_filling() {
                    Some(&self.steering.shed_ring)
                } else if !self.admit_syn() {
                    Some(&self.steering.shed)
                } else {
                    None
                };
                if let Some(counter) = dropped {
                    counter.fetch_add(1, Ordering::Relaxed);
                    self.free.push(index);
                    return true;
                }
            }
            // Steered (the program counts it), then perhaps dropped by the kernel.
            self.steering.steered.fetch_add(1, Ordering::Relaxed);
            if self.rx.is_full() {
                self.steering.ring_full.fetch_add(1, Ordering::Relaxed);
                self.free.push(index);
                return true;
            }
        }
        let pushed = self.rx.push(Desc {
            frame: index,
            len: len as u32,
        });
        debug_assert!(pushed.is_ok(), "checked for room above; one producer");
        true
    }

    /// Whether a SYN arriving now is within the worker's budget, and takes its share:
    /// the steering program's `admit_syn` (ebpf/sluice_xdp.c).
    fn admit_syn(&mut self) -> bool {
        let interval = self.steering.interval_ns.load(Ordering::Relaxed);
        if interval == 0 {
            return true;
        }
        let tolerance = self.steering.tolerance_ns.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_nanos() as u64;
        let next = self.tat_ns.max(now);
        if next - now > tolerance {
            return false;
        }
        self.tat_ns = next + interval;
        true
    }

    /// SYNs a lossy link shed for the worker's admission budget, so far.
    pub fn shed(&self) -> u64 {
        self.steering.shed.load(Ordering::Relaxed)
    }

    /// SYNs a lossy link dropped for the worker's ring filling past its limit, so far.
    pub fn shed_ring(&self) -> u64 {
        self.steering.shed_ring.load(Ordering::Relaxed)
    }

    /// Frames a lossy link dropped for the worker's full receive ring, so far.
    pub fn ring_full_drops(&self) -> u64 {
        self.steering.ring_full.load(Ordering::Relaxed)
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

/// Whether `frame` is a connection's first SYN (SYN without ACK) over IPv4: what the
/// steering program's admission judges. Anything it cannot read is not one.
fn is_syn(frame: &[u8]) -> bool {
    const ETHERNET: usize = 14;
    if frame.len() < ETHERNET + 20 || frame[12..14] != [0x08, 0x00] || frame[ETHERNET + 9] != 6 {
        return false;
    }
    let ihl = usize::from(frame[ETHERNET] & 0x0f) * 4;
    let flags = ETHERNET + ihl + 13;
    // SYN set, ACK (0x10) not; a fragment is never a SYN the program would judge.
    let fragment = frame[ETHERNET + 6] & 0x3f != 0 || frame[ETHERNET + 7] != 0;
    frame.len() > flags && frame[flags] & 0x12 == 0x02 && !fragment
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP header with `flags`, checksums left at zero (the link
    /// does not look at them).
    fn segment(flags: u8, buf: &mut [u8]) -> usize {
        buf[..54].fill(0);
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        buf[14] = 0x45;
        buf[23] = 6;
        buf[14 + 20 + 12] = 0x50;
        buf[14 + 20 + 13] = flags;
        54
    }

    fn config(lossy: bool) -> MemoryDeviceConfig {
        MemoryDeviceConfig {
            frames: 64,
            ring: 4,
            lossy,
        }
    }

    #[test]
    fn a_lossless_link_keeps_what_the_full_ring_refuses() {
        let (mut dev, mut link) = pair(config(false)).unwrap();
        let sent = (0..6)
            .filter(|_| link.send_with(|b| segment(0x10, b)))
            .count();
        assert_eq!((sent, link.ring_full_drops()), (4, 0));
        assert_eq!(dev.recv(16, |_| RxAction::Recycle), 4);
        assert!(dev.counters().drops.is_none());
    }

    #[test]
    fn a_lossy_link_drops_and_counts_what_the_full_ring_refuses() {
        let (mut dev, mut link) = pair(config(true)).unwrap();
        assert!((0..6).all(|_| link.send_with(|b| segment(0x10, b))));
        assert_eq!(link.ring_full_drops(), 2);
        assert_eq!(dev.recv(16, |_| RxAction::Recycle), 4);
        assert_eq!(dev.counters().drops.map(|d| d.rx_ring_full), Some(2));
    }

    #[test]
    fn a_lossy_link_sheds_syns_past_the_budget_and_nothing_else() {
        let (mut dev, mut link) = pair(config(true)).unwrap();
        // One SYN an hour, with a burst of one: two pass, then none.
        dev.steering().set_budget(Some(xsk::SynBudget {
            per_second: 1.0 / 3600.0,
            burst: 1,
        }));
        for _ in 0..3 {
            link.send_with(|b| segment(0x02, b));
        }
        // A SYN-ACK (a reply to an active open) and a plain ACK are not judged.
        link.send_with(|b| segment(0x12, b));
        link.send_with(|b| segment(0x10, b));
        assert_eq!((link.shed(), link.ring_full_drops()), (1, 0));
        assert_eq!(dev.recv(16, |_| RxAction::Recycle), 4);
        dev.steering().set_budget(None);
        link.send_with(|b| segment(0x02, b));
        assert_eq!(link.shed(), 1);
    }

    #[test]
    fn a_lossy_link_sheds_syns_while_the_ring_fills_past_its_limit() {
        let (mut dev, mut link) = pair(MemoryDeviceConfig {
            frames: 64,
            ring: 8,
            lossy: true,
        })
        .unwrap();
        dev.steering().set_ring_limit(2);
        // Three frames steered and not yet taken: past the limit of two, a SYN is
        // dropped, an ACK is not.
        for _ in 0..3 {
            link.send_with(|b| segment(0x10, b));
        }
        link.send_with(|b| segment(0x02, b));
        link.send_with(|b| segment(0x10, b));
        assert_eq!((link.shed_ring(), link.shed()), (1, 0));
        // The worker takes them: its poll says the ring is empty, and SYNs pass again.
        assert_eq!(dev.recv(16, |_| RxAction::Recycle), 4);
        assert_eq!(dev.recv(16, |_| RxAction::Recycle), 0);
        link.send_with(|b| segment(0x02, b));
        assert_eq!(link.shed_ring(), 1);
        assert_eq!(dev.recv(16, |_| RxAction::Recycle), 1);
        // Without a limit, never.
        dev.steering().set_ring_limit(0);
        for _ in 0..6 {
            link.send_with(|b| segment(0x02, b));
        }
        assert_eq!(link.shed_ring(), 1);
    }
}
