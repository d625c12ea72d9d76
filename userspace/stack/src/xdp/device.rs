//! The device seam: what the worker's packet loop needs of the thing its frames come
//! from and go to. An AF_XDP socket bound to a NIC queue is one ([`XskSocket`]); an
//! in-memory device that a benchmark feeds from another core is another. The methods
//! are AF_XDP's four rings: received frames come in batches (RX) and their buffers go
//! back to the device to receive into (fill); frames are built in place in free buffers
//! (TX), pushed to the device in one go (kick), and their buffers taken back once sent
//! (completion).
//!
//! The loop is generic over the device, so these calls are direct (and inlined) on the
//! packet path, not calls through a vtable.

use std::os::fd::{AsRawFd, RawFd};

use xsk::{RxAction, XskSocket};

use crate::stats::SocketDrops;

/// A device's own counters, as `sluice stats` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeviceCounters {
    /// Frames that found the TX ring full.
    pub tx_ring_full: u64,
    /// Kicks the device could take no frame from (its queue stopped).
    pub tx_device_full: u64,
    /// Kicks the device refused (busy, or short of buffers).
    pub tx_kick_refused: u64,
    /// What the device dropped before the worker saw it, when it says.
    pub drops: Option<SocketDrops>,
}

/// Frames in and out of one worker; see the module's comment.
pub(crate) trait Device {
    /// Hands up to `max` received frames to `handle` in turn; each frame's buffer is
    /// recycled or, rewritten in place, transmitted, as `handle` says. Returns how many
    /// frames were taken.
    fn recv<F: FnMut(&mut [u8]) -> RxAction>(&mut self, max: u32, handle: F) -> u32;

    /// Builds one frame in a free buffer: `build` writes it and returns its length (0
    /// to give the buffer back). False when no buffer or TX slot is free. Nothing
    /// leaves before [`Device::kick`].
    fn transmit_with<F: FnOnce(&mut [u8]) -> usize>(&mut self, build: F) -> bool;

    /// Pushes the frames built since the last kick to the device: one kick a batch.
    /// A device that takes none now keeps them for the next kick
    /// ([`Device::tx_backlog`]).
    fn kick(&mut self);

    /// Takes back the buffers of frames the device has sent (completion).
    fn complete(&mut self);

    /// Gives the device free buffers to receive into (fill).
    fn fill(&mut self);

    /// Lets the device's driver run from this thread, when it was set up for that.
    fn busy_poll(&mut self);

    /// Frames the last kick left waiting because the device took none (0 when it took
    /// them all).
    fn tx_backlog(&self) -> u32;

    /// Whether the last kick stopped because the device was full (it drains by itself,
    /// so kicking again soon makes progress), rather than because it refused.
    fn tx_device_full(&self) -> bool;

    /// How many frames, ever, could not be built for want of a free buffer.
    fn tx_no_buffer(&self) -> u64;

    /// The device's counters.
    fn counters(&self) -> DeviceCounters;

    /// A descriptor that becomes readable when frames arrive, for the loop to sleep on
    /// when idle; `None` for a device the loop can only poll.
    fn readiness_fd(&self) -> Option<RawFd>;

    /// The loop is about to sleep on [`Device::readiness_fd`]: a device whose far side
    /// signals the descriptor only when asked to arms that here, and returns false if
    /// frames arrived meanwhile (then the loop runs another round instead).
    fn prepare_to_sleep(&mut self) -> bool {
        true
    }

    /// The loop's sleep ended (for whatever reason).
    fn woke(&mut self) {}
}

impl Device for XskSocket {
    #[inline]
    fn recv<F: FnMut(&mut [u8]) -> RxAction>(&mut self, max: u32, handle: F) -> u32 {
        XskSocket::recv(self, max, handle)
    }

    #[inline]
    fn transmit_with<F: FnOnce(&mut [u8]) -> usize>(&mut self, build: F) -> bool {
        XskSocket::transmit_with(self, build)
    }

    #[inline]
    fn kick(&mut self) {
        // A refusal is recorded by the socket (tx_backlog, the counters) and retried by
        // the loop; there is nothing else to do with it here.
        let _ = self.flush();
    }

    #[inline]
    fn complete(&mut self) {
        self.reclaim();
    }

    #[inline]
    fn fill(&mut self) {
        self.refill();
    }

    #[inline]
    fn busy_poll(&mut self) {
        XskSocket::busy_poll(self)
    }

    fn tx_backlog(&self) -> u32 {
        XskSocket::tx_backlog(self)
    }

    fn tx_device_full(&self) -> bool {
        XskSocket::tx_device_full(self)
    }

    fn tx_no_buffer(&self) -> u64 {
        self.tx_no_frame()
    }

    fn counters(&self) -> DeviceCounters {
        let own = self.stats();
        DeviceCounters {
            tx_ring_full: own.tx_ring_full,
            tx_device_full: own.tx_kick_stalled,
            tx_kick_refused: own.tx_kick_busy,
            drops: self.kernel_stats().ok().map(|k| SocketDrops {
                rx_ring_full: k.rx_ring_full,
                fill_empty: k.rx_fill_ring_empty,
                // In copy mode an empty fill ring is counted in rx_dropped as well.
                other: k.rx_dropped.saturating_sub(k.rx_fill_ring_empty),
            }),
        }
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}
