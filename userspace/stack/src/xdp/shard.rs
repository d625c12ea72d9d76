//! A worker's shard: its connections, their timers, what they have to send, and one
//! round of the packet loop over a device (`Shard::step`; the loop around it is in
//! `driver.rs`). Everything here runs on the worker's thread; flows reach the shard
//! through an `Rc<RefCell<..>>` borrowed only between awaits, so nothing on the packet
//! path takes a lock.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tcp::Instant;

use tokio::sync::Notify;
use xsk::RxAction;

use super::backlog::{backlog_is_work, next_wait, TxBacklog};
use super::demux::{on_frame, FrameAction, FrameContext};
use super::device::Device;
use super::frames;
use super::handover::Peer;
use super::record::Conn;
use super::sessions::{self, Clock, Outcome, SessionBuffers};
use super::table::{Handle, Table};
use super::timer::TimerWheel;
use crate::listener::Listeners;
use crate::session::{take_woken, Wake};
use crate::stats::WorkerStats;
use tcp::tcb::Event;

/// Frames taken from the RX ring per round.
pub(super) const RX_BATCH: u32 = 64;

/// A worker's shard: its connections, their timers and the lists of what to do next,
/// shared with its flows (which borrow it only between awaits). The device is not in
/// it: only the packet loop touches that, and hands it to the methods that need it.
pub(crate) struct Shard {
    pub(super) mac: [u8; 6],
    pub(super) addrs: Vec<Ipv4Addr>,
    pub(super) listeners: Listeners,
    pub(super) conns: Table<Conn>,
    pub(super) timers: TimerWheel,
    /// Connections with something to transmit.
    pub(super) dirty: Vec<Handle>,
    pub(super) dirty_spare: Vec<Handle>,
    /// The worker clock's zero: [`Shard::now`] counts from it.
    pub(super) epoch: std::time::Instant,
    /// How received frames' checksums are checked (see `xdp::checksum_mode`).
    pub(super) checksums: wire::ChecksumMode,
    pub(super) tcp: super::conn::TcbFactory,
    pub(super) half_open: usize,
    pub(super) max_half_open: usize,
    pub(super) stats: WorkerStats,
    /// Woken when a flow (or another worker) gives the loop work while it sleeps.
    pub(super) loop_wake: Arc<Notify>,
    /// The loop is waiting for readiness, a timer, a command or `loop_wake`. Otherwise
    /// it runs another round anyway, and a flow's wake-up would cost an atomic
    /// read-modify-write (4 % of the worker under pipelined echo) and leave a permit
    /// behind that wakes the next sleep for nothing.
    pub(super) loop_asleep: bool,
    /// Every worker's inbox, this one's included, by worker index.
    pub(super) peers: Arc<[Peer]>,
    /// Frames other workers received for this worker's connections.
    pub(super) inbox: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Next local port to try for an active open.
    pub(super) next_port: u16,
    pub(super) ports: super::ports::PortRange,
    pub(super) index: usize,
    pub(super) workers: usize,
    /// Accepted flows waiting to be handed to their handlers (spawned outside the borrow).
    pub(super) accepted: Vec<(Handle, u16)>,
    /// Active opens whose handshake completed this round: their ACK leaves at once.
    pub(super) handshake_acks: Vec<Handle>,
    /// Scratch lists reused every round, so the loop allocates nothing in steady state.
    pub(super) scratch_handles: Vec<Handle>,
    pub(super) scratch_timers: Vec<u32>,
    /// `SLUICE_DUMP_CONNS_MS`.
    pub(super) dump_period: Option<Duration>,
    pub(super) next_dump: Instant,
    /// Frames waiting in the TX ring for a full device (copy mode), and since when the
    /// device has taken none of them.
    pub(super) tx_backlog: Option<TxBacklog>,
    /// The last round left connections queued for want of a free UMEM frame:
    /// completions free some, and nothing else wakes the loop for them.
    pub(super) tx_starved: bool,
    /// The time of the current round ([`Shard::step`]'s `now`), for what runs inside it.
    pub(super) round_now: Instant,
    /// Scratch space of the synchronous sessions.
    pub(super) session_bufs: SessionBuffers,
    /// The worker's thread, which its sessions' `crate::Wake`s name.
    pub(super) thread: std::thread::ThreadId,
    /// The list woken sessions are moved into each round.
    pub(super) scratch_woken: Vec<Handle>,
}

/// Everything a shard starts from.
pub(crate) struct ShardSetup {
    pub index: usize,
    pub workers: usize,
    pub mac: [u8; 6],
    pub addrs: Vec<Ipv4Addr>,
    pub listeners: Listeners,
    pub tcp: super::conn::TcbFactory,
    pub ports: super::ports::PortRange,
    pub checksums: wire::ChecksumMode,
    pub max_half_open: usize,
    /// The other workers, to hand them frames of their connections.
    pub peers: Arc<[Peer]>,
    /// Frames the other workers hand this one.
    pub inbox: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Shard {
    pub(crate) fn new(setup: ShardSetup) -> Shard {
        let ShardSetup {
            index,
            workers,
            mac,
            addrs,
            listeners,
            tcp,
            ports,
            checksums,
            max_half_open,
            peers,
            inbox,
        } = setup;
        Shard {
            mac,
            addrs,
            listeners,
            conns: Table::new(),
            timers: TimerWheel::new(Instant::ZERO),
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            epoch: std::time::Instant::now(),
            checksums,
            tcp,
            half_open: 0,
            max_half_open,
            stats: WorkerStats::default(),
            loop_wake: peers[index].wake.clone(),
            loop_asleep: false,
            peers,
            inbox,
            next_port: super::connect::first_port(&ports, index),
            ports,
            index,
            workers,
            accepted: Vec::new(),
            handshake_acks: Vec::new(),
            scratch_handles: Vec::new(),
            scratch_timers: Vec::new(),
            dump_period: std::env::var("SLUICE_DUMP_CONNS_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(|ms| Duration::from_millis(ms.max(1))),
            next_dump: Instant::ZERO,
            tx_backlog: None,
            tx_starved: false,
            round_now: Instant::ZERO,
            session_bufs: SessionBuffers::default(),
            thread: std::thread::current().id(),
            scratch_woken: Vec::new(),
        }
    }

    /// The worker's clock: microseconds since the shard started.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    /// Marks a connection as having something to send, and makes sure the loop looks.
    pub(crate) fn mark_dirty(&mut self, h: Handle) {
        if let Some(c) = self.conns.get_mut(h) {
            if !c.queued {
                c.queued = true;
                self.dirty.push(h);
            }
        }
        if self.loop_asleep {
            // One wake-up is enough: the woken loop runs a round, and a second
            // notify_one would leave a permit behind.
            self.loop_asleep = false;
            self.loop_wake.notify_one();
        }
    }

    /// After anything touched a connection: arm its timer, wake its flow, hand it to
    /// its handler, or retire it.
    pub(super) fn after_tcp(&mut self, h: Handle) {
        let Some(c) = self.conns.get_mut(h) else {
            return;
        };
        let mut wake_read = false;
        let mut wake_write = false;
        let mut newly_connected = false;
        c.tcb.events(|e| match e {
            Event::Connected => newly_connected = true,
            Event::Readable | Event::PeerClosed => wake_read = true,
            Event::Writable => wake_write = true,
            Event::Closed(reason) => {
                wake_read = true;
                wake_write = true;
                if reason.is_failure() {
                    c.failed.get_or_insert(reason);
                }
            }
        });
        let clock = Clock {
            now: self.round_now,
            epoch: self.epoch,
        };
        let mut outcome = Outcome::Live;
        if newly_connected && !c.connected {
            c.connected = true;
            if let Some(port) = c.pending_handler.take() {
                self.half_open = self.half_open.saturating_sub(1);
                // A new connection opened: what admission measures the worker by.
                self.stats.handshakes += 1;
                match self.listeners.get(port).and_then(|l| l.session.as_ref()) {
                    // The synchronous form: served from this loop, no task.
                    Some(factory) => {
                        let wake = Wake::worker(self.thread, h);
                        outcome = sessions::start(c, factory, wake, clock);
                    }
                    None => self.accepted.push((h, port)),
                }
            } else {
                self.handshake_acks.push(h);
            }
        }
        let session_more = c.session.as_ref().is_some_and(|s| s.more);
        if c.session.is_some() && (wake_read || wake_write || newly_connected || session_more) {
            outcome = sessions::drive(c, &mut self.session_bufs, clock);
        }
        self.stats.count_session(outcome);
        if wake_read || newly_connected {
            if let Some(w) = c.read_waker.take() {
                w.wake();
            }
            if let Some(w) = c.connect_waker.take() {
                w.wake();
            }
        }
        if wake_write {
            if let Some(w) = c.write_waker.take() {
                w.wake();
            }
        }
        let session_deadline = c.session.as_ref().and_then(|s| s.deadline);
        let deadline = match (c.tcb.deadline(), session_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(deadline) = deadline {
            self.timers.arm(h.index, deadline, &mut c.armed);
        }
        if c.tcb.is_closed() && !c.attached {
            if c.pending_handler.is_some() {
                self.half_open = self.half_open.saturating_sub(1);
            }
            let tuple = c.tuple;
            self.stats.completed += u64::from(c.connected && c.failed.is_none());
            self.stats.add_tcb(c.tcb.stats());
            self.conns.remove(&tuple, h);
        } else if c.tcb.wants_to_send() && !c.queued {
            c.queued = true;
            self.dirty.push(h);
        }
    }

    /// Called when a Flow (or a failed connect) lets go of its connection.
    /// `unread_in_flow`: the flow still held received bytes nobody read.
    pub(crate) fn detach(&mut self, h: Handle, unread_in_flow: bool) {
        let now = self.now();
        if let Some(c) = self.conns.get_mut(h) {
            c.attached = false;
            // Nobody reads or writes it any more: it finishes closing within bounds, the
            // way a process exit closes its sockets, or is reset if what the peer sent
            // will never be read.
            if c.tcb.release(now, unread_in_flow) {
                self.stats.aborted_on_close += 1;
            }
        }
        self.after_tcp(h);
        self.mark_dirty(h);
    }

    /// One receive batch, then what other workers handed over. Returns how many frames
    /// were taken.
    fn receive<D: Device>(&mut self, dev: &mut D, now: Instant) -> u32 {
        // Split the borrow: the device hands frames to a closure that needs the rest.
        let mut touched = std::mem::take(&mut self.scratch_handles);
        touched.clear();
        let Shard {
            conns,
            listeners,
            tcp,
            stats,
            half_open,
            max_half_open,
            mac,
            addrs,
            checksums,
            ports,
            index,
            workers,
            peers,
            inbox,
            ..
        } = self;
        let mut cx = FrameContext {
            conns,
            listeners,
            tcp,
            stats,
            half_open,
            max_half_open: *max_half_open,
            mac: *mac,
            addrs,
            checksums: *checksums,
            ports: *ports,
            index: *index,
            workers: *workers,
            peers,
            touched: &mut touched,
            now,
        };
        let mut n = dev.recv(RX_BATCH, |frame| {
            cx.stats.rx_frames += 1;
            match on_frame(&mut cx, frame) {
                FrameAction::Done => RxAction::Recycle,
                FrameAction::Reply(len) => {
                    cx.stats.tx_frames += 1;
                    RxAction::Transmit(len as u32)
                }
            }
        });
        // A full batch: the ring held at least this much when the round began, so the
        // worker is behind its queue (what admission reads as saturation).
        cx.stats.rx_polls += 1;
        cx.stats.rx_polls_full += u64::from(n == RX_BATCH);
        // Segments of our connections that arrived on another worker's queue.
        while let Ok(mut frame) = inbox.try_recv() {
            n += 1;
            cx.stats.handed_in += 1;
            if let FrameAction::Reply(len) = on_frame(&mut cx, &mut frame) {
                let sent = dev.transmit_with(|buf| {
                    let len = len.min(buf.len());
                    buf[..len].copy_from_slice(&frame[..len]);
                    len
                });
                cx.stats.tx_frames += sent as u64;
            }
        }
        for &h in &touched {
            self.after_tcp(h);
        }
        self.scratch_handles = touched;
        n
    }

    /// Fires due timers. Returns how many connections were touched.
    fn fire_timers(&mut self, now: Instant) -> usize {
        let mut due = std::mem::take(&mut self.scratch_timers);
        due.clear();
        self.timers.expire(now, |index| due.push(index));
        let mut touched = 0;
        for &index in &due {
            let Some(h) = self.conns.handle_at(index) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(h) else {
                continue;
            };
            if !super::timer::fired_is_live(&mut c.armed, now) {
                continue;
            }
            if c.tcb.deadline().is_some_and(|d| d <= now) {
                c.tcb.on_timeout(now);
                touched += 1;
            }
            if c.session
                .as_ref()
                .and_then(|s| s.deadline)
                .is_some_and(|d| d <= now)
            {
                let clock = Clock {
                    now,
                    epoch: self.epoch,
                };
                self.stats.count_session(sessions::expire(c, clock));
                touched += 1;
            }
            // Re-arms at the real deadline (the entry may have been early).
            self.after_tcp(h);
        }
        self.scratch_timers = due;
        touched
    }

    /// Calls `on_deadline` on the sessions woken since the last round (by other
    /// sessions' calls, this worker's: see `crate::Wake`). Returns how many.
    fn call_woken_sessions(&mut self, now: Instant) -> usize {
        let mut woken = std::mem::take(&mut self.scratch_woken);
        if !take_woken(&mut woken) {
            self.scratch_woken = woken;
            return 0;
        }
        let clock = Clock {
            now,
            epoch: self.epoch,
        };
        let mut touched = 0;
        for &h in &woken {
            let Some(c) = self.conns.get_mut(h) else {
                continue;
            };
            let Some(st) = c.session.as_mut() else {
                continue;
            };
            st.deadline = Some(now);
            self.stats.count_session(sessions::expire(c, clock));
            touched += 1;
            self.after_tcp(h);
        }
        self.scratch_woken = woken;
        touched
    }

    /// Transmits what every dirty connection has to send. Returns frames sent.
    fn transmit<D: Device>(&mut self, dev: &mut D, now: Instant) -> u32 {
        let mut sent = 0;
        // Work on the current list while new marks go to the (empty) other one; the two
        // swap every round, so neither is reallocated in steady state.
        let mut dirty = std::mem::take(&mut self.dirty);
        std::mem::swap(&mut self.dirty, &mut self.dirty_spare);
        for &h in &dirty {
            let Some(c) = self.conns.get_mut(h) else {
                continue;
            };
            c.queued = false;
            sent += self.transmit_one(dev, h, now);
        }
        dirty.clear();
        self.dirty_spare = dirty;
        sent
    }

    /// Sends the ACK that completes each handshake of an active open this round, at
    /// once. Data on that ACK is legal (RFC 9293 §3.10.7.3), but servers that keep
    /// little state, Knot DNS's XDP TCP among them, drop it, so the request goes in
    /// its own segment, the way the Linux stack sends it.
    fn transmit_handshake_acks<D: Device>(&mut self, dev: &mut D, now: Instant) -> u32 {
        let mut sent = 0;
        let mut due = std::mem::take(&mut self.handshake_acks);
        for &h in &due {
            sent += self.transmit_one(dev, h, now);
        }
        due.clear();
        self.handshake_acks = due;
        sent
    }

    /// Transmits what one connection has to send. Returns frames sent.
    fn transmit_one<D: Device>(&mut self, dev: &mut D, h: Handle, now: Instant) -> u32 {
        let Shard { conns, .. } = self;
        let Some(c) = conns.get_mut(h) else {
            return 0;
        };
        let path = c.path;
        let mut sent = 0;
        c.tcb.transmit(now, |hdr, payload_len, fill| {
            let ok =
                dev.transmit_with(|buf| frames::emit(buf, &path, hdr, payload_len, |p| fill(p)));
            sent += ok as u32;
            ok
        });
        self.stats.tx_frames += u64::from(sent);
        // Still wanting to send (TX ring full) puts it back on the list.
        self.after_tcp(h);
        sent
    }

    /// One round of the loop without awaiting, at `now` (one clock read per round:
    /// at a few million rounds a second, reading the clock is not free). Returns whether
    /// anything happened.
    pub(super) fn step<D: Device>(&mut self, dev: &mut D, now: Instant) -> bool {
        self.round_now = now;
        dev.complete();
        let starved_before = dev.tx_no_buffer();
        // What the flow tasks wrote since the last round, with the ACKs that round's
        // segments called for riding on it (see the module's comment).
        let sent = self.transmit(dev, now);
        dev.kick();
        dev.busy_poll();
        let got = self.receive(dev, now);
        let fired = self.fire_timers(now) + self.call_woken_sessions(now);
        let sent = sent + self.transmit_handshake_acks(dev, now);
        // Handshake ACKs and in-place replies (RSTs, SYN cookies) leave now, not a round
        // later (no system call when there are none).
        dev.kick();
        dev.fill();
        self.maybe_dump(dev, now);
        let backlog = self.tx_backlog_is_work(dev, now);
        self.tx_starved = dev.tx_no_buffer() > starved_before;
        got > 0 || fired > 0 || sent > 0 || backlog
    }

    /// Frames a full device left in the TX ring count as work while it keeps taking
    /// some: the loop comes back to flush them as the device drains (microseconds on
    /// veth), instead of sleeping until something else happens. A device that took
    /// nothing for `TX_BACKLOG_SPIN`, or refused a kick, gets a retry a millisecond
    /// (`next_timer`; a timer wake-up does not restart busy polling), not a spinning
    /// core.
    fn tx_backlog_is_work<D: Device>(&mut self, dev: &D, now: Instant) -> bool {
        let (record, work) =
            backlog_is_work(self.tx_backlog, dev.tx_backlog(), dev.tx_device_full(), now);
        self.tx_backlog = record;
        work
    }

    /// With `SLUICE_DUMP_CONNS_MS` set, prints every connection's TCP state to stderr
    /// at that period: the tool for finding out why a transfer stopped.
    fn maybe_dump<D: Device>(&mut self, dev: &D, now: Instant) {
        let Some(period) = self.dump_period else {
            return;
        };
        if now < self.next_dump {
            return;
        }
        self.next_dump = now + period;
        eprintln!(
            "worker {} at {now:?}: {:?} device {:?}",
            self.index,
            self.stats,
            dev.counters()
        );
        for c in self.conns.iter() {
            eprintln!("  {:?} armed={:?} queued={}", c.tcb, c.armed, c.queued);
        }
    }

    pub(super) fn next_timer(&self) -> Option<Duration> {
        next_wait(
            self.tx_backlog.is_some() || self.tx_starved,
            self.timers.next_deadline(),
            self.now(),
        )
    }
}
