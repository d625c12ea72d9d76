//! Deterministic tests with virtual time: two connections joined by a pipe that
//! serialises every segment with `wire` (so what goes out is a real, checksummed
//! segment) and can drop segments on a schedule.

use super::*;
use core::net::Ipv4Addr;
use wire::{ChecksumMode, TcpPacket};

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 53);

/// A segment on the wire, as bytes.
fn serialise(t: &Transmit, tcb: &Tcb, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let h = t.header();
    let mut payload = vec![0u8; t.payload_len()];
    tcb.write_payload(t, &mut payload);
    let repr = TcpRepr {
        payload: &payload,
        ..h
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf, *src.ip(), *dst.ip()).unwrap();
    // Options count against the MSS: a full segment must still fit a 1500-byte MTU.
    assert!(
        buf.len() <= 20 + 1460,
        "a {}-byte segment would not fit the MTU",
        buf.len()
    );
    buf
}

fn deliver(bytes: &[u8], to: &mut Tcb, src: SocketAddrV4, dst: SocketAddrV4, now: Instant) {
    let p = TcpPacket::new_checked(bytes).unwrap();
    let seg = TcpRepr::parse(&p, *src.ip(), *dst.ip(), ChecksumMode::Verify).unwrap();
    to.on_segment(&seg, now);
}

/// What a segment advertises never reaches past the sender's free receive buffer: the
/// peer may fill the whole window, and what it sends beyond the buffer is lost.
fn check_window(bytes: &[u8], from: &Tcb) {
    let p = TcpPacket::new_checked(bytes).unwrap();
    if p.flags().syn() || p.flags().rst() {
        return;
    }
    let advertised = (p.window_len() as usize) << from.rcv_wscale;
    assert!(
        advertised <= from.recv.window(),
        "advertised {advertised} bytes with {} free (rcv_nxt {})",
        from.recv.window(),
        from.rcv_nxt
    );
}

/// Decides, per segment (from a?, index among that side's segments, bytes), whether the
/// pipe loses it.
type DropRule = Box<dyn FnMut(bool, usize, &[u8]) -> bool>;

struct Pair {
    a: Tcb,
    b: Option<Tcb>,
    b_config: Config,
    now: Instant,
    /// Segments sent so far by a and b; `drop` decides by (from_a, index).
    sent: (usize, usize),
    drop: DropRule,
    got_a: Vec<u8>,
    got_b: Vec<u8>,
    read_b: bool,
    isn_b: u32,
}

impl Pair {
    fn new(ca: Config, cb: Config) -> Pair {
        Pair::with_isns(ca, cb, 0xffff_ff00, 7)
    }

    /// Initial sequence numbers matter: comparisons are modulo 2^32, and a bug that
    /// depends on which half of the space a number falls in shows only for some.
    fn with_isns(ca: Config, cb: Config, isn_a: u32, isn_b: u32) -> Pair {
        let now = Instant::from_secs(10);
        Pair {
            isn_b,
            a: Tcb::connect(ca, A, B, SeqNumber(isn_a), now),
            b: None,
            b_config: cb,
            now,
            sent: (0, 0),
            drop: Box::new(|_, _, _| false),
            got_a: Vec::new(),
            got_b: Vec::new(),
            read_b: true,
        }
    }

    fn b(&mut self) -> &mut Tcb {
        self.b.as_mut().expect("b exists")
    }

    /// Moves every pending segment once in each direction; returns how many moved.
    fn step(&mut self) -> usize {
        let mut moved = 0;
        while let Some(t) = self.a.poll_transmit(self.now) {
            let bytes = serialise(&t, &self.a, A, B);
            let i = self.sent.0;
            self.sent.0 += 1;
            moved += 1;
            if (self.drop)(true, i, &bytes) {
                continue;
            }
            check_window(&bytes, &self.a);
            match self.b.as_mut() {
                Some(b) => deliver(&bytes, b, A, B, self.now),
                None => {
                    let p = TcpPacket::new_checked(&bytes[..]).unwrap();
                    let syn = TcpRepr::parse(&p, *A.ip(), *B.ip(), ChecksumMode::Verify).unwrap();
                    assert!(syn.flags.syn());
                    self.b = Some(Tcb::accept(
                        self.b_config.clone(),
                        B,
                        A,
                        &syn,
                        SeqNumber(self.isn_b),
                        self.now,
                    ));
                }
            }
        }
        if let Some(b) = self.b.as_mut() {
            while let Some(t) = b.poll_transmit(self.now) {
                let bytes = serialise(&t, b, B, A);
                let i = self.sent.1;
                self.sent.1 += 1;
                moved += 1;
                if (self.drop)(false, i, &bytes) {
                    continue;
                }
                check_window(&bytes, b);
                deliver(&bytes, &mut self.a, B, A, self.now);
            }
        }
        let mut buf = [0u8; 65536];
        loop {
            let n = self.a.recv(&mut buf);
            if n == 0 {
                break;
            }
            self.got_a.extend_from_slice(&buf[..n]);
        }
        if self.read_b {
            if let Some(b) = self.b.as_mut() {
                loop {
                    let n = b.recv(&mut buf);
                    if n == 0 {
                        break;
                    }
                    self.got_b.extend_from_slice(&buf[..n]);
                }
            }
        }
        moved
    }

    /// Steps, advancing virtual time to the next timer whenever nothing moves, until
    /// `done` or `limit` of virtual time passes.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return;
            }
            if self.step() > 0 {
                // Some serialisation delay, so timers and RTTs see time pass.
                self.now += Duration::from_micros(50);
                continue;
            }
            let next = [
                self.a.poll_timeout(),
                self.b.as_ref().and_then(|b| b.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.a.on_timeout(self.now);
                    if let Some(b) = self.b.as_mut() {
                        b.on_timeout(self.now);
                    }
                }
                None => return,
            }
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Like assert_eq! for byte streams, without printing megabytes.
fn assert_same(got: &[u8], want: &[u8]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "byte {i} differs (got {} of {} bytes)",
            got.len(),
            want.len()
        );
    }
    assert_eq!(got.len(), want.len(), "lengths differ");
}

fn events(t: &mut Tcb) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

#[test]
fn handshake_transfer_both_ways_and_close() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.b.as_ref()
            .is_some_and(|b| b.state() == State::Established)
    });
    assert_eq!(p.a.state(), State::Established);
    assert!(events(&mut p.a).contains(&Event::Connected));
    assert!(events(p.b()).contains(&Event::Connected));
    let (to_b, to_a) = (pattern(1_000_000, 1), pattern(700_000, 2));
    let (mut ia, mut ib) = (0, 0);
    p.run_until(Duration::from_secs(30), |p| {
        ia += p.a.send(&to_b[ia..]);
        let b = p.b.as_mut().unwrap();
        ib += b.send(&to_a[ib..]);
        p.got_b.len() == to_b.len() && p.got_a.len() == to_a.len()
    });
    assert_same(&p.got_b, &to_b);
    assert_same(&p.got_a, &to_a);
    // a closes first: FIN-WAIT, TIME-WAIT; b sees the end after the data, then closes.
    p.a.close();
    p.run_until(Duration::from_secs(5), |p| p.b.as_ref().unwrap().at_eof());
    assert_eq!(p.b().state(), State::CloseWait);
    assert_eq!(p.a.state(), State::FinWait2);
    p.b().close();
    p.run_until(Duration::from_secs(5), |p| {
        p.b.as_ref().unwrap().state() == State::Closed
    });
    assert_eq!(p.a.state(), State::TimeWait);
    p.run_until(Duration::from_secs(120), |p| p.a.state() == State::Closed);
    assert!(p.a.is_closed() && p.b().is_closed());
}

#[test]
fn transfer_survives_loss_and_duplicate_acks() {
    let mut p = Pair::new(Config::default(), Config::default());
    // Drop every 9th data segment from a, and a few ACKs from b.
    p.drop = Box::new(|from_a, i, bytes| {
        if from_a {
            bytes.len() > 100 && i % 9 == 4
        } else {
            i % 13 == 6
        }
    });
    let data = pattern(2_000_000, 3);
    let mut at = 0;
    p.run_until(Duration::from_secs(300), |p| {
        at += p.a.send(&data[at..]);
        p.got_b.len() == data.len()
    });
    assert_same(&p.got_b, &data);
}

#[test]
fn half_close_keeps_the_other_direction_open() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.a.state() == State::Established
    });
    p.a.send(b"request");
    p.a.close();
    p.run_until(Duration::from_secs(2), |p| {
        p.b.as_ref().is_some_and(|b| b.at_eof())
    });
    assert_eq!(p.got_b, b"request");
    assert!(!p.a.can_send());
    let reply = pattern(300_000, 9);
    let mut at = 0;
    p.run_until(Duration::from_secs(20), |p| {
        at += p.b.as_mut().unwrap().send(&reply[at..]);
        p.got_a.len() == reply.len()
    });
    assert_same(&p.got_a, &reply);
}

#[test]
fn a_reset_syn_is_refused() {
    let now = Instant::from_secs(1);
    let mut a = Tcb::connect(Config::default(), A, B, SeqNumber(1000), now);
    let syn = a.poll_transmit(now).unwrap().header();
    assert!(syn.flags.syn() && syn.ack_number.is_none());
    assert_eq!(syn.max_seg_size, Some(1460));
    assert!(syn.sack_permitted && syn.timestamp.is_some() && syn.window_scale == Some(7));
    let mut rst = TcpFlags::default();
    rst.set_rst(true);
    let reply = TcpRepr {
        src_port: 53,
        dst_port: 40000,
        seq_number: 0,
        ack_number: Some(1001),
        flags: rst,
        ..TcpRepr::default()
    };
    a.on_segment(&reply, now);
    assert_eq!(events(&mut a), vec![Event::Closed(CloseReason::Refused)]);
    assert!(a.is_closed());
}

#[test]
fn syn_retransmission_backs_off_then_times_out() {
    let cfg = Config {
        syn_retries: 3,
        ..Config::default()
    };
    let t0 = Instant::from_secs(1);
    let mut a = Tcb::connect(cfg, A, B, SeqNumber(5), t0);
    assert!(a.poll_transmit(t0).is_some());
    let mut sends = vec![];
    while let Some(now) = a.poll_timeout() {
        a.on_timeout(now);
        if a.poll_transmit(now).is_some() {
            sends.push(now.saturating_duration_since(t0).as_secs());
        }
        if a.state() == State::Closed {
            break;
        }
    }
    assert_eq!(sends, vec![1, 3, 7], "1 s, then doubling");
    assert_eq!(events(&mut a), vec![Event::Closed(CloseReason::TimedOut)]);
}

#[test]
fn a_connect_timeout_ends_the_handshake_before_the_retries_do() {
    let cfg = Config {
        connect_timeout: Some(Duration::from_millis(2500)),
        ..Config::default()
    };
    let t0 = Instant::from_secs(1);
    let mut a = Tcb::connect(cfg, A, B, SeqNumber(5), t0);
    assert!(a.poll_transmit(t0).is_some());
    let mut sends = vec![];
    let mut ended = None;
    while let Some(now) = a.poll_timeout() {
        a.on_timeout(now);
        if a.poll_transmit(now).is_some() {
            sends.push(now.saturating_duration_since(t0).as_millis());
        }
        if a.state() == State::Closed {
            ended = Some(now.saturating_duration_since(t0).as_millis());
            break;
        }
    }
    assert_eq!(sends, vec![1000], "one retransmission fits in 2.5 s");
    assert_eq!(ended, Some(2500));
    assert_eq!(events(&mut a), vec![Event::Closed(CloseReason::TimedOut)]);
    assert_eq!(a.poll_timeout(), None, "nothing left armed");
}

#[test]
fn a_completed_handshake_disarms_the_connect_timeout() {
    let cfg = Config {
        connect_timeout: Some(Duration::from_millis(50)),
        ..Config::default()
    };
    let mut p = Pair::new(cfg, Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.a.state() == State::Established
    });
    let _ = events(&mut p.a);
    // Idle long past the deadline: the connection stays up.
    let later = p.now + Duration::from_secs(10);
    assert_eq!(
        p.a.poll_timeout(),
        None,
        "no timer armed on an idle connection"
    );
    p.a.on_timeout(later);
    assert_eq!(p.a.state(), State::Established);
    assert!(events(&mut p.a).is_empty());
}

#[test]
fn blind_rst_and_syn_get_challenge_acks() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.b.as_ref()
            .is_some_and(|b| b.state() == State::Established)
    });
    let now = p.now;
    let b = p.b();
    let _ = events(b);
    let rcv_nxt = b.rcv_nxt.0;
    let mut rst = TcpFlags::default();
    rst.set_rst(true);
    let base = TcpRepr {
        src_port: 40000,
        dst_port: 53,
        seq_number: rcv_nxt + 100,
        ack_number: None,
        flags: rst,
        ..TcpRepr::default()
    };
    b.on_segment(&base, now);
    assert_eq!(
        b.state(),
        State::Established,
        "an in-window but inexact RST must not reset"
    );
    let ack = b.poll_transmit(now).expect("a challenge ACK");
    assert_eq!(ack.header().ack_number, Some(rcv_nxt));
    let mut syn = TcpFlags::default();
    syn.set_syn(true);
    b.on_segment(
        &TcpRepr {
            flags: syn,
            seq_number: rcv_nxt + 5,
            ..base
        },
        now,
    );
    assert_eq!(b.state(), State::Established);
    assert!(
        b.poll_transmit(now).is_some(),
        "a SYN in a synchronized state gets a challenge ACK"
    );
    b.on_segment(
        &TcpRepr {
            seq_number: rcv_nxt,
            ..base
        },
        now,
    );
    assert_eq!(
        events(b),
        vec![Event::Closed(CloseReason::Reset)],
        "an exact RST resets"
    );
}

#[test]
fn keepalive_declares_a_silent_peer_lost() {
    let ca = Config {
        keepalive: Some(Keepalive {
            after: Duration::from_secs(2),
            interval: Duration::from_secs(1),
            probes: 3,
        }),
        ..Config::default()
    };
    let mut p = Pair::new(ca, Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.b.as_ref()
            .is_some_and(|b| b.state() == State::Established)
    });
    let start = p.now;
    // While b answers, probes keep the connection up.
    p.run_until(Duration::from_secs(10), |_| false);
    assert_eq!(
        p.a.state(),
        State::Established,
        "answered probes keep it alive"
    );
    // Then b goes silent.
    p.drop = Box::new(|from_a, _, _| !from_a);
    let silent = p.now;
    p.run_until(Duration::from_secs(30), |p| p.a.state() == State::Closed);
    let took = p.now.saturating_duration_since(silent);
    assert!(events(&mut p.a).contains(&Event::Closed(CloseReason::TimedOut)));
    assert!(
        took <= Duration::from_secs(2 + 3 + 1),
        "lost after {took:?}"
    );
    assert!(p.now > start);
}

#[test]
fn zero_window_is_probed_and_reopens() {
    let cb = Config {
        recv_buffer: 16 * 1024,
        ..Config::default()
    };
    let mut p = Pair::new(Config::default(), cb);
    p.read_b = false;
    let data = pattern(200_000, 4);
    let mut at = 0;
    p.run_until(Duration::from_secs(10), |p| {
        at += p.a.send(&data[at..]);
        false
    });
    let held = p.b().recv_available();
    assert!(held > 16 * 1024 - 1460, "b's buffer is full: {held}");
    assert_eq!(p.a.snd_wnd, 0, "a sees a zero window");
    assert!(
        p.a.wants_to_send() || p.a.poll_timeout().is_some(),
        "a keeps probing: state {:?} una {} nxt {} max {} unsent {} rto {:?}",
        p.a.state(),
        p.a.snd_una,
        p.a.snd_nxt,
        p.a.snd_max,
        p.a.unsent(),
        p.a.timers.get(Timer::Rto)
    );
    p.read_b = true;
    p.run_until(Duration::from_secs(120), |p| {
        at += p.a.send(&data[at..]);
        p.got_b.len() == data.len()
    });
    assert_same(&p.got_b, &data);
}

#[test]
fn options_negotiate_down_to_what_both_offer() {
    let cb = Config {
        timestamps: false,
        sack: false,
        window_scale: None,
        mss: 1200,
        ..Config::default()
    };
    let mut p = Pair::new(Config::default(), cb);
    p.run_until(Duration::from_secs(1), |p| {
        p.a.state() == State::Established
    });
    assert!(!p.a.ts_ok && !p.a.sack_ok && !p.a.ws_ok);
    assert_eq!(p.a.snd_mss, 1200, "clamped to the peer's MSS");
    assert_eq!(p.b().snd_mss, 1200, "and to our own");
}

#[test]
fn an_idle_connection_holds_no_buffer_memory() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.a.state() == State::Established
    });
    assert_eq!(p.a.buffer_bytes(), 0);
    let size = core::mem::size_of::<Tcb>();
    eprintln!("size_of::<Tcb>() = {size} bytes");
    assert!(size < 1024, "an idle connection is {size} bytes");
}

#[test]
fn random_loss_both_ways_completes() {
    // Windows of 256 KiB: enough segments in flight for SACK to find the holes.
    let big = Config {
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        ..Config::default()
    };
    for (percent, seed) in [(1u64, 1u64), (5, 2), (20, 3)] {
        let mut p = Pair::new(big.clone(), big.clone());
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        p.drop = Box::new(move |_, _, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 100 < percent
        });
        let (to_b, to_a) = (pattern(1_000_000, 5), pattern(1_000_000, 6));
        let (mut ia, mut ib) = (0, 0);
        p.run_until(Duration::from_secs(600), |p| {
            ia += p.a.send(&to_b[ia..]);
            if let Some(b) = p.b.as_mut() {
                ib += b.send(&to_a[ib..]);
            }
            p.got_b.len() == to_b.len() && p.got_a.len() == to_a.len()
        });
        let bs = p.b().stats();
        eprintln!(
            "{percent}% loss: done at {:?}, a {:?}, b {bs:?}",
            p.now,
            p.a.stats()
        );
        assert_same(&p.got_b, &to_b);
        assert_same(&p.got_a, &to_a);
    }
}

#[test]
fn one_lost_segment_is_repaired_by_fast_recovery_not_a_timeout() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.a.state() == State::Established
    });
    let mut dropped = false;
    p.drop = Box::new(move |from_a, _, bytes| {
        if from_a && bytes.len() > 1000 && !dropped {
            dropped = true;
            return true;
        }
        false
    });
    let data = pattern(100_000, 7);
    let mut at = 0;
    p.run_until(Duration::from_secs(30), |p| {
        at += p.a.send(&data[at..]);
        p.got_b.len() == data.len()
    });
    assert_same(&p.got_b, &data);
    let s = p.a.stats();
    assert_eq!((s.recoveries, s.timeouts), (1, 0), "{s:?}");
}

#[test]
fn echo_with_small_buffers_keeps_moving() {
    // The application pattern of the end-to-end echo test: write while less than 256 KiB
    // is unanswered, otherwise read; the peer echoes. Buffers (64 KiB) smaller than what
    // is in flight: windows close and reopen all the time.
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.b.as_ref()
            .is_some_and(|b| b.state() == State::Established)
    });
    let total = 8_000_000usize;
    let data = pattern(total, 8);
    let mut sent = 0;
    let mut echoed = 0;
    p.read_b = false;
    let mut buf = vec![0u8; 65536];
    p.run_until(Duration::from_secs(120), |p| {
        if sent < total && sent - p.got_a.len() < 256 * 1024 {
            sent += p.a.send(&data[sent..(sent + 65536).min(total)]);
        }
        let b = p.b.as_mut().unwrap();
        // b echoes what it can.
        let room = b.send_capacity().min(buf.len());
        let n = b.recv(&mut buf[..room]);
        let mut at = 0;
        while at < n {
            let k = b.send(&buf[at..n]);
            assert!(k > 0, "b had room for what it read");
            at += k;
        }
        echoed += n;
        p.got_a.len() == total
    });
    assert_same(&p.got_a, &data);
}

#[test]
fn windows_stay_honest_whatever_the_initial_sequence_numbers() {
    // Each pair puts a side's RCV.NXT in a different half of the sequence space, where
    // a right edge compared against an uninitialised zero once went wrong.
    for (isn_a, isn_b) in [
        (0x8000_0010, 0x4000_0000),
        (0xc000_0000, 0x7fff_ff00),
        (0, 0xffff_0000),
    ] {
        let cb = Config {
            recv_buffer: 16 * 1024,
            ..Config::default()
        };
        let mut p = Pair::with_isns(Config::default(), cb, isn_a, isn_b);
        p.read_b = false;
        let data = pattern(300_000, 6);
        let mut at = 0;
        // b does not read for a while: its window closes, a probes.
        p.run_until(Duration::from_secs(5), |p| {
            at += p.a.send(&data[at..]);
            false
        });
        p.read_b = true;
        p.run_until(Duration::from_secs(120), |p| {
            at += p.a.send(&data[at..]);
            p.got_b.len() == data.len()
        });
        assert_same(&p.got_b, &data);
    }
}

#[test]
fn a_zero_window_still_takes_the_ack_of_a_segment_at_rcv_nxt() {
    // Two full segments (MSS 1460 less 12 bytes of timestamps) fill b exactly.
    let cb = Config {
        recv_buffer: 2 * 1448,
        ..Config::default()
    };
    let mut p = Pair::new(Config::default(), cb);
    p.read_b = false;
    let data = pattern(8 * 1024, 7);
    let mut at = 0;
    p.run_until(Duration::from_secs(2), |p| {
        at += p.a.send(&data[at..]);
        false
    });
    assert_eq!(p.b().rcv_wnd(), 0, "b's buffer is full");
    // b has data of its own in flight to a; a's next segment carries both data (which b
    // cannot take) and the ACK of b's data (which b must take).
    let b_data = pattern(1000, 8);
    assert_eq!(p.b().send_nodelay(&b_data), 1000);
    let now = p.now;
    let t = p.b().poll_transmit(now).expect("b sends");
    let bytes = serialise(&t, p.b(), B, A);
    deliver(&bytes, &mut p.a, B, A, p.now);
    let b_una_before = p.b().snd_una;
    let rcv_nxt = p.b().rcv_nxt;
    let ack = p.a.rcv_nxt.0;
    let payload = [0u8; 100];
    let mut flags = TcpFlags::default();
    flags.set_ack(true);
    let seg = TcpRepr {
        src_port: A.port(),
        dst_port: B.port(),
        seq_number: rcv_nxt.0,
        ack_number: Some(ack),
        flags,
        window_len: 1000,
        timestamp: p.a.ts_ok.then_some(TcpTimestamp {
            tsval: p.b().ts_recent.wrapping_add(1),
            tsecr: 0,
        }),
        payload: &payload,
        ..TcpRepr::default()
    };
    p.b().on_segment(&seg, now);
    assert_eq!(p.b().snd_una.0, ack, "the ACK was taken");
    assert!(p.b().snd_una > b_una_before);
    assert_eq!(p.b().rcv_nxt, rcv_nxt, "the data was not");
}

#[test]
fn a_sack_block_over_our_fin_does_not_move_it() {
    // Found by the connection fuzz target: a SACK covering the FIN's sequence number
    // made the retransmission skip it and send the FIN one further each timeout.
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.a.state() == State::Established
    });
    p.a.close();
    let fin = p.a.poll_transmit(p.now).expect("a's FIN").header();
    assert!(fin.flags.fin());
    let mut flags = TcpFlags::default();
    flags.set_ack(true);
    let b = p.b();
    let sack = TcpRepr {
        src_port: B.port(),
        dst_port: A.port(),
        seq_number: b.snd_nxt.0,
        ack_number: Some(fin.seq_number),
        flags,
        window_len: 1000,
        sack_ranges: [
            Some((fin.seq_number, fin.seq_number.wrapping_add(1))),
            None,
            None,
            None,
        ],
        timestamp: fin.timestamp.map(|t| TcpTimestamp {
            tsval: b.ts_recent.wrapping_add(1),
            tsecr: t.tsval,
        }),
        ..TcpRepr::default()
    };
    let now = p.now;
    p.a.on_segment(&sack, now);
    for _ in 0..3 {
        let due = p.a.poll_timeout().expect("the FIN's retransmission timer");
        p.a.on_timeout(due);
        let again = p.a.poll_transmit(due).expect("the FIN again").header();
        assert!(again.flags.fin());
        assert_eq!(again.seq_number, fin.seq_number, "the FIN keeps its place");
        assert_eq!(p.a.snd_max, SeqNumber(fin.seq_number) + 1);
    }
}

/// The cookie handshake by hand: a's SYN answered statelessly, a's ACK turned into b.
fn cookie_pair(ca: Config, cb: Config) -> (Pair, TcpRepr<'static>) {
    use crate::syncookie::SynCookies;
    let cookies = SynCookies::new(*b"0123456789abcdef");
    let mut p = Pair::new(ca, cb.clone());
    let now = p.now;
    let syn = p.a.poll_transmit(now).expect("a's SYN").header();
    let syn_ack = Tcb::cookie_syn_ack(&cb, B, A, &syn, &cookies, now).expect("a SYN-ACK");
    let bytes = {
        let mut buf = vec![0u8; syn_ack.buffer_len()];
        syn_ack.emit(&mut buf, *B.ip(), *A.ip()).unwrap();
        buf
    };
    deliver(&bytes, &mut p.a, B, A, now);
    assert_eq!(p.a.state(), State::Established);
    let t = p.a.poll_transmit(now).expect("a's ACK");
    let ack = t.header();
    // A forged cookie (any other ACK number) builds nothing.
    let mut forged = ack;
    forged.ack_number = ack.ack_number.map(|a| a.wrapping_add(4));
    assert!(Tcb::accept_cookie(cb.clone(), B, A, &forged, &cookies, now).is_none());
    let b = Tcb::accept_cookie(cb, B, A, &ack, &cookies, now).expect("a valid cookie");
    assert_eq!(b.state(), State::Established);
    p.b = Some(b);
    (p, syn_ack)
}

#[test]
fn syn_cookie_round_trip_keeps_the_options_and_carries_data() {
    let (mut p, syn_ack) = cookie_pair(Config::default(), Config::default());
    assert!(syn_ack.timestamp.is_some() && syn_ack.sack_permitted);
    assert_eq!(syn_ack.window_scale, Config::default().window_scale);
    let b = p.b();
    assert!(
        b.ts_ok && b.sack_ok && b.ws_ok,
        "options remembered by the cookie"
    );
    assert_eq!(b.snd_mss, 1460);
    assert_eq!(events(b), vec![Event::Connected]);
    let (to_b, to_a) = (pattern(300_000, 9), pattern(200_000, 10));
    let (mut ia, mut ib) = (0, 0);
    p.run_until(Duration::from_secs(30), |p| {
        ia += p.a.send(&to_b[ia..]);
        if let Some(b) = p.b.as_mut() {
            ib += b.send(&to_a[ib..]);
        }
        p.got_b.len() == to_b.len() && p.got_a.len() == to_a.len()
    });
    assert_same(&p.got_b, &to_b);
    assert_same(&p.got_a, &to_a);
}

#[test]
fn syn_cookie_without_timestamps_goes_without_scaling_and_sack() {
    let ca = Config {
        timestamps: false,
        mss: 1300,
        ..Config::default()
    };
    let (mut p, syn_ack) = cookie_pair(ca, Config::default());
    assert!(syn_ack.timestamp.is_none());
    assert!(syn_ack.window_scale.is_none() && !syn_ack.sack_permitted);
    let b = p.b();
    assert!(!b.ts_ok && !b.sack_ok && !b.ws_ok);
    assert_eq!(b.snd_mss, 1300, "the MSS rounds down to a table entry");
    let data = pattern(100_000, 11);
    let mut at = 0;
    p.run_until(Duration::from_secs(30), |p| {
        at += p.a.send(&data[at..]);
        p.got_b.len() == data.len()
    });
    assert_same(&p.got_b, &data);
}

#[test]
fn poll_timeout_is_the_earliest_armed_timer() {
    fn set(t: &mut Tcb, timer: usize, at: Option<Instant>) {
        let timer = Timer::ALL[timer];
        match at {
            Some(at) => t.timers.set(timer, at),
            None => t.timers.stop(timer),
        }
    }
    let now = Instant::from_secs(1);
    let ms = |n: u64| now + Duration::from_millis(n);
    let mut a = Tcb::connect(Config::default(), A, B, SeqNumber(1), now);
    for j in 0..Timer::ALL.len() {
        set(&mut a, j, None);
    }
    assert_eq!(a.poll_timeout(), None);
    for i in 0..Timer::ALL.len() {
        // Timer i is the earliest of all armed ones...
        for j in 0..Timer::ALL.len() {
            set(
                &mut a,
                j,
                Some(if i == j { ms(5) } else { ms(10 + j as u64) }),
            );
        }
        assert_eq!(a.poll_timeout(), Some(ms(5)), "timer {i}");
        // ...and the only one armed.
        for j in 0..Timer::ALL.len() {
            set(&mut a, j, (i == j).then_some(ms(7)));
        }
        assert_eq!(a.poll_timeout(), Some(ms(7)), "timer {i} alone");
    }
}

/// Eifel undo (RFC 3522) set-up: an established pair, and `n` full segments that a has
/// sent at one moment, held back; 5 ms later (so that a's recovery starts at a later
/// millisecond than their timestamps) the test delivers them as it likes.
struct Burst {
    p: Pair,
    segments: Vec<Vec<u8>>,
    data: Vec<u8>,
    cwnd_before: usize,
}

impl Burst {
    fn new(n: usize, config: Config) -> Burst {
        Burst::with_gap(n, config, Duration::from_millis(5))
    }

    /// As `new`, the segments delivered `gap` after they were sent (below a
    /// millisecond, timestamps cannot tell a recovery's start from their sending).
    fn with_gap(n: usize, config: Config, gap: Duration) -> Burst {
        let mut p = Pair::new(config.clone(), config);
        p.run_until(Duration::from_secs(1), |p| {
            p.b.as_ref()
                .is_some_and(|b| b.state() == State::Established)
        });
        let data = pattern(n * 1448, 3);
        assert_eq!(p.a.send(&data), data.len());
        let mut segments = Vec::new();
        while let Some(t) = p.a.poll_transmit(p.now) {
            segments.push(serialise(&t, &p.a, A, B));
        }
        assert_eq!(segments.len(), n, "one window");
        let cwnd_before = p.a.cc.cwnd();
        p.now += gap;
        Burst {
            p,
            segments,
            data,
            cwnd_before,
        }
    }

    /// Delivers `bytes` (if any) to b, and b's answers to a.
    fn deliver_to_b(&mut self, bytes: &[u8]) {
        let now = self.p.now;
        if !bytes.is_empty() {
            deliver(bytes, self.p.b(), A, B, now);
        }
        let b = self.p.b.as_mut().unwrap();
        while let Some(t) = b.poll_transmit(now) {
            let ack = serialise(&t, b, B, A);
            deliver(&ack, &mut self.p.a, B, A, now);
        }
    }

    /// Delivers segments `i` as first sent, in that order.
    fn originals(&mut self, i: impl IntoIterator<Item = usize>) {
        for i in i {
            self.original(i);
        }
    }

    /// Delivers segment `i` as first sent.
    fn original(&mut self, i: usize) {
        let bytes = self.segments[i].clone();
        self.deliver_to_b(&bytes);
    }

    /// Delivers `bytes` to b; b's answer (which must come at once), as a's stack would
    /// read it: its ACK number and SACK blocks.
    fn b_answers(&mut self, bytes: &[u8]) -> (Option<u32>, Vec<(u32, u32)>) {
        let now = self.p.now;
        deliver(bytes, self.p.b(), A, B, now);
        let b = self.p.b.as_mut().unwrap();
        let t = b.poll_transmit(now).expect("b answers at once");
        let bytes = serialise(&t, b, B, A);
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        let ack = TcpRepr::parse(&p, *B.ip(), *A.ip(), ChecksumMode::Verify).unwrap();
        let blocks = ack.sack_ranges.iter().flatten().copied().collect();
        (ack.ack_number, blocks)
    }

    /// What a sends next, serialised, and the sequence number it starts at.
    fn next_from_a(&mut self) -> (Vec<u8>, u32) {
        let t = self
            .p
            .a
            .poll_transmit(self.p.now)
            .expect("a segment from a");
        let seq = t.header().seq_number;
        (serialise(&t, &self.p.a, A, B), seq)
    }

    fn seq_of(&self, i: usize) -> u32 {
        let p = TcpPacket::new_checked(&self.segments[i][..]).unwrap();
        p.seq_number()
    }

    /// b received every byte a sent, in order (what `Pair::step` read for it included).
    fn b_has_all(&mut self) -> bool {
        let mut got = vec![0u8; self.data.len() + 1];
        let n = self.p.b().recv(&mut got);
        self.p.got_b.extend_from_slice(&got[..n]);
        self.p.got_b == self.data
    }
}

#[test]
fn a_recovery_caused_by_reordering_is_undone() {
    let mut r = Burst::new(6, Config::default());
    r.originals(1..6);
    assert!(r.p.a.cc.in_recovery(), "the SACKs started a recovery");
    let _resent = r.next_from_a(); // lost; the original of segment 0 arrives instead
    r.original(0);
    assert!(r.b_has_all());
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (1, 1), "{st:?}");
    assert!(!r.p.a.cc.in_recovery());
    // The window from before comes back through slow start (RFC 4015), not at once.
    assert!(
        r.p.a.cc.ssthresh() >= r.cwnd_before,
        "{}",
        r.p.a.cc.ssthresh()
    );
    assert!(r.p.a.cc.cwnd() < r.cwnd_before, "{}", r.p.a.cc.cwnd());
}

#[test]
fn a_recovery_from_a_real_loss_is_kept() {
    let mut r = Burst::new(6, Config::default());
    r.originals(1..6);
    assert!(r.p.a.cc.in_recovery());
    // The retransmission leaves in the recovery's own millisecond and repairs the loss.
    let (resent, _) = r.next_from_a();
    r.deliver_to_b(&resent);
    assert!(r.b_has_all());
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (1, 0), "{st:?}");
    assert!(r.p.a.cc.ssthresh() < r.cwnd_before, "the reduction stands");
}

#[test]
fn an_undo_needs_the_recovery_to_have_resent_one_segment_only() {
    // Segment 0 reordered, 3 lost: the recovery resends both before 0 arrives.
    let mut r = Burst::new(7, Config::default());
    r.originals([1, 2, 4, 5, 6]);
    let (_, first) = r.next_from_a();
    let (_, second) = r.next_from_a();
    assert_eq!((first, second), (r.seq_of(0), r.seq_of(3)));
    r.original(0);
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (1, 0), "{st:?}");
}

#[test]
fn a_loss_the_sacks_show_starts_a_recovery_after_an_undo() {
    // As above, but 0 arrives before the recovery resends 3: the undo holds for 0, and
    // 3, which the SACKs show lost, is resent at once in a new recovery.
    let mut r = Burst::new(7, Config::default());
    r.originals([1, 2, 4, 5, 6]);
    let (_, first) = r.next_from_a();
    assert_eq!(first, r.seq_of(0));
    r.original(0);
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (2, 1), "{st:?}");
    assert!(r.p.a.cc.in_recovery());
    let (resent, seq) = r.next_from_a();
    assert_eq!(seq, r.seq_of(3));
    r.deliver_to_b(&resent);
    assert!(r.b_has_all());
}

#[test]
fn without_sack_only_an_ack_of_the_whole_window_undoes() {
    let no_sack = Config {
        sack: false,
        ..Config::default()
    };
    // Segment 0 reordered, nothing lost: the ACK covers everything; undone.
    let mut r = Burst::new(6, no_sack.clone());
    r.originals(1..6);
    assert!(r.p.a.cc.in_recovery(), "duplicate ACKs started a recovery");
    let _resent = r.next_from_a();
    r.original(0);
    assert!(r.b_has_all());
    assert_eq!(r.p.a.stats().undone_recoveries, 1);
    // Segment 0 reordered and 3 lost: the ACK stops at 3, which NewReno resends.
    let mut r = Burst::new(6, no_sack);
    r.originals([1, 2, 4, 5]);
    assert!(r.p.a.cc.in_recovery());
    let _resent = r.next_from_a();
    r.original(0);
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (1, 0), "{st:?}");
    let (_, seq) = r.next_from_a();
    assert_eq!(seq, r.seq_of(3), "the partial ACK's retransmission");
}

/// Both ends have all of each other's data, neither has an ACK for its own, and both
/// time out and resend from SND.UNA. b's retransmission is old at a, which drops it (its
/// ACK field too, as RFC 9293 says) and answers with a pure ACK: numbered from the
/// highest a sent, b accepts it and the ACK of its data in it; numbered from a's pulled
/// back SND.NXT it would be old at b as well, and the two would drop each other's every
/// ACK until they gave up.
#[test]
fn pure_acks_after_a_timeout_are_acceptable_to_a_peer_that_has_everything() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.run_until(Duration::from_secs(1), |p| {
        p.b.as_ref()
            .is_some_and(|b| b.state() == State::Established)
    });
    let now = p.now;
    let (da, db) = (pattern(3 * 1448, 4), pattern(3 * 1448, 5));
    assert_eq!(p.a.send(&da), da.len());
    assert_eq!(p.b().send(&db), db.len());
    let mut from_a = Vec::new();
    while let Some(t) = p.a.poll_transmit(now) {
        from_a.push(serialise(&t, &p.a, A, B));
    }
    let mut from_b = Vec::new();
    let b = p.b.as_mut().unwrap();
    while let Some(t) = b.poll_transmit(now) {
        from_b.push(serialise(&t, b, B, A));
    }
    // Each gets the other's data; every ACK is lost.
    for s in &from_a {
        deliver(s, p.b(), A, B, now);
    }
    for s in &from_b {
        deliver(s, &mut p.a, B, A, now);
    }
    while p.a.poll_transmit(now).is_some() {}
    while p.b().poll_transmit(now).is_some() {}
    // Both time out and resend their first segment; a's is lost.
    let later = [
        p.a.timers.get(Timer::Rto),
        p.b.as_ref().unwrap().timers.get(Timer::Rto),
    ]
    .into_iter()
    .flatten()
    .max()
    .expect("both timers");
    p.now = later;
    p.a.on_timeout(later);
    p.b().on_timeout(later);
    assert!(p.a.poll_transmit(later).is_some(), "a's retransmission");
    let b = p.b.as_mut().unwrap();
    let t = b.poll_transmit(later).expect("b's retransmission");
    let resent = serialise(&t, b, B, A);
    deliver(&resent, &mut p.a, B, A, later);
    let t = p.a.poll_transmit(later).expect("a's answer");
    assert!(t.payload_len() == 0, "a pure ACK");
    assert_eq!(
        t.header().seq_number,
        p.a.snd_max.0,
        "numbered from the highest sent"
    );
    let ack = serialise(&t, &p.a, A, B);
    deliver(&ack, p.b(), A, B, later);
    let b = p.b.as_mut().unwrap();
    assert_eq!(b.snd_una, b.snd_max, "b took the ACK of its data");
}

/// b SACKs segments 1-3, then reneges on them (its out-of-order store forgets them, as
/// when it is full) and, given segment 0, acknowledges only that. a must take back what
/// it believed SACKed and resend from there: before, its timeout skipped the "SACKed"
/// left edge (RFC 2018 §8 says it MUST be resent) and the connection waited until it
/// gave up (20 % loss on the simulated link: a third of the seeds).
#[test]
fn a_receiver_that_reneges_on_its_sacks_gets_the_data_again() {
    let mut r = Burst::new(4, Config::default());
    r.originals(1..4);
    assert!(r.p.a.scoreboard.is_sacked(SeqNumber(r.seq_of(1))));
    r.p.b().ooo.clear();
    r.original(0);
    // b's ACK of segment 0 is a delayed one (for b, nothing is out of order now).
    let due =
        r.p.b()
            .timers
            .get(Timer::DelayedAck)
            .expect("b's delayed ACK");
    r.p.now = due;
    r.p.b().on_timeout(due);
    r.deliver_to_b(&[]);
    assert_eq!(
        r.p.a.snd_una.0,
        r.seq_of(1),
        "b acknowledges segment 0 only"
    );
    assert!(r.p.a.scoreboard.is_empty(), "the SACKs are forgotten");
    // Whatever recovery does, the timeout resends the left edge, and b gets it all.
    let rto =
        r.p.a
            .timers
            .get(Timer::Rto)
            .expect("a's retransmission timer");
    r.p.now = rto;
    r.p.a.on_timeout(rto);
    let (resent, seq) = r.next_from_a();
    assert_eq!(seq, r.seq_of(1));
    r.deliver_to_b(&resent);
    r.p.run_until(Duration::from_secs(30), |p| p.a.snd_una == p.a.snd_max);
    assert!(r.b_has_all());
}

/// A segment b already has, sent again, is reported as the first SACK block of b's ACK
/// (a D-SACK, RFC 2883), below the cumulative ACK; the out-of-order ranges follow.
#[test]
fn data_received_twice_is_reported_as_a_dsack() {
    let mut r = Burst::new(4, Config::default());
    r.originals([0, 2]); // 1 missing: 2 is out of order
    let again = r.segments[0].clone();
    let (ack, blocks) = r.b_answers(&again);
    let (s0, s1, s2, s3) = (r.seq_of(0), r.seq_of(1), r.seq_of(2), r.seq_of(3));
    assert_eq!(ack, Some(s1));
    assert_eq!(
        blocks,
        vec![(s0, s1), (s2, s3)],
        "the duplicate, then segment 2"
    );
    // Reported once. (Segment 2 again is a duplicate too: reported, then its range.)
    let again = r.segments[2].clone();
    let (_, blocks) = r.b_answers(&again);
    assert_eq!(blocks, vec![(s2, s3), (s2, s3)]);
}

/// On a sub-millisecond path the timestamps cannot show a recovery spurious, but b's
/// D-SACK of the retransmission, which arrives after the original, can: the recovery
/// is undone after it ended.
#[test]
fn a_dsack_of_the_segment_resent_undoes_a_recovery_timestamps_could_not() {
    let mut r = Burst::with_gap(6, Config::default(), Duration::ZERO);
    r.originals(1..6);
    assert!(r.p.a.cc.in_recovery());
    let (resent, seq) = r.next_from_a();
    assert_eq!(seq, r.seq_of(0));
    r.original(0);
    assert!(!r.p.a.cc.in_recovery(), "the recovery ended");
    assert_eq!(
        r.p.a.stats().undone_recoveries,
        0,
        "timestamps could not tell"
    );
    assert!(r.p.a.cc.ssthresh() < r.cwnd_before);
    r.deliver_to_b(&resent); // a duplicate for b: it D-SACKs it
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (1, 1), "{st:?}");
    assert!(
        r.p.a.cc.ssthresh() >= r.cwnd_before,
        "the window from before returns"
    );
    assert!(r.b_has_all());
}

/// A D-SACK of a segment the recovery did not resend (the network duplicated it) says
/// nothing about the retransmission: the recovery stands.
#[test]
fn a_dsack_of_another_segment_undoes_nothing() {
    let mut r = Burst::with_gap(6, Config::default(), Duration::ZERO);
    r.originals(1..6);
    let (resent, _) = r.next_from_a();
    r.deliver_to_b(&resent); // a real loss: the original never arrives
    assert!(!r.p.a.cc.in_recovery());
    r.original(2); // duplicated by the network: b D-SACKs it
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (1, 0), "{st:?}");
    assert!(r.p.a.cc.ssthresh() < r.cwnd_before);
    assert!(r.b_has_all());
}

/// A full-sized data segment that carries a pending D-SACK still fits the MTU (the
/// harness's `serialise` checks every segment against 1500 bytes).
#[test]
fn a_full_segment_with_a_dsack_fits_the_mtu() {
    let mut r = Burst::new(2, Config::default());
    r.original(0);
    r.original(1);
    let reply = pattern(4 * 1448, 9);
    assert_eq!(r.p.b().send(&reply), reply.len());
    let now = r.p.now;
    let again = r.segments[0].clone();
    deliver(&again, r.p.b(), A, B, now);
    let b = r.p.b.as_mut().unwrap();
    let mut sizes = Vec::new();
    while let Some(t) = b.poll_transmit(now) {
        sizes.push((t.payload_len(), serialise(&t, b, B, A).len()));
    }
    assert!(
        sizes.iter().any(|&(payload, _)| payload > 1000),
        "{sizes:?}"
    );
}

/// The D-SACK of the retransmission undoes a recovery still running (the original
/// arrived first, moving SND.UNA up to a real loss further on); the real loss then gets
/// its own recovery at once, counted once.
#[test]
fn a_dsack_undo_in_a_recovery_hands_a_real_loss_to_a_new_one() {
    let mut r = Burst::with_gap(7, Config::default(), Duration::ZERO);
    r.originals([1, 2, 4, 5, 6]);
    let (resent, seq) = r.next_from_a();
    assert_eq!(seq, r.seq_of(0));
    r.original(0); // SND.UNA moves to segment 3, still in the recovery
    assert!(r.p.a.cc.in_recovery());
    assert_eq!(r.p.a.stats().undone_recoveries, 0);
    r.deliver_to_b(&resent); // b D-SACKs segment 0
    let st = r.p.a.stats();
    assert_eq!((st.recoveries, st.undone_recoveries), (2, 1), "{st:?}");
    assert!(r.p.a.cc.in_recovery(), "a new recovery for segment 3");
    let (resent, seq) = r.next_from_a();
    assert_eq!(seq, r.seq_of(3));
    r.deliver_to_b(&resent);
    assert!(r.b_has_all());
}

/// A D-SACK that comes a window after the recovery ended finds no record: the
/// controller it would bring back is too old to trust.
#[test]
fn a_late_dsack_undoes_nothing() {
    let mut r = Burst::with_gap(6, Config::default(), Duration::ZERO);
    r.originals(1..6);
    let (resent, _) = r.next_from_a();
    r.original(0); // the recovery ends
    assert!(!r.p.a.cc.in_recovery());
    // A window of new data, acknowledged.
    let more = pattern(2 * 1448, 7);
    assert_eq!(r.p.a.send(&more), more.len());
    r.data.extend_from_slice(&more);
    let mut sent = Vec::new();
    let now = r.p.now;
    while let Some(t) = r.p.a.poll_transmit(now) {
        sent.push(serialise(&t, &r.p.a, A, B));
    }
    assert!(!sent.is_empty());
    for s in &sent {
        r.deliver_to_b(s);
    }
    let due = r.p.b().timers.get(Timer::DelayedAck);
    if let Some(due) = due {
        r.p.now = due;
        r.p.b().on_timeout(due);
        r.deliver_to_b(&[]);
    }
    assert_eq!(r.p.a.snd_una, r.p.a.snd_max, "all acknowledged");
    r.deliver_to_b(&resent); // its D-SACK, a window late
    assert_eq!(r.p.a.stats().undone_recoveries, 0);
    assert!(r.b_has_all());
}

/// A D-SACK block must hold just what the recovery resent, from within the recovery's
/// data: one wide enough to cover anything (forged, or from a retransmission that
/// carried more than the duplicate) undoes nothing.
#[test]
fn a_dsack_block_reaching_below_the_recovery_undoes_nothing() {
    let mut r = Burst::with_gap(6, Config::default(), Duration::ZERO);
    r.originals(1..6);
    let (resent, _) = r.next_from_a();
    r.deliver_to_b(&resent); // a real loss, repaired
    assert!(!r.p.a.cc.in_recovery());
    // b's next ACK, with a D-SACK from far below the recovery up to SND.UNA.
    let now = r.p.now;
    let b = r.p.b.as_mut().unwrap();
    b.ack_now = true;
    let t = b.poll_transmit(now).expect("an ACK");
    let mut repr = t.header();
    let una = repr.ack_number.unwrap();
    repr.sack_ranges = [
        Some((r.seq_of(0).wrapping_sub(100_000), una)),
        None,
        None,
        None,
    ];
    let mut forged = vec![0u8; repr.buffer_len()];
    repr.emit(&mut forged, *B.ip(), *A.ip()).unwrap();
    deliver(&forged, &mut r.p.a, B, A, now);
    assert_eq!(r.p.a.stats().undone_recoveries, 0);
    assert!(r.p.a.cc.ssthresh() < r.cwnd_before);
}

/// Out-of-order data b holds, sent again, is reported as a D-SACK followed by the range
/// holding it (RFC 2883 §4.2: that is how the sender tells it from a SACK).
#[test]
fn out_of_order_data_received_twice_is_reported_before_its_range() {
    let mut r = Burst::new(6, Config::default());
    r.originals([0, 2, 3, 5]); // 5 the latest: SACK blocks come latest first
    let again = r.segments[2].clone();
    let (ack, blocks) = r.b_answers(&again);
    let s = |i| r.seq_of(i);
    assert_eq!(ack, Some(s(1)));
    assert_eq!(
        blocks,
        vec![(s(2), s(3)), (s(2), s(4)), (s(5), s(5) + 1448)],
        "the duplicate, its range, then the other"
    );
}
