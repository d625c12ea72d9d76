//! A TCP connection (RFC 9293's transmission control block) as a sans-IO state machine:
//! `on_segment` and `on_timeout` take what arrives and what time it is; `poll_transmit`
//! hands out what to send (a header plus a range of the send buffer, copied by the
//! caller straight into its frame with `write_payload`); `poll_event` says what the
//! application should know.
//!
//! Implemented: active, passive and simultaneous open; every close path, TIME-WAIT;
//! RST handling with RFC 5961 challenge ACKs (blind RST and SYN); MSS, window scaling,
//! timestamps with PAWS and RTT samples, SACK-permitted and SACK blocks for
//! out-of-order data; retransmission per RFC 6298 (Karn, backoff), fast retransmit and
//! NewReno recovery (RFC 5681, RFC 6582) with the congestion controller of
//! `crate::congestion`; delayed ACKs (every second full segment, 40 ms, immediate for
//! out-of-order data); Nagle with a per-write bypass; receiver and sender SWS avoidance;
//! zero-window probes; keepalive. With SACK, loss recovery follows RFC 6675 (the
//! scoreboard's IsLost, NextSeg and pipe) and a retransmission timeout skips what the
//! peer has SACKed.

mod app;
mod buffers;
mod config;
mod cookie;
mod event;
mod input;
mod output;
mod recovery;
mod timer;

use core::net::SocketAddrV4;
use core::time::Duration;

use wire::{TcpFlags, TcpRepr, TcpTimestamp};

use crate::assembler::Assembler;
use crate::congestion::{Congestion, CongestionControl};
use crate::rtt::RttEstimator;
use crate::scoreboard::{NextSeg, Scoreboard, SendSpace, DUP_THRESH};
use crate::seq::SeqNumber;
use crate::time::Instant;
use buffers::{RecvBuffer, SendBuffer};
pub use config::{Config, Keepalive};
use event::{event_bit, EVENTS};
pub use event::{CloseReason, Event};
use recovery::Undo;
use timer::{Timer, TimerTable};

/// How soon the SYN goes again after we reset an unacceptable ACK in SYN-SENT: long
/// enough for our RST to arrive first, as Linux's two jiffies.
const SYN_RESEND_AFTER_RESET: Duration = Duration::from_millis(5);

/// The RFC 9293 states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Our SYN is out.
    SynSent,
    /// A SYN came in and our SYN-ACK is out.
    SynReceived,
    /// Open both ways.
    Established,
    /// We sent FIN, not yet acknowledged.
    FinWait1,
    /// Our FIN was acknowledged; the peer may still send.
    FinWait2,
    /// The peer sent FIN; we may still send.
    CloseWait,
    /// Both sent FIN at once; ours is not yet acknowledged.
    Closing,
    /// We sent FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Waiting out old duplicates.
    TimeWait,
    /// Done.
    Closed,
}

impl State {
    fn synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::SynReceived | State::Closed)
    }
}

/// A segment to send: its header, and which bytes of the send buffer it carries.
#[derive(Clone, Copy, Debug)]
pub struct Transmit {
    header: TcpRepr<'static>,
    /// Offset of the payload from SND.UNA in the send buffer.
    offset: usize,
    len: usize,
}

impl Transmit {
    /// The TCP header (its payload field is empty: see [`Transmit::payload_len`]).
    pub fn header(&self) -> TcpRepr<'static> {
        self.header
    }

    /// Bytes of payload the segment carries.
    pub fn payload_len(&self) -> usize {
        self.len
    }
}

/// What a connection went through, for the operator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcbStats {
    /// Segments sent again (any reason).
    pub retransmits: u32,
    /// Retransmission timeouts.
    pub timeouts: u32,
    /// Fast recoveries entered (duplicate ACKs or SACK).
    pub recoveries: u32,
    /// Fast recoveries found spurious (the "lost" segment had only been reordered) and
    /// undone: the congestion state from before them restored.
    pub undone_recoveries: u32,
}

/// One TCP connection.
pub struct Tcb {
    stats: TcbStats,
    config: Config,
    state: State,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    // Send sequence space.
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// Highest sequence number sent (SND.NXT goes back on a timeout; this does not).
    snd_max: SeqNumber,
    snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    snd_wscale: u8,
    snd_mss: usize,
    send: SendBuffer,
    /// Bytes up to which the application asked to bypass Nagle.
    push_until: usize,
    fin_queued: bool,
    fin_sent: bool,
    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    rcv_wscale: u8,
    /// The right edge we last advertised: never moved left (RFC 7323 §2.4).
    rcv_adv: SeqNumber,
    recv: RecvBuffer,
    ooo: Assembler,
    /// Data received twice, to report as the first SACK block of our next segment (a
    /// D-SACK, RFC 2883): it tells the peer its retransmission was not needed, which
    /// is how Linux undoes a spurious one where millisecond timestamps cannot tell.
    dsack: Option<(SeqNumber, SeqNumber)>,
    /// Sequence number of the peer's FIN, once seen (possibly ahead of data).
    fin_at: Option<SeqNumber>,
    fin_received: bool,
    // Options.
    sack_ok: bool,
    ts_ok: bool,
    ws_ok: bool,
    ts_recent: u32,
    // Timers and loss recovery.
    rtt: RttEstimator,
    cc: Congestion,
    timers: TimerTable,
    retries: u32,
    /// The application has let go ([`Tcb::orphan`]).
    orphaned: bool,
    /// Opened by [`Tcb::connect`]: a RST to it in SYN-RECEIVED (a simultaneous open)
    /// is a refusal the application hears of, not a passive open quietly forgotten.
    active_open: bool,
    /// A retransmission happened since SND.UNA last moved: no RTT samples (Karn).
    retransmitted: bool,
    /// Segment being timed without timestamps: (sequence it ends at, sent at).
    timed: Option<(SeqNumber, Instant)>,
    dupacks: u32,
    /// What undoes the current fast recovery if it proves spurious (RFC 3522).
    undo: Option<Box<Undo>>,
    recover: SeqNumber,
    /// SACKed ranges of the send space (RFC 6675).
    scoreboard: Scoreboard,
    /// One past the highest octet retransmitted in this recovery (HighRxt + 1).
    high_rxt: SeqNumber,
    /// In SACK-based loss recovery (RFC 6675 §5), until SND.UNA passes `recover`.
    sack_recovery: bool,
    /// Retransmit the first unacknowledged segment at the next poll.
    fast_retransmit: bool,
    /// Full-sized segments received since the last ACK we sent.
    unacked_segments: u32,
    ack_now: bool,
    persist_backoff: u32,
    probe_now: bool,
    keepalive_sent: u32,
    rst_now: bool,
    /// Sequence number for that RST (RFC 9293: SEG.ACK of the segment that caused it).
    rst_seq: Option<SeqNumber>,
    /// Our SYN (or SYN-ACK) must go out at the next poll.
    syn_due: bool,
    events: u8,
    /// Why the connection closed, until the application has heard it.
    closed: Option<CloseReason>,
    /// `closed` was reported (it is reported once).
    closed_reported: bool,
}

impl Tcb {
    /// Checks the connection's internal invariants; `Err` says which one broke. For the
    /// fuzz target and the hostile-input tests (a broken invariant is a bug in this
    /// crate whatever the peer sent).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check_invariants(&self) -> Result<(), String> {
        let fail = |what: &str| Err(format!("{what}: {self:?}"));
        if self.snd_una > self.snd_nxt || self.snd_nxt > self.snd_max {
            return fail("SND.UNA <= SND.NXT <= SND.MAX");
        }
        // In flight: the send buffer plus at most a SYN and a FIN.
        if self.snd_max - self.snd_una > self.send.len() + 2 {
            return fail("more in flight than the send buffer holds");
        }
        if self.recv.len() > self.recv.capacity() {
            return fail("receive buffer over capacity");
        }
        // The right edge we advertised never lies beyond the buffer's room (the peer
        // may fill all of it). It may lie behind RCV.NXT: data that fits the buffer is
        // taken even past the (scale-rounded) window.
        if self.state.synchronized() {
            let advertised = self.rcv_adv.distance(self.rcv_nxt);
            if advertised > 0 && advertised as usize > self.recv.window() {
                return fail("advertised window beyond the receive buffer's room");
            }
        }
        for (l, r) in self.scoreboard.ranges() {
            if l < self.snd_una || r > self.snd_max || r <= l {
                return fail("SACK scoreboard outside [SND.UNA, SND.MAX)");
            }
        }
        Ok(())
    }
}

/// A one-line summary of what matters when a connection is stuck: the sequence spaces,
/// windows, buffers and armed timers (absolute microseconds).
impl core::fmt::Debug for Tcb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Sequence numbers relative to the ISS, as tcpdump shows them.
        let iss = self.iss;
        let rel = |s: SeqNumber| s - iss;
        write!(
            f,
            "{:?} {}->{} una={} nxt={} max={} wnd={} cwnd={} ssthresh={} sndbuf={} \
             rcv_nxt={} recvbuf={} ooo={:?} sack_rec={} fr={} dupacks={} retries={} \
             fin_q={} fin_s={} fin_r={} timers={:?} ack_now={} probe_now={} stats={:?}",
            self.state,
            self.local,
            self.remote,
            rel(self.snd_una),
            rel(self.snd_nxt),
            rel(self.snd_max),
            self.snd_wnd,
            self.cc.cwnd(),
            self.cc.ssthresh(),
            self.send.len(),
            self.rcv_nxt - self.irs,
            self.recv.len(),
            self.ooo,
            self.sack_recovery,
            self.fast_retransmit,
            self.dupacks,
            self.retries,
            self.fin_queued,
            self.fin_sent,
            self.fin_received,
            self.timers,
            self.ack_now,
            self.probe_now,
            self.stats,
        )
    }
}

fn ms32(now: Instant) -> u32 {
    now.as_millis() as u32
}

impl Tcb {
    fn new(config: Config, local: SocketAddrV4, remote: SocketAddrV4, iss: SeqNumber) -> Tcb {
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        let cc = Congestion::new(config.congestion, 536);
        Tcb {
            stats: TcbStats::default(),
            send: SendBuffer::new(config.send_buffer),
            recv: RecvBuffer::new(config.recv_buffer),
            state: State::Closed,
            local,
            remote,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wscale: 0,
            snd_mss: 536,
            push_until: 0,
            fin_queued: false,
            fin_sent: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_wscale: 0,
            rcv_adv: SeqNumber(0),
            ooo: Assembler::default(),
            dsack: None,
            fin_at: None,
            fin_received: false,
            sack_ok: false,
            ts_ok: false,
            ws_ok: false,
            ts_recent: 0,
            rtt,
            cc,
            timers: TimerTable::default(),
            retries: 0,
            orphaned: false,
            active_open: false,
            retransmitted: false,
            timed: None,
            dupacks: 0,
            undo: None,
            recover: iss,
            scoreboard: Scoreboard::default(),
            high_rxt: iss,
            sack_recovery: false,
            fast_retransmit: false,
            unacked_segments: 0,
            ack_now: false,
            persist_backoff: 0,
            probe_now: false,
            keepalive_sent: 0,
            rst_now: false,
            rst_seq: None,
            syn_due: false,
            events: 0,
            closed: None,
            closed_reported: false,
            config,
        }
    }

    /// Active open: the SYN goes out at the next [`Tcb::poll_transmit`].
    pub fn connect(
        config: Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        isn: SeqNumber,
        now: Instant,
    ) -> Tcb {
        let deadline = config.connect_timeout.map(|d| now + d);
        let mut t = Tcb::new(config, local, remote, isn);
        if let Some(deadline) = deadline {
            t.timers.set(Timer::Connect, deadline);
        }
        t.active_open = true;
        t.state = State::SynSent;
        t.syn_due = true;
        t
    }

    /// Passive open from a SYN (the listener decided to accept it): the SYN-ACK goes out
    /// at the next [`Tcb::poll_transmit`].
    pub fn accept(
        config: Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr<'_>,
        isn: SeqNumber,
        _now: Instant,
    ) -> Tcb {
        let mut t = Tcb::new(config, local, remote, isn);
        t.state = State::SynReceived;
        t.take_syn_options(syn);
        t.irs = SeqNumber(syn.seq_number);
        t.rcv_nxt = t.irs + 1;
        // The SYN-ACK's (unscaled) window is the first right edge we advertise.
        t.rcv_adv = t.rcv_nxt + t.rcv_wnd().min(u16::MAX as usize);
        t.snd_wnd = syn.window_len as usize; // never scaled in a SYN
        t.snd_wl1 = t.irs;
        t.syn_due = true;
        t
    }

    fn take_syn_options(&mut self, syn: &TcpRepr<'_>) {
        self.snd_mss =
            (syn.max_seg_size.unwrap_or(536) as usize).clamp(64, self.config.mss as usize);
        self.cc.set_mss(self.snd_mss);
        match (syn.window_scale, self.config.window_scale) {
            (Some(theirs), Some(ours)) => {
                self.snd_wscale = theirs.min(14);
                self.rcv_wscale = ours.min(14);
                self.ws_ok = true;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.ws_ok = false;
            }
        }
        self.sack_ok = syn.sack_permitted && self.config.sack;
        self.ts_ok = syn.timestamp.is_some() && self.config.timestamps;
        if let Some(ts) = syn.timestamp {
            self.ts_recent = ts.tsval;
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our address and port.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address and port.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    fn emit_event(&mut self, e: Event) {
        self.events |= event_bit(e);
    }

    /// The next thing the application should hear about.
    pub fn poll_event(&mut self) -> Option<Event> {
        for e in EVENTS {
            let bit = event_bit(e);
            if self.events & bit != 0 {
                self.events &= !bit;
                return Some(e);
            }
        }
        match self.closed {
            Some(reason) if !self.closed_reported => {
                self.closed_reported = true;
                Some(Event::Closed(reason))
            }
            _ => None,
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closed
    }

    /// To CLOSED, for `reason` (the first reason given is the one reported).
    fn enter_closed(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.timers.stop_all();
        self.closed.get_or_insert(reason);
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers.stop(Timer::Rto);
        self.timers.stop(Timer::Persist);
        self.timers.stop(Timer::Keepalive);
        self.timers.stop(Timer::FinWait2);
        self.timers
            .set(Timer::TimeWait, now + self.config.time_wait);
    }
}

fn before(s: SeqNumber, n: u32) -> SeqNumber {
    SeqNumber(s.0.wrapping_sub(n))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod transitions;
