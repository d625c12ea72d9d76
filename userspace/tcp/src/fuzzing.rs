//! The body of the connection fuzz target (userspace/tcp/fuzz), public so that the
//! ordinary test suite also runs it over random input.
//!
//! The input is a script: a connection is opened (actively, or by accepting a SYN the
//! script shapes), then each step either lets time pass, has the application write,
//! read, close or abort, or delivers a segment whose every field the script chooses.
//! Sequence and acknowledgment numbers are offsets from what the connection last sent,
//! so the fuzzer reaches the interesting (nearly valid) cases instead of only the
//! out-of-window ones. After every step the connection's invariants must hold, and
//! `poll_transmit` must run dry.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use wire::{TcpFlags, TcpRepr, TcpTimestamp};

use crate::tcb::{Config, Tcb};
use crate::{Instant, SeqNumber};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5555);

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
}

/// What the connection last told the peer, for aiming the next segment.
struct Aim {
    /// One past the last sequence number the connection sent.
    snd_end: u32,
    /// The last acknowledgment number it sent (what it expects next).
    rcv_next: u32,
    tsval: u32,
    peer_ts: u32,
}

fn drain(t: &mut Tcb, now: Instant, aim: &mut Aim) {
    let mut n = 0;
    while let Some(x) = t.poll_transmit(now) {
        n += 1;
        assert!(n < 100_000, "poll_transmit never runs dry: {t:?}");
        let h = x.header();
        let len = x.payload_len();
        assert!(len <= 65535, "a segment of {len} bytes");
        let mut payload = [0u8; 2048];
        if len <= payload.len() {
            t.write_payload(&x, &mut payload[..len]);
        }
        aim.snd_end = h
            .seq_number
            .wrapping_add(len as u32)
            .wrapping_add(u32::from(h.flags.syn()) + u32::from(h.flags.fin()));
        if let Some(a) = h.ack_number {
            aim.rcv_next = a;
        }
        if let Some(ts) = h.timestamp {
            aim.tsval = ts.tsval;
        }
    }
    while t.poll_event().is_some() {}
}

fn segment<'p>(s: &mut Script<'_>, aim: &mut Aim, payload: &'p [u8]) -> Option<TcpRepr<'p>> {
    let flags_byte = s.byte()?;
    let seq_delta = s.u16()? as i16;
    let ack_delta = s.u16()? as i16;
    let window_len = s.u16()?;
    let len = usize::from(s.byte()?) * 8;
    let opts = s.byte()?;
    let mut flags = TcpFlags::default();
    flags.set_fin(flags_byte & 1 != 0);
    flags.set_syn(flags_byte & 2 != 0);
    flags.set_rst(flags_byte & 4 != 0);
    flags.set_psh(flags_byte & 8 != 0);
    flags.set_ack(flags_byte & 16 != 0);
    let ack_number = (flags_byte & 16 != 0).then(|| aim.snd_end.wrapping_add(ack_delta as u32));
    if opts & 1 != 0 {
        // The peer's clock moves forward, mostly.
        aim.peer_ts = aim
            .peer_ts
            .wrapping_add(u32::from(opts >> 4))
            .wrapping_sub(1);
    }
    let sack_left = aim.snd_end.wrapping_add((s.u16()? as i16) as u32);
    let sack_len = u32::from(s.u16()?);
    Some(TcpRepr {
        src_port: REMOTE.port(),
        dst_port: LOCAL.port(),
        seq_number: aim.rcv_next.wrapping_add(seq_delta as u32),
        ack_number,
        flags,
        window_len,
        urgent_pointer: 0,
        max_seg_size: (opts & 2 != 0).then_some(u16::from(opts) * 8),
        window_scale: (opts & 4 != 0).then_some(opts >> 4),
        sack_permitted: opts & 8 != 0,
        sack_ranges: [
            (opts & 2 != 0).then_some((sack_left, sack_left.wrapping_add(sack_len))),
            None,
            None,
            None,
        ],
        timestamp: (opts & 1 != 0).then_some(TcpTimestamp {
            tsval: aim.peer_ts,
            tsecr: aim.tsval,
        }),
        payload: &payload[..len.min(payload.len())],
    })
}

/// Runs the script in `data`. Panics if the connection breaks an invariant. Returns
/// the connection's final state and the bytes it delivered to the application (for
/// checking that scripts reach the interesting states at all).
pub fn connection(data: &[u8]) -> (crate::tcb::State, u64) {
    let mut s = Script(data);
    let Some(mode) = s.byte() else {
        return (crate::tcb::State::Closed, 0);
    };
    let config = Config {
        send_buffer: 1 << (10 + (mode >> 4) % 8),
        recv_buffer: 1 << (10 + (mode >> 1) % 8),
        keepalive: (mode & 0x80 != 0).then_some(crate::tcb::Keepalive {
            after: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 3,
        }),
        // Some active opens with a deadline a script can reach (time advances by
        // script bytes); the stack always gives one.
        connect_timeout: (mode & 0x40 != 0).then_some(Duration::from_secs(3)),
        ..Config::default()
    };
    let mut now = Instant::from_secs(1);
    let payload = [0x61u8; 2048];
    let mut aim = Aim {
        snd_end: 0,
        rcv_next: 0x4000_0000,
        tsval: 0,
        peer_ts: 1000,
    };
    let mut t = if mode & 1 == 0 {
        Tcb::connect(config, LOCAL, REMOTE, SeqNumber(0x8000_0000), now)
    } else {
        aim.rcv_next = 0x4000_0000;
        let Some(mut syn) = segment(&mut s, &mut aim, &payload) else {
            return (crate::tcb::State::Closed, 0);
        };
        syn.flags.set_syn(true);
        syn.flags.set_ack(false);
        syn.flags.set_rst(false);
        syn.ack_number = None;
        syn.payload = &[];
        Tcb::accept(config, LOCAL, REMOTE, &syn, SeqNumber(0x8000_0000), now)
    };
    drain(&mut t, now, &mut aim);
    let mut read = [0u8; 4096];
    // TCP_FUZZ_TRACE=1 prints every step: how a crash found by the fuzzer is read.
    let trace = std::env::var_os("TCP_FUZZ_TRACE").is_some();
    let mut written: u64 = 0;
    let mut delivered: u64 = 0;
    while let Some(op) = s.byte() {
        match op % 8 {
            0 => {
                now += Duration::from_millis(u64::from(s.byte().unwrap_or(0)) * 20);
                if t.poll_timeout().is_some_and(|d| d <= now) {
                    t.on_timeout(now);
                }
            }
            1 => {
                let n = usize::from(s.byte().unwrap_or(0)) * 64;
                written += t.send(&payload[..n.min(payload.len())]) as u64;
            }
            2 => {
                let n = usize::from(s.byte().unwrap_or(0)) * 64;
                written += t.send_nodelay(&payload[..n.min(payload.len())]) as u64;
            }
            3 => loop {
                let n = t.recv(&mut read);
                if n == 0 {
                    break;
                }
                delivered += n as u64;
            },
            4 => t.close(),
            5 if s.byte().unwrap_or(0) == 0xff => t.abort(),
            _ => {
                let Some(seg) = segment(&mut s, &mut aim, &payload) else {
                    break;
                };
                if trace {
                    eprintln!("segment {seg:?}");
                }
                t.on_segment(&seg, now);
            }
        }
        drain(&mut t, now, &mut aim);
        if trace {
            eprintln!("op {op} at {now:?}: {t:?}");
        }
        if let Err(e) = t.check_invariants() {
            panic!("after op {op} (written {written}): {e}");
        }
    }
    (t.state(), delivered)
}
