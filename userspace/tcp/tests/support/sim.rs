//! Two TCP endpoints joined by a pair of simulated links, in virtual time, moving a
//! pseudo-random byte stream each way and checking every byte on arrival.
//!
//! The endpoints are driven through [`Endpoint`], a thin adapter over the connection
//! under test; the loop here owns time, the links and the application on both sides.

use std::net::SocketAddrV4;
use std::time::Duration;

use tcp::Instant;

use super::frames::{self, Parsed};
use super::link::{Link, LinkConfig, LinkStats};
use super::rng::Rng;

/// What the simulation needs from one side of a connection.
pub trait Endpoint {
    /// A segment arrived for this endpoint.
    fn on_segment(&mut self, now: Instant, seg: &Parsed<'_>);
    /// Emit every segment the endpoint wants to send now, as frames.
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(Vec<u8>));
    /// The endpoint's next timer, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Its timer fired.
    fn on_timeout(&mut self, now: Instant);
    /// Queue application data; returns how much was accepted.
    fn send(&mut self, data: &[u8]) -> usize;
    /// Read in-order application data; returns how much was read.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Close the sending direction (after all data was queued).
    fn close(&mut self);
    /// The connection failed (reset or timed out): the run cannot complete.
    fn failed(&self) -> Option<String>;
    /// The endpoint's state, for the diagnosis of a stall.
    fn describe(&self) -> String {
        String::new()
    }
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Bytes to move from A to B.
    pub a_to_b: u64,
    /// Bytes to move from B to A.
    pub b_to_a: u64,
    /// Impairments of the A -> B link.
    pub link_ab: LinkConfig,
    /// Impairments of the B -> A link.
    pub link_ba: LinkConfig,
    /// Seed for the links and the data.
    pub seed: u64,
    /// Virtual time after which the run counts as stalled.
    pub deadline: Duration,
}

/// What a completed run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Virtual time from start until both streams were fully received.
    pub elapsed: Duration,
    /// When each direction finished (A -> B, B -> A).
    pub finished: [Duration; 2],
    /// Link counters (A -> B, B -> A).
    pub links: [LinkStats; 2],
}

impl Outcome {
    /// Goodput of a direction in bits per second of virtual time.
    pub fn goodput_bps(&self, bytes: u64, dir: usize) -> f64 {
        let t = self.finished[dir].as_secs_f64().max(1e-9);
        bytes as f64 * 8.0 / t
    }
}

/// A deterministic byte stream: what a sender writes and a receiver expects.
struct Stream {
    rng: Rng,
    block: [u8; 4096],
    pos: usize,
    total: u64,
    done: u64,
}

impl Stream {
    fn new(seed: u64, total: u64) -> Stream {
        let mut s = Stream {
            rng: Rng::new(seed),
            block: [0; 4096],
            pos: 0,
            total,
            done: 0,
        };
        s.rng.fill(&mut s.block);
        s
    }

    fn remaining(&self) -> u64 {
        self.total - self.done
    }

    /// The next bytes of the stream (at most to the end of the current block).
    fn peek(&self) -> &[u8] {
        let n = (self.block.len() - self.pos).min(self.remaining() as usize);
        &self.block[self.pos..self.pos + n]
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.done += n as u64;
        if self.pos == self.block.len() {
            self.rng.fill(&mut self.block);
            self.pos = 0;
        }
    }

    /// Check received bytes against the stream; returns the offset of the first wrong
    /// byte, if any.
    fn verify(&mut self, mut data: &[u8]) -> Result<(), u64> {
        if data.len() as u64 > self.remaining() {
            return Err(self.total);
        }
        while !data.is_empty() {
            let want = self.peek();
            let n = want.len().min(data.len());
            if let Some(i) = (0..n).find(|&i| want[i] != data[i]) {
                return Err(self.done + i as u64);
            }
            data = &data[n..];
            self.advance(n);
        }
        Ok(())
    }
}

/// Run a scenario to completion; panics with a diagnosis if a byte is wrong, a
/// connection fails, or the deadline passes first.
pub fn run<A: Endpoint, B: Endpoint>(
    sc: &Scenario,
    a: &mut A,
    b: &mut B,
    a_addr: SocketAddrV4,
    b_addr: SocketAddrV4,
    start: Instant,
) -> Outcome {
    let mut ab = Link::new(sc.link_ab.clone(), sc.seed ^ 0x0a0b);
    let mut ba = Link::new(sc.link_ba.clone(), sc.seed ^ 0x0b0a);
    // Writers and readers per direction: [A -> B, B -> A].
    let mut tx = [
        Stream::new(sc.seed ^ 0x1111, sc.a_to_b),
        Stream::new(sc.seed ^ 0x2222, sc.b_to_a),
    ];
    let mut rx = [
        Stream::new(sc.seed ^ 0x1111, sc.a_to_b),
        Stream::new(sc.seed ^ 0x2222, sc.b_to_a),
    ];
    let mut closed = [false; 2];
    let mut finished: [Option<Duration>; 2] = [None; 2];
    let mut now = start;
    let deadline = start + sc.deadline;
    let mut buf = vec![0u8; 64 * 1024];
    let mut idle_rounds = 0u32;

    loop {
        // Applications: write what fits, read what arrived.
        pump(a, &mut tx[0], &mut closed[0]);
        pump(b, &mut tx[1], &mut closed[1]);
        for (dir, reader) in rx.iter_mut().enumerate() {
            loop {
                let n = if dir == 0 {
                    b.recv(&mut buf)
                } else {
                    a.recv(&mut buf)
                };
                if n == 0 {
                    break;
                }
                if let Err(off) = reader.verify(&buf[..n]) {
                    panic!("direction {dir}: byte {off} differs from what was sent (at {now:?})");
                }
            }
            if reader.remaining() == 0 && finished[dir].is_none() {
                finished[dir] = Some(now - start);
            }
        }
        if let [Some(f0), Some(f1)] = finished {
            return Outcome {
                elapsed: now - start,
                finished: [f0, f1],
                links: [ab.stats().clone(), ba.stats().clone()],
            };
        }
        for (name, e) in [("A", a.failed()), ("B", b.failed())] {
            if let Some(why) = e {
                panic!("endpoint {name} failed at {now:?}: {why}");
            }
        }

        // Segments out onto the links.
        let mut sent = 0;
        a.transmit(now, &mut |f| {
            sent += 1;
            ab.send(now, &f)
        });
        b.transmit(now, &mut |f| {
            sent += 1;
            ba.send(now, &f)
        });

        // Advance to the next thing that happens.
        let next = [
            ab.next_event(),
            ba.next_event(),
            a.poll_timeout(),
            b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            panic!(
                "stalled at {now:?}: nothing in flight and no timer; A->B {}/{} B->A {}/{}\n\
                 A: {}\nB: {}",
                rx[0].done,
                sc.a_to_b,
                rx[1].done,
                sc.b_to_a,
                a.describe(),
                b.describe()
            );
        };
        if next > deadline {
            panic!(
                "no completion by {deadline:?}: A->B {}/{} B->A {}/{}; links {:?} {:?}\n\
                 A: {}\nB: {}",
                rx[0].done,
                sc.a_to_b,
                rx[1].done,
                sc.b_to_a,
                ab.stats(),
                ba.stats(),
                a.describe(),
                b.describe()
            );
        }
        // A timer that stays due without anything happening would spin forever.
        if next <= now && sent == 0 {
            idle_rounds += 1;
            assert!(
                idle_rounds < 10_000,
                "timer due at {next:?} keeps firing with no effect"
            );
        } else {
            idle_rounds = 0;
        }
        now = now.max(next);

        while let Some(f) = ab.poll_deliver(now) {
            deliver(b, b_addr, now, &f);
        }
        while let Some(f) = ba.poll_deliver(now) {
            deliver(a, a_addr, now, &f);
        }
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.on_timeout(now);
        }
        if b.poll_timeout().is_some_and(|t| t <= now) {
            b.on_timeout(now);
        }
    }
}

fn pump<E: Endpoint>(e: &mut E, s: &mut Stream, closed: &mut bool) {
    while s.remaining() > 0 {
        let n = e.send(s.peek());
        if n == 0 {
            break;
        }
        s.advance(n);
    }
    if s.remaining() == 0 && !*closed {
        e.close();
        *closed = true;
    }
}

fn deliver<E: Endpoint>(e: &mut E, addr: SocketAddrV4, now: Instant, frame: &[u8]) {
    let p = frames::parse(frame).expect("the link delivers only frames we built");
    assert_eq!(p.dst, addr, "frame delivered to the wrong endpoint");
    e.on_segment(now, &p);
}
