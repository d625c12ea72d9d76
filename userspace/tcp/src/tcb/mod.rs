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

mod buffers;
mod cookie;

use core::net::SocketAddrV4;
use core::time::Duration;

use wire::{TcpFlags, TcpRepr, TcpTimestamp};

use crate::assembler::Assembler;
use crate::congestion::{Algorithm, Congestion, CongestionControl};
use crate::rtt::RttEstimator;
use crate::scoreboard::{NextSeg, Scoreboard, SendSpace, DUP_THRESH};
use crate::seq::SeqNumber;
use crate::time::Instant;
use buffers::{RecvBuffer, SendBuffer};

/// Keepalive, as the flow API's: probes after `after` idle, every `interval`, lost after
/// `probes` unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub after: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is lost.
    pub probes: u32,
}

/// A connection's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our MSS (MTU minus 40 for IPv4 and TCP headers).
    pub mss: u16,
    /// Send buffer, bytes.
    pub send_buffer: usize,
    /// Receive buffer (the largest window we advertise), bytes.
    pub recv_buffer: usize,
    /// TIME-WAIT duration (2·MSL).
    pub time_wait: Duration,
    /// RTO before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Floor of the RTO.
    pub min_rto: Duration,
    /// Ceiling of the RTO.
    pub max_rto: Duration,
    /// Longest an ACK is delayed.
    pub delayed_ack: Duration,
    /// Nagle's algorithm for writes that do not ask to bypass it.
    pub nagle: bool,
    /// Congestion control.
    pub congestion: Algorithm,
    /// Offer and use SACK.
    pub sack: bool,
    /// Offer and use timestamps.
    pub timestamps: bool,
    /// Our window-scale shift, offered in the SYN (None: no scaling).
    pub window_scale: Option<u8>,
    /// Keepalive, if any.
    pub keepalive: Option<Keepalive>,
    /// SYN (or SYN-ACK) retransmissions before giving up.
    pub syn_retries: u32,
    /// Data retransmissions of the same segment before the connection is lost.
    pub data_retries: u32,
    /// Retransmissions of the same segment before an orphaned connection (see
    /// [`Tcb::orphan`]) is given up: nobody waits for it, so it gets fewer than
    /// `data_retries` (Linux's `tcp_orphan_retries`, whose 0 means 8).
    pub orphan_retries: u32,
    /// How long an orphaned connection waits in FIN-WAIT-2 for the peer's FIN before
    /// it is reset (the bound of Linux's `tcp_fin_timeout`; Linux then drops it
    /// silently, we tell the peer): a peer that acknowledges our FIN and
    /// never sends its own would otherwise hold the connection for ever.
    pub fin_wait_2_timeout: Duration,
    /// How long an active open may take before it fails with [`Event::TimedOut`],
    /// whatever `syn_retries` would still allow (None: only they bound it). On the
    /// connection's own timer, so an application's connect needs no timer of its own.
    pub connect_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1460,
            // 64 KiB each: below the allocator's mmap threshold, so a new connection's
            // first buffer costs a malloc and a short memset, not an mmap and page faults
            // (256 KiB made a one-request connection cost ~80 us of CPU).
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
            time_wait: Duration::from_secs(60),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            nagle: true,
            congestion: Algorithm::Cubic,
            sack: true,
            timestamps: true,
            window_scale: Some(7),
            keepalive: None,
            syn_retries: 6,
            data_retries: 15,
            orphan_retries: 8,
            fin_wait_2_timeout: Duration::from_secs(60),
            connect_timeout: None,
        }
    }
}

/// What happened, for the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// Data arrived.
    Readable,
    /// Room appeared in the send buffer.
    Writable,
    /// The peer sent FIN: after the buffered data, reads see the end.
    PeerClosed,
    /// The connection is finished (both sides closed, TIME-WAIT over, or aborted).
    Closed,
    /// The peer reset the connection.
    Reset,
    /// Retransmissions or keepalive probes went unanswered.
    TimedOut,
    /// The peer refused the connection (RST to our SYN).
    Refused,
}

/// How soon the SYN goes again after we reset an unacceptable ACK in SYN-SENT: long
/// enough for our RST to arrive first, as Linux's two jiffies.
const SYN_RESEND_AFTER_RESET: Duration = Duration::from_millis(5);

const EVENTS: [Event; 8] = [
    Event::Connected,
    Event::Readable,
    Event::Writable,
    Event::PeerClosed,
    Event::Reset,
    Event::TimedOut,
    Event::Refused,
    Event::Closed,
];

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

/// A fast recovery's way back (the Eifel detection algorithm, RFC 3522): the congestion
/// state before it, our timestamp at its start, and the retransmission count then. The
/// first ACK that moves SND.UNA in the recovery and echoes a timestamp older than that
/// was caused by the original of the first segment resent, which therefore arrived:
/// its retransmission was spurious, and if it was the only one, so was the recovery.
///
/// The duplicate-ACK threshold stays at 3: raising it after a spurious recovery (as
/// Linux does, which also has RACK's time-based loss detection) left real losses
/// waiting for the retransmission timer here (1 % loss on the simulated link: 11.7 ->
/// 4.8 Mbit/s).
///
/// Where millisecond timestamps cannot tell (a recovery in the millisecond of the
/// original: any sub-millisecond path), the peer's D-SACK (RFC 2883) of the segment
/// resent can, later: the record stays for that until a window after the recovery
/// ended (`expires`), the next recovery or a timeout.
struct Undo {
    cc: Congestion,
    ts: u32,
    retransmits: u32,
    /// SND.UNA when the recovery began: a D-SACK below it is about something else.
    start: SeqNumber,
    /// The first segment the recovery resent.
    resent: Option<(SeqNumber, SeqNumber)>,
    /// Once the recovery has ended, SND.MAX then: an ACK beyond it is a window later,
    /// and the record (whose controller is older still) is dropped.
    expires: Option<SeqNumber>,
    /// The Eifel test was made (on the first ACK to move SND.UNA).
    eifel_done: bool,
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
    rto_at: Option<Instant>,
    retries: u32,
    /// The application has let go ([`Tcb::orphan`]).
    orphaned: bool,
    /// When an orphaned connection in FIN-WAIT-2 gives up on the peer's FIN.
    fin_wait_2_at: Option<Instant>,
    /// When an active open that has not completed fails (`Config::connect_timeout`).
    connect_deadline: Option<Instant>,
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
    delack_at: Option<Instant>,
    /// Full-sized segments received since the last ACK we sent.
    unacked_segments: u32,
    ack_now: bool,
    persist_at: Option<Instant>,
    persist_backoff: u32,
    probe_now: bool,
    keepalive_at: Option<Instant>,
    keepalive_sent: u32,
    time_wait_at: Option<Instant>,
    rst_now: bool,
    /// Sequence number for that RST (RFC 9293: SEG.ACK of the segment that caused it).
    rst_seq: Option<SeqNumber>,
    /// Our SYN (or SYN-ACK) must go out at the next poll.
    syn_due: bool,
    events: u8,
}

impl Tcb {
    /// Checks the connection's internal invariants; `Err` says which one broke. For the
    /// fuzz target and the hostile-input tests (a broken invariant is a bug in this
    /// crate whatever the peer sent).
    #[doc(hidden)]
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
             fin_q={} fin_s={} fin_r={} rto={:?} delack={:?} persist={:?} ka={:?} tw={:?} \
             connect={:?} ack_now={} probe_now={} stats={:?}",
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
            self.rto_at.map(|t| t.as_micros()),
            self.delack_at.map(|t| t.as_micros()),
            self.persist_at.map(|t| t.as_micros()),
            self.keepalive_at.map(|t| t.as_micros()),
            self.time_wait_at.map(|t| t.as_micros()),
            self.connect_deadline.map(|t| t.as_micros()),
            self.ack_now,
            self.probe_now,
            self.stats,
        )
    }
}

fn event_bit(e: Event) -> u8 {
    1 << EVENTS
        .iter()
        .position(|x| *x == e)
        .expect("every event is listed")
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
            rto_at: None,
            retries: 0,
            orphaned: false,
            fin_wait_2_at: None,
            connect_deadline: None,
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
            delack_at: None,
            unacked_segments: 0,
            ack_now: false,
            persist_at: None,
            persist_backoff: 0,
            probe_now: false,
            keepalive_at: None,
            keepalive_sent: 0,
            time_wait_at: None,
            rst_now: false,
            rst_seq: None,
            syn_due: false,
            events: 0,
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
        t.connect_deadline = deadline;
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
        None
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.rto_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.time_wait_at = None;
        self.fin_wait_2_at = None;
        self.connect_deadline = None;
        self.emit_event(Event::Closed);
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rto_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.fin_wait_2_at = None;
        self.time_wait_at = Some(now + self.config.time_wait);
    }

    // ---- the application's side ----

    /// Queues what fits of `data` for sending; returns how much (0 when full or closing).
    pub fn send(&mut self, data: &[u8]) -> usize {
        if !self.can_send() {
            return 0;
        }
        self.send.push(data)
    }

    /// Like [`Tcb::send`], but the data leaves without waiting for Nagle.
    pub fn send_nodelay(&mut self, data: &[u8]) -> usize {
        let n = self.send(data);
        self.push_until = self.send.len();
        n
    }

    /// Whether the application may still write.
    pub fn can_send(&self) -> bool {
        matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        ) && !self.fin_queued
    }

    /// Room in the send buffer.
    pub fn send_capacity(&self) -> usize {
        self.send.free()
    }

    /// Written bytes not yet transmitted even once.
    pub fn unsent(&self) -> usize {
        self.send.len() - self.sent_offset()
    }

    fn sent_offset(&self) -> usize {
        (self.snd_nxt - self.snd_una)
            .saturating_sub(self.syn_in_flight() as usize)
            .min(self.send.len())
    }

    /// One past the last byte written: where the FIN goes.
    fn data_end(&self) -> SeqNumber {
        self.snd_una + self.syn_in_flight() as usize + self.send.len()
    }

    fn syn_in_flight(&self) -> bool {
        // Before the SYN is acknowledged it occupies ISS.
        self.snd_una == self.iss && matches!(self.state, State::SynSent | State::SynReceived)
    }

    /// Readable bytes.
    pub fn recv_available(&self) -> usize {
        self.recv.len()
    }

    /// Reads into `dst`; returns how many bytes. Reading may open the window, in which
    /// case an update is sent at the next poll if it is worth it (SWS avoidance).
    pub fn recv(&mut self, dst: &mut [u8]) -> usize {
        let n = self.recv.read(dst);
        if n > 0 && self.state.synchronized() {
            // RFC 1122 §4.2.3.3: announce only a window increase of at least
            // min(buffer / 2, MSS).
            let edge = self.rcv_nxt + self.recv.window();
            if edge.distance(self.rcv_adv) as usize >= (self.recv.capacity() / 2).min(self.snd_mss)
            {
                self.ack_now = true;
            }
        }
        n
    }

    /// The peer closed and everything it sent has been read.
    pub fn at_eof(&self) -> bool {
        self.fin_received && self.recv.len() == 0
    }

    /// Sends FIN after what is queued; reading goes on (half-close).
    pub fn close(&mut self) {
        match self.state {
            State::SynSent => self.enter_closed(),
            State::SynReceived | State::Established | State::CloseWait => self.fin_queued = true,
            _ => {}
        }
    }

    /// Resets the connection at once.
    pub fn abort(&mut self) {
        if self.state != State::Closed {
            if self.state.synchronized() || self.state == State::SynReceived {
                self.rst_now = true;
            }
            self.enter_closed();
        }
    }

    /// The application has let go of the connection: it closed it (or is about to) and
    /// will neither read nor write again. From here on the connection only finishes
    /// closing, within bounds, as Linux's orphaned sockets do: FIN-WAIT-2 lasts at most
    /// `fin_wait_2_timeout` (then a RST), what is unacknowledged is retransmitted at most
    /// `orphan_retries` times, and data that arrives after our FIN (nobody will read
    /// it) resets the connection (RFC 1122 §4.2.2.13, RFC 2525 §2.17).
    pub fn orphan(&mut self, now: Instant) {
        self.orphaned = true;
        self.arm_fin_wait_2(now);
    }

    /// The application lets go of the connection (drops its flow) and will neither read
    /// nor write again: closes what is still open and bounds the rest ([`Tcb::orphan`]).
    /// When received data will never be read (in our buffer, or `unread_by_app`: bytes
    /// the application took from it but did not consume), it resets instead, so that the
    /// peer learns its data was lost rather than reading a clean end (RFC 1122
    /// §4.2.2.13, RFC 2525 §2.17; Linux's close() does the same). Not in TIME-WAIT: both
    /// sides have closed, a RST would tell the peer nothing, and TIME-WAIT still guards
    /// the 4-tuple (Linux's socket has left it to a separate TIME-WAIT entry by then).
    /// Returns whether it reset.
    pub fn release(&mut self, now: Instant, unread_by_app: bool) -> bool {
        let unread = unread_by_app || self.recv.len() > 0;
        if unread && !matches!(self.state, State::TimeWait | State::Closed) {
            self.abort();
            return true;
        }
        if !self.is_closed() {
            self.close();
        }
        self.orphan(now);
        false
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && !self.rst_now
    }

    /// Whether `syn` may open a new incarnation of this connection while it waits in
    /// TIME-WAIT (RFC 6191, which refines RFC 1122 §4.2.2.13): its timestamp is newer
    /// than the last one seen, or its sequence number is above everything the old
    /// incarnation received and its timestamp, if both use them, is not older. If so,
    /// the answer is the lowest initial sequence number the new incarnation may use:
    /// past everything the old one sent plus a whole unscaled window, so that none of
    /// its delayed segments lands in the new connection's window (Linux picks the same
    /// floor).
    /// The caller retires this connection and accepts `syn` as a new one; otherwise
    /// `syn` goes to [`Tcb::on_segment`], which answers it with a challenge ACK.
    pub fn reopening_isn(&self, syn: &TcpRepr<'_>) -> Option<SeqNumber> {
        if self.state != State::TimeWait
            || !syn.flags.syn()
            || syn.flags.rst()
            || syn.ack_number.is_some()
        {
            return None;
        }
        let new_timestamp = syn.timestamp.filter(|_| self.config.timestamps);
        let newer_seq = SeqNumber(syn.seq_number) > self.rcv_nxt;
        let reopens = match (self.ts_ok, new_timestamp) {
            // As Linux: a newer sequence number also does when the timestamp is equal
            // (a client reconnecting within its timestamp clock's tick), never when it
            // is older (PAWS).
            (true, Some(ts)) => match ts.tsval.wrapping_sub(self.ts_recent) as i32 {
                d if d > 0 => true,
                0 => newer_seq,
                _ => false,
            },
            // Without timestamps on the old incarnation, only the sequence number can
            // tell its duplicates from the new connection's segments.
            (false, Some(_)) | (_, None) => newer_seq,
        };
        reopens.then(|| self.snd_max + (u16::MAX as usize + 2))
    }

    /// Retransmission counters.
    pub fn stats(&self) -> TcbStats {
        self.stats
    }

    /// Heap bytes held by the buffers right now.
    pub fn buffer_bytes(&self) -> usize {
        self.send.allocated() + self.recv.allocated()
    }

    // ---- segments in ----

    fn window_of(&self, seg: &TcpRepr<'_>) -> usize {
        (seg.window_len as usize) << self.snd_wscale
    }

    fn rcv_wnd(&self) -> usize {
        self.recv.window()
    }

    /// Processes an arriving segment (RFC 9293 §3.10.7).
    pub fn on_segment(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        match self.state {
            State::Closed => {}
            State::SynSent => self.on_segment_syn_sent(seg, now),
            _ => self.on_segment_synchronized(seg, now),
        }
    }

    fn on_segment_syn_sent(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        let ack_ok = seg.ack_number.map(|a| {
            let a = SeqNumber(a);
            a > self.iss && a <= self.snd_max
        });
        if ack_ok == Some(false) {
            // An unacceptable ACK: RST it (unless it is one).
            if !seg.flags.rst() {
                self.rst_for(seg);
                // Most likely the challenge ACK of a server still holding this 4-tuple
                // in TIME-WAIT, which our RST clears: resend the SYN soon, not after a
                // whole RTO (Linux does the same). Only before the first retransmission,
                // so a stream of bogus ACKs cannot make us send SYNs faster, and never
                // later than already due, so it cannot hold the SYN back either.
                if self.retries == 0 {
                    let soon = now + SYN_RESEND_AFTER_RESET;
                    self.rto_at = Some(self.rto_at.map_or(soon, |t| t.min(soon)));
                }
            }
            return;
        }
        if seg.flags.rst() {
            if ack_ok == Some(true) {
                self.emit_event(Event::Refused);
                self.enter_closed();
            }
            return;
        }
        if !seg.flags.syn() {
            return;
        }
        self.take_syn_options(seg);
        self.irs = SeqNumber(seg.seq_number);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt + self.rcv_wnd().min(u16::MAX as usize);
        self.snd_wnd = seg.window_len as usize; // a SYN's window is never scaled
        self.snd_wl1 = SeqNumber(seg.seq_number);
        if let Some(ack) = seg.ack_number {
            self.snd_wl2 = SeqNumber(ack);
            self.ack_our_syn(SeqNumber(ack), seg, now);
            self.state = State::Established;
            self.emit_event(Event::Connected);
            self.ack_now = true;
            self.arm_keepalive(now);
        } else {
            // Simultaneous open: our SYN crossed theirs.
            self.state = State::SynReceived;
            self.syn_due = true;
        }
    }

    fn ack_our_syn(&mut self, ack: SeqNumber, seg: &TcpRepr<'_>, now: Instant) {
        self.connect_deadline = None;
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        self.rto_at = None;
        self.retries = 0;
        if !self.retransmitted {
            if let Some((_, sent)) = self.timed.take() {
                self.rtt.on_sample(now.saturating_duration_since(sent));
            }
        } else {
            self.rtt.on_handshake_retransmitted();
        }
        if let (true, Some(ts)) = (self.ts_ok, seg.timestamp) {
            if ts.tsecr != 0 {
                self.rtt.on_sample(Duration::from_millis(
                    ms32(now).wrapping_sub(ts.tsecr) as u64
                ));
            }
        }
        self.timed = None;
        self.retransmitted = false;
    }

    fn on_segment_synchronized(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        let seq = SeqNumber(seg.seq_number);
        let seg_len = seg.segment_len();
        // PAWS (RFC 7323 §5.3): a timestamp older than TS.Recent marks an old duplicate.
        if self.ts_ok && !seg.flags.rst() {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.ack_now = true;
                    self.note_duplicate(seq, seg.payload.len());
                    return;
                }
            }
        }
        // Acceptability (RFC 9293 §3.10.7.4, first check).
        let wnd = self.rcv_wnd();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd),
            // RFC 9293: with a zero window no data is acceptable, "but special allowance
            // should be made to accept valid ACKs": a segment that starts at RCV.NXT has
            // its ACK processed and its data dropped (as Linux does). Rejecting it
            // whole would deadlock a peer whose ACKs ride on window-probe data.
            (_, 0) => seq == self.rcv_nxt,
            (n, _) => {
                seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd)
                    || (seq + (n - 1)).in_range(self.rcv_nxt, self.rcv_nxt + wnd)
            }
        };
        if self.state == State::SynReceived
            && seg.flags.syn()
            && !seg.flags.rst()
            && seg.ack_number.is_none()
            && seq == self.irs
        {
            // The peer resent its SYN: our SYN-ACK was lost. Resend it.
            self.syn_due = true;
            return;
        }
        if self.state == State::TimeWait && seg.flags.fin() && !seg.flags.rst() {
            // A retransmitted FIN: the peer lost our ACK. ACK again, restart 2·MSL.
            self.ack_now = true;
            self.time_wait_at = Some(now + self.config.time_wait);
            return;
        }
        if !acceptable {
            if !seg.flags.rst() {
                self.ack_now = true;
                self.note_duplicate(seq, seg.payload.len());
            }
            return;
        }
        if seg.flags.rst() {
            // RFC 5961 §3.2: only an exact match resets; the rest of the window gets a
            // challenge ACK (a blind attacker must guess RCV.NXT exactly).
            if seq == self.rcv_nxt {
                match self.state {
                    // RFC 9293 §3.10.7.4: back to LISTEN for a passive open, "connection
                    // refused" for one that came from SYN-SENT.
                    State::SynReceived => {
                        if self.active_open {
                            self.emit_event(Event::Refused);
                        }
                        self.enter_closed();
                    }
                    State::TimeWait => self.enter_closed(),
                    _ => {
                        self.emit_event(Event::Reset);
                        self.enter_closed();
                    }
                }
            } else {
                self.ack_now = true;
            }
            return;
        }
        if seg.flags.syn() {
            // RFC 5961 §4.2: a SYN in a synchronized state gets a challenge ACK.
            if self.state == State::SynReceived && seq == self.irs {
                // Our SYN-ACK was lost and the peer resent its SYN: resend it.
                self.syn_due = true;
                return;
            }
            self.ack_now = true;
            return;
        }
        let Some(ack) = seg.ack_number.map(SeqNumber) else {
            return;
        };
        if self.orphaned
            && (self.fin_queued || matches!(self.state, State::FinWait1 | State::FinWait2))
            && !seg.payload.is_empty()
            && seq + seg.payload.len() > self.rcv_nxt
        {
            // New data after we closed, and nobody left to read it: RFC 1122 §4.2.2.13
            // says reset (Linux does, and so frees the connection at once).
            self.abort();
            return;
        }
        if self.ts_ok {
            if let Some(ts) = seg.timestamp {
                // RFC 7323 §4.3: remember the latest in-window timestamp.
                if seq <= self.rcv_nxt {
                    self.ts_recent = ts.tsval;
                }
            }
        }
        self.keepalive_sent = 0;
        if self.state == State::SynReceived {
            if ack > self.snd_una && ack <= self.snd_max {
                self.ack_our_syn(ack, seg, now);
                self.snd_wnd = self.window_of(seg);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.state = State::Established;
                self.emit_event(Event::Connected);
                self.arm_keepalive(now);
            } else {
                self.rst_for(seg);
                return;
            }
        }
        if !self.process_ack(ack, seg, now) || self.state == State::Closed {
            return;
        }
        self.process_data(seq, seg, now);
        self.arm_keepalive(now);
        self.arm_persist(now);
    }

    /// A zero window with data waiting and nothing in flight: nothing would ever reopen
    /// it but a probe (RFC 9293 §3.8.6.1), so arm the persist timer.
    fn arm_persist(&mut self, now: Instant) {
        if self.snd_wnd == 0
            && self.unsent() > 0
            && self.snd_una == self.snd_nxt
            && self.persist_at.is_none()
            && self.state.synchronized()
        {
            let backoff = 1u32 << self.persist_backoff.min(6);
            self.persist_at = Some(now + self.rtt.rto().max(Duration::from_millis(200)) * backoff);
        }
    }

    /// Takes the ACK field of a segment. Returns false if the segment is to be dropped
    /// (RFC 9293: an ACK of something not yet sent is answered with an ACK, and the
    /// segment, data included, goes no further).
    fn process_ack(&mut self, ack: SeqNumber, seg: &TcpRepr<'_>, now: Instant) -> bool {
        if ack > self.snd_max {
            self.ack_now = true;
            return false;
        }
        let seq = SeqNumber(seg.seq_number);
        let window = self.window_of(seg);
        let in_flight_before = self.snd_max - self.snd_una;
        let mut recover_again = false;
        let newly_sacked = if self.sack_ok {
            // Only sent data can be SACKed: a block over our FIN's sequence number
            // would make a retransmission skip it and send the FIN at a new one.
            let una = ack.max(self.snd_una);
            let sent_data_end = self.snd_max.min(self.data_end()).max(una);
            let newly = self.scoreboard.update(una, sent_data_end, &seg.sack_ranges);
            // A D-SACK (RFC 2883: a first block below the cumulative ACK) of the one
            // segment a recovery resent: both copies arrived, so the recovery was not
            // needed (Linux's DSACK undo). The ACK may come after the recovery ended.
            // The block must hold the whole segment resent (a retransmission may
            // cover more than one original, of which only one came twice) and lie
            // within the recovery's data (no block a forger made wide enough to hit).
            if let (Some((l, r)), Some(u)) = (
                seg.sack_ranges[0].map(|(l, r)| (SeqNumber(l), SeqNumber(r))),
                self.undo.as_ref(),
            ) {
                // (The first segment a recovery resends is SND.UNA's, so its duplicate
                // is always below the cumulative ACK, never out of order.)
                let covers = u
                    .resent
                    .is_some_and(|(rl, rr)| u.start <= l && l <= rl && rr <= r && r <= una);
                if covers && self.at_most_one_resent() {
                    let was_recovering = self.cc.in_recovery();
                    self.undo_recovery(una, 0);
                    // As after an undo by timestamps: a loss the SACKs show starts its
                    // recovery, at the end, once SND.UNA is settled.
                    recover_again = was_recovering;
                }
            }
            // A SACKed range at the cumulative ACK: the receiver lacks the first byte of
            // what it had SACKed, so it reneged (RFC 2018 §8: its out-of-order store was
            // full). Forget every SACK, or neither recovery nor a timeout would resend
            // what the scoreboard says it has, and the connection would wait for ever.
            if self.scoreboard.is_sacked(una) {
                self.scoreboard.clear();
                // It says it lacks SND.UNA: resend that now, not at the timeout.
                self.fast_retransmit = true;
            }
            newly
        } else {
            0
        };
        if ack > self.snd_una {
            let acked = ack - self.snd_una;
            let fin_acked = self.fin_sent && ack == self.snd_max;
            let data_acked = acked - fin_acked as usize;
            self.send.consume(data_acked);
            self.push_until = self.push_until.saturating_sub(data_acked);
            self.snd_una = ack;
            if self.snd_nxt < ack {
                self.snd_nxt = ack;
            }
            // RTT: from timestamps when both use them, else the timed segment (Karn).
            let mut sample = None;
            if let (true, Some(ts)) = (self.ts_ok, seg.timestamp) {
                if ts.tsecr != 0 {
                    sample = Some(Duration::from_millis(
                        ms32(now).wrapping_sub(ts.tsecr) as u64
                    ));
                }
            } else if let Some((end, sent)) = self.timed {
                if ack >= end && !self.retransmitted {
                    sample = Some(now.saturating_duration_since(sent));
                    self.timed = None;
                }
            }
            if let Some(s) = sample {
                self.rtt.on_sample(s);
            }
            self.rtt.reset_backoff();
            self.retries = 0;
            self.retransmitted = false;
            // The first ACK to move SND.UNA in a recovery says whether it was needed.
            // (A zero echo is no timestamp: RFC 7323 §3.2, as the RTT sample above.)
            if let Some(undo) = self.undo.as_mut().filter(|u| !u.eifel_done) {
                undo.eifel_done = true;
                let echoes_older = seg
                    .timestamp
                    .is_some_and(|ts| ts.tsecr != 0 && (undo.ts.wrapping_sub(ts.tsecr) as i32) > 0);
                // Without SACK nothing says whether the rest of the window arrived: only
                // an ACK of all of it proves that nothing else was lost.
                let all_known = self.sack_ok || ack >= self.recover;
                if echoes_older && all_known && self.cc.in_recovery() && self.at_most_one_resent() {
                    self.undo_recovery(ack, acked);
                    recover_again = true;
                }
            }
            if self
                .undo
                .as_ref()
                .and_then(|u| u.expires)
                .is_some_and(|e| ack > e)
            {
                self.undo = None;
            }
            // NewReno (RFC 6582): a partial ACK in recovery retransmits the next hole;
            // with SACK the scoreboard picks what to resend (RFC 6675).
            if self.cc.in_recovery() {
                if ack >= self.recover {
                    self.cc.on_recovery_exit(now);
                    self.sack_recovery = false;
                    self.dupacks = 0;
                    // A D-SACK may still show it spurious, within the next window.
                    let max = self.snd_max;
                    if let Some(u) = self.undo.as_mut() {
                        u.expires = Some(max);
                    }
                } else if !self.sack_recovery {
                    self.fast_retransmit = true;
                }
            } else {
                self.dupacks = 0;
                self.cc.on_ack(now, acked, in_flight_before, sample);
            }
            self.rto_at = if self.snd_una < self.snd_max {
                Some(now + self.rtt.rto())
            } else {
                None
            };
            if data_acked > 0 {
                self.emit_event(Event::Writable);
            }
            if fin_acked {
                match self.state {
                    State::FinWait1 => {
                        self.state = State::FinWait2;
                        self.arm_fin_wait_2(now);
                    }
                    State::Closing => self.enter_time_wait(now),
                    State::LastAck => {
                        self.enter_closed();
                        return true;
                    }
                    _ => {}
                }
            }
        } else if ack == self.snd_una
            && self.snd_una < self.snd_max
            && ((seg.payload.is_empty() && !seg.flags.fin() && window == self.snd_wnd)
                || newly_sacked > 0)
        {
            // A duplicate ACK (RFC 5681 §2), or one with new SACK information (RFC 6675
            // §2; Linux's window moves with autotuning, so window equality alone would
            // miss most of them).
            self.dupacks += 1;
            let lost = self.sack_ok
                && self
                    .scoreboard
                    .is_lost(self.snd_una, self.max_payload(), DUP_THRESH);
            // RFC 6582 §3.2 step 2: a new recovery only when the ACK is past `recover`.
            if (self.dupacks as usize >= DUP_THRESH || lost)
                && !self.cc.in_recovery()
                && (ack > self.recover || self.recover == self.iss)
            {
                self.enter_fast_recovery(now, in_flight_before);
            }
        }
        // After an undo the first hole was reordering, but one further up may be a loss
        // the SACKs already show: its recovery starts now, not at a duplicate ACK that
        // may never come (Linux does the same after an undo).
        if recover_again
            && !self.cc.in_recovery()
            && self
                .scoreboard
                .is_lost(self.snd_una, self.max_payload(), DUP_THRESH)
        {
            self.enter_fast_recovery(now, self.snd_max - self.snd_una);
        }
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule).
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            let opened = window > self.snd_wnd;
            self.snd_wnd = window;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.persist_at = None;
                self.persist_backoff = 0;
            }
            if opened {
                self.emit_event(Event::Writable);
            }
        }
        true
    }

    /// `len` bytes at `seq` were dropped as old: if they lie wholly below RCV.NXT they
    /// arrived before, and the next segment reports them (a D-SACK).
    fn note_duplicate(&mut self, seq: SeqNumber, len: usize) {
        if self.sack_ok && len > 0 && seq + len <= self.rcv_nxt {
            self.dsack = Some((seq, seq + len));
        }
    }

    /// Starts a fast recovery (RFC 5681, RFC 6582; with SACK, RFC 6675) for a loss at
    /// SND.UNA, `in_flight` bytes being outstanding.
    fn enter_fast_recovery(&mut self, now: Instant, in_flight: usize) {
        self.recover = self.snd_max;
        self.stats.recoveries += 1;
        // The retransmission carries a timestamp no older than this; an ACK echoing an
        // older one proves the original arrived.
        self.undo = (self.ts_ok || self.sack_ok).then(|| {
            Box::new(Undo {
                cc: self.cc.clone(),
                ts: ms32(now),
                retransmits: self.stats.retransmits,
                start: self.snd_una,
                resent: None,
                expires: None,
                eifel_done: !self.ts_ok,
            })
        });
        self.cc.on_congestion_event(now, in_flight);
        if self.sack_ok {
            self.sack_recovery = true;
            self.high_rxt = self.snd_una;
        } else {
            self.fast_retransmit = true;
        }
    }

    /// The current (or last) recovery has resent one segment at most.
    fn at_most_one_resent(&self) -> bool {
        self.undo
            .as_ref()
            .is_some_and(|u| self.stats.retransmits.wrapping_sub(u.retransmits) <= 1)
    }

    /// Undoes the fast recovery that the ACK of `ack` (`acked` new bytes) proved
    /// spurious, running or just ended: the congestion state from before it comes back,
    /// its window through slow start (never below the present one), nothing more is
    /// resent.
    fn undo_recovery(&mut self, ack: SeqNumber, acked: usize) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        let present = self.cc.cwnd();
        let in_recovery = self.cc.in_recovery();
        self.cc = undo.cc;
        self.cc
            .resume_after_undo(self.snd_max - ack, acked, present);
        if in_recovery {
            self.sack_recovery = false;
            self.fast_retransmit = false;
            self.dupacks = 0;
            // No loss in that window after all: a loss after this ACK may start a
            // recovery (RFC 6582's rule keeps one reduction per window of real losses).
            self.recover = before(ack, 1);
        }
        self.stats.undone_recoveries += 1;
    }

    fn process_data(&mut self, seq: SeqNumber, seg: &TcpRepr<'_>, now: Instant) {
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        let mut payload = seg.payload;
        let mut start = seq;
        if !payload.is_empty() && receiving {
            // Trim what we already have, then what is beyond the window.
            if start < self.rcv_nxt {
                let skip = (self.rcv_nxt - start).min(payload.len());
                payload = &payload[skip..];
                start = self.rcv_nxt;
            }
            let offset = start - self.rcv_nxt;
            let room = self.rcv_wnd().saturating_sub(offset);
            payload = &payload[..payload.len().min(room)];
            // Out-of-order data we hold already: a duplicate, reported as a D-SACK
            // followed by the range holding it (RFC 2883 §4.2).
            let already_held = self.sack_ok
                && offset > 0
                && self
                    .ooo
                    .ranges()
                    .any(|(l, r)| l <= offset && offset + payload.len() <= r);
            if !payload.is_empty() {
                if offset == 0 {
                    self.recv.write_at(0, payload);
                    let mut advance = payload.len();
                    let filled_hole = !self.ooo.is_empty();
                    if filled_hole {
                        // Out-of-order bytes that are now contiguous join the in-order run.
                        let _ = self.ooo.add(0, advance);
                        advance = self.ooo.remove_front();
                    }
                    self.recv.commit(advance);
                    self.rcv_nxt += advance;
                    self.emit_event(Event::Readable);
                    if filled_hole {
                        self.ack_now = true;
                    } else if payload.len() >= self.peer_full_segment() {
                        self.unacked_segments += 1;
                        if self.unacked_segments >= 2 {
                            self.ack_now = true;
                        }
                    }
                    if !self.ack_now && self.delack_at.is_none() {
                        self.delack_at = Some(now + self.config.delayed_ack);
                    }
                } else if self.ooo.add(offset, payload.len()).is_ok() {
                    if already_held {
                        self.dsack = Some((start, start + payload.len()));
                    }
                    self.recv.write_at(offset, payload);
                    // Out of order: ACK at once so the sender sees the hole (RFC 5681 §4.2).
                    self.ack_now = true;
                } else {
                    self.ack_now = true;
                }
            } else {
                self.ack_now = true;
            }
        }
        if seg.flags.fin() && !self.fin_received {
            self.fin_at = Some(seq + seg.payload.len());
        }
        if let Some(fin) = self.fin_at {
            if fin == self.rcv_nxt && !self.fin_received {
                self.fin_received = true;
                self.rcv_nxt += 1;
                self.ack_now = true;
                self.emit_event(Event::PeerClosed);
                match self.state {
                    State::Established => self.state = State::CloseWait,
                    State::FinWait1 => {
                        if self.fin_sent && self.snd_una == self.snd_max {
                            self.enter_time_wait(now);
                        } else {
                            self.state = State::Closing;
                        }
                    }
                    State::FinWait2 => self.enter_time_wait(now),
                    _ => {}
                }
            }
        }
    }

    fn rst_for(&mut self, seg: &TcpRepr<'_>) {
        // An unacceptable ACK during the handshake: RST with SEG.ACK as sequence number,
        // leaving the connection as it is (RFC 9293 §3.10.7.3, §3.10.7.4).
        self.rst_now = true;
        self.rst_seq = seg.ack_number.map(SeqNumber);
    }

    fn arm_fin_wait_2(&mut self, now: Instant) {
        if self.orphaned && self.state == State::FinWait2 && self.fin_wait_2_at.is_none() {
            self.fin_wait_2_at = Some(now + self.config.fin_wait_2_timeout);
        }
    }

    fn arm_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.config.keepalive {
            if self.state.synchronized() {
                self.keepalive_at = Some(now + ka.after);
            }
        }
    }

    // ---- time ----

    /// The earliest moment [`Tcb::on_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A plain fold: the worker asks after every segment, and an iterator over the
        // array compiled to a copy of all six timers to the stack and a loop.
        fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
        earlier(
            earlier(
                earlier(self.rto_at, self.delack_at),
                earlier(self.persist_at, self.keepalive_at),
            ),
            earlier(
                earlier(self.time_wait_at, self.fin_wait_2_at),
                self.connect_deadline,
            ),
        )
    }

    /// Runs the timers that are due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.connect_deadline.is_some_and(|t| t <= now) {
            self.emit_event(Event::TimedOut);
            // From SYN-SENT silently, as Linux gives up a connect (the peer never
            // answered); from SYN-RECEIVED (a simultaneous open) the peer has our SYN
            // and gets a RST.
            self.abort();
            return;
        }
        if self.time_wait_at.is_some_and(|t| t <= now) {
            self.enter_closed();
            return;
        }
        if self.fin_wait_2_at.is_some_and(|t| t <= now) {
            // An orphan whose peer never closed: reset it (Linux drops it silently;
            // the RST tells the peer).
            self.abort();
            return;
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.on_rto(now);
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.probe_now = true;
        }
        if let (Some(t), Some(ka)) = (self.keepalive_at, self.config.keepalive) {
            if t <= now {
                if self.keepalive_sent >= ka.probes {
                    self.emit_event(Event::TimedOut);
                    self.enter_closed();
                    return;
                }
                if self.snd_una == self.snd_max {
                    self.keepalive_sent += 1;
                    self.probe_now = true;
                }
                self.keepalive_at = Some(now + ka.interval);
            }
        }
    }

    fn on_rto(&mut self, now: Instant) {
        self.retries += 1;
        let limit = match (self.state.synchronized(), self.orphaned) {
            (false, _) => self.config.syn_retries,
            (true, false) => self.config.data_retries,
            (true, true) => self.config.orphan_retries.min(self.config.data_retries),
        };
        if self.retries > limit {
            self.emit_event(Event::TimedOut);
            self.enter_closed();
            return;
        }
        self.rtt.on_timeout_backoff();
        self.stats.timeouts += 1;
        self.retransmitted = true;
        self.timed = None;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            self.syn_due = true;
        } else {
            self.cc
                .on_retransmission_timeout(now, self.snd_max - self.snd_una);
            self.sack_recovery = false;
            self.undo = None;
            // Go back to SND.UNA and resend from there as the window allows, skipping
            // what the peer has SACKed.
            self.snd_nxt = self.snd_una;
            if self.fin_sent && self.snd_una < self.snd_max {
                self.fin_sent = false;
            }
            self.dupacks = 0;
        }
        self.rto_at = Some(now + self.rtt.rto());
    }

    // ---- segments out ----

    fn our_window(&mut self) -> u16 {
        let wnd = self.rcv_wnd();
        // Never move the advertised right edge left (RFC 7323 §2.4 / RFC 9293).
        let edge = self.rcv_nxt + wnd;
        let edge = if self.state.synchronized() && edge < self.rcv_adv {
            self.rcv_adv
        } else {
            edge
        };
        self.rcv_adv = edge;
        let wnd = edge - self.rcv_nxt;
        ((wnd >> self.rcv_wscale).min(u16::MAX as usize)) as u16
    }

    fn header(&mut self, seq: SeqNumber, flags: TcpFlags, now: Instant) -> TcpRepr<'static> {
        let syn = flags.syn();
        let window_len = if syn {
            self.rcv_wnd().min(u16::MAX as usize) as u16
        } else {
            self.our_window()
        };
        let mut sack_ranges = [None; 4];
        if self.sack_ok && !syn {
            let max = if self.ts_ok { 3 } else { 4 };
            // A D-SACK goes first (RFC 2883 §4), then the out-of-order ranges.
            let dsack = self.dsack.take();
            if let Some((l, r)) = dsack {
                sack_ranges[0] = Some((l.0, r.0));
            }
            let first = usize::from(dsack.is_some());
            if !self.ooo.is_empty() {
                let mut blocks = [None; 4];
                // A D-SACK above RCV.NXT is told from a SACK by the block after it,
                // which must hold it (RFC 2883 §4.2): the duplicate was the latest
                // segment into its range, so that range comes first here.
                self.ooo.sack_blocks(self.rcv_nxt, &mut blocks, 4);
                let n = blocks.iter().flatten().count().min(max - first);
                sack_ranges[first..first + n].copy_from_slice(&blocks[..n]);
            }
        }
        let ts_wanted = if syn {
            self.config.timestamps && (self.state == State::SynSent || self.ts_ok)
        } else {
            self.ts_ok
        };
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: seq.0,
            ack_number: (self.state != State::SynSent).then_some(self.rcv_nxt.0),
            flags,
            window_len,
            urgent_pointer: 0,
            max_seg_size: syn.then_some(self.config.mss),
            window_scale: if syn && (self.state == State::SynSent || self.ws_ok) {
                self.config.window_scale
            } else {
                None
            },
            sack_permitted: syn
                && self.config.sack
                && (self.state == State::SynSent || self.sack_ok),
            sack_ranges,
            timestamp: ts_wanted.then(|| TcpTimestamp {
                tsval: ms32(now).max(1),
                tsecr: if self.state == State::SynSent {
                    0
                } else {
                    self.ts_recent
                },
            }),
            payload: &[],
        }
    }

    fn sent_ack(&mut self) {
        self.ack_now = false;
        self.delack_at = None;
        self.unacked_segments = 0;
    }

    /// Whether [`Tcb::poll_transmit`] would return something now.
    pub fn wants_to_send(&self) -> bool {
        self.rst_now
            || self.syn_due
            || self.ack_now
            || self.probe_now
            || self.fast_retransmit
            || (self.fin_queued
                && !self.fin_sent
                && self.unsent() == 0
                && self.state.synchronized())
            || (self.unsent() > 0 && self.state.synchronized() && self.usable_window() > 0)
    }

    /// Payload bytes a segment can carry: the MSS less the options every segment carries
    /// (RFC 6691: MSS counts no options), so full segments still fit the path's MTU.
    fn max_payload(&self) -> usize {
        let ts = if self.ts_ok { 12 } else { 0 };
        // The SACK blocks `header` will put on the segment: a pending D-SACK, then the
        // out-of-order ranges.
        let blocks = if self.sack_ok {
            (usize::from(self.dsack.is_some()) + self.ooo.range_count()).min(if self.ts_ok {
                3
            } else {
                4
            })
        } else {
            0
        };
        let sack = if blocks > 0 { 4 + 8 * blocks } else { 0 };
        self.snd_mss.saturating_sub(ts + sack).max(1)
    }

    /// The size of a full segment from the peer, for the every-second-segment ACK rule.
    fn peer_full_segment(&self) -> usize {
        (self.config.mss as usize)
            .saturating_sub(if self.ts_ok { 12 } else { 0 })
            .max(1)
    }

    fn send_space(&self) -> SendSpace {
        SendSpace {
            snd_una: self.snd_una,
            snd_nxt: self.snd_max,
            high_rxt: self.high_rxt.max(self.snd_una),
            mss: self.max_payload(),
            dupthresh: DUP_THRESH,
        }
    }

    fn usable_window(&self) -> usize {
        let by_peer = self.snd_wnd.saturating_sub(self.snd_nxt - self.snd_una);
        let in_flight = if self.sack_recovery {
            self.scoreboard.pipe(&self.send_space())
        } else {
            self.snd_nxt - self.snd_una
        };
        by_peer.min(self.cc.cwnd().saturating_sub(in_flight))
    }

    /// The next segment to send, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.rst_now {
            self.rst_now = false;
            let mut f = TcpFlags::default();
            f.set_rst(true);
            let seq = self.rst_seq.take().unwrap_or(self.snd_nxt);
            let mut h = self.header(seq, f, now);
            h.window_len = 0;
            h.sack_ranges = [None; 4];
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if self.state == State::Closed {
            return None;
        }
        if self.syn_due {
            self.syn_due = false;
            let mut f = TcpFlags::default();
            f.set_syn(true);
            if self.snd_max == self.iss {
                self.snd_max = self.iss + 1;
                self.snd_nxt = self.iss + 1;
                self.timed = Some((self.iss + 1, now));
            }
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
            let h = self.header(self.iss, f, now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if !self.state.synchronized() {
            if self.state == State::SynReceived && self.ack_now {
                // An unacceptable segment in SYN-RECEIVED is answered with an ACK.
                let h = self.header(self.snd_nxt, TcpFlags::default(), now);
                self.sent_ack();
                return Some(Transmit {
                    header: h,
                    offset: 0,
                    len: 0,
                });
            }
            return None;
        }
        if self.fast_retransmit {
            self.fast_retransmit = false;
            self.retransmitted = true;
            let len = self.send.len().min(self.max_payload());
            if len > 0 {
                let t = self.data_segment(self.snd_una, 0, len, now);
                return Some(t);
            }
        }
        if self.sack_recovery {
            let sp = self.send_space();
            let pipe = self.scoreboard.pipe(&sp);
            if self.cc.cwnd() >= pipe + sp.mss {
                if let Some(NextSeg::Retransmit { seq, len }) =
                    self.scoreboard.next_seg(&sp, false, false)
                {
                    let len = len
                        .min(sp.mss)
                        .min(self.send.len().saturating_sub(seq - self.snd_una));
                    if len > 0 {
                        self.high_rxt = seq + len;
                        self.retransmitted = true;
                        let offset = seq - self.snd_una;
                        return Some(self.data_segment(seq, offset, len, now));
                    }
                }
            }
        }
        // After a timeout SND.NXT is back below SND.MAX: skip what the peer SACKed. (Not
        // SND.UNA itself, which RFC 2018 §8 says MUST be resent: an ACK that leaves it
        // SACKed clears the scoreboard, see `process_ack`.)
        if self.sack_ok && self.snd_nxt < self.snd_max {
            for (left, right) in self.scoreboard.ranges() {
                if left <= self.snd_nxt && self.snd_nxt < right {
                    self.snd_nxt = right.min(self.snd_max);
                }
            }
        }
        // New data, as far as the windows and Nagle allow.
        let unsent = self.unsent();
        if unsent > 0 {
            let offset = self.sent_offset();
            let usable = self.usable_window();
            let max = self.max_payload();
            let len = unsent.min(max).min(usable);
            let full = len == max;
            let pushed = self.push_until > offset;
            let idle = self.snd_una == self.snd_nxt;
            // Nagle (RFC 1122 §4.2.3.4) and sender SWS avoidance: a short segment goes
            // when nothing is outstanding, or when it ends what was written and the
            // application asked to bypass Nagle (or Nagle is off).
            let nagle_ok = full || idle || (len == unsent && (pushed || !self.config.nagle));
            // With nothing in flight no ACK will come to open the window further, so what
            // fits goes (RFC 1122's override, without waiting for a timer).
            let sws_ok = full || len == unsent || len >= self.snd_wnd / 2 || idle;
            if len > 0 && nagle_ok && sws_ok {
                let seq = self.snd_nxt;
                return Some(self.data_segment(seq, offset, len, now));
            }
            self.arm_persist(now);
        }
        if self.fin_queued && !self.fin_sent && self.unsent() == 0 {
            self.fin_sent = true;
            let mut f = TcpFlags::default();
            f.set_fin(true);
            // The FIN's place is right after the data, whatever SND.NXT says.
            let seq = self.data_end();
            self.snd_nxt = seq + 1;
            if self.snd_max < self.snd_nxt {
                self.snd_max = self.snd_nxt;
            }
            self.state = match self.state {
                State::CloseWait => State::LastAck,
                State::Established => State::FinWait1,
                s => s,
            };
            if self.rto_at.is_none() {
                self.rto_at = Some(now + self.rtt.rto());
            }
            let h = self.header(seq, f, now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if self.probe_now {
            self.probe_now = false;
            if self.snd_wnd == 0 && self.unsent() > 0 {
                // A window probe: the next byte, beyond the window. It is real data (the
                // peer keeps it if its window has opened meanwhile), so it advances
                // SND.NXT; the retransmission timer takes over resending it.
                self.persist_backoff += 1;
                let offset = self.sent_offset();
                let seq = self.snd_nxt;
                return Some(self.data_segment(seq, offset, 1, now));
            }
            // A keepalive probe: an old sequence number, so the peer must answer.
            let h = self.header(before(self.snd_una, 1), TcpFlags::default(), now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if self.ack_now {
            // At SND.MAX, not SND.NXT: after a timeout SND.NXT goes back to SND.UNA to
            // resend, and an ACK numbered below what the peer has received is
            // unacceptable to it (RFC 9293 §3.10.7.4), ACK field and all. Two ends both
            // resending after timeouts then drop each other's every ACK until they give
            // up (seen at 20 % loss on the simulated link). Linux's pure ACKs carry its
            // highest sequence sent likewise.
            let h = self.header(self.snd_max, TcpFlags::default(), now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        None
    }

    fn data_segment(
        &mut self,
        seq: SeqNumber,
        offset: usize,
        len: usize,
        now: Instant,
    ) -> Transmit {
        let mut f = TcpFlags::default();
        let end = seq + len;
        if offset + len == self.send.len() {
            f.set_psh(true);
        }
        if end > self.snd_nxt {
            self.snd_nxt = end;
        }
        if seq < self.snd_max {
            self.stats.retransmits += 1;
            if let Some(u) = self.undo.as_mut() {
                u.resent.get_or_insert((seq, end));
            }
        }
        if end > self.snd_max {
            self.snd_max = end;
            if self.timed.is_none() && !self.retransmitted {
                self.timed = Some((end, now));
            }
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        let h = self.header(seq, f, now);
        self.sent_ack();
        Transmit {
            header: h,
            offset,
            len,
        }
    }

    /// Copies the payload of `t` into `dst` (which must be `t.payload_len()` long).
    pub fn write_payload(&self, t: &Transmit, dst: &mut [u8]) {
        self.send.copy_out(t.offset, &mut dst[..t.len]);
    }
}

fn before(s: SeqNumber, n: u32) -> SeqNumber {
    SeqNumber(s.0.wrapping_sub(n))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod transitions;
