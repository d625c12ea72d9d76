//! One AF_XDP worker: its socket, its connections, its timers, and the loop that moves
//! frames between them. Everything here runs on the worker's thread; flows reach the
//! state through an `Rc<RefCell<..>>` borrowed only between awaits, so nothing on the
//! packet path takes a lock.
//!
//! The loop (a task on the worker's single-threaded runtime) does, in turn: transmit
//! what the connections have to send straight into UMEM frames and kick the ring once;
//! receive a batch and feed each segment to its connection; fire due timers; then yield
//! so the flow tasks woken by all that run. Transmitting first means the ACK a segment
//! calls for leaves after the flow tasks it woke have run: an answer, or the FIN of a
//! flow closed on end-of-stream, carries it instead of following a bare ACK (a server
//! sends three segments for a one-query DNS connection, not four). The ACK that
//! completes an active open's handshake is the exception: it leaves at once (see
//! `transmit_handshake_acks`). With nothing to do the loop keeps polling for
//! `busy_poll`, then sleeps until the socket is readable, a timer is due, a flow has
//! something to send, or a command arrives.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, Notify};
use wire::TcpRepr;
use xsk::{RxAction, XskConfig, XskSocket};

use super::conn::{ConnEvent, Tcb};
use super::frames::{self, Path};
use super::table::{FourTuple, Handle, Table};
use super::XdpWorkerSetup;
use crate::error::Error;
use crate::listener::{Keepalive, Listeners};
use crate::stats::{SocketDrops, WorkerStats};
use crate::timer::TimerWheel;
use crate::worker::{Command, StartError, WorkerContext};
use crate::Flow;

/// Frames taken from the RX ring per round.
const RX_BATCH: u32 = 64;
/// How long frames waiting in the TX ring for a full device keep the loop polling
/// before it falls back to retrying once a millisecond.
const TX_BACKLOG_SPIN_US: u64 = 1000;

/// A connection as the worker keeps it.
pub(crate) struct Conn {
    pub tcb: Tcb,
    pub tuple: FourTuple,
    pub path: Path,
    /// The wheel entry's time, when one is armed.
    armed_ms: Option<u64>,
    pub read_waker: Option<Waker>,
    pub write_waker: Option<Waker>,
    /// Accepted from a listener and not yet handed to its handler.
    pending_handler: Option<u16>,
    /// An active open waiting for the handshake.
    pub connect_waker: Option<Waker>,
    pub connected: bool,
    pub failed: Option<ConnEvent>,
    /// The application holds a Flow for it (or a connect is waiting): keep the slot
    /// until the Flow is dropped, even after TCP is done with it.
    pub attached: bool,
    queued: bool,
}

/// The worker's state, shared with its flows.
pub(crate) struct State {
    pub sock: XskSocket,
    pub mac: [u8; 6],
    pub addrs: Vec<Ipv4Addr>,
    pub listeners: Listeners,
    pub conns: Table<Conn>,
    timers: TimerWheel,
    /// Connections with something to transmit.
    dirty: Vec<Handle>,
    dirty_spare: Vec<Handle>,
    epoch: Instant,
    pub verify_checksums: bool,
    pub tcp: super::conn::TcbFactory,
    pub half_open: usize,
    pub max_half_open: usize,
    pub stats: WorkerStats,
    /// Woken when a flow (or another worker) gives the loop work while it sleeps.
    pub loop_wake: Arc<Notify>,
    /// The loop is waiting for readiness, a timer, a command or `loop_wake`. Otherwise
    /// it runs another round anyway, and a flow's wake-up would cost an atomic
    /// read-modify-write (4 % of the worker under pipelined echo) and leave a permit
    /// behind that wakes the next sleep for nothing.
    loop_asleep: bool,
    /// Every worker's inbox, this one's included, by worker index.
    peers: Arc<[Peer]>,
    /// Frames other workers received for this worker's connections.
    inbox: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Next local port to try for an active open.
    pub next_port: u16,
    pub ports: super::ports::PortRange,
    pub index: usize,
    pub workers: usize,
    /// Accepted flows waiting to be handed to their handlers (spawned outside the borrow).
    accepted: Vec<(Handle, u16)>,
    /// Active opens whose handshake completed this round: their ACK leaves at once.
    handshake_acks: Vec<Handle>,
    /// Scratch lists reused every round, so the loop allocates nothing in steady state.
    scratch_handles: Vec<Handle>,
    scratch_timers: Vec<u32>,
    /// `SLUICE_DUMP_CONNS_MS`, in microseconds.
    dump_period_us: Option<u64>,
    next_dump_us: u64,
    /// Frames waiting in the TX ring for a full device (copy mode), and since when the
    /// device has taken none of them.
    tx_backlog: Option<(u32, u64)>,
    /// The last round left connections queued for want of a free UMEM frame:
    /// completions free some, and nothing else wakes the loop for them.
    tx_starved: bool,
}

impl State {
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Marks a connection as having something to send, and makes sure the loop looks.
    pub fn mark_dirty(&mut self, h: Handle) {
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
    fn after_tcp(&mut self, h: Handle) {
        let Some(c) = self.conns.get_mut(h) else {
            return;
        };
        let mut wake_read = false;
        let mut wake_write = false;
        let mut newly_connected = false;
        c.tcb.events(|e| match e {
            ConnEvent::Connected => newly_connected = true,
            ConnEvent::Readable | ConnEvent::PeerClosed => wake_read = true,
            ConnEvent::Writable => wake_write = true,
            ConnEvent::Closed | ConnEvent::Reset | ConnEvent::TimedOut | ConnEvent::Refused => {
                wake_read = true;
                wake_write = true;
                if c.failed.is_none() && e != ConnEvent::Closed {
                    c.failed = Some(e);
                }
            }
        });
        if newly_connected && !c.connected {
            c.connected = true;
            if let Some(port) = c.pending_handler.take() {
                self.half_open = self.half_open.saturating_sub(1);
                self.accepted.push((h, port));
            } else {
                self.handshake_acks.push(h);
            }
        }
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
        if let Some(deadline_us) = c.tcb.next_deadline_us() {
            self.timers
                .arm(h.index, deadline_us.div_ceil(1000), &mut c.armed_ms);
        }
        if c.tcb.is_closed() && !c.attached {
            if c.pending_handler.is_some() {
                self.half_open = self.half_open.saturating_sub(1);
            }
            let tuple = c.tuple;
            self.stats.add_tcb(c.tcb.stats());
            self.conns.remove(&tuple, h);
        } else if c.tcb.wants_to_send() && !c.queued {
            c.queued = true;
            self.dirty.push(h);
        }
    }

    /// Called when a Flow (or a failed connect) lets go of its connection.
    /// `unread_in_flow`: the flow still held received bytes nobody read.
    pub fn detach(&mut self, h: Handle, unread_in_flow: bool) {
        let now_us = self.now_us();
        if let Some(c) = self.conns.get_mut(h) {
            c.attached = false;
            // Nobody reads or writes it any more: it finishes closing within bounds, the
            // way a process exit closes its sockets, or is reset if what the peer sent
            // will never be read.
            if c.tcb.release(now_us, unread_in_flow) {
                self.stats.aborted_on_close += 1;
            }
        }
        self.after_tcp(h);
        self.mark_dirty(h);
    }

    /// One receive batch, then what other workers handed over. Returns how many frames
    /// were taken.
    fn receive(&mut self, now_us: u64) -> u32 {
        // Split the borrow: the socket hands frames to a closure that needs the rest.
        let mut touched = std::mem::take(&mut self.scratch_handles);
        touched.clear();
        let State {
            sock,
            conns,
            listeners,
            tcp,
            stats,
            half_open,
            max_half_open,
            mac,
            addrs,
            verify_checksums,
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
            verify: *verify_checksums,
            ports: *ports,
            index: *index,
            workers: *workers,
            peers,
            touched: &mut touched,
            now_us,
        };
        let mut n = sock.recv(RX_BATCH, |frame| {
            cx.stats.rx_frames += 1;
            match on_frame(&mut cx, frame) {
                FrameAction::Done => RxAction::Recycle,
                FrameAction::Reply(len) => {
                    cx.stats.tx_frames += 1;
                    RxAction::Transmit(len as u32)
                }
            }
        });
        // Segments of our connections that arrived on another worker's queue.
        while let Ok(mut frame) = inbox.try_recv() {
            n += 1;
            cx.stats.handed_in += 1;
            if let FrameAction::Reply(len) = on_frame(&mut cx, &mut frame) {
                let sent = sock.transmit_with(|buf| {
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
    fn fire_timers(&mut self, now_us: u64) -> usize {
        let now_ms = now_us / 1000;
        let mut due = std::mem::take(&mut self.scratch_timers);
        due.clear();
        self.timers.expire(now_ms, |index| due.push(index));
        let mut touched = 0;
        for &index in &due {
            let Some(h) = self.conns.handle_at(index) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(h) else {
                continue;
            };
            if !crate::timer::fired_is_live(&mut c.armed_ms, now_ms) {
                continue;
            }
            if c.tcb.next_deadline_us().is_some_and(|d| d <= now_us) {
                c.tcb.on_timeout(now_us);
                touched += 1;
            }
            // Re-arms at the real deadline (the entry may have been early).
            self.after_tcp(h);
        }
        self.scratch_timers = due;
        touched
    }

    /// Transmits what every dirty connection has to send. Returns frames sent.
    fn transmit(&mut self, now_us: u64) -> u32 {
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
            sent += self.transmit_one(h, now_us);
        }
        dirty.clear();
        self.dirty_spare = dirty;
        sent
    }

    /// Sends the ACK that completes each handshake of an active open this round, at
    /// once. Data on that ACK is legal (RFC 9293 §3.10.7.3), but servers that keep
    /// little state, Knot DNS's XDP TCP among them, drop it, so the request goes in
    /// its own segment, the way the Linux stack sends it.
    fn transmit_handshake_acks(&mut self, now_us: u64) -> u32 {
        let mut sent = 0;
        let mut due = std::mem::take(&mut self.handshake_acks);
        for &h in &due {
            sent += self.transmit_one(h, now_us);
        }
        due.clear();
        self.handshake_acks = due;
        sent
    }

    /// Transmits what one connection has to send. Returns frames sent.
    fn transmit_one(&mut self, h: Handle, now_us: u64) -> u32 {
        let State { conns, sock, .. } = self;
        let Some(c) = conns.get_mut(h) else {
            return 0;
        };
        let path = c.path;
        let mut sent = 0;
        c.tcb.transmit(now_us, |hdr, payload_len, fill| {
            let ok =
                sock.transmit_with(|buf| frames::emit(buf, &path, hdr, payload_len, |p| fill(p)));
            sent += ok as u32;
            ok
        });
        self.stats.tx_frames += u64::from(sent);
        // Still wanting to send (TX ring full) puts it back on the list.
        self.after_tcp(h);
        sent
    }

    /// One round of the loop without awaiting, at `now_us` (one clock read per round:
    /// at a few million rounds a second, reading the clock is not free). Returns whether
    /// anything happened.
    fn step(&mut self, now_us: u64) -> bool {
        self.sock.reclaim();
        let starved_before = self.sock.tx_no_frame();
        // What the flow tasks wrote since the last round, with the ACKs that round's
        // segments called for riding on it (see the module's comment).
        let sent = self.transmit(now_us);
        let _ = self.sock.flush();
        self.sock.busy_poll();
        let got = self.receive(now_us);
        let fired = self.fire_timers(now_us);
        let sent = sent + self.transmit_handshake_acks(now_us);
        // Handshake ACKs and in-place replies (RSTs, SYN cookies) leave now, not a round
        // later (no system call when there are none).
        let _ = self.sock.flush();
        self.sock.refill();
        self.maybe_dump(now_us);
        let backlog = self.tx_backlog_is_work(now_us);
        self.tx_starved = self.sock.tx_no_frame() > starved_before;
        got > 0 || fired > 0 || sent > 0 || backlog
    }

    /// Frames a full device left in the TX ring count as work while it keeps taking
    /// some: the loop comes back to flush them as the device drains (microseconds on
    /// veth), instead of sleeping until something else happens. A device that took
    /// nothing for `TX_BACKLOG_SPIN_US`, or refused a kick, gets a retry a millisecond
    /// (`next_timer`; a timer wake-up does not restart busy polling), not a spinning
    /// core.
    fn tx_backlog_is_work(&mut self, now_us: u64) -> bool {
        let (record, work) = backlog_is_work(
            self.tx_backlog,
            self.sock.tx_backlog(),
            self.sock.tx_device_full(),
            now_us,
        );
        self.tx_backlog = record;
        work
    }

    /// With `SLUICE_DUMP_CONNS_MS` set, prints every connection's TCP state to stderr
    /// at that period: the tool for finding out why a transfer stopped.
    fn maybe_dump(&mut self, now_us: u64) {
        let Some(period_us) = self.dump_period_us else {
            return;
        };
        if now_us < self.next_dump_us {
            return;
        }
        self.next_dump_us = now_us + period_us;
        eprintln!(
            "worker {} at {now_us} us: {:?} sock {:?}",
            self.index,
            self.stats,
            self.sock.stats()
        );
        for c in self.conns.iter() {
            eprintln!(
                "  {:?} armed_ms={:?} queued={}",
                c.tcb, c.armed_ms, c.queued
            );
        }
    }

    fn next_timer(&self) -> Option<Duration> {
        next_wait(
            self.tx_backlog.is_some() || self.tx_starved,
            self.timers.next_deadline_ms(),
            self.now_us() / 1000,
        )
    }

    /// A local port for an active open to `remote` that this worker owns.
    pub fn pick_port(&mut self, local_ip: Ipv4Addr, remote: SocketAddrV4) -> Option<u16> {
        let span = self.ports.len();
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= self.ports.last {
                self.ports.first
            } else {
                port + 1
            };
            let tuple = FourTuple {
                local: SocketAddrV4::new(local_ip, port),
                remote,
            };
            if tuple.owner(self.workers) == self.index && self.conns.lookup(&tuple).is_none() {
                return Some(port);
            }
        }
        None
    }
}

/// Where the worker's search for a free local port starts: a random place in the range
/// (RFC 6056), so that a client started again soon does not reuse the 4-tuples of its
/// previous run while the server still holds them in TIME-WAIT (its new SYNs would meet
/// a challenge ACK and wait a second for their retransmission).
fn first_port(ports: &super::ports::PortRange, index: usize) -> u16 {
    // Without randomness (getrandom failing) a fixed start still works.
    let offset = super::conn::random_bytes().map_or(index, |r| u32::from_ne_bytes(r) as usize);
    ports.first + (offset % ports.len().max(1)) as u16
}

/// Creates the worker's socket and state, reports readiness, and runs the loop until a
/// shutdown command.
pub(crate) fn run_worker(setup: XdpWorkerSetup, mut commands: mpsc::UnboundedReceiver<Command>) {
    let XdpWorkerSetup {
        index,
        workers,
        queue,
        iface,
        mac,
        addrs,
        listeners,
        config,
        tcp,
        ports,
        peers,
        inbox,
        ready,
    } = setup;
    let mut sock = match XskSocket::bind(
        &iface,
        queue,
        &XskConfig {
            bind_mode: config.xdp_bind_mode,
            ..XskConfig::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(StartError::Xdp(e)));
            return;
        }
    };
    if config.napi_busy_poll_us > 0 {
        if let Err(e) = sock.set_busy_poll(config.napi_busy_poll_us, RX_BATCH as u16) {
            let _ = ready.send(Err(StartError::Xdp(e)));
            return;
        }
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let runtime = match crate::worker::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StartError::Io("building the worker runtime", e)));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    // The packet loop runs as a task of the LocalSet, like the flows it wakes, and
    // yields with `yield_to_flows`: the LocalSet then runs the woken flows and the
    // loop again, up to its budget per tick, before it returns to the runtime, which
    // polls epoll and tokio's timers. Yielding as the root future (or with tokio's
    // yield_now, which defers the wake-up to the runtime) cost an epoll_wait per round.
    local.block_on(&runtime, async move {
        let packet_loop = async move {
            let state = Rc::new(RefCell::new(State {
                sock,
                mac,
                addrs,
                listeners,
                conns: Table::new(),
                timers: TimerWheel::new(0),
                dirty: Vec::new(),
                dirty_spare: Vec::new(),
                epoch: Instant::now(),
                verify_checksums: config.verify_checksums,
                tcp,
                half_open: 0,
                max_half_open: config.max_half_open,
                stats: WorkerStats::default(),
                loop_wake: peers[index].wake.clone(),
                loop_asleep: false,
                peers,
                inbox,
                next_port: first_port(&ports, index),
                ports,
                index,
                workers,
                accepted: Vec::new(),
                handshake_acks: Vec::new(),
                scratch_handles: Vec::new(),
                scratch_timers: Vec::new(),
                dump_period_us: std::env::var("SLUICE_DUMP_CONNS_MS")
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|ms| ms.max(1) * 1000),
                next_dump_us: 0,
                tx_backlog: None,
                tx_starved: false,
            }));
            // SAFETY: `fd` is the socket that `state` owns; `afd` is declared after `state`,
            // so it is dropped (and deregistered) before the socket closes.
            let afd = match unsafe { AsyncFd::register(fd) } {
                Ok(a) => a,
                Err(e) => {
                    let _ = ready.send(Err(StartError::Io(
                        "registering the AF_XDP socket with epoll",
                        std::io::Error::other(e.to_string()),
                    )));
                    return;
                }
            };
            // The map entry for this queue points at our socket from now on.
            let _ = ready.send(Ok(Some((queue, fd))));
            let ctx = WorkerContext::xdp(index, config.connect_timeout, state.clone());
            let busy_poll_us = config.busy_poll.as_micros() as u64;
            let mut idle_since_us: Option<u64> = None;
            let active_tasks = Rc::new(());
            let mut draining: Option<Instant> = None;
            // When the last round started and whether it did something: the time from there
            // to the next round (that round and the flow tasks it woke) counts as busy, or
            // as idle polling; time asleep counts as neither.
            let mut last_round: Option<(u64, bool)> = None;
            loop {
                let (worked, accepted, now_us) = {
                    let mut s = state.borrow_mut();
                    let now_us = s.now_us();
                    match last_round.take() {
                        Some((since, true)) => s.stats.busy_us += now_us.saturating_sub(since),
                        Some((since, false)) => {
                            s.stats.idle_poll_us += now_us.saturating_sub(since)
                        }
                        None => {}
                    }
                    s.stats.elapsed_us = now_us;
                    let worked = s.step(now_us);
                    last_round = Some((now_us, worked));
                    (worked, std::mem::take(&mut s.accepted), now_us)
                };
                for (h, port) in accepted {
                    start_handler(&state, h, port, &active_tasks);
                }
                while let Ok(cmd) = commands.try_recv() {
                    command(cmd, &state, &ctx, &active_tasks, &mut draining);
                }
                if let Some(deadline) = draining {
                    // Only the loop's own reference left: every flow task has finished.
                    if Rc::strong_count(&active_tasks) == 1 || Instant::now() >= deadline {
                        break;
                    }
                }
                if worked {
                    idle_since_us = None;
                    yield_to_flows().await;
                    continue;
                }
                let idle_us = *idle_since_us.get_or_insert(now_us);
                if now_us - idle_us < busy_poll_us {
                    yield_to_flows().await;
                    continue;
                }
                // Sleep until something can happen.
                let (notify, timer) = {
                    let mut s = state.borrow_mut();
                    s.loop_asleep = true;
                    (s.loop_wake.clone(), s.next_timer())
                };
                let wait = timer
                    .unwrap_or(Duration::from_millis(100))
                    .min(Duration::from_millis(100));
                let mut timed_out = false;
                tokio::select! {
                    guard = afd.readable() => {
                        if let Ok(mut g) = guard {
                            g.clear_ready();
                        }
                    }
                    _ = notify.notified() => {}
                    cmd = commands.recv() => {
                        match cmd {
                            Some(cmd) => command(cmd, &state, &ctx, &active_tasks, &mut draining),
                            None => break,
                        }
                    }
                    _ = tokio::time::sleep(wait) => timed_out = true,
                }
                state.borrow_mut().loop_asleep = false;
                // A wake-up by the loop's own timer (a TCP deadline, a TX retry) polls
                // again only if its round finds work, not for a whole busy-poll window.
                if !timed_out {
                    idle_since_us = None;
                }
                last_round = None;
            }
            drop(active_tasks);
        };
        let _ = tokio::task::spawn_local(crate::worker::abort_on_panic(
            "the packet loop",
            index,
            packet_loop,
        ))
        .await;
    });
}

/// The TX-backlog rule of [`State::tx_backlog_is_work`]: given the last record (frames
/// waiting, since when the device took none of them), the frames waiting now and
/// whether the device was full (a refused kick is not polled again at once), the new
/// record (which makes `next_timer` retry within a millisecond) and whether they count
/// as work.
fn backlog_is_work(
    last: Option<(u32, u64)>,
    backlog: u32,
    device_full: bool,
    now_us: u64,
) -> (Option<(u32, u64)>, bool) {
    if backlog == 0 {
        return (None, false);
    }
    let since = match last {
        // Fewer frames waiting: the device took some, and the clock starts again.
        Some((before, since)) if backlog >= before => since,
        _ => now_us,
    };
    let work = device_full && now_us - since < TX_BACKLOG_SPIN_US;
    (Some((backlog, since)), work)
}

/// How long the loop may sleep: until the earlier of the timer wheel's next deadline
/// and, with frames waiting to be sent (in the TX ring, or for a free frame), a retry
/// a millisecond away.
fn next_wait(tx_retry: bool, deadline_ms: Option<u64>, now_ms: u64) -> Option<Duration> {
    let retry = tx_retry.then_some(Duration::from_millis(1));
    let timer = deadline_ms.map(|d| Duration::from_millis(d.saturating_sub(now_ms)));
    match (retry, timer) {
        (Some(r), Some(t)) => Some(r.min(t)),
        (r, t) => r.or(t),
    }
}

/// Lets the flow tasks the last round woke run, then comes back: it re-queues the
/// calling task on the LocalSet at once, behind them, instead of deferring its wake-up
/// to the runtime's next poll of epoll as tokio's `yield_now` does.
async fn yield_to_flows() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// How a worker reaches another: frames for its connections, and its wake-up.
pub(crate) struct Peer {
    pub inbox: std::sync::mpsc::Sender<Vec<u8>>,
    pub wake: Arc<Notify>,
}

/// The workers' links to each other, and each worker's receiving end.
pub(crate) fn peers(workers: usize) -> (Arc<[Peer]>, Vec<std::sync::mpsc::Receiver<Vec<u8>>>) {
    let (links, inboxes): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| {
            let (tx, rx) = std::sync::mpsc::channel();
            (
                Peer {
                    inbox: tx,
                    wake: Arc::new(Notify::new()),
                },
                rx,
            )
        })
        .unzip();
    (links.into(), inboxes)
}

/// What a frame asks of the receive loop.
enum FrameAction {
    /// Taken (or dropped, or handed to its owner): the frame can be reused.
    Done,
    /// Send the frame back, rewritten in place into this many bytes (a RST, or a
    /// SYN-ACK with a cookie).
    Reply(usize),
}

/// What handling one frame may touch: the worker's state less its socket.
struct FrameContext<'a> {
    conns: &'a mut Table<Conn>,
    listeners: &'a Listeners,
    tcp: &'a mut super::conn::TcbFactory,
    stats: &'a mut WorkerStats,
    half_open: &'a mut usize,
    max_half_open: usize,
    mac: [u8; 6],
    addrs: &'a [Ipv4Addr],
    verify: bool,
    ports: super::ports::PortRange,
    index: usize,
    workers: usize,
    peers: &'a [Peer],
    touched: &'a mut Vec<Handle>,
    now_us: u64,
}

/// A received frame: to its connection, to a listener, to the worker that owns it, or
/// answered with a RST.
fn on_frame(cx: &mut FrameContext<'_>, frame: &mut [u8]) -> FrameAction {
    let Some(f) = frames::parse(frame, cx.verify) else {
        cx.stats.rx_dropped += 1;
        return FrameAction::Done;
    };
    if !cx.addrs.contains(&f.ip.dst_addr) {
        cx.stats.rx_dropped += 1;
        return FrameAction::Done;
    }
    let tuple = FourTuple {
        local: SocketAddrV4::new(f.ip.dst_addr, f.tcp.dst_port),
        remote: SocketAddrV4::new(f.ip.src_addr, f.tcp.src_port),
    };
    let mut isn_floor = None;
    if let Some(h) = cx.conns.lookup(&tuple) {
        let Some(c) = cx.conns.get_mut(h) else {
            return FrameAction::Done;
        };
        // A client that reuses its port may open a new connection while we still hold
        // the old one in TIME-WAIT (Linux accepts it too); otherwise it would get a
        // challenge ACK, reset it, and wait a second for its SYN's retransmission.
        // Not while a flow still holds it: it may not have read all the old data yet.
        let reopening = c.tcb.reopening_isn(&f.tcp).filter(|_| {
            !c.attached
                && cx.listeners.get(f.tcp.dst_port).is_some()
                && *cx.half_open < cx.max_half_open
        });
        match reopening {
            Some(floor) => {
                isn_floor = Some(floor);
                cx.stats.add_tcb(c.tcb.stats());
                cx.stats.time_wait_reopened += 1;
                cx.conns.remove(&tuple, h);
            }
            None => {
                c.tcb.on_segment(&f.tcp, cx.now_us);
                cx.touched.push(h);
                return FrameAction::Done;
            }
        }
    }
    let owner = tuple.owner(cx.workers);
    if owner != cx.index && cx.ports.contains(tuple.local.port()) {
        // A reply to another worker's active open, on this worker's queue (the peer's
        // hash, not ours, chose the queue): hand it to the owner. A rare path, so a
        // copy in a fresh buffer is fine.
        let peer = &cx.peers[owner];
        if peer.inbox.send(frame.to_vec()).is_ok() {
            peer.wake.notify_one();
            cx.stats.handed_out += 1;
        }
        return FrameAction::Done;
    }
    let is_syn = f.tcp.flags.syn() && f.tcp.ack_number.is_none() && !f.tcp.flags.rst();
    let listener = cx.listeners.get(f.tcp.dst_port);
    let path = Path {
        local_mac: cx.mac,
        remote_mac: f.eth.src_addr.0,
        local_ip: f.ip.dst_addr,
        remote_ip: f.ip.src_addr,
    };
    let new_conn = match listener {
        Some(l) if is_syn && *cx.half_open < cx.max_half_open => Some(cx.tcp.accept(
            tuple.local,
            tuple.remote,
            &f.tcp,
            l.keepalive,
            isn_floor,
            cx.now_us,
        )),
        Some(_) if is_syn => {
            // The backlog is full: answer with a SYN cookie and keep nothing; the
            // connection exists only if the client's ACK brings the cookie back.
            let Some(syn_ack) = cx
                .tcp
                .cookie_syn_ack(tuple.local, tuple.remote, &f.tcp, cx.now_us)
            else {
                return FrameAction::Done;
            };
            return reply_in_place(frame, &path, &syn_ack, &mut cx.stats.syn_cookies_sent);
        }
        Some(l) if f.tcp.ack_number.is_some() && !f.tcp.flags.rst() && !f.tcp.flags.syn() => {
            let t = cx
                .tcp
                .accept_cookie(tuple.local, tuple.remote, &f.tcp, l.keepalive, cx.now_us);
            if t.is_some() {
                cx.stats.syn_cookies_accepted += 1;
            }
            t
        }
        _ => None,
    };
    if let Some(tcb) = new_conn {
        let h = cx.conns.insert(
            tuple,
            Conn {
                tcb,
                tuple,
                path,
                armed_ms: None,
                read_waker: None,
                write_waker: None,
                pending_handler: Some(f.tcp.dst_port),
                connect_waker: None,
                connected: false,
                failed: None,
                attached: false,
                queued: false,
            },
        );
        // Counted half-open until its handshake completes (at once for a cookie).
        *cx.half_open += 1;
        cx.stats.accepted += 1;
        cx.touched.push(h);
        return FrameAction::Done;
    }
    // Nothing here for it: answer with a RST in place of the frame itself.
    let Some(rst) = frames::reset_for(&f.tcp) else {
        return FrameAction::Done;
    };
    let path = Path {
        local_mac: f.eth.dst_addr.0,
        remote_mac: f.eth.src_addr.0,
        local_ip: f.ip.dst_addr,
        remote_ip: f.ip.src_addr,
    };
    reply_in_place(frame, &path, &rst, &mut cx.stats.resets_sent)
}

/// Rewrites `frame` into the payload-less segment `repr` on `path`, counting it in
/// `counter`; nothing if it does not fit.
fn reply_in_place(
    frame: &mut [u8],
    path: &Path,
    repr: &TcpRepr<'_>,
    counter: &mut u64,
) -> FrameAction {
    match frames::emit(frame, path, repr, 0, |_| {}) {
        0 => FrameAction::Done,
        len => {
            *counter += 1;
            FrameAction::Reply(len)
        }
    }
}

/// Carries out one command from the Stack.
fn command(
    cmd: Command,
    state: &Rc<RefCell<State>>,
    ctx: &WorkerContext,
    active_tasks: &Rc<()>,
    draining: &mut Option<Instant>,
) {
    match cmd {
        Command::Spawn(f) => {
            let ctx = ctx.clone();
            let token = active_tasks.clone();
            // Called inside the task, so that a panic in it ends only the task.
            tokio::task::spawn_local(async move {
                f(ctx).await;
                drop(token);
            });
        }
        Command::Shutdown { drain } => {
            state.borrow_mut().listeners = Listeners::new();
            *draining = Some(Instant::now() + drain);
        }
        Command::Stats(reply) => {
            let s = state.borrow();
            let mut stats = s.stats;
            stats.connections = s.conns.count() as u64;
            for c in s.conns.iter() {
                stats.add_tcb(c.tcb.stats());
                stats.states.count(c.tcb.state());
            }
            let sock = s.sock.stats();
            stats.tx_ring_full = sock.tx_ring_full;
            stats.tx_device_full = sock.tx_kick_stalled;
            stats.tx_kick_refused = sock.tx_kick_busy;
            stats.socket_drops = s.sock.kernel_stats().ok().map(|k| SocketDrops {
                rx_ring_full: k.rx_ring_full,
                fill_empty: k.rx_fill_ring_empty,
                // In copy mode an empty fill ring is counted in rx_dropped as well.
                other: k.rx_dropped.saturating_sub(k.rx_fill_ring_empty),
            });
            let _ = reply.send(stats);
        }
    }
}

/// Hands an accepted connection to its listener's handler.
fn start_handler(state: &Rc<RefCell<State>>, h: Handle, port: u16, tasks: &Rc<()>) {
    let handler = {
        let mut s = state.borrow_mut();
        let Some(l) = s.listeners.get(port).cloned() else {
            // The listener went away (shutdown): refuse the connection.
            if let Some(c) = s.conns.get_mut(h) {
                c.tcb.abort();
            }
            s.after_tcp(h);
            return;
        };
        match s.conns.get_mut(h) {
            Some(c) => c.attached = true,
            None => return,
        }
        l.handler
    };
    let flow = Flow::xdp(super::flow::XdpFlow::new(state.clone(), h));
    let token = tasks.clone();
    // The handler is called inside the task: a panic in it, before or after it returns
    // its future, ends that task and drops its flow, not the packet loop.
    tokio::task::spawn_local(async move {
        handler(flow).await;
        drop(token);
    });
}

/// Opens a connection from this worker (the seed's create_connection).
pub(crate) async fn connect(
    state: &Rc<RefCell<State>>,
    dst: SocketAddrV4,
    keepalive: Option<Keepalive>,
    timeout: Duration,
) -> Result<Flow, Error> {
    let (route, remote_mac) = super::nexthop_cache::resolve(*dst.ip())
        .await
        .map_err(|e| Error::Unreachable(e.to_string()))?;
    let h = {
        let mut s = state.borrow_mut();
        let local_ip = super::table::pick_source(&s.addrs, route.source)
            .ok_or_else(|| Error::Unreachable("no local address".into()))?;
        let port = s
            .pick_port(local_ip, dst)
            .ok_or_else(|| Error::Unreachable("no free local port".into()))?;
        let tuple = FourTuple {
            local: SocketAddrV4::new(local_ip, port),
            remote: dst,
        };
        let now = s.now_us();
        let path = Path {
            local_mac: s.mac,
            remote_mac,
            local_ip,
            remote_ip: *dst.ip(),
        };
        let tcb = s
            .tcp
            .connect(tuple.local, tuple.remote, keepalive, timeout, now);
        let h = s.conns.insert(
            tuple,
            Conn {
                tcb,
                tuple,
                path,
                armed_ms: None,
                read_waker: None,
                write_waker: None,
                pending_handler: None,
                connect_waker: None,
                connected: false,
                failed: None,
                attached: true,
                queued: false,
            },
        );
        s.after_tcp(h);
        s.mark_dirty(h);
        h
    };
    // Whatever ends this wait other than success (a failure, or the caller dropping
    // the future, say in a select! with a timeout of its own) lets the connection go.
    let mut pending = PendingConnect {
        state,
        h,
        waiting: true,
    };
    // The timeout is the connection's own timer (on the worker's wheel): it fails the
    // handshake with TimedOut, which ends this wait like a refusal does.
    std::future::poll_fn(|cx| {
        let mut s = state.borrow_mut();
        let Some(c) = s.conns.get_mut(h) else {
            return std::task::Poll::Ready(Err(Error::Refused));
        };
        if let Some(e) = c.failed {
            return std::task::Poll::Ready(Err(e.into_error()));
        }
        if c.connected {
            return std::task::Poll::Ready(Ok(()));
        }
        c.connect_waker = Some(cx.waker().clone());
        std::task::Poll::Pending
    })
    .await?;
    pending.waiting = false;
    Ok(Flow::xdp(super::flow::XdpFlow::new(state.clone(), h)))
}

/// An active open its caller still waits for: dropped before the handshake completed,
/// it aborts the connection (a RST if the peer has our SYN) and lets go of it, so that
/// the entry and its port do not stay behind.
struct PendingConnect<'a> {
    state: &'a Rc<RefCell<State>>,
    h: Handle,
    waiting: bool,
}

impl Drop for PendingConnect<'_> {
    fn drop(&mut self) {
        if !self.waiting {
            return;
        }
        // Not borrowed by anyone at an await point; but never panic in a drop.
        let Ok(mut s) = self.state.try_borrow_mut() else {
            return;
        };
        if let Some(c) = s.conns.get_mut(self.h) {
            c.tcb.abort();
        }
        s.detach(self.h, false);
    }
}

#[cfg(test)]
mod backlog_tests {
    use super::{backlog_is_work, next_wait, TX_BACKLOG_SPIN_US};
    use std::time::Duration;

    #[test]
    fn a_backlog_is_work_while_a_full_device_takes_frames() {
        // A backlog appears: work, and the clock starts.
        let (r, work) = backlog_is_work(None, 40, true, 100);
        assert_eq!((r, work), (Some((40, 100)), true));
        // No progress, but within the spin time: still work.
        let (r, work) = backlog_is_work(r, 40, true, 100 + TX_BACKLOG_SPIN_US - 1);
        assert!(work);
        // More frames queued than the device took is no progress either.
        let (r, work) = backlog_is_work(r, 41, true, 100 + TX_BACKLOG_SPIN_US);
        assert!(!work);
        assert_eq!(r, Some((41, 100)));
        // The device took some: the clock starts again.
        let now = 100 + 5 * TX_BACKLOG_SPIN_US;
        let (r, work) = backlog_is_work(r, 8, true, now);
        assert_eq!((r, work), (Some((8, now)), true));
        // Drained: no record, no work; a later backlog starts a fresh clock.
        let (r, work) = backlog_is_work(r, 0, true, now + 10);
        assert_eq!((r, work), (None, false));
        let later = now + 50 * TX_BACKLOG_SPIN_US;
        assert_eq!(backlog_is_work(r, 3, true, later), (Some((3, later)), true));
    }

    #[test]
    fn a_refused_kick_is_retried_by_timer_not_polled() {
        let (r, work) = backlog_is_work(None, 5, false, 100);
        assert_eq!((r, work), (Some((5, 100)), false));
        // The record makes the loop's sleep end within a millisecond.
        assert_eq!(
            next_wait(r.is_some(), None, 0),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn the_sleep_ends_at_the_earlier_of_the_retry_and_the_next_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(next_wait(false, None, 10), None);
        assert_eq!(next_wait(false, Some(15), 10), Some(ms(5)));
        assert_eq!(next_wait(true, None, 10), Some(ms(1)));
        assert_eq!(next_wait(true, Some(15), 10), Some(ms(1)));
        // A deadline due sooner than the retry (or already past) wins.
        assert_eq!(next_wait(true, Some(10), 10), Some(ms(0)));
        assert_eq!(next_wait(true, Some(3), 10), Some(ms(0)));
    }
}
