//! A one-way simulated link in virtual time: frames go in as bytes and come out as bytes
//! after serialization, propagation delay and whatever impairments are configured.
//!
//! Model, per frame, in order:
//! 1. **Bandwidth** (if set): the frame joins a FIFO transmit queue and is serialized at
//!    `bandwidth` bytes/s after the frames ahead of it. If the bytes waiting to be
//!    serialized would exceed `queue_limit`, the frame is dropped at the tail (a
//!    drop-tail router buffer: this is what makes congestion control matter).
//! 2. **Loss**: with probability `loss` the frame is lost on the wire (after using its
//!    share of the bandwidth, like a corrupted frame).
//! 3. **Delay**: it arrives `delay` after its last byte was serialized.
//! 4. **Reordering**: with probability `reorder` it is held back an extra random time up
//!    to `reorder_max_delay`, so frames sent after it may overtake it.
//! 5. **Duplication**: with probability `duplicate` a second copy is delivered too (with
//!    its own reordering draw).
//!
//! All randomness comes from a seeded [`Rng`], so a run is reproducible from its seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use tcp::Instant;

use super::rng::Rng;

/// A link's impairments.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is delayed by an extra random amount.
    pub reorder: f64,
    /// The largest extra delay of a reordered frame.
    pub reorder_max_delay: Duration,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Serialization rate in bytes per second; `None` for infinitely fast.
    pub bandwidth: Option<u64>,
    /// The most bytes that may wait for serialization; more are dropped at the tail.
    pub queue_limit: usize,
}

impl Default for LinkConfig {
    /// A perfect link with 1 ms of delay.
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_max_delay: Duration::ZERO,
            delay: Duration::from_millis(1),
            bandwidth: None,
            queue_limit: usize::MAX,
        }
    }
}

/// What happened to the frames sent into a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames given to `send`.
    pub sent: u64,
    /// Bytes given to `send`.
    pub sent_bytes: u64,
    /// Frames lost at random.
    pub lost: u64,
    /// Frames dropped because the transmit queue was full.
    pub tail_dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames (or copies) given extra delay.
    pub reordered: u64,
    /// Frames returned by `poll_deliver`.
    pub delivered: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: Instant,
    /// Tie-break by send order, so equal arrival times stay FIFO and runs are
    /// deterministic.
    order: u64,
    frame: Vec<u8>,
}

/// One direction of a simulated link.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    rng: Rng,
    /// When the transmitter finishes what is queued.
    tx_free_at: Instant,
    /// (serialization end, bytes) of frames still in the transmit queue.
    queue: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    in_flight: BinaryHeap<Reverse<Pending>>,
    order: u64,
    stats: LinkStats,
}

impl Link {
    /// A link with the given impairments, its randomness drawn from `seed`.
    pub fn new(cfg: LinkConfig, seed: u64) -> Link {
        Link {
            cfg,
            rng: Rng::new(seed),
            tx_free_at: Instant::ZERO,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: BinaryHeap::new(),
            order: 0,
            stats: LinkStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Counters of what happened so far.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Frames in flight (sent, not yet delivered or dropped).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Put a frame on the link at `now`.
    pub fn send(&mut self, now: Instant, frame: &[u8]) {
        self.stats.sent += 1;
        self.stats.sent_bytes += frame.len() as u64;
        let on_wire = match self.cfg.bandwidth {
            None => now,
            Some(bw) => {
                while let Some(&(end, len)) = self.queue.front() {
                    if end > now {
                        break;
                    }
                    self.queue.pop_front();
                    self.queued_bytes -= len;
                }
                if self.queued_bytes + frame.len() > self.cfg.queue_limit {
                    self.stats.tail_dropped += 1;
                    return;
                }
                let start = self.tx_free_at.max(now);
                let micros = (frame.len() as u64 * 1_000_000).div_ceil(bw.max(1));
                let end = start + Duration::from_micros(micros);
                self.tx_free_at = end;
                self.queue.push_back((end, frame.len()));
                self.queued_bytes += frame.len();
                end
            }
        };
        if self.rng.chance(self.cfg.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = on_wire + self.cfg.delay;
            if self.rng.chance(self.cfg.reorder) {
                self.stats.reordered += 1;
                let max = self.cfg.reorder_max_delay.as_micros() as u64;
                at += Duration::from_micros(self.rng.below(max + 1));
            }
            self.order += 1;
            self.in_flight.push(Reverse(Pending {
                at,
                order: self.order,
                frame: frame.to_vec(),
            }));
        }
    }

    /// The next frame that has arrived by `now`, if any (earliest arrival first).
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.in_flight.peek()?.0.at > now {
            return None;
        }
        self.stats.delivered += 1;
        self.in_flight.pop().map(|Reverse(p)| p.frame)
    }

    /// When the next frame arrives, if one is in flight.
    pub fn next_event(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(p)| p.at)
    }
}
