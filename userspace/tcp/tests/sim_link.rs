//! Tests of the simulated link itself (the transfer tests rely on its model being right).

mod support;

use std::time::Duration;

use support::link::{Link, LinkConfig};
use support::rng::Rng;
use tcp::Instant;

fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(4)];
    f[..4].copy_from_slice(&i.to_be_bytes());
    f
}

fn id(f: &[u8]) -> u32 {
    u32::from_be_bytes(f[..4].try_into().unwrap())
}

/// Deliver everything, returning (arrival time, frame id) in delivery order.
fn drain(link: &mut Link) -> Vec<(Instant, u32)> {
    let mut out = Vec::new();
    while let Some(t) = link.next_event() {
        while let Some(f) = link.poll_deliver(t) {
            out.push((t, id(&f)));
        }
    }
    out
}

#[test]
fn perfect_link_delays_and_keeps_order() {
    let mut link = Link::new(
        LinkConfig {
            delay: Duration::from_millis(5),
            ..LinkConfig::default()
        },
        1,
    );
    let t0 = Instant::from_millis(100);
    for i in 0..10 {
        link.send(t0 + Duration::from_micros(i as u64), &frame(i, 100));
    }
    assert_eq!(link.in_flight(), 10);
    assert_eq!(link.next_event(), Some(t0 + Duration::from_millis(5)));
    // Nothing before its time.
    assert!(link
        .poll_deliver(t0 + Duration::from_micros(4999))
        .is_none());
    let got = drain(&mut link);
    assert_eq!(got.len(), 10);
    for (i, (t, f)) in got.iter().enumerate() {
        assert_eq!(*f, i as u32);
        assert_eq!(
            *t,
            t0 + Duration::from_millis(5) + Duration::from_micros(i as u64)
        );
    }
    assert_eq!(link.stats().delivered, 10);
    assert_eq!(link.next_event(), None);
}

#[test]
fn bandwidth_serializes_and_the_queue_drops_at_the_tail() {
    let cfg = LinkConfig {
        delay: Duration::from_millis(1),
        bandwidth: Some(1_000_000), // 1 byte per µs
        queue_limit: 5_000,
        ..LinkConfig::default()
    };
    let mut link = Link::new(cfg, 2);
    let t0 = Instant::ZERO;
    // Ten 1000-byte frames at once: five fit the queue, the rest are tail-dropped.
    for i in 0..10 {
        link.send(t0, &frame(i, 1000));
    }
    assert_eq!(link.stats().tail_dropped, 5);
    let got = drain(&mut link);
    let ids: Vec<u32> = got.iter().map(|g| g.1).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    // Each frame takes 1 ms to serialize, then 1 ms to propagate.
    for (k, (t, _)) in got.iter().enumerate() {
        assert_eq!(*t, Instant::from_millis(2 + k as u64));
    }
    // Once the queue has drained (by 5 ms), frames are accepted again.
    link.send(Instant::from_millis(5), &frame(99, 1000));
    assert_eq!(link.stats().tail_dropped, 5);
    assert_eq!(drain(&mut link), [(Instant::from_millis(7), 99)]);
    // Paced sending at the link rate never queues up.
    let mut link = Link::new(
        LinkConfig {
            queue_limit: 1000,
            ..link.config().clone()
        },
        3,
    );
    for i in 0..100 {
        link.send(Instant::from_millis(i), &frame(i as u32, 1000));
    }
    assert_eq!(link.stats().tail_dropped, 0);
    assert_eq!(drain(&mut link).len(), 100);
}

#[test]
fn loss_duplication_and_reordering_rates() {
    let n = 20_000u32;
    let cfg = LinkConfig {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.1,
        reorder_max_delay: Duration::from_millis(3),
        delay: Duration::from_millis(1),
        ..LinkConfig::default()
    };
    let mut link = Link::new(cfg, 42);
    for i in 0..n {
        link.send(Instant::from_micros(u64::from(i) * 100), &frame(i, 64));
    }
    let s = link.stats().clone();
    let near = |x: u64, p: f64, base: f64| (x as f64 - p * base).abs() < 4.0 * (p * base).sqrt();
    assert!(near(s.lost, 0.05, f64::from(n)), "{s:?}");
    let kept = f64::from(n) - s.lost as f64;
    assert!(near(s.duplicated, 0.02, kept), "{s:?}");
    assert!(near(s.reordered, 0.1, kept + s.duplicated as f64), "{s:?}");
    let got = drain(&mut link);
    assert_eq!(got.len() as u64, u64::from(n) - s.lost + s.duplicated);
    // Arrival times never go backwards; frame ids sometimes do (reordering).
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
    let inversions = got.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert!(inversions > 100, "{inversions}");
    // No frame arrives later than delay + max reorder delay after it was sent.
    for (t, f) in &got {
        let sent = Instant::from_micros(u64::from(*f) * 100);
        assert!(*t - sent <= Duration::from_millis(4));
    }
}

#[test]
fn same_seed_same_run() {
    let cfg = LinkConfig {
        loss: 0.2,
        duplicate: 0.1,
        reorder: 0.3,
        reorder_max_delay: Duration::from_millis(2),
        bandwidth: Some(10_000_000),
        queue_limit: 20_000,
        ..LinkConfig::default()
    };
    let run = |seed| {
        let mut link = Link::new(cfg.clone(), seed);
        let mut rng = Rng::new(seed ^ 0xabc);
        for i in 0..2000 {
            let len = 40 + rng.below(1500) as usize;
            link.send(Instant::from_micros(i * 50), &frame(i as u32, len));
        }
        drain(&mut link)
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn rng_is_uniform_enough() {
    let mut rng = Rng::new(0);
    let mut buckets = [0u32; 10];
    for _ in 0..100_000 {
        buckets[rng.below(10) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|&b| (9_500..10_500).contains(&b)),
        "{buckets:?}"
    );
    let f: f64 = (0..10_000).map(|_| rng.next_f64()).sum::<f64>() / 10_000.0;
    assert!((f - 0.5).abs() < 0.01);
    assert!(!rng.chance(0.0) && rng.chance(1.0));
    let mut b = [0u8; 13];
    rng.fill(&mut b);
    assert!(b.iter().any(|&x| x != 0));
}

#[test]
fn tcp_frames_cross_the_link_intact() {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use support::frames;
    use wire::{TcpFlags, TcpRepr, TcpTimestamp};

    let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
    let b = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 53);
    let payload: Vec<u8> = (0..1460u32).map(|i| (i * 7) as u8).collect();
    let mut flags = TcpFlags::default();
    flags.set_psh(true);
    let seg = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq_number: 0xdead_beef,
        ack_number: Some(17),
        flags,
        window_len: 65535,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [Some((100, 200)), Some((300, 400)), Some((500, 600)), None],
        timestamp: Some(TcpTimestamp { tsval: 5, tsecr: 6 }),
        payload: &payload,
    };
    let mut link = Link::new(
        LinkConfig {
            duplicate: 0.5,
            bandwidth: Some(125_000_000),
            queue_limit: 1 << 20,
            ..LinkConfig::default()
        },
        9,
    );
    for _ in 0..20 {
        link.send(Instant::ZERO, &frames::emit(a, b, &seg));
    }
    let mut n = 0;
    while let Some(t) = link.next_event() {
        while let Some(f) = link.poll_deliver(t) {
            let p = frames::parse(&f).expect("valid frame");
            assert_eq!((p.src, p.dst), (a, b));
            assert_eq!(p.tcp.payload, &payload[..]);
            assert_eq!(p.tcp.sack_ranges, seg.sack_ranges);
            assert_eq!(p.tcp.timestamp, seg.timestamp);
            assert_eq!(p.tcp.ack_number, Some(17));
            n += 1;
        }
    }
    assert_eq!(n, 20 + link.stats().duplicated);
    // A corrupted frame is refused by the checksum.
    let mut f = frames::emit(a, b, &seg);
    let last = f.len() - 1;
    f[last] ^= 1;
    assert!(frames::parse(&f).is_err());
}

/// A stop-and-wait toy transport, just enough to check the simulation loop itself
/// (delivery, timers, verification, completion) without the real connection.
mod toy {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::support::frames::{self, Parsed};
    use super::support::sim::Endpoint;
    use std::net::SocketAddrV4;
    use tcp::Instant;
    use wire::{TcpFlags, TcpRepr};

    pub struct Toy {
        pub me: SocketAddrV4,
        pub peer: SocketAddrV4,
        unsent: VecDeque<u8>,
        /// Sequence number of the first unacknowledged byte (bytes sent so far, acked).
        una: u32,
        /// Length of the segment in flight, if any.
        in_flight: usize,
        rto_at: Option<Instant>,
        /// Next byte expected from the peer.
        rcv_nxt: u32,
        received: VecDeque<u8>,
        ack_due: bool,
        fin_queued: bool,
    }

    impl Toy {
        pub fn new(me: SocketAddrV4, peer: SocketAddrV4) -> Toy {
            Toy {
                me,
                peer,
                unsent: VecDeque::new(),
                una: 0,
                in_flight: 0,
                rto_at: None,
                rcv_nxt: 0,
                received: VecDeque::new(),
                ack_due: false,
                fin_queued: false,
            }
        }

        fn segment(&self, payload: &[u8]) -> Vec<u8> {
            let seg = TcpRepr {
                src_port: 0,
                dst_port: 0,
                seq_number: self.una,
                ack_number: Some(self.rcv_nxt),
                flags: TcpFlags::default(),
                window_len: 1000,
                urgent_pointer: 0,
                max_seg_size: None,
                window_scale: None,
                sack_permitted: false,
                sack_ranges: [None; 4],
                timestamp: None,
                payload,
            };
            frames::emit(self.me, self.peer, &seg)
        }
    }

    impl Endpoint for Toy {
        fn on_segment(&mut self, _now: Instant, seg: &Parsed<'_>) {
            let t = &seg.tcp;
            if let Some(ack) = t.ack_number {
                if self.in_flight > 0 && ack == self.una.wrapping_add(self.in_flight as u32) {
                    self.una = ack;
                    self.unsent.drain(..self.in_flight);
                    self.in_flight = 0;
                    self.rto_at = None;
                }
            }
            if !t.payload.is_empty() {
                if t.seq_number == self.rcv_nxt {
                    self.received.extend(t.payload);
                    self.rcv_nxt = self.rcv_nxt.wrapping_add(t.payload.len() as u32);
                }
                self.ack_due = true;
            }
        }

        fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(Vec<u8>)) {
            if self.in_flight == 0 && !self.unsent.is_empty() {
                self.in_flight = self.unsent.len().min(1000);
                let data: Vec<u8> = self.unsent.iter().take(self.in_flight).copied().collect();
                out(self.segment(&data));
                self.rto_at = Some(now + Duration::from_millis(20));
                self.ack_due = false;
            } else if self.ack_due {
                out(self.segment(&[]));
                self.ack_due = false;
            }
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.rto_at
        }

        fn on_timeout(&mut self, _now: Instant) {
            // Go back: resend the same segment on the next transmit.
            self.in_flight = 0;
            self.rto_at = None;
        }

        fn send(&mut self, data: &[u8]) -> usize {
            let n = data.len().min(4000 - self.unsent.len().min(4000));
            self.unsent.extend(&data[..n]);
            n
        }

        fn recv(&mut self, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.received.len());
            for (d, s) in buf.iter_mut().zip(self.received.drain(..n)) {
                *d = s;
            }
            n
        }

        fn close(&mut self) {
            self.fin_queued = true;
        }

        fn failed(&self) -> Option<String> {
            None
        }
    }
}

#[test]
fn simulation_loop_moves_and_verifies_a_stream_both_ways() {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use support::sim::{run, Scenario};

    let a_addr = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
    let b_addr = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 5000);
    let link = LinkConfig {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_max_delay: Duration::from_millis(1),
        delay: Duration::from_millis(1),
        bandwidth: Some(10_000_000),
        queue_limit: 64 * 1024,
    };
    let sc = Scenario {
        a_to_b: 200_000,
        b_to_a: 50_000,
        link_ab: link.clone(),
        link_ba: link,
        seed: 5,
        deadline: Duration::from_secs(60),
    };
    let mut a = toy::Toy::new(a_addr, b_addr);
    let mut b = toy::Toy::new(b_addr, a_addr);
    let out = run(&sc, &mut a, &mut b, a_addr, b_addr, Instant::from_secs(1));
    assert!(out.links[0].lost > 0 && out.links[0].duplicated > 0);
    assert!(out.finished[0] > out.finished[1]);
    assert!(out.goodput_bps(sc.a_to_b, 0) > 0.0);
    // A corrupted sender is caught by the verification.
    let bad = std::panic::catch_unwind(move || {
        let mut a = toy::Toy::new(a_addr, b_addr);
        let mut b = toy::Toy::new(b_addr, a_addr);
        // B's stream is fed one wrong byte by sending something first.
        use support::sim::Endpoint;
        a.send(&[0xff; 1]);
        run(&sc, &mut a, &mut b, a_addr, b_addr, Instant::ZERO)
    });
    assert!(bad.is_err());
}
