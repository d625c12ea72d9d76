//! The overload generator's clients: one-query DNS-over-TCP connection attempts, and a
//! few persistent connections beside them, all templated (conn-cost's `client`
//! frames), over one AF_XDP socket or the link of an in-memory device ([`Port`]).
//!
//! An attempt is a record in a ring, in the order attempts start: SYN; on the SYN-ACK,
//! ACK with the query; on the answer, FIN; on the server's FIN, its ACK. An attempt
//! that gets nothing costs its 48-byte record and the SYN: no timer, no
//! retransmission (a SYN-ACK, answer or FIN the server sends again is answered again).
//! Attempts older than the timeout are given up as the ring's cursor passes them, so
//! that giving up is O(1) per attempt whatever the rate. Each attempt uses its own
//! 4-tuple: `SOURCES` source addresses times the ports from 32768 to 57343, 6.3
//! million, before the first comes back (a second or more at the highest rates offered
//! on the in-memory device, where what the server admits is over within milliseconds);
//! consecutive attempts come from different addresses. The capacity measurements use
//! the ports above, 2.1 million tuples ([`Generator::reference`]).
//!
//! A server segment for a connection the generator no longer has (given up, or
//! ended) is answered with a reset, as a client's kernel does: the server's state for
//! it goes, instead of lingering through its retransmissions.
//!
//! The persistent connections ask one query at a time, closed loop, and resend a query
//! unanswered for 200 ms (a real client's retransmission): their answer rate is what
//! established traffic keeps while new connections flood in.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use hdrhistogram::Histogram;
use stack::MemoryLink;
use xsk::{RxAction, XskSocket};

use crate::client::{emit, AnswerStream, Outgoing, Segment, ACK, FIN, PSH, RST, SYN};

/// The attempts' source addresses: `SOURCE_BASE` and the `SOURCES - 1` after it.
pub const SOURCE_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 0);
pub const SOURCES: u32 = 256;
/// The persistent connections' source address.
pub const PERSISTENT_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 18, 66, 1);
const FIRST_PORT: u16 = 32768;
const PORTS: u32 = 65536 - FIRST_PORT as u32;
/// Tuples, 2^23: the load's, and after them the capacity measurements' (ports from
/// 57344), which never meet what the load left on the server (a connection it still
/// holds on a tuple the load used and gave up). Each a multiple of `RING`, so that a
/// tuple's record is always at the slot the attempt that uses it was given (`who` maps
/// an answer back by the tuple).
const TUPLES: u32 = SOURCES * PORTS;
const REFERENCE_TUPLES: u32 = RING as u32;
const LOAD_TUPLES: u32 = TUPLES - REFERENCE_TUPLES;
/// Records in the ring: attempts in flight (rate times timeout), and held connections,
/// at most. Past that (over 2.1 million attempts a second with the 1 s timeout, the
/// in-memory device at 10x) the oldest attempt is given up early, when its record is
/// needed: sooner than the timeout, never later.
pub const RING: usize = 1 << 21;
const _: () = assert!((LOAD_TUPLES as usize).is_multiple_of(RING));
const _: () = assert!((REFERENCE_TUPLES as usize).is_multiple_of(RING));
/// Resets waiting to be sent at most.
const MAX_RESETS: usize = 65536;
/// A persistent connection's query is sent again after this long unanswered.
const RESEND_US: u64 = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    SynSent,
    Querying,
    Closing,
    /// Answered and kept open, idle (`Generator::hold`).
    Held,
}

/// Where the generator's frames go and come from.
pub trait Port {
    /// Hands up to `max` received frames to `handle`; returns how many.
    fn receive(&mut self, max: usize, handle: impl FnMut(&[u8])) -> usize;
    /// Builds one frame to send; false when there is no room now.
    fn transmit(&mut self, build: impl FnOnce(&mut [u8]) -> usize) -> bool;
    /// After a batch (`sent` frames built): hands them over and takes buffers back.
    fn flush(&mut self, sent: usize);
    /// Frames lost on the generator's own receive side so far (then the generator, not
    /// the server, lost them).
    fn own_drops(&self) -> u64;
}

impl Port for XskSocket {
    fn receive(&mut self, max: usize, mut handle: impl FnMut(&[u8])) -> usize {
        self.recv(max as u32, |frame| {
            handle(frame);
            RxAction::Recycle
        }) as usize
    }
    fn transmit(&mut self, build: impl FnOnce(&mut [u8]) -> usize) -> bool {
        self.transmit_with(build)
    }
    fn flush(&mut self, sent: usize) {
        // Also with nothing new: frames a full device left in the ring go when it drains.
        if sent > 0 || self.tx_backlog() > 0 {
            let _ = XskSocket::flush(self);
        }
        self.reclaim();
        self.refill();
    }
    fn own_drops(&self) -> u64 {
        self.kernel_stats()
            .map_or(0, |k| k.rx_ring_full + k.rx_fill_ring_empty)
    }
}

impl Port for MemoryLink {
    fn receive(&mut self, max: usize, handle: impl FnMut(&[u8])) -> usize {
        self.recv(max, handle)
    }
    fn transmit(&mut self, build: impl FnOnce(&mut [u8]) -> usize) -> bool {
        self.send_with(build)
    }
    fn flush(&mut self, sent: usize) {
        if sent > 0 {
            MemoryLink::flush(self);
        }
    }
    fn own_drops(&self) -> u64 {
        // The worker's sending side waits for room: nothing is lost towards us.
        0
    }
}

/// What a connection has to send next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    Syn,
    Query,
    Fin,
    /// Our FIN after the server's: it acknowledges theirs and ends the connection.
    FinLast,
    /// The ACK of the server's FIN, which ends the connection.
    LastAck,
    /// An ACK of what the server sent (an answer, on a held connection).
    Ack,
}

/// One connection's record.
#[derive(Clone, Copy, Debug)]
struct Conn {
    state: State,
    /// Its tuple (for an attempt) or index (for a persistent connection).
    id: u32,
    started_us: u64,
    /// When its query left (persistent: for the resend).
    asked_us: u64,
    /// A persistent connection answered, waiting for the time of its next query.
    paused: bool,
    /// Our initial sequence number; a persistent connection moves it past each
    /// answered query, so that the query it sends is always at `iss + 1`.
    iss: u32,
    ack: u32,
    ts_recent: u32,
    answers: AnswerStream,
    out: Option<Out>,
}

impl Conn {
    const FREE: Conn = Conn {
        state: State::Free,
        id: u32::MAX,
        started_us: 0,
        asked_us: 0,
        paused: false,
        iss: 0,
        ack: 0,
        ts_recent: 0,
        answers: AnswerStream::ZERO,
        out: None,
    };
}

/// Who a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Attempt(usize),
    Persistent(usize),
}

/// What happened, since the last [`Generator::take_tally`].
#[derive(Debug)]
pub struct Tally {
    /// Attempts started (their SYN sent).
    pub started: u64,
    /// Attempts answered.
    pub answered: u64,
    /// Attempts given up (no answer within the timeout).
    pub given_up: u64,
    /// Attempts the server reset.
    pub reset: u64,
    /// Answers to the persistent connections.
    pub persistent_answers: u64,
    /// Frames that matched no connection or state.
    pub strays: u64,
    /// Of those, the ones answered with a reset (their connection had ended here).
    pub resets_sent: u64,
    /// Frames from the server for anything but the persistent connections: while the
    /// load is paused, the server still busy with what it left.
    pub load_frames: u64,
    /// Attempts answered and kept open (`Generator::hold`).
    pub held: u64,
    /// Held connections the server closed.
    pub held_closed: u64,
    /// SYN to answer, microseconds, of the attempts answered.
    pub latency: Histogram<u64>,
    /// Query (or its last resend) to answer, microseconds, on the persistent
    /// connections: closed loop at their pace, their rate falls once this passes it.
    pub persistent_latency: Histogram<u64>,
    /// Persistent SYNs and queries sent again, unanswered for 200 ms.
    pub persistent_resends: u64,
}

impl Tally {
    /// Adds what happened to the attempts (not the persistent connections) in `other`:
    /// the end of a load's attempts, after it stopped starting them.
    pub fn add_attempts(&mut self, other: &Tally) {
        self.started += other.started;
        self.answered += other.answered;
        self.given_up += other.given_up;
        self.reset += other.reset;
        self.strays += other.strays;
        self.resets_sent += other.resets_sent;
        self.load_frames += other.load_frames;
        // Histograms of the same bounds: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Adds what happened in a later slice of the same load.
    pub fn add(&mut self, other: &Tally) {
        self.add_attempts(other);
        self.persistent_answers += other.persistent_answers;
        self.held += other.held;
        self.held_closed += other.held_closed;
        let _ = self.persistent_latency.add(&other.persistent_latency);
        self.persistent_resends += other.persistent_resends;
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            started: 0,
            answered: 0,
            given_up: 0,
            reset: 0,
            persistent_answers: 0,
            strays: 0,
            resets_sent: 0,
            load_frames: 0,
            held: 0,
            held_closed: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            persistent_latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            persistent_resends: 0,
        }
    }
}

/// Every connection, the socket they share, and what is due to be sent.
pub struct Generator {
    ring: Vec<Conn>,
    /// The next tuple to use, and the oldest attempt that may still be in flight.
    next: u64,
    oldest: u64,
    in_flight: usize,
    persistent: Vec<Conn>,
    /// Replies due (to the server's segments, and persistent queries), sent before any
    /// new attempt's SYN: an admitted connection must not wait behind the flood.
    due: VecDeque<Who>,
    /// New attempts whose SYN is due.
    syns: VecDeque<Who>,
    /// Resets due, for segments to connections we no longer have (tuple, seq, ack,
    /// flags), sent first.
    resets: VecDeque<(Ipv4Addr, u16, u32, u32, u8)>,
    server_mac: [u8; 6],
    /// A query's DNS-over-TCP framing.
    query: Vec<u8>,
    timeout_us: u64,
    /// A persistent connection's queries are this far apart at least.
    persistent_interval_us: u64,
    ts_now: u32,
    now_us: u64,
    next_iss: u32,
    /// Answered attempts stay open, idle, instead of closing.
    pub hold: bool,
    /// New attempts measure the capacity: they use tuples of their own.
    pub reference: bool,
    pub tally: Tally,
}

impl Generator {
    /// Attempts at the server (`client::SERVER_IP` port 53, its MAC `server_mac`)
    /// asking `query` (a DNS message), given up after `timeout_us`; `persistent`
    /// persistent connections.
    pub fn new(
        server_mac: [u8; 6],
        query: &[u8],
        timeout_us: u64,
        persistent: usize,
        persistent_interval_us: u64,
    ) -> Generator {
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        let persistent = (0..persistent.min(PORTS as usize))
            .map(|i| Conn {
                id: i as u32,
                ..Conn::FREE
            })
            .collect();
        Generator {
            ring: vec![Conn::FREE; RING],
            next: 0,
            oldest: 0,
            in_flight: 0,
            persistent,
            due: VecDeque::new(),
            syns: VecDeque::new(),
            resets: VecDeque::new(),
            server_mac,
            query: framed,
            timeout_us,
            persistent_interval_us,
            ts_now: 1,
            now_us: 0,
            next_iss: 0x2000_0000,
            hold: false,
            reference: false,
            tally: Tally::default(),
        }
    }

    /// What happened since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// How long an attempt is waited for before it is given up.
    pub fn timeout_us(&self) -> u64 {
        self.timeout_us
    }

    /// Sets how long new and current attempts are waited for.
    pub fn set_timeout_us(&mut self, us: u64) {
        self.timeout_us = us;
    }

    /// Attempts in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Attempts whose SYN waits for room in the socket.
    pub fn backlog(&self) -> usize {
        self.syns.len()
    }

    /// Moves the clock to `now_us` (microseconds from any fixed start), gives up the
    /// attempts that are too old, and resends persistent queries left unanswered.
    pub fn set_time(&mut self, now_us: u64) {
        self.now_us = now_us;
        self.ts_now = (now_us / 1000) as u32 + 1;
        while self.oldest < self.next {
            let slot = (self.oldest % RING as u64) as usize;
            let c = &self.ring[slot];
            if c.state != State::Free && c.state != State::Held {
                if now_us.saturating_sub(c.started_us) < self.timeout_us {
                    break;
                }
                // One closing was answered: only its end went missing; one whose SYN
                // never left was not offered.
                self.tally.given_up +=
                    u64::from(c.state != State::Closing && c.out != Some(Out::Syn));
                self.free(slot);
            }
            self.oldest += 1;
        }
        for i in 0..self.persistent.len() {
            let c = &self.persistent[i];
            match c.state {
                State::Free => self.connect_persistent(i),
                State::Querying
                    if c.paused && now_us >= c.asked_us + self.persistent_interval_us =>
                {
                    let c = &mut self.persistent[i];
                    c.paused = false;
                    c.asked_us = now_us;
                    self.queue(Who::Persistent(i), Out::Query);
                }
                State::SynSent | State::Querying
                    if !c.paused
                        && c.out.is_none()
                        && now_us.saturating_sub(c.asked_us) > RESEND_US =>
                {
                    // The SYN or the query (or its answer) was lost: again.
                    let out = if c.state == State::SynSent {
                        Out::Syn
                    } else {
                        Out::Query
                    };
                    self.persistent[i].asked_us = now_us;
                    self.tally.persistent_resends += 1;
                    self.queue(Who::Persistent(i), out);
                }
                _ => {}
            }
        }
    }

    /// Starts `n` attempts (their SYNs go out with the next [`Generator::pump`]).
    pub fn start(&mut self, n: usize) {
        for _ in 0..n {
            let tuple = if self.reference {
                LOAD_TUPLES + (self.next % u64::from(REFERENCE_TUPLES)) as u32
            } else {
                (self.next % u64::from(LOAD_TUPLES)) as u32
            };
            let slot = (self.next % RING as u64) as usize;
            self.next += 1;
            if self.ring[slot].state != State::Free {
                // More in flight than the ring holds: the oldest goes.
                let c = &self.ring[slot];
                self.tally.given_up += u64::from(
                    !matches!(c.state, State::Closing | State::Held) && c.out != Some(Out::Syn),
                );
                self.free(slot);
            }
            self.next_iss = self.next_iss.wrapping_add(0x0001_0003);
            self.ring[slot] = Conn {
                state: State::SynSent,
                id: tuple,
                started_us: self.now_us,
                asked_us: self.now_us,
                iss: self.next_iss,
                ..Conn::FREE
            };
            self.in_flight += 1;
            self.ring[slot].out = Some(Out::Syn);
            self.syns.push_back(Who::Attempt(slot));
        }
    }

    fn connect_persistent(&mut self, i: usize) {
        self.next_iss = self.next_iss.wrapping_add(0x0001_0003);
        self.persistent[i] = Conn {
            state: State::SynSent,
            id: i as u32,
            started_us: self.now_us,
            asked_us: self.now_us,
            iss: self.next_iss,
            ..Conn::FREE
        };
        self.queue(Who::Persistent(i), Out::Syn);
    }

    fn free(&mut self, slot: usize) {
        if !matches!(self.ring[slot].state, State::Free | State::Held) {
            self.in_flight -= 1;
        }
        self.ring[slot] = Conn::FREE;
    }

    fn conn(&mut self, who: Who) -> &mut Conn {
        match who {
            Who::Attempt(s) => &mut self.ring[s],
            Who::Persistent(i) => &mut self.persistent[i],
        }
    }

    fn queue(&mut self, who: Who, out: Out) {
        let c = self.conn(who);
        let was = c.out.replace(out);
        if was.is_none() {
            self.due.push_back(who);
        }
    }

    /// The source address and port of a connection.
    fn tuple_of(&self, who: Who) -> (Ipv4Addr, u16) {
        match who {
            Who::Attempt(s) => {
                let t = self.ring[s].id;
                // Consecutive attempts from different sources: the server's per-source
                // limit sees the load spread, as from many clients.
                (
                    Ipv4Addr::from(u32::from(SOURCE_BASE) + t % SOURCES),
                    FIRST_PORT + (t / SOURCES) as u16,
                )
            }
            Who::Persistent(i) => (PERSISTENT_SOURCE, FIRST_PORT + i as u16),
        }
    }

    /// The connection a server segment to `ip:port` is for.
    fn who(&self, ip: Ipv4Addr, port: u16) -> Option<Who> {
        let port_index = u32::from(port.checked_sub(FIRST_PORT)?);
        if ip == PERSISTENT_SOURCE {
            let i = port_index as usize;
            return (i < self.persistent.len()).then_some(Who::Persistent(i));
        }
        let source = u32::from(ip).checked_sub(u32::from(SOURCE_BASE))?;
        if source >= SOURCES {
            return None;
        }
        let tuple = port_index * SOURCES + source;
        // The attempt that has it is the latest to use it: at most one in the ring.
        let slot = (tuple as usize) % RING;
        let c = &self.ring[slot];
        (c.state != State::Free && c.id == tuple).then_some(Who::Attempt(slot))
    }

    /// Answers a segment for a connection of ours that is gone with a reset (RFC 9293
    /// 3.10.7.1: seq from its ACK, or an ACK of it), as a client's kernel would; resets
    /// past a bound are not sent (a kernel limits them too).
    fn reset(&mut self, seg: &Segment) {
        let ours = seg.dst_ip == PERSISTENT_SOURCE
            || u32::from(seg.dst_ip).wrapping_sub(u32::from(SOURCE_BASE)) < SOURCES;
        if !ours || seg.flags & RST != 0 || self.resets.len() >= MAX_RESETS {
            return;
        }
        let (seq, ack, flags) = if seg.flags & ACK != 0 {
            (seg.ack, 0, RST)
        } else {
            let len = seg.payload.len() as u32 + u32::from(seg.flags & (SYN | FIN) != 0);
            (0, seg.seq.wrapping_add(len), RST | ACK)
        };
        self.resets
            .push_back((seg.dst_ip, seg.dst_port, seq, ack, flags));
    }

    /// Receives what the server sent, sends what is due (as much as the socket
    /// takes), kicks. Returns frames received and sent.
    pub fn pump(&mut self, sock: &mut impl Port) -> (usize, usize) {
        let mut got = 0;
        loop {
            let n = sock.receive(256, |frame| self.on_frame(frame));
            got += n;
            if n < 256 {
                break;
            }
        }
        let mut sent = 0;
        let mut full = false;
        while let Some(&(ip, port, seq, ack, flags)) = self.resets.front() {
            let segment = Outgoing {
                ip,
                port,
                seq,
                ack,
                ts_recent: 0,
                flags,
                ts_now: self.ts_now,
                payload: &[],
            };
            if !sock.transmit(|buf| emit(buf, &self.server_mac, &segment)) {
                full = true;
                break;
            }
            self.resets.pop_front();
            self.tally.resets_sent += 1;
            sent += 1;
        }
        for syns in [false, true] {
            while !full {
                let queue = if syns { &mut self.syns } else { &mut self.due };
                let Some(&who) = queue.front() else {
                    break;
                };
                let Some(out) = self.conn(who).out else {
                    // Given up, or sent from the other queue.
                    let queue = if syns { &mut self.syns } else { &mut self.due };
                    queue.pop_front();
                    continue;
                };
                if !self.send(sock, who, out) {
                    full = true;
                    break;
                }
                let queue = if syns { &mut self.syns } else { &mut self.due };
                queue.pop_front();
                self.conn(who).out = None;
                sent += 1;
                if out == Out::Syn && syns {
                    // Its time runs from the SYN's departure.
                    self.tally.started += 1;
                    let now = self.now_us;
                    let c = self.conn(who);
                    c.started_us = now;
                    c.asked_us = now;
                }
                if matches!(out, Out::LastAck | Out::FinLast) {
                    match who {
                        Who::Attempt(s) => self.free(s),
                        Who::Persistent(i) => self.connect_persistent(i),
                    }
                }
            }
        }
        sock.flush(sent);
        (got, sent)
    }

    fn send(&mut self, sock: &mut impl Port, who: Who, out: Out) -> bool {
        let (ip, port) = self.tuple_of(who);
        let server_mac = self.server_mac;
        let ts_now = self.ts_now;
        let query = std::mem::take(&mut self.query);
        let c = self.conn(who);
        let (flags, payload, seq): (u8, &[u8], u32) = match out {
            Out::Syn => (SYN, &[], c.iss),
            // Always from the query's first byte: a resend is the same segment.
            Out::Query => (ACK | PSH, &query, c.iss.wrapping_add(1)),
            Out::Ack => (ACK, &[], c.iss.wrapping_add(1 + query.len() as u32)),
            Out::Fin | Out::FinLast | Out::LastAck => (
                ACK | if out == Out::LastAck { 0 } else { FIN },
                &[],
                c.iss
                    .wrapping_add(1 + query.len() as u32)
                    .wrapping_add(u32::from(out == Out::LastAck)),
            ),
        };
        let segment = Outgoing {
            ip,
            port,
            seq,
            ack: c.ack,
            ts_recent: c.ts_recent,
            flags,
            ts_now,
            payload,
        };
        let ok = sock.transmit(|buf| emit(buf, &server_mac, &segment));
        self.query = query;
        ok
    }

    fn on_frame(&mut self, frame: &[u8]) {
        let Some(seg) = Segment::parse(frame) else {
            self.tally.strays += 1;
            self.tally.load_frames += 1;
            return;
        };
        let Some(who) = self.who(seg.dst_ip, seg.dst_port) else {
            self.tally.strays += 1;
            self.tally.load_frames += 1;
            self.reset(&seg);
            return;
        };
        if let Who::Attempt(_) = who {
            self.tally.load_frames += 1;
        }
        if seg.flags & RST != 0 {
            match who {
                Who::Attempt(s) => {
                    if self.ring[s].state == State::Held {
                        self.tally.held_closed += 1;
                    } else {
                        self.tally.reset += 1;
                    }
                    self.free(s);
                }
                Who::Persistent(i) => self.connect_persistent(i),
            }
            return;
        }
        let now = self.now_us;
        let query_len = self.query.len() as u32;
        let c = self.conn(who);
        if let Some(ts) = seg.tsval {
            c.ts_recent = ts;
        }
        let syn_ack = seg.flags & (SYN | ACK) == SYN | ACK;
        match c.state {
            State::SynSent | State::Querying if syn_ack => {
                // The first SYN-ACK, or the server's again (our ACK and query were
                // lost): the query, from its first byte.
                c.ack = seg.seq.wrapping_add(1);
                if c.state == State::SynSent {
                    c.answers = AnswerStream::default();
                }
                c.state = State::Querying;
                c.asked_us = now;
                self.queue(who, Out::Query);
            }
            State::Held if seg.flags & FIN != 0 => {
                // The server closed a held connection (its idle timeout, an eviction).
                c.ack = seg.seq.wrapping_add(seg.payload.len() as u32 + 1);
                c.state = State::Closing;
                self.tally.held_closed += 1;
                self.in_flight += 1;
                self.queue(who, Out::FinLast);
            }
            // The answer again (our ACK was lost): acknowledged again.
            State::Held if !seg.payload.is_empty() => self.queue(who, Out::Ack),
            State::Held => {}
            State::Querying | State::Closing if !syn_ack => {
                let fin = seg.flags & FIN != 0;
                // Only what continues the stream counts; a retransmission of what we
                // had is acknowledged again by what we send next.
                let fresh = seg.seq == c.ack;
                if fresh {
                    c.ack = c
                        .ack
                        .wrapping_add(seg.payload.len() as u32 + u32::from(fin));
                } else if !fin && seg.payload.is_empty() {
                    // A bare ACK (of our query or FIN): nothing to do.
                    return;
                }
                let answers = if fresh {
                    c.answers.count(seg.payload)
                } else {
                    0
                };
                let (state, started, asked) = (c.state, c.started_us, c.asked_us);
                if state == State::Closing {
                    if fresh && fin {
                        self.queue(who, Out::LastAck);
                    } else if !fresh {
                        // The server sent again what we had: our FIN again.
                        self.queue(who, Out::Fin);
                    }
                    return;
                }
                if answers > 0 {
                    match who {
                        Who::Attempt(_) => {
                            self.tally.answered += 1;
                            let _ = self
                                .tally
                                .latency
                                .record(now.saturating_sub(started).max(1));
                        }
                        Who::Persistent(_) => {
                            self.tally.persistent_answers += answers as u64;
                            let _ = self
                                .tally
                                .persistent_latency
                                .record(now.saturating_sub(asked).max(1));
                        }
                    }
                }
                let persistent = matches!(who, Who::Persistent(_));
                if fin {
                    // Closed by the server (after its answer, in its overload mode, or
                    // before): our FIN ends it.
                    self.conn(who).state = State::Closing;
                    self.queue(who, Out::FinLast);
                } else if answers > 0 && !persistent && self.hold {
                    self.tally.held += 1;
                    self.in_flight -= 1;
                    self.conn(who).state = State::Held;
                    // The answer acknowledged, or the server would keep resending it.
                    self.queue(who, Out::Ack);
                } else if answers > 0 && !persistent {
                    self.conn(who).state = State::Closing;
                    self.queue(who, Out::Fin);
                } else if answers > 0 {
                    // The next query continues the stream, at its time (`set_time`).
                    let c = self.conn(who);
                    c.iss = c.iss.wrapping_add(query_len);
                    c.paused = true;
                }
            }
            _ => self.tally.strays += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_map_back_to_their_attempt() {
        let mut g = Generator::new([0; 6], &[0; 12], 1_000_000, 2, 1000);
        g.set_time(1);
        g.start(3);
        for s in 0..3 {
            let (ip, port) = g.tuple_of(Who::Attempt(s));
            assert_eq!(g.who(ip, port), Some(Who::Attempt(s)));
        }
        assert_eq!(
            g.who(PERSISTENT_SOURCE, FIRST_PORT + 1),
            Some(Who::Persistent(1))
        );
        assert_eq!(g.who(PERSISTENT_SOURCE, FIRST_PORT + 2), None);
        assert_eq!(g.who(Ipv4Addr::new(198, 18, 0, 2), 2000), None);
        assert_eq!(g.in_flight(), 3);
        // Past the timeout, the cursor frees them; their SYNs never left (no socket
        // here), so they were not offered and are not counted as given up.
        g.set_time(1_000_002);
        assert_eq!((g.in_flight(), g.tally.given_up), (0, 0));
    }

    #[test]
    fn capacity_measurements_use_tuples_the_load_never_does() {
        let mut g = Generator::new([0; 6], &[0; 12], 1_000_000, 0, 1000);
        g.set_time(1);
        // The load's last tuple, then the measurement's first ones: each maps back to
        // its own slot, the measurement's on ports above the load's.
        g.next = u64::from(LOAD_TUPLES) - 1;
        g.start(1);
        g.reference = true;
        g.start(2);
        let load = (g.next as usize - 3) % RING;
        let (_, load_port) = g.tuple_of(Who::Attempt(load));
        assert_eq!(load_port, 57343);
        for s in [(load + 1) % RING, (load + 2) % RING] {
            let (ip, port) = g.tuple_of(Who::Attempt(s));
            assert!(port >= 57344, "{port}");
            assert_eq!(g.who(ip, port), Some(Who::Attempt(s)));
        }
        assert_eq!(g.who(SOURCE_BASE, 65535), None, "no attempt has it yet");
    }
}
