//! One AF_XDP socket bound to one queue, with its own UMEM: what a worker owns.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::iface;
use crate::ring::Ring;
use crate::umem::Umem;

/// Kicks per flush at most: enough to drain a full ring 32 frames at a time.
const MAX_KICKS_PER_FLUSH: usize = 256;

/// How the socket moves frames between the driver and the UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy where the driver supports it, copy mode otherwise (veth: copy).
    #[default]
    Auto,
    /// Copy mode only.
    Copy,
    /// Zero-copy only; fails where the driver cannot.
    ZeroCopy,
}

/// Sizes of one socket's UMEM and rings.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// Bytes per frame: 2048 or 4096 (a power of two, as aligned UMEM requires).
    pub frame_size: u32,
    /// Frames in the UMEM; half go to the fill ring, the rest serve TX.
    pub frame_count: u32,
    /// Entries of each of the four rings (a power of two).
    pub ring_size: u32,
    /// Zero-copy or copy mode.
    pub bind_mode: BindMode,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frame_size: 2048,
            frame_count: 8192,
            ring_size: 4096,
            bind_mode: BindMode::Auto,
        }
    }
}

/// What to do with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxAction {
    /// Done with it: the frame returns to the free list.
    Recycle,
    /// Transmit the frame itself, rewritten in place, with this length (an echo or a
    /// reply built over the request, with no copy).
    Transmit(u32),
}

/// How a flush ended, for the caller's retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlushEnd {
    /// The kernel took what it was given (or, in zero-copy mode, was woken to).
    Sent,
    /// A kick moved no frame: the device's queue stopped (its ring full), or the
    /// completion ring full. Clears as the device drains.
    DeviceFull,
    /// The kernel refused a kick (EBUSY/ENOBUFS).
    Refused,
}

/// Counters kept by the socket itself (ours, not the kernel's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames taken from the RX ring.
    pub rx_packets: u64,
    /// Non-empty RX batches.
    pub rx_batches: u64,
    /// Frames handed to the TX ring.
    pub tx_packets: u64,
    /// sendto() kicks to make the kernel transmit.
    pub tx_kicks: u64,
    /// Kicks the kernel answered with EBUSY/ENOBUFS (the next flush tries again). In
    /// copy mode EBUSY also means the device dropped a frame (a veth with no qdisc does
    /// when its peer's ring is full).
    pub tx_kick_busy: u64,
    /// Copy-mode kicks that sent nothing: the kernel could take no frame (the device's
    /// queue stopped because its ring is full, or the completion ring full); the frames
    /// stay in the TX ring for a later flush, none lost.
    pub tx_kick_stalled: u64,
    /// TX requests refused because every frame was in flight.
    pub tx_no_frame: u64,
    /// TX requests refused because the TX ring was full.
    pub tx_ring_full: u64,
    /// recvfrom() wakeups of the fill ring.
    pub fill_wakeups: u64,
    /// Frames returned by the completion ring.
    pub completions: u64,
}

/// The kernel's counters for the socket (XDP_STATISTICS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for reasons other than the two below.
    pub rx_dropped: u64,
    /// Invalid descriptors in the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors in the TX ring.
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full: the receiver is the limit.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a packet arrived: the receiver is the limit.
    pub rx_fill_ring_empty: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
///
/// Not shared: one worker owns it, so nothing on the packet path takes a lock. Frames
/// move in batches: `recv` drains up to a batch from RX, `transmit_with` fills frames
/// whose descriptors `flush` publishes at once (one kick per batch), `reclaim` collects
/// finished TX frames, `refill` hands free frames to the kernel for RX.
pub struct XskSocket {
    // Field order is drop order: close the socket before unmapping its rings and UMEM.
    fd: OwnedFd,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    completion: Ring<u64>,
    umem: Umem,
    free: Vec<u64>,
    iface: String,
    queue: u32,
    zero_copy: bool,
    /// Preferred busy polling is on (set_busy_poll).
    busy_polling: bool,
    tx_unsubmitted: u32,
    /// How the last flush ended.
    last_flush: FlushEnd,
    stats: XskStats,
    /// Where each poll says how full the RX ring was left, for the steering program's
    /// SYN drop (see [`crate::RingLevel`]); None without one.
    ring_level: Option<crate::RingLevel>,
}

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, value: &T, op: &'static str) -> Result<()> {
    // SAFETY: value points at a live T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Error::last_os(op));
    }
    Ok(())
}

impl XskSocket {
    /// Creates a socket with its UMEM and binds it to `queue` of `iface`.
    ///
    /// Register it with [`crate::XdpProgram::register_socket`] to receive steered packets.
    pub fn bind(iface: &str, queue: u32, config: &XskConfig) -> Result<XskSocket> {
        let ifindex = iface::ifindex(iface)?;
        let queues = iface::rx_queue_count(iface)?;
        if queue >= queues {
            return Err(Error::NoSuchQueue {
                iface: iface.to_string(),
                queue,
                available: queues,
            });
        }
        validate(config)?;
        crate::program::raise_memlock_limit();

        // SAFETY: plain socket(2), owned right away.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::last_os("creating an AF_XDP socket"));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem = Umem::new(config.frame_size, config.frame_count)?;

        let reg = libc::xdp_umem_reg {
            addr: umem.addr(),
            len: umem.len() as u64,
            chunk_size: config.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd.as_fd(), libc::XDP_UMEM_REG, &reg, "registering the UMEM")?;
        let size = config.ring_size;
        setsockopt(
            fd.as_fd(),
            libc::XDP_UMEM_FILL_RING,
            &size,
            "sizing the fill ring",
        )?;
        setsockopt(
            fd.as_fd(),
            libc::XDP_UMEM_COMPLETION_RING,
            &size,
            "sizing the completion ring",
        )?;
        setsockopt(fd.as_fd(), libc::XDP_RX_RING, &size, "sizing the RX ring")?;
        setsockopt(fd.as_fd(), libc::XDP_TX_RING, &size, "sizing the TX ring")?;

        // SAFETY: an all-zero xdp_mmap_offsets is valid; the kernel fills it in.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: off and optlen are valid out-pointers of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut optlen,
            )
        };
        if rc < 0 {
            return Err(Error::last_os("reading the ring offsets"));
        }
        let rx = Ring::map(fd.as_fd(), &off.rx, size, libc::XDP_PGOFF_RX_RING)?;
        let tx = Ring::map(fd.as_fd(), &off.tx, size, libc::XDP_PGOFF_TX_RING)?;
        let fill = Ring::map(
            fd.as_fd(),
            &off.fr,
            size,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
        )?;
        let completion = Ring::map(
            fd.as_fd(),
            &off.cr,
            size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        )?;

        let mode_flag = match config.bind_mode {
            // Neither flag: the kernel tries zero-copy and falls back to copy by itself.
            BindMode::Auto => 0,
            BindMode::Copy => libc::XDP_COPY,
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
        };
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode_flag | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: addr is a valid sockaddr_xdp of the stated size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EBUSY) => Error::QueueBusy {
                    iface: iface.to_string(),
                    queue,
                },
                Some(libc::EINVAL) if queue >= queues => Error::NoSuchQueue {
                    iface: iface.to_string(),
                    queue,
                    available: queues,
                },
                Some(libc::EOPNOTSUPP) if config.bind_mode == BindMode::ZeroCopy => {
                    Error::InvalidConfig(format!("{iface} does not support zero-copy AF_XDP"))
                }
                _ => Error::os("binding the AF_XDP socket", err),
            });
        }

        let mut opts = libc::xdp_options { flags: 0 };
        let mut optlen = size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: valid out-pointers of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&mut opts as *mut libc::xdp_options).cast(),
                &mut optlen,
            )
        };
        let zero_copy = rc == 0 && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;

        let free = (0..config.frame_count)
            .map(|i| i as u64 * config.frame_size as u64)
            .rev()
            .collect();
        let mut socket = XskSocket {
            fd,
            rx,
            tx,
            fill,
            completion,
            umem,
            free,
            iface: iface.to_string(),
            queue,
            zero_copy,
            busy_polling: false,
            tx_unsubmitted: 0,
            last_flush: FlushEnd::Sent,
            stats: XskStats::default(),
            ring_level: None,
        };
        socket.refill();
        Ok(socket)
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The interface this socket is bound to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Whether the driver gave us zero-copy (false on veth).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Bytes per frame: the largest frame `transmit_with` can build.
    pub fn frame_size(&self) -> u32 {
        self.umem.frame_size()
    }

    /// Reports how full the RX ring is left at each receive to `level`, which the
    /// steering program reads (see [`crate::RingLevel`]).
    pub fn set_ring_level(&mut self, level: crate::RingLevel) {
        self.ring_level = Some(level);
    }

    /// Descriptors the RX ring holds.
    pub fn rx_ring_size(&self) -> u32 {
        self.rx.size()
    }

    /// Frames on the free list right now (neither with the kernel nor in flight).
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Receives up to `max` frames, handing each to `handle`, and returns how many.
    ///
    /// Frames the handler transmits go onto the TX ring; call [`XskSocket::flush`] once
    /// the batch is done.
    #[inline]
    pub fn recv<F: FnMut(&mut [u8]) -> RxAction>(&mut self, max: u32, mut handle: F) -> u32 {
        // With a ring level to keep, the program's count first, then the ring's fill
        // read afresh: frames steered between the two count as left, which errs
        // towards a fuller ring.
        let available = match &self.ring_level {
            Some(level) => {
                let steered = level.steered();
                let fill = self.rx.fill();
                level.publish(steered, u64::from(fill.saturating_sub(max)));
                fill
            }
            None => self.rx.available(),
        };
        let n = available.min(max);
        if n == 0 {
            return 0;
        }
        for i in 0..n {
            let desc = self.rx.get(i);
            let frame = self.umem.slice_mut(desc.addr, desc.len);
            match handle(frame) {
                RxAction::Recycle => self.free.push(self.umem.frame_base(desc.addr)),
                RxAction::Transmit(len) => {
                    let room =
                        self.umem.frame_base(desc.addr) + self.umem.frame_size() as u64 - desc.addr;
                    if len as u64 > room || len == 0 || self.tx.free(1) == 0 {
                        self.stats.tx_ring_full += (len != 0 && len as u64 <= room) as u64;
                        self.free.push(self.umem.frame_base(desc.addr));
                    } else {
                        self.tx.push(libc::xdp_desc {
                            addr: desc.addr,
                            len,
                            options: 0,
                        });
                        self.tx_unsubmitted += 1;
                    }
                }
            }
        }
        self.rx.release(n);
        self.stats.rx_packets += n as u64;
        self.stats.rx_batches += 1;
        n
    }

    /// Builds one frame for transmission: `build` writes into a whole free frame and
    /// returns the frame's length (0 to cancel). Returns false when no frame or TX slot
    /// is free; nothing is sent until [`XskSocket::flush`].
    #[inline]
    pub fn transmit_with<F: FnOnce(&mut [u8]) -> usize>(&mut self, build: F) -> bool {
        if self.tx.free(1) == 0 {
            self.stats.tx_ring_full += 1;
            return false;
        }
        let Some(addr) = self.free.pop() else {
            self.stats.tx_no_frame += 1;
            return false;
        };
        let frame_size = self.umem.frame_size();
        let len = build(self.umem.slice_mut(addr, frame_size)).min(frame_size as usize);
        if len == 0 {
            self.free.push(addr);
            return true;
        }
        self.tx.push(libc::xdp_desc {
            addr,
            len: len as u32,
            options: 0,
        });
        self.tx_unsubmitted += 1;
        true
    }

    /// Publishes the frames queued since the last flush and kicks the kernel to send
    /// them: copy mode always needs the kick, zero-copy only when the ring asks for it.
    pub fn flush(&mut self) -> Result<()> {
        if self.tx_unsubmitted > 0 {
            self.tx.submit();
            self.stats.tx_packets += self.tx_unsubmitted as u64;
            self.tx_unsubmitted = 0;
        }
        self.last_flush = FlushEnd::Sent;
        // Zero-copy drivers send by themselves unless they ask to be woken.
        if self.tx.outstanding() == 0 || (self.zero_copy && !self.tx.needs_wakeup()) {
            return Ok(());
        }
        if self.zero_copy {
            // The kick only wakes the driver, which takes the frames later.
            self.kick()?;
            return Ok(());
        }
        // Copy mode sends at most 32 frames per kick (the kernel's TX_BATCH_SIZE) and
        // answers EAGAIN when more are left: kick until the ring is drained, or the kernel
        // is out of buffers. Frames left behind would wait for the next frame we queue,
        // and a connection waiting for the ACK of those very frames queues none.
        // A kick that moves nothing (EAGAIN) found the kernel unable to take a frame: the
        // device's queue stopped (its ring is full; veth with a qdisc and NAPI on its peer
        // says so, Linux 6.16+, instead of dropping), or the completion ring or the send
        // budget full. Kicking on would only spin until that drains, so the frames wait
        // in the ring, and `tx_device_full` tells the caller to flush again soon.
        for _ in 0..MAX_KICKS_PER_FLUSH {
            let before = self.tx.outstanding();
            if !self.kick()? {
                self.last_flush = FlushEnd::Refused;
                break;
            }
            let left = self.tx.outstanding();
            if left == 0 {
                break;
            }
            if left == before {
                self.stats.tx_kick_stalled += 1;
                self.last_flush = FlushEnd::DeviceFull;
                break;
            }
        }
        Ok(())
    }

    /// Frames the last flush left in the TX ring because the kernel could take none
    /// (EAGAIN with nothing moved) or refused the kick (EBUSY/ENOBUFS); 0 otherwise, and
    /// always in zero-copy mode, whose driver takes them by itself. The caller should
    /// flush again soon rather than wait for new work, or they wait for the next frame
    /// it sends: at once after a stall ([`XskSocket::tx_device_full`]), but not after a
    /// refusal, which on a device that drops when full would lose more frames if
    /// repeated at once.
    pub fn tx_backlog(&self) -> u32 {
        match self.last_flush {
            FlushEnd::Sent => 0,
            FlushEnd::DeviceFull | FlushEnd::Refused => self.tx.outstanding(),
        }
    }

    /// TX requests refused so far because every frame was in flight
    /// ([`XskStats::tx_no_frame`], without copying the rest).
    pub fn tx_no_frame(&self) -> u64 {
        self.stats.tx_no_frame
    }

    /// Whether the last flush stopped because the device took no frame (its queue
    /// stopped), which clears as the device drains.
    pub fn tx_device_full(&self) -> bool {
        self.last_flush == FlushEnd::DeviceFull
    }

    /// One TX kick. Returns whether kicking again may make progress (false when the
    /// kernel is short of buffers or busy with another sender).
    fn kick(&mut self) -> Result<bool> {
        self.stats.tx_kicks += 1;
        // SAFETY: a zero-length sendto with no buffers is the documented TX kick.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // More frames than one call sends: call again.
                Some(libc::EAGAIN) | Some(libc::EINTR) => return Ok(true),
                // The kernel is busy or short of buffers: the next flush tries again.
                Some(libc::EBUSY) | Some(libc::ENOBUFS) => {
                    self.stats.tx_kick_busy += 1;
                    return Ok(false);
                }
                _ => return Err(Error::os("kicking AF_XDP TX", err)),
            }
        }
        Ok(true)
    }

    /// Takes finished TX frames back from the completion ring; returns how many.
    #[inline]
    pub fn reclaim(&mut self) -> u32 {
        let n = self.completion.available();
        for i in 0..n {
            let addr = self.completion.get(i);
            self.free.push(self.umem.frame_base(addr));
        }
        if n > 0 {
            self.completion.release(n);
            self.stats.completions += n as u64;
        }
        n
    }

    /// Moves free frames to the fill ring, keeping the rest of the UMEM for TX, and wakes
    /// the kernel if it waits for them. Returns how many frames were given.
    #[inline]
    pub fn refill(&mut self) -> u32 {
        // The fill ring holds at most half the UMEM, so TX always has the other half.
        let rx_share = self.umem.frame_count() / 2;
        let with_kernel = self.fill.outstanding() + self.rx.available();
        let want = rx_share.saturating_sub(with_kernel);
        let n = self.fill.free(want).min(want).min(self.free.len() as u32);
        if n > 0 {
            for _ in 0..n {
                let addr = self.free.pop().expect("checked free.len()");
                self.fill.push(addr);
            }
            self.fill.submit();
        }
        if self.fill.needs_wakeup() {
            self.wake_rx();
        }
        n
    }

    fn wake_rx(&mut self) {
        self.stats.fill_wakeups += 1;
        // SAFETY: a zero-length non-blocking recvfrom is the documented fill-ring wakeup.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Asks the kernel for preferred busy polling (Linux 5.11+): the device's NAPI
    /// for this queue then runs from this socket's own recvfrom/sendto calls on the
    /// caller's core, for up to `usecs` and `budget` frames per call, instead of in a
    /// softirq or NAPI thread elsewhere. Pair it with the device's
    /// `napi_defer_hard_irqs` and `gro_flush_timeout` (deploy/nic-setup.sh) and call
    /// [`XskSocket::busy_poll`] every round of the loop.
    pub fn set_busy_poll(&mut self, usecs: u32, budget: u16) -> Result<()> {
        // Constants from include/uapi/asm-generic/socket.h (not all in the libc crate).
        const SO_BUSY_POLL: libc::c_int = 46;
        const SO_PREFER_BUSY_POLL: libc::c_int = 69;
        const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
        for (name, value, what) in [
            (SO_PREFER_BUSY_POLL, 1i32, "SO_PREFER_BUSY_POLL"),
            (
                SO_BUSY_POLL,
                usecs.min(i32::MAX as u32) as i32,
                "SO_BUSY_POLL",
            ),
            (
                SO_BUSY_POLL_BUDGET,
                i32::from(budget),
                "SO_BUSY_POLL_BUDGET",
            ),
        ] {
            // SAFETY: an int option on our own socket.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    name,
                    (&value as *const i32).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(Error::os(what, io::Error::last_os_error()));
            }
        }
        self.busy_polling = true;
        Ok(())
    }

    /// With busy polling on, runs the device's NAPI for this queue now (a non-blocking
    /// recvfrom); otherwise nothing.
    #[inline]
    pub fn busy_poll(&mut self) {
        if self.busy_polling {
            self.wake_rx();
        }
    }

    /// Blocks until frames arrive or `timeout_ms` passes (the idle half of the worker's
    /// busy-poll-then-block policy). Returns whether the socket became readable.
    pub fn wait_readable(&mut self, timeout_ms: i32) -> Result<bool> {
        if self.rx.available() > 0 {
            return Ok(true);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(Error::os("poll on the AF_XDP socket", err));
        }
        Ok(rc > 0)
    }

    /// Our own counters.
    pub fn stats(&self) -> XskStats {
        self.stats
    }

    /// The kernel's counters for this socket.
    pub fn kernel_stats(&self) -> Result<KernelStats> {
        // SAFETY: all-zero is a valid xdp_statistics; the kernel fills it.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: valid out-pointers of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut s as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(Error::last_os("reading XDP_STATISTICS"));
        }
        // Kernels before 5.9 fill only the first three counters: the ring counters
        // would read as zeros, which is not the same as nothing dropped.
        if (len as usize) < size_of::<libc::xdp_statistics>() {
            return Err(Error::os(
                "reading XDP_STATISTICS",
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "no ring counters before Linux 5.9",
                ),
            ));
        }
        Ok(KernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn validate(c: &XskConfig) -> Result<()> {
    if !(c.frame_size == 2048 || c.frame_size == 4096) {
        return Err(Error::InvalidConfig(format!(
            "frame size {} (2048 or 4096)",
            c.frame_size
        )));
    }
    if !c.ring_size.is_power_of_two() || c.ring_size < 64 {
        return Err(Error::InvalidConfig(format!(
            "ring size {} (a power of two, at least 64)",
            c.ring_size
        )));
    }
    if c.frame_count < 2 * c.ring_size.min(c.frame_count) || c.frame_count < 128 {
        return Err(Error::InvalidConfig(format!(
            "{} frames for rings of {} (need at least 128)",
            c.frame_count, c.ring_size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_refused_before_any_syscall() {
        let mut c = XskConfig {
            frame_size: 1000,
            ..Default::default()
        };
        assert!(matches!(validate(&c), Err(Error::InvalidConfig(_))));
        c.frame_size = 2048;
        c.ring_size = 1000;
        assert!(matches!(validate(&c), Err(Error::InvalidConfig(_))));
        c.ring_size = 4096;
        c.frame_count = 64;
        assert!(matches!(validate(&c), Err(Error::InvalidConfig(_))));
        assert!(validate(&XskConfig::default()).is_ok());
    }

    #[test]
    fn missing_interface_is_reported_as_such() {
        let err = XskSocket::bind("sluice-nope1", 0, &XskConfig::default())
            .err()
            .unwrap();
        assert!(matches!(err, Error::NoSuchInterface(_)), "{err}");
    }
}
