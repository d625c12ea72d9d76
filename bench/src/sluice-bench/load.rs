//! The load itself: connection tasks on the stack's workers, each keeping its share of
//! queries in flight and recording latencies.
//!
//! Closed loop sends as fast as answers come back. Open loop sends on a fixed schedule
//! and measures each latency from the moment the query was *due*, not from when it
//! could be sent, so a server that stalls is charged for the queries it delayed
//! (coordinated omission, after Gil Tene's HdrHistogram).

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use stack::{Error, Flow, WorkerContext, WriteError};
use tokio::time::Instant;

use crate::pacer::Pacer;
use crate::queries::{answer, Query};

/// How connections are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Persistent connections, `--in-flight` queries outstanding on each (RFC 7766 pipelining).
    Pipelined,
    /// Persistent connections, one query at a time.
    Serial,
    /// A new connection for every query (connect, query, answer, close).
    PerConnection,
}

/// What is spoken over the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// DNS over TCP (RFC 7766): answers must be responses to our IDs.
    Dns,
    /// Length-prefixed messages against an echo server: any frame back carrying one of
    /// our IDs is an answer (for benchmarking the stack without a DNS server).
    Echo,
}

/// What the run does, shared by every task.
pub struct Plan {
    pub protocol: Protocol,
    pub mode: Mode,
    pub server: SocketAddrV4,
    pub in_flight: usize,
    /// Queries per second per connection (open loop); None for closed loop.
    pub rate_per_connection: Option<f64>,
    pub timeout: Duration,
    pub queries: Vec<Query>,
}

pub const PHASE_WARMUP: u8 = 0;
pub const PHASE_MEASURE: u8 = 1;
pub const PHASE_STOP: u8 = 2;

/// Counters every task adds to; read by the progress line and the final report.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub connections: AtomicU64,
    pub timeouts: AtomicU64,
    pub resets: AtomicU64,
    pub refused: AtomicU64,
    pub connect_errors: AtomicU64,
    pub bad_answers: AtomicU64,
    pub rcodes: [AtomicU64; 16],
    /// The longest latency (µs) since the progress line last took it: shows whether
    /// tails come in bursts (a stall) or spread evenly.
    pub max_latency_us: AtomicU64,
    /// Open loop: queries that had fallen due but were unanswered (sent or not) when the
    /// run stopped. They enter the latencies at their age then, so a server that cannot
    /// carry the rate is charged for the queries it never answered, not only for the
    /// late answers it gave.
    pub unanswered: AtomicU64,
    /// When the measured phase ended.
    pub stopped_at: std::sync::OnceLock<std::time::Instant>,
    /// Tasks whose first connect has finished, one way or the other: the warm-up starts
    /// when all have.
    pub first_connects: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, e: &Error) {
        match e {
            Error::Refused => Self::bump(&self.refused),
            Error::Timeout => Self::bump(&self.timeouts),
            Error::Reset => Self::bump(&self.resets),
            _ => Self::bump(&self.connect_errors),
        }
    }
}

/// Whether a failed connect timed out.
struct TimedOut(bool);

/// One worker's latencies (microseconds), merged into the report at the end.
pub type Latencies = Rc<RefCell<Histogram<u64>>>;

pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Everything a connection task needs.
#[derive(Clone)]
pub struct Task {
    pub ctx: WorkerContext,
    pub plan: Arc<Plan>,
    pub counters: Arc<Counters>,
    pub phase: Arc<AtomicU8>,
    pub latencies: Latencies,
    /// Which query of the list this task starts with, so tasks do not move in lockstep.
    pub first_query: usize,
    /// Open loop: the worker's pacer and this task's slot in it.
    pub pacer: Option<(Rc<Pacer>, usize)>,
    /// Whether this task's first connect has finished.
    pub connected_once: std::cell::Cell<bool>,
}

impl Task {
    fn stopping(&self) -> bool {
        self.phase.load(Ordering::Acquire) == PHASE_STOP
    }

    /// When the measured phase ended, once it has (main sets it before it publishes the
    /// stop phase, so a task that sees the phase sees this too).
    fn stopped_at(&self) -> Option<Instant> {
        self.counters
            .stopped_at
            .get()
            .map(|t| Instant::from_std(*t))
    }

    /// Records the latency of a query due (or sent) at `since` and done now. After the
    /// stop, one due before it counts at its age at the stop, as unanswered: the run
    /// ended before its answer came (or its connection gave up on it).
    fn record(&self, since: Instant) {
        let us = match self.phase.load(Ordering::Acquire) {
            PHASE_MEASURE => since.elapsed(),
            PHASE_STOP => match self.stopped_at() {
                Some(stop) if since < stop => {
                    self.counters.unanswered.fetch_add(1, Ordering::Relaxed);
                    stop - since
                }
                _ => return,
            },
            _ => return,
        };
        let us = us.as_micros().max(1) as u64;
        let _ = self.latencies.borrow_mut().record(us.min(100_000_000));
        self.counters
            .max_latency_us
            .fetch_max(us, Ordering::Relaxed);
    }

    /// At the end of an open-loop run: charges the queries the schedule had not let out
    /// by the stop (see [`charge_backlog`]).
    fn charge_backlog(&self, next_due: Instant, interval: Duration) {
        let Some(stop) = self.stopped_at() else {
            return;
        };
        let n = charge_backlog(&mut self.latencies.borrow_mut(), next_due, interval, stop);
        self.counters.unanswered.fetch_add(n, Ordering::Relaxed);
    }

    /// The queries a connection gave up on count as timeouts, and in the latencies at
    /// their age now (at least the timeout): a query never answered is not a fast one.
    fn timed_out(&self, outstanding: &mut [Option<Instant>], in_flight: usize) {
        self.counters
            .timeouts
            .fetch_add(in_flight as u64, Ordering::Relaxed);
        for t in outstanding.iter_mut().filter_map(Option::take) {
            self.record(t);
        }
    }

    /// Runs the task's connections until the phase says stop.
    pub async fn run(self) {
        let mut next = self.first_query;
        // Open loop: the schedule of this connection's queries.
        let interval = self
            .plan
            .rate_per_connection
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let mut due = Instant::now();
        while !self.stopping() {
            match self.plan.mode {
                Mode::PerConnection => {
                    if let Some(iv) = interval {
                        self.until(due).await;
                        due += iv;
                    }
                    let started = if interval.is_some() {
                        due - interval.unwrap_or_default()
                    } else {
                        Instant::now()
                    };
                    let q = &self.plan.queries[next % self.plan.queries.len()];
                    next += 1;
                    self.one_query_connection(q, started).await;
                }
                Mode::Pipelined | Mode::Serial => {
                    let depth = if self.plan.mode == Mode::Serial {
                        1
                    } else {
                        self.plan.in_flight.max(1)
                    };
                    self.persistent(depth, &mut next, interval, &mut due).await;
                }
            }
        }
        if let Some(iv) = interval {
            self.charge_backlog(due, iv);
        }
    }

    /// Waits for an open-loop due time.
    async fn until(&self, due: Instant) {
        match &self.pacer {
            Some((pacer, slot)) => pacer.until(*slot, due).await,
            None => tokio::time::sleep_until(due).await,
        }
    }

    /// A new connection to the server; on failure, whether it timed out (every failure
    /// is counted here).
    async fn connect(&self) -> Result<Flow, TimedOut> {
        // The stack's connect timeout is `--timeout` (main.rs): no timer of our own.
        let outcome = self.ctx.connect(self.plan.server, None).await;
        if !self.connected_once.replace(true) {
            Counters::bump(&self.counters.first_connects);
        }
        match outcome {
            Ok(flow) => {
                Counters::bump(&self.counters.connections);
                Ok(flow)
            }
            Err(e) => {
                self.counters.error(&e);
                let timed_out = matches!(e, Error::Timeout);
                if !timed_out {
                    // Back off a little so a refusing server is not hammered in a tight
                    // loop (a timeout has waited long enough, and is charged at its age).
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(TimedOut(timed_out))
            }
        }
    }

    fn framed(q: &Query, id: u16) -> Bytes {
        let mut b = BytesMut::with_capacity(2 + q.wire.len());
        b.extend_from_slice(&(q.wire.len() as u16).to_be_bytes());
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&q.wire[2..]);
        b.freeze()
    }

    fn tally(&self, msg: &[u8]) -> Option<u16> {
        let parsed = match self.plan.protocol {
            Protocol::Dns => answer(msg),
            Protocol::Echo => (msg.len() >= 2).then(|| crate::queries::Answer {
                id: u16::from_be_bytes([msg[0], msg[1]]),
                rcode: 0,
            }),
        };
        match parsed {
            Some(a) => {
                Counters::bump(&self.counters.answered);
                Counters::bump(&self.counters.rcodes[a.rcode as usize]);
                Some(a.id)
            }
            None => {
                Counters::bump(&self.counters.bad_answers);
                None
            }
        }
    }

    async fn one_query_connection(&self, q: &Query, started: Instant) {
        let mut flow = match self.connect().await {
            Ok(flow) => flow,
            Err(TimedOut(timed_out)) => {
                if timed_out {
                    self.record(started); // charged at its age, as a read timeout below
                }
                return;
            }
        };
        Counters::bump(&self.counters.sent);
        if let Err(e) = flow.write(Self::framed(q, 1)).await {
            if matches!(e, WriteError::Closed) {
                Counters::bump(&self.counters.resets);
            }
            return;
        }
        let mut buf = BytesMut::new();
        let deadline = Instant::now() + self.plan.timeout;
        loop {
            match tokio::time::timeout_at(deadline, flow.read()).await {
                Ok(Ok(Some(data))) => {
                    buf.extend_from_slice(&data);
                    if let Some(msg) = take_frame(&mut buf) {
                        if self.tally(&msg) == Some(1) {
                            self.record(started);
                        }
                        break;
                    }
                }
                Ok(Ok(None)) => {
                    Counters::bump(&self.counters.resets);
                    break;
                }
                Ok(Err(e)) => {
                    self.counters.error(&e);
                    break;
                }
                Err(_) => {
                    Counters::bump(&self.counters.timeouts);
                    self.record(started);
                    break;
                }
            }
        }
        flow.close().await;
    }

    async fn persistent(
        &self,
        depth: usize,
        next: &mut usize,
        interval: Option<Duration>,
        due: &mut Instant,
    ) {
        let Ok(mut flow) = self.connect().await else {
            return;
        };
        // Outstanding queries by ID: when each was due (open loop) or sent (closed loop).
        let mut outstanding: Vec<Option<Instant>> = vec![None; 65536];
        let mut in_flight = 0usize;
        let mut id: u16 = 0;
        let mut buf = BytesMut::new();
        let mut batch: Vec<Bytes> = Vec::with_capacity(depth);
        // The schedule starts when the task's first connection is up: opening the
        // connections is the warm-up's business, and a SYN lost at the start would
        // otherwise charge a second's backlog to the run. After a reconnect it carries
        // on, so what fell due meanwhile goes out late and is charged for it.
        if interval.is_some() && *next == self.first_query && *due < Instant::now() {
            *due = Instant::now();
        }
        loop {
            if self.stopping() {
                break;
            }
            // Send what the window (and, in open loop, the schedule) allows, in one batch.
            let now = Instant::now();
            batch.clear();
            while in_flight + batch.len() < depth && interval.is_none_or(|_| *due <= now) {
                let q = &self.plan.queries[*next % self.plan.queries.len()];
                *next += 1;
                id = id.wrapping_add(1);
                if outstanding[id as usize].is_some() {
                    break; // all 65536 IDs in flight: wait for answers
                }
                outstanding[id as usize] = Some(if let Some(iv) = interval {
                    let t = *due;
                    *due += iv;
                    t
                } else {
                    now
                });
                batch.push(Self::framed(q, id));
            }
            if !batch.is_empty() {
                self.counters
                    .sent
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                in_flight += batch.len();
                if flow.writev(&batch).await.is_err() {
                    Counters::bump(&self.counters.resets);
                    break;
                }
            }
            // Wait for answers, or for the next query to fall due.
            let read = if in_flight == 0 {
                match interval {
                    Some(_) => {
                        self.until(*due).await;
                        continue;
                    }
                    None => continue,
                }
            } else if interval.is_some() && in_flight < depth {
                // Answers, or the next due time, whichever comes first. The timeout
                // restarts with each due time, so it catches a silent server once the
                // window is full (the branch below) or the schedule falls quiet.
                let next_due = *due;
                tokio::select! {
                    biased;
                    r = tokio::time::timeout(self.plan.timeout, flow.read()) => match r {
                        Ok(r) => r,
                        Err(_) => {
                            self.timed_out(&mut outstanding, in_flight);
                            break;
                        }
                    },
                    _ = self.until(next_due) => continue,
                }
            } else {
                match tokio::time::timeout(self.plan.timeout, flow.read()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.timed_out(&mut outstanding, in_flight);
                        break;
                    }
                }
            };
            match read {
                Ok(Some(data)) => {
                    buf.extend_from_slice(&data);
                    while let Some(msg) = take_frame(&mut buf) {
                        if let Some(aid) = self.tally(&msg) {
                            if let Some(t) = outstanding[aid as usize].take() {
                                in_flight -= 1;
                                self.record(t);
                            }
                        }
                    }
                }
                Ok(None) => {
                    Counters::bump(&self.counters.resets);
                    break;
                }
                Err(e) => {
                    self.counters.error(&e);
                    break;
                }
            }
        }
        // However the connection ended, once the run has stopped what it still had in
        // flight counts at its age then (before the stop, a lost connection's queries
        // were charged as timeouts or counted as resets).
        if self.stopping() {
            for t in outstanding.iter_mut().filter_map(Option::take) {
                self.record(t);
            }
        }
        flow.close().await;
    }
}

/// Records, at their ages at `stop`, the open-loop queries the schedule had due from
/// `next_due` on (one per `interval`) but not let out by `stop`. Returns how many.
fn charge_backlog(
    h: &mut Histogram<u64>,
    next_due: Instant,
    interval: Duration,
    stop: Instant,
) -> u64 {
    if interval.is_zero() || next_due >= stop {
        return 0;
    }
    let (span, iv) = ((stop - next_due).as_nanos(), interval.as_nanos());
    let n = span.div_ceil(iv) as u64;
    // One record per query up to a million; past that (a stalled server and a tiny
    // interval) evenly spaced ones stand for the rest, each with its share of the count.
    let samples = n.min(1_000_000);
    let weight = n / samples;
    for i in 0..samples {
        // Query i * weight is due that many intervals after next_due (< stop).
        let age_us = (span - u128::from(i * weight) * iv) / 1000;
        let count = if i + 1 == samples {
            n - i * weight
        } else {
            weight
        };
        let _ = h.record_n((age_us as u64).clamp(1, 100_000_000), count);
    }
    n
}

/// Takes one length-prefixed DNS message off the front of `buf`, if complete.
fn take_frame(buf: &mut BytesMut) -> Option<BytesMut> {
    if buf.len() < 2 {
        return None;
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if buf.len() < 2 + len {
        return None;
    }
    let mut frame = buf.split_to(2 + len);
    Some(frame.split_off(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_s_backlog_counts_at_its_age_when_the_run_stops() {
        let t0 = Instant::now();
        let stop = t0 + Duration::from_millis(10);
        let mut h = new_histogram();
        // Due at 5.5, 6.5, 7.5, 8.5 and 9.5 ms: ages 4.5 down to 0.5 ms.
        let n = charge_backlog(
            &mut h,
            t0 + Duration::from_micros(5500),
            Duration::from_millis(1),
            stop,
        );
        assert_eq!(n, 5);
        assert_eq!(h.len(), 5);
        assert_eq!(h.max(), h.highest_equivalent(4500));
        assert_eq!(h.min(), h.lowest_equivalent(500));
        // Nothing due before the stop: nothing charged.
        assert_eq!(
            charge_backlog(&mut h, stop, Duration::from_millis(1), stop),
            0
        );
    }

    #[test]
    fn a_huge_backlog_is_sampled_but_fully_counted() {
        let t0 = Instant::now();
        let stop = t0 + Duration::from_secs(10);
        let mut h = new_histogram();
        let n = charge_backlog(&mut h, t0, Duration::from_nanos(1000), stop);
        assert_eq!(n, 10_000_000);
        assert_eq!(h.len(), 10_000_000);
        assert_eq!(h.max(), h.highest_equivalent(10_000_000));
    }

    #[test]
    fn frames_come_off_whole() {
        let mut b = BytesMut::from(&b"\x00\x03abc\x00\x02d"[..]);
        assert_eq!(&take_frame(&mut b).unwrap()[..], b"abc");
        assert!(take_frame(&mut b).is_none(), "half a frame stays");
        b.extend_from_slice(b"e");
        assert_eq!(&take_frame(&mut b).unwrap()[..], b"de");
        assert!(b.is_empty());
    }
}
