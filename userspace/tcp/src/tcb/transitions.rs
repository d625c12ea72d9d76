//! The RFC 9293 state diagram, transition by transition, in the manner of smoltcp's
//! socket tests: a scripted peer sends hand-written segments and every segment the
//! connection sends back is checked field by field, with the state after each step.
//! Times are virtual; no other connection is involved.

use super::*;
use core::net::Ipv4Addr;

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 49152);
/// Our ISS and the peer's.
const ISS: u32 = 10_000;
const IRS: u32 = 90_000;

/// A segment as the tests write it: numbers absolute, flags spelled out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    len: usize,
    window: u16,
}

fn seg(seq: u32, ack: Option<u32>) -> Seg {
    Seg {
        seq,
        ack,
        syn: false,
        fin: false,
        rst: false,
        len: 0,
        window: 8192,
    }
}

impl Seg {
    fn syn(mut self) -> Seg {
        self.syn = true;
        self
    }
    fn fin(mut self) -> Seg {
        self.fin = true;
        self
    }
    fn rst(mut self) -> Seg {
        self.rst = true;
        self
    }
    fn len(mut self, n: usize) -> Seg {
        self.len = n;
        self
    }
}

/// The connection under test, the clock, and what it has said.
struct Rig {
    t: Tcb,
    now: Instant,
    payload: [u8; 2048],
}

/// Plain segments: no options beyond what a test adds, so every field is predictable.
fn plain() -> Config {
    Config {
        timestamps: false,
        sack: false,
        window_scale: None,
        mss: 1000,
        recv_buffer: 8192,
        send_buffer: 8192,
        time_wait: Duration::from_secs(60),
        ..Config::default()
    }
}

impl Rig {
    fn connect() -> Rig {
        Rig::connect_with(plain())
    }

    fn connect_with(config: Config) -> Rig {
        let now = Instant::from_secs(1);
        Rig {
            t: Tcb::connect(config, LOCAL, REMOTE, SeqNumber(ISS), now),
            now,
            payload: [7; 2048],
        }
    }

    /// An active open whose SYN crossed the peer's: in SYN-RECEIVED, our SYN-ACK sent.
    fn simultaneous_open_with(config: Config) -> Rig {
        let mut r = Rig::connect_with(config);
        r.expect(seg(ISS, None).syn());
        r.recv(seg(IRS, None).syn());
        assert_eq!(r.t.state(), State::SynReceived);
        r.expect(seg(ISS, Some(IRS + 1)).syn());
        r
    }

    fn accept() -> Rig {
        let now = Instant::from_secs(1);
        let syn = repr(&seg(IRS, None).syn(), &[]);
        let r = Rig {
            t: Tcb::accept(plain(), LOCAL, REMOTE, &syn, SeqNumber(ISS), now),
            now,
            payload: [7; 2048],
        };
        assert_eq!(r.t.state(), State::SynReceived);
        r
    }

    /// An established connection, by an active open.
    fn established() -> Rig {
        Rig::established_with(plain())
    }

    fn established_with(config: Config) -> Rig {
        let mut r = Rig::connect_with(config);
        r.expect(seg(ISS, None).syn());
        r.recv(seg(IRS, Some(ISS + 1)).syn());
        r.expect(seg(ISS + 1, Some(IRS + 1)));
        assert_eq!(r.t.state(), State::Established);
        r.events();
        r
    }

    fn recv(&mut self, s: Seg) {
        let payload = self.payload;
        let r = repr(&s, &payload[..s.len]);
        self.t.on_segment(&r, self.now);
    }

    /// The next segment out must be `want` (sequence, ACK, flags, payload length; the
    /// window is checked only when the test gives one other than the default).
    fn expect(&mut self, want: Seg) {
        let got = self
            .next()
            .unwrap_or_else(|| panic!("expected {want:?}, got nothing"));
        let got = if want.window == 8192 {
            Seg {
                window: 8192,
                ..got
            }
        } else {
            got
        };
        assert_eq!(got, want, "in state {:?}", self.t.state());
    }

    fn expect_nothing(&mut self) {
        if let Some(s) = self.next() {
            panic!("expected nothing, got {s:?} in state {:?}", self.t.state());
        }
    }

    fn next(&mut self) -> Option<Seg> {
        let x = self.t.poll_transmit(self.now)?;
        let h = x.header();
        Some(Seg {
            seq: h.seq_number,
            ack: h.ack_number,
            syn: h.flags.syn(),
            fin: h.flags.fin(),
            rst: h.flags.rst(),
            len: x.payload_len(),
            window: h.window_len,
        })
    }

    /// Lets time pass to `at` seconds after the start, running due timers.
    fn at(&mut self, secs: f64) {
        self.now = Instant::from_micros(1_000_000 + (secs * 1e6) as u64);
        if self.t.poll_timeout().is_some_and(|d| d <= self.now) {
            self.t.on_timeout(self.now);
        }
    }

    fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.t.poll_event() {
            v.push(e);
        }
        v
    }
}

fn repr<'a>(s: &Seg, payload: &'a [u8]) -> TcpRepr<'a> {
    let mut flags = TcpFlags::default();
    flags.set_syn(s.syn);
    flags.set_fin(s.fin);
    flags.set_rst(s.rst);
    flags.set_ack(s.ack.is_some());
    TcpRepr {
        src_port: REMOTE.port(),
        dst_port: LOCAL.port(),
        seq_number: s.seq,
        ack_number: s.ack,
        flags,
        window_len: s.window,
        max_seg_size: s.syn.then_some(1000),
        payload,
        ..TcpRepr::default()
    }
}

// ---- opening ----

#[test]
fn closed_to_syn_sent_to_established() {
    let mut r = Rig::connect();
    assert_eq!(r.t.state(), State::SynSent);
    r.expect(seg(ISS, None).syn());
    r.expect_nothing();
    r.recv(seg(IRS, Some(ISS + 1)).syn());
    assert_eq!(r.t.state(), State::Established);
    r.expect(seg(ISS + 1, Some(IRS + 1)));
    assert_eq!(r.events(), vec![Event::Connected]);
}

#[test]
fn listen_to_syn_received_to_established() {
    let mut r = Rig::accept();
    r.expect(seg(ISS, Some(IRS + 1)).syn());
    r.recv(seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(r.t.state(), State::Established);
    assert_eq!(r.events(), vec![Event::Connected]);
    r.expect_nothing();
}

#[test]
fn simultaneous_open() {
    // Their SYN crosses ours: SYN-RECEIVED, and a SYN-ACK.
    let mut r = Rig::simultaneous_open_with(plain());
    // Their SYN-ACK (the answer to our SYN) completes it.
    r.recv(seg(IRS, Some(ISS + 1)).syn());
    r.recv(seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(r.t.state(), State::Established);
    assert!(r.events().contains(&Event::Connected));
}

#[test]
fn syn_sent_refused_by_rst() {
    let mut r = Rig::connect();
    r.expect(seg(ISS, None).syn());
    // A RST that does not acknowledge our SYN is ignored...
    r.recv(seg(0, Some(ISS + 5)).rst());
    assert_eq!(r.t.state(), State::SynSent);
    // ...one that does refuses the connection.
    r.recv(seg(0, Some(ISS + 1)).rst());
    assert_eq!(r.t.state(), State::Closed);
    assert_eq!(r.events(), vec![Event::Closed(CloseReason::Refused)]);
    r.expect_nothing();
}

/// In SYN-SENT, an ACK of something we never sent: RFC 9293's <SEQ=SEG.ACK><CTL=RST>.
fn bad_ack_gets_a_reset(r: &mut Rig) {
    r.recv(seg(IRS, Some(ISS + 77)));
    r.expect(Seg {
        window: 0,
        ..seg(ISS + 77, None).rst()
    });
}

#[test]
fn syn_sent_answers_a_bad_ack_with_rst() {
    let mut r = Rig::connect();
    r.expect(seg(ISS, None).syn());
    bad_ack_gets_a_reset(&mut r);
    assert_eq!(r.t.state(), State::SynSent);
}

#[test]
fn syn_sent_resends_the_syn_soon_after_resetting_a_bad_ack_once() {
    let mut r = Rig::connect();
    r.expect(seg(ISS, None).syn());
    // A challenge ACK from a server's TIME-WAIT: our RST clears it, the SYN follows.
    bad_ack_gets_a_reset(&mut r);
    r.at(0.004);
    r.expect_nothing();
    r.at(0.005);
    r.expect(seg(ISS, None).syn());
    // A second one waits for the backed-off RTO: bogus ACKs cannot speed our SYNs up.
    bad_ack_gets_a_reset(&mut r);
    r.at(2.004);
    r.expect_nothing();
    r.at(2.005);
    r.expect(seg(ISS, None).syn());
    assert_eq!(r.t.stats().timeouts, 2);
}

#[test]
fn syn_received_reset_by_the_peer_closes_quietly() {
    let mut r = Rig::accept();
    r.expect(seg(ISS, Some(IRS + 1)).syn());
    r.recv(seg(IRS + 1, None).rst());
    assert_eq!(r.t.state(), State::Closed);
    // Reset by the peer before the application saw it (the stack, which hands a
    // connection over only once it is established, forgets it).
    assert_eq!(r.events(), vec![Event::Closed(CloseReason::Reset)]);
}

#[test]
fn a_simultaneous_open_reset_by_the_peer_is_refused() {
    let mut r = Rig::simultaneous_open_with(plain());
    r.recv(seg(IRS + 1, None).rst());
    assert_eq!(r.t.state(), State::Closed);
    // The application is waiting in connect: it must hear that it failed.
    assert_eq!(r.events(), vec![Event::Closed(CloseReason::Refused)]);
    r.expect_nothing();
}

#[test]
fn a_simultaneous_open_past_its_connect_timeout_resets_the_peer() {
    let mut r = Rig::simultaneous_open_with(Config {
        connect_timeout: Some(Duration::from_millis(500)),
        ..plain()
    });
    r.at(0.5);
    assert_eq!(r.events(), vec![Event::Closed(CloseReason::TimedOut)]);
    // The peer has our SYN and may think itself connected: it is told.
    r.expect(Seg {
        window: 0,
        ..seg(ISS + 1, Some(IRS + 1)).rst()
    });
    assert!(r.t.is_closed());
}

#[test]
fn syn_received_retransmits_the_syn_ack_for_a_repeated_syn() {
    let mut r = Rig::accept();
    r.expect(seg(ISS, Some(IRS + 1)).syn());
    r.recv(seg(IRS, None).syn());
    r.expect(seg(ISS, Some(IRS + 1)).syn());
}

#[test]
fn syn_ack_retransmission_backs_off_from_one_second() {
    let mut r = Rig::accept();
    r.expect(seg(ISS, Some(IRS + 1)).syn());
    for (i, at) in [1.0, 3.0, 7.0, 15.0].into_iter().enumerate() {
        r.at(at - 0.001);
        r.expect_nothing();
        r.at(at);
        r.expect(seg(ISS, Some(IRS + 1)).syn());
        assert_eq!(r.t.stats().timeouts, i as u32 + 1);
    }
}

// ---- closing ----

#[test]
fn active_close_fin_wait_1_2_time_wait_closed() {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    assert_eq!(r.t.state(), State::FinWait1);
    r.recv(seg(IRS + 1, Some(ISS + 2)));
    assert_eq!(r.t.state(), State::FinWait2);
    r.recv(seg(IRS + 1, Some(ISS + 2)).fin());
    r.expect(seg(ISS + 2, Some(IRS + 2)));
    assert_eq!(r.t.state(), State::TimeWait);
    // 2·MSL (60 s configured) later it is gone.
    r.at(59.5);
    assert_eq!(r.t.state(), State::TimeWait);
    r.at(60.5);
    assert_eq!(r.t.state(), State::Closed);
}

// ---- orphans: the application has let go (Tcb::orphan) ----

/// An established connection that closed (its FIN at ISS+1) and was orphaned.
fn orphan_after_close() -> Rig {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    r.t.orphan(r.now);
    r
}

/// An abort's RST: RST+ACK at SND.NXT, as Linux's active reset (the data that caused
/// it is not acknowledged).
fn rst(seq: u32) -> Seg {
    rst_acking(seq, IRS + 1)
}

/// The same, acknowledging everything up to `ack`.
fn rst_acking(seq: u32, ack: u32) -> Seg {
    Seg {
        window: 0,
        ..seg(seq, Some(ack)).rst()
    }
}

#[test]
fn orphaned_fin_wait_2_is_reset_after_the_fin_timeout() {
    let mut r = orphan_after_close();
    r.recv(seg(IRS + 1, Some(ISS + 2)));
    assert_eq!(r.t.state(), State::FinWait2);
    r.at(59.9);
    r.expect_nothing();
    assert_eq!(r.t.state(), State::FinWait2);
    r.at(60.0);
    r.expect(rst(ISS + 2));
    assert_eq!(r.t.state(), State::Closed);
    assert!(r.t.is_closed());
}

#[test]
fn orphaned_in_fin_wait_1_times_fin_wait_2_from_entering_it() {
    let mut r = orphan_after_close();
    r.at(0.1);
    r.recv(seg(IRS + 1, Some(ISS + 2)));
    assert_eq!(r.t.state(), State::FinWait2);
    r.at(60.05);
    assert_eq!(
        r.t.state(),
        State::FinWait2,
        "60 s from FIN-WAIT-2, not from close"
    );
    r.at(60.1);
    r.expect(rst(ISS + 2));
    assert_eq!(r.t.state(), State::Closed);
}

#[test]
fn half_closed_fin_wait_2_waits_for_the_peer_for_ever() {
    // Not orphaned: the application still reads, so the peer may take its time.
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    r.recv(seg(IRS + 1, Some(ISS + 2)));
    r.at(3600.0);
    r.expect_nothing();
    assert_eq!(r.t.state(), State::FinWait2);
    r.recv(seg(IRS + 1, Some(ISS + 2)).len(10));
    assert_eq!(r.t.recv_available(), 10, "data after our FIN is still read");
}

#[test]
fn an_orphan_is_reset_by_new_data_after_its_fin() {
    let mut r = orphan_after_close();
    r.recv(seg(IRS + 1, Some(ISS + 2)).len(10));
    r.expect(rst(ISS + 2));
    assert_eq!(r.t.state(), State::Closed);
    // A bare ACK or a FIN (no data) is not: the close finishes normally.
    let mut r = orphan_after_close();
    r.recv(seg(IRS + 1, Some(ISS + 2)).fin());
    r.expect(seg(ISS + 2, Some(IRS + 2)));
    assert_eq!(r.t.state(), State::TimeWait);
}

#[test]
fn released_with_data_unread_resets() {
    // In our buffer.
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, Some(ISS + 1)).len(10));
    r.at(0.3); // its delayed ACK
    r.expect(seg(ISS + 1, Some(IRS + 11)));
    assert!(r.t.release(r.now, false));
    r.expect(rst_acking(ISS + 1, IRS + 11));
    assert_eq!(r.t.state(), State::Closed);
    // Taken by the application but not consumed; the peer had closed too.
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, Some(ISS + 1)).fin());
    r.expect(seg(ISS + 1, Some(IRS + 2)));
    assert_eq!(r.t.state(), State::CloseWait);
    assert!(r.t.release(r.now, true));
    r.expect(rst_acking(ISS + 1, IRS + 2));
    assert_eq!(r.t.state(), State::Closed);
}

#[test]
fn released_with_everything_read_closes() {
    let mut r = Rig::established();
    assert!(!r.t.release(r.now, false));
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    assert_eq!(r.t.state(), State::FinWait1);
}

#[test]
fn released_in_time_wait_keeps_it_whatever_is_unread() {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    r.recv(seg(IRS + 1, Some(ISS + 2)).len(10).fin());
    r.expect(seg(ISS + 2, Some(IRS + 12)));
    assert_eq!(r.t.state(), State::TimeWait);
    assert_eq!(r.t.recv_available(), 10);
    assert!(!r.t.release(r.now, true));
    r.expect_nothing();
    assert_eq!(r.t.state(), State::TimeWait);
}

/// Retransmissions of the FIN until the connection gives up, and whether it timed out.
fn fin_retransmissions(mut r: Rig) -> u32 {
    let mut sent = 0;
    for _ in 0..100 {
        let Some(at) = r.t.poll_timeout() else {
            break;
        };
        r.now = at;
        r.t.on_timeout(at);
        while let Some(s) = r.next() {
            assert!(s.fin && s.seq == ISS + 1, "{s:?}");
            sent += 1;
        }
        if r.t.state() == State::Closed {
            assert!(r.events().contains(&Event::Closed(CloseReason::TimedOut)));
            return sent;
        }
    }
    panic!("never gave up: {sent} retransmissions");
}

#[test]
fn an_orphan_gives_up_after_orphan_retries() {
    assert_eq!(fin_retransmissions(orphan_after_close()), 8);
    // The same connection, still held by its application: data_retries.
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    assert_eq!(fin_retransmissions(r), 15);
}

#[test]
fn time_wait_acks_a_retransmitted_fin_and_restarts() {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    r.recv(seg(IRS + 1, Some(ISS + 2)).fin());
    r.expect(seg(ISS + 2, Some(IRS + 2)));
    assert_eq!(r.t.state(), State::TimeWait);
    r.at(50.0);
    r.recv(seg(IRS + 1, Some(ISS + 2)).fin());
    r.expect(seg(ISS + 2, Some(IRS + 2)));
    r.at(100.0);
    assert_eq!(r.t.state(), State::TimeWait, "the timer restarted at 50 s");
    r.at(111.0);
    assert_eq!(r.t.state(), State::Closed);
}

#[test]
fn fin_wait_1_straight_to_time_wait_on_fin_ack() {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    r.recv(seg(IRS + 1, Some(ISS + 2)).fin());
    assert_eq!(r.t.state(), State::TimeWait);
    r.expect(seg(ISS + 2, Some(IRS + 2)));
}

#[test]
fn simultaneous_close_through_closing() {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    // Their FIN crosses ours (it does not acknowledge ours).
    r.recv(seg(IRS + 1, Some(ISS + 1)).fin());
    assert_eq!(r.t.state(), State::Closing);
    r.expect(seg(ISS + 2, Some(IRS + 2)));
    r.recv(seg(IRS + 2, Some(ISS + 2)));
    assert_eq!(r.t.state(), State::TimeWait);
}

#[test]
fn passive_close_close_wait_last_ack_closed() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, Some(ISS + 1)).fin());
    assert_eq!(r.t.state(), State::CloseWait);
    r.expect(seg(ISS + 1, Some(IRS + 2)));
    assert_eq!(r.events(), vec![Event::PeerClosed]);
    assert!(r.t.at_eof());
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 2)).fin());
    assert_eq!(r.t.state(), State::LastAck);
    r.recv(seg(IRS + 2, Some(ISS + 2)));
    assert_eq!(r.t.state(), State::Closed);
    assert_eq!(r.events(), vec![Event::Closed(CloseReason::Finished)]);
}

#[test]
fn half_close_keeps_receiving_in_fin_wait_2() {
    let mut r = Rig::established();
    r.t.close();
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    r.recv(seg(IRS + 1, Some(ISS + 2)));
    assert_eq!(r.t.state(), State::FinWait2);
    r.recv(seg(IRS + 1, Some(ISS + 2)).len(500));
    assert_eq!(r.t.recv_available(), 500);
    r.at(0.5);
    r.expect(seg(ISS + 2, Some(IRS + 501)));
}

#[test]
fn close_in_syn_received_sends_fin_after_the_handshake() {
    let mut r = Rig::accept();
    r.expect(seg(ISS, Some(IRS + 1)).syn());
    r.t.close();
    r.recv(seg(IRS + 1, Some(ISS + 1)));
    r.expect(seg(ISS + 1, Some(IRS + 1)).fin());
    assert_eq!(r.t.state(), State::FinWait1);
}

// ---- a new SYN for a connection in TIME-WAIT (RFC 6191) ----

fn with_ts(mut r: TcpRepr<'_>, tsval: Option<u32>) -> TcpRepr<'_> {
    r.timestamp = tsval.map(|tsval| TcpTimestamp { tsval, tsecr: 0 });
    r
}

/// A server that closed first and sits in TIME-WAIT, having received IRS+1..IRS+2 (the
/// FIN) and sent ISS..ISS+2. `config_ts`: we offer timestamps; `peer_ts`: the peer did
/// (last TSval seen: 5002).
fn server_in_time_wait(config_ts: bool, peer_ts: bool) -> Tcb {
    let now = Instant::from_secs(1);
    let ts = |v: u32| peer_ts.then_some(v);
    let config = Config {
        timestamps: config_ts,
        ..plain()
    };
    let syn = with_ts(repr(&seg(IRS, None).syn(), &[]), ts(5000));
    let mut t = Tcb::accept(config, LOCAL, REMOTE, &syn, SeqNumber(ISS), now);
    t.poll_transmit(now).expect("SYN-ACK");
    t.on_segment(
        &with_ts(repr(&seg(IRS + 1, Some(ISS + 1)), &[]), ts(5001)),
        now,
    );
    t.close();
    assert!(t.poll_transmit(now).expect("FIN").header().flags.fin());
    t.on_segment(
        &with_ts(repr(&seg(IRS + 1, Some(ISS + 2)).fin(), &[]), ts(5002)),
        now,
    );
    assert_eq!(t.state(), State::TimeWait);
    t
}

/// What a reopening SYN's new incarnation must start above: all we sent, plus 64 KiB.
const REOPEN_FLOOR: u32 = ISS + 2 + 65_537;

#[test]
fn time_wait_reopens_for_a_syn_above_rcv_nxt() {
    let t = server_in_time_wait(false, false);
    let syn = repr(&seg(IRS + 5000, None).syn(), &[]);
    assert_eq!(t.reopening_isn(&syn), Some(SeqNumber(REOPEN_FLOOR)));
}

#[test]
fn time_wait_keeps_an_old_or_equal_syn_and_challenges_it() {
    let mut t = server_in_time_wait(false, false);
    let now = Instant::from_secs(1);
    for seq in [IRS, IRS + 2] {
        let syn = repr(&seg(seq, None).syn(), &[]);
        assert_eq!(t.reopening_isn(&syn), None, "seq {seq}");
        t.on_segment(&syn, now);
        let h = t.poll_transmit(now).expect("a challenge ACK").header();
        assert_eq!((h.seq_number, h.ack_number), (ISS + 2, Some(IRS + 2)));
        assert!(!h.flags.syn() && !h.flags.rst());
        assert_eq!(t.state(), State::TimeWait);
    }
}

#[test]
fn time_wait_with_timestamps_reopens_by_timestamp_then_sequence() {
    let t = server_in_time_wait(true, true);
    let low_seq = |tsval| with_ts(repr(&seg(IRS, None).syn(), &[]), Some(tsval));
    let high_seq = |tsval| with_ts(repr(&seg(IRS + 5000, None).syn(), &[]), Some(tsval));
    assert_eq!(
        t.reopening_isn(&low_seq(6000)),
        Some(SeqNumber(REOPEN_FLOOR))
    );
    assert_eq!(t.reopening_isn(&high_seq(4000)), None, "older: PAWS");
    // An equal timestamp (the same clock tick): the sequence number decides, as in Linux.
    assert_eq!(
        t.reopening_isn(&high_seq(5002)),
        Some(SeqNumber(REOPEN_FLOOR))
    );
    assert_eq!(t.reopening_isn(&low_seq(5002)), None);
    // Without a timestamp on the new SYN, the sequence number decides.
    let bare = |seq| repr(&seg(seq, None).syn(), &[]);
    assert_eq!(
        t.reopening_isn(&bare(IRS + 5000)),
        Some(SeqNumber(REOPEN_FLOOR))
    );
    assert_eq!(t.reopening_isn(&bare(IRS)), None);
}

#[test]
fn time_wait_without_old_timestamps_reopens_by_sequence_only() {
    // We offer timestamps; the old incarnation's peer did not: its old duplicates carry
    // none, so only a newer sequence number is safe.
    let t = server_in_time_wait(true, false);
    let syn = with_ts(repr(&seg(IRS, None).syn(), &[]), Some(1));
    assert_eq!(t.reopening_isn(&syn), None);
    let newer = with_ts(repr(&seg(IRS + 5000, None).syn(), &[]), Some(1));
    assert_eq!(t.reopening_isn(&newer), Some(SeqNumber(REOPEN_FLOOR)));
    // If we do not use timestamps, theirs is ignored and the sequence number decides.
    let t = server_in_time_wait(false, true);
    assert_eq!(t.reopening_isn(&syn), None);
}

#[test]
fn only_a_plain_syn_in_time_wait_reopens() {
    let t = server_in_time_wait(false, false);
    let high = IRS + 5000;
    assert_eq!(
        t.reopening_isn(&repr(&seg(high, Some(ISS + 2)).syn(), &[])),
        None,
        "a SYN-ACK"
    );
    assert_eq!(
        t.reopening_isn(&repr(&seg(high, None).syn().rst(), &[])),
        None,
        "SYN+RST"
    );
    assert_eq!(
        t.reopening_isn(&repr(&seg(high, None), &[])),
        None,
        "no SYN"
    );
    let r = Rig::established();
    assert_eq!(
        r.t.reopening_isn(&repr(&seg(high, None).syn(), &[])),
        None,
        "not in TIME-WAIT"
    );
}

// ---- resets and challenge ACKs (RFC 5961) ----

#[test]
fn exact_rst_resets_established() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, None).rst());
    assert_eq!(r.t.state(), State::Closed);
    assert_eq!(r.events(), vec![Event::Closed(CloseReason::Reset)]);
}

#[test]
fn in_window_rst_gets_a_challenge_ack() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 100, None).rst());
    assert_eq!(r.t.state(), State::Established);
    r.expect(seg(ISS + 1, Some(IRS + 1)));
}

#[test]
fn out_of_window_rst_is_ignored() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 100_000, None).rst());
    assert_eq!(r.t.state(), State::Established);
    r.expect_nothing();
}

#[test]
fn syn_in_established_gets_a_challenge_ack() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, None).syn());
    assert_eq!(r.t.state(), State::Established);
    r.expect(seg(ISS + 1, Some(IRS + 1)));
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, Some(ISS + 500)).len(10));
    r.expect(seg(ISS + 1, Some(IRS + 1)));
    assert_eq!(r.t.recv_available(), 0, "its data is not taken");
}

// ---- data, ACKs, retransmission ----

#[test]
fn delayed_ack_every_second_full_segment_or_after_the_delay() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, Some(ISS + 1)).len(1000));
    r.expect_nothing();
    r.recv(seg(IRS + 1001, Some(ISS + 1)).len(1000));
    r.expect(seg(ISS + 1, Some(IRS + 2001)));
    r.recv(seg(IRS + 2001, Some(ISS + 1)).len(100));
    r.expect_nothing();
    r.at(0.039);
    r.expect_nothing();
    r.at(0.041);
    r.expect(seg(ISS + 1, Some(IRS + 2101)));
}

#[test]
fn out_of_order_data_is_acked_at_once() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1001, Some(ISS + 1)).len(1000));
    r.expect(seg(ISS + 1, Some(IRS + 1)));
    r.recv(seg(IRS + 1, Some(ISS + 1)).len(1000));
    r.expect(seg(ISS + 1, Some(IRS + 2001)));
    assert_eq!(r.t.recv_available(), 2000);
}

#[test]
fn data_retransmission_timeline_follows_rfc_6298() {
    let mut r = Rig::connect();
    r.expect(seg(ISS, None).syn());
    // The handshake takes 100 ms: SRTT = 100 ms, RTTVAR = 50 ms, so
    // RTO = SRTT + 4 * RTTVAR = 300 ms, doubling at each timeout.
    r.at(0.1);
    r.recv(seg(IRS, Some(ISS + 1)).syn());
    r.expect(seg(ISS + 1, Some(IRS + 1)));
    assert_eq!(r.t.send(&[1u8; 500]), 500);
    r.expect(seg(ISS + 1, Some(IRS + 1)).len(500));
    let mut at = 0.1;
    for gap in [0.3, 0.6, 1.2, 2.4] {
        at += gap;
        r.at(at - 0.005);
        r.expect_nothing();
        r.at(at);
        r.expect(seg(ISS + 1, Some(IRS + 1)).len(500));
    }
    // An ACK ends it.
    r.recv(seg(IRS + 1, Some(ISS + 501)));
    r.at(100.0);
    r.expect_nothing();
    assert_eq!(r.t.stats().timeouts, 4);
}

#[test]
fn three_duplicate_acks_retransmit_at_once() {
    let mut r = Rig::established();
    r.recv(seg(IRS + 1, Some(ISS + 1)).len(0));
    // Open the congestion window a little: 4 segments of 1000 need cwnd >= 4000.
    let data = [3u8; 4000];
    assert_eq!(r.t.send(&data), 4000);
    let mut sent = Vec::new();
    while let Some(s) = r.next() {
        sent.push(s);
    }
    assert!(
        sent.len() >= 4,
        "initial window of RFC 6928 lets 4 go: {sent:?}"
    );
    for _ in 0..3 {
        r.recv(seg(IRS + 1, Some(ISS + 1)));
    }
    r.expect(seg(ISS + 1, Some(IRS + 1)).len(1000));
    assert_eq!(r.t.stats().recoveries, 1);
    assert_eq!(r.t.stats().timeouts, 0);
}

// ---- keepalive ----

/// Keepalive after 10 s idle, every 2 s, `probes` of them.
fn keepalive(probes: u32) -> Config {
    Config {
        keepalive: Some(Keepalive {
            after: Duration::from_secs(10),
            interval: Duration::from_secs(2),
            probes,
        }),
        ..plain()
    }
}

#[test]
fn keepalive_probes_then_declares_the_peer_lost() {
    let config = keepalive(3);
    let mut r = Rig::established_with(config);
    // Probes: SEG.SEQ = SND.NXT - 1, no data, at 10, 12, 14 s; lost at 16 s.
    for at in [10.0, 12.0, 14.0] {
        r.at(at - 0.01);
        r.expect_nothing();
        r.at(at);
        r.expect(seg(ISS, Some(IRS + 1)));
    }
    r.at(16.0);
    assert_eq!(r.t.state(), State::Closed);
    assert!(r.events().contains(&Event::Closed(CloseReason::TimedOut)));
}

#[test]
fn keepalive_answer_resets_the_count() {
    let config = keepalive(2);
    let mut r = Rig::established_with(config);
    r.at(10.0);
    r.expect(seg(ISS, Some(IRS + 1)));
    r.recv(seg(IRS + 1, Some(ISS + 1)));
    // Answered: idle again, the next probe comes 10 s after the answer.
    r.at(19.9);
    r.expect_nothing();
    r.at(20.0);
    r.expect(seg(ISS, Some(IRS + 1)));
    assert_eq!(r.t.state(), State::Established);
}

// ---- options ----

fn syn_with(mss: Option<u16>, ws: Option<u8>, sack: bool, ts: bool) -> TcpRepr<'static> {
    let mut r = repr(&seg(IRS, None).syn(), &[]);
    r.max_seg_size = mss;
    r.window_scale = ws;
    r.sack_permitted = sack;
    r.timestamp = ts.then_some(TcpTimestamp {
        tsval: 5000,
        tsecr: 0,
    });
    r
}

fn accept_with(syn: &TcpRepr<'_>) -> (Tcb, TcpRepr<'static>) {
    let now = Instant::from_secs(1);
    let mut t = Tcb::accept(Config::default(), LOCAL, REMOTE, syn, SeqNumber(ISS), now);
    let syn_ack = t.poll_transmit(now).expect("SYN-ACK").header();
    (t, syn_ack)
}

#[test]
fn options_all_offered_all_taken() {
    let (t, sa) = accept_with(&syn_with(Some(1400), Some(9), true, true));
    assert_eq!(sa.max_seg_size, Some(1460));
    assert_eq!(sa.window_scale, Some(7));
    assert!(sa.sack_permitted);
    assert_eq!(sa.timestamp.map(|t| t.tsecr), Some(5000));
    assert_eq!(t.snd_mss, 1400, "our segments fit the peer's MSS");
    assert_eq!((t.snd_wscale, t.rcv_wscale), (9, 7));
    assert!(t.sack_ok && t.ts_ok && t.ws_ok);
}

#[test]
fn options_none_offered_none_used() {
    let (t, sa) = accept_with(&syn_with(None, None, false, false));
    assert_eq!(sa.window_scale, None, "no scaling unless both offer it");
    assert!(!sa.sack_permitted);
    assert_eq!(sa.timestamp, None);
    assert_eq!(t.snd_mss, 536, "RFC 9293's default MSS");
    assert!(!t.sack_ok && !t.ts_ok && !t.ws_ok);
    assert_eq!(
        sa.window_len, 65535,
        "a 64 KiB buffer, unscaled: the most 16 bits say"
    );
}

#[test]
fn window_scale_above_14_is_taken_as_14() {
    let (t, _) = accept_with(&syn_with(Some(1460), Some(15), false, false));
    assert_eq!(t.snd_wscale, 14);
}

#[test]
fn timestamps_alone() {
    let (t, sa) = accept_with(&syn_with(Some(1460), None, false, true));
    assert!(sa.timestamp.is_some() && sa.window_scale.is_none() && !sa.sack_permitted);
    assert!(t.ts_ok && !t.ws_ok && !t.sack_ok);
    assert_eq!(
        t.max_payload(),
        1448,
        "timestamps take 12 bytes of every segment"
    );
}

#[test]
fn paws_drops_an_old_timestamp() {
    let (mut t, sa) = accept_with(&syn_with(Some(1460), None, false, true));
    let now = Instant::from_secs(1);
    let mut ack = repr(&seg(IRS + 1, Some(ISS + 1)), &[]);
    ack.timestamp = Some(TcpTimestamp {
        tsval: 5001,
        tsecr: sa.timestamp.unwrap().tsval,
    });
    t.on_segment(&ack, now);
    assert_eq!(t.state(), State::Established);
    let payload = [1u8; 100];
    let mut old = repr(&seg(IRS + 1, Some(ISS + 1)).len(100), &payload);
    old.timestamp = Some(TcpTimestamp {
        tsval: 4000,
        tsecr: 0,
    });
    t.on_segment(&old, now);
    assert_eq!(t.recv_available(), 0, "an old duplicate by its timestamp");
    let dup_ack = t.poll_transmit(now).expect("an ACK").header();
    assert_eq!(dup_ack.ack_number, Some(IRS + 1));
}
