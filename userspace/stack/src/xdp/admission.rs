//! Admission of new connections, decided in the steering program from a budget each
//! worker sets for its queue (ebpf/sluice_xdp.c): a worker offered more connections
//! than it can finish spends its core copying, answering and forgetting SYNs while the
//! segments of the connections it did accept wait behind them in the RX ring (or are
//! dropped with them), and its goodput collapses. Dropping the excess SYNs in XDP costs
//! tens of nanoseconds each.
//!
//! The budget follows the connections the worker opens (completes the handshake of),
//! not how full its ring is (a burst of legitimate clients fills a ring too). Every
//! period the worker looks at whether it is overloaded, from its queue rather than its
//! busy share (which a worker serving frames a few at a time shows high long before it
//! is the bound): it found a full batch waiting in most of its rounds ([`BACKLOGGED`]),
//! a backlog that lasts. Frames the kernel dropped for its full ring without a backlog
//! are a stall (its core taken from it for milliseconds) or a burst, which no rate of
//! new connections would have avoided. And whether new connections are the pressure:
//! more SYNs reached it than [`PRESSURE`] times the connections it opened, plus a
//! margin. Opened, not served to their end: connections that stay open (a resolver's,
//! or a million held ones) never end, and would read as a flood.
//! - Both, two periods in a row (a burst of clients lasts less than one): new
//!   connections are admitted at the rate the worker has shown it opens them (the
//!   highest of its opening rates, two periods averaged, over the last [`PEAK_PERIODS`]),
//!   a little less ([`START`]), never below [`MIN_RATE`]. Taking the rate of the
//!   overloaded period itself spirals down: overload lowers it.
//! - With a budget, a backlog two periods in a row (one is as often a stall's catching
//!   up): it is cut by [`BACK_OFF`] if frames were lost (as TCP's window on loss), by
//!   [`EASE`] if not; then not again for [`COOLDOWN`] periods, the time the queue takes
//!   to drain (cutting again for the same queue would overshoot, as TCP cuts once a
//!   round trip).
//! - With a budget and no backlog: it grows by [`INCREASE`] a period while it binds
//!   (the SYNs reaching the worker use most of it) and no queue is building
//!   ([`QUEUEING`]) and nothing was lost, up to a little under the budget the last
//!   backlog was met at, for [`KNEE_PERIODS`] (the knee is sharp: past it the queue
//!   overflows within a period, before any signal). It is lifted once the demand has
//!   stayed under [`UNUSED`] of it for [`CALM_PERIODS`] periods.
//! - With no budget, nothing is dropped: a burst of clients at a worker with room is
//!   never shed, and neither is a SYN flood the worker answers with SYN cookies
//!   without overload.
//!
//! The budget's burst is bounded by what the RX ring holds ([`MAX_BURST`]): a burst the
//! ring cannot take is lost with the established segments beside it.
//!
//! Beside the budget, with admission on, the program drops SYNs while more than 256
//! frames wait in the queue's ring ([`ring_limit`]; the fill as the program sees it,
//! from the frames it steered and what the worker left in the ring at its last poll,
//! `xsk::RingLevel`). That acts within microseconds, where the budget takes periods: a
//! stall or a burst fills the ring with the segments of connections already accepted,
//! which then finish, instead of new ones that would all be lost with them; and the
//! worker always has work waiting, never more than a fraction of a millisecond of it.
//! Measured on the in-memory device, it holds the goodput at 3x and 10x overload at
//! the closed-loop capacity and the persistent connections at 99-100 % of their rate
//! (bench/RESULTS.md). With it, the budget rarely binds: the SYNs that reach the worker
//! are mostly those it completes.
//!
//! This is the sans-IO part: it takes the worker's counters and time and says what the
//! budget becomes; the worker writes it to the program.

use std::time::Duration;

use tcp::Instant;
use xsk::SynBudget;

/// The frames waiting in a queue's receive ring past which the steering program drops
/// SYNs (see `xsk::RingLevel`), with admission on: what the worker has queued is what
/// an established connection's segment waits behind, so the bound is in frames, not a
/// share of the ring. Measured (one worker, open loop at 1.5-10x its closed-loop
/// capacity, bench/RESULTS.md): against a quarter of a 4096 ring (1024), 256 cut the
/// in-memory device's p99 to a third or less (0.4-0.6 against 1.6-2.2 ms) at 95-108 %
/// of the capacity answered (85-95 %); on veth, whose receive path shares the worker's
/// core, it answered 76-87 % at 3x instead of 46-62 %, the persistent connections at
/// 93-96 % of their rate instead of 31-46 %.
const SYN_RING_FILL: u64 = 256;

/// The ring fill (frames) past which SYNs are dropped, for a ring of `ring`
/// descriptors: [`SYN_RING_FILL`], at most a quarter of a small ring, with admission
/// on; never (0) with it off. A burst of clients whose frames stay under that is
/// never shed (the e2e test's 200 at once were not).
pub(crate) fn ring_limit(ring: u32, mode: Admission) -> u64 {
    if mode == Admission::Off {
        0
    } else {
        SYN_RING_FILL.min(u64::from(ring / 4)).max(1)
    }
}

/// How often the budget is reconsidered.
pub(crate) const PERIOD: Duration = Duration::from_millis(50);
/// The share of the worker's rounds that found a full batch waiting from which its
/// queue counts as backlogged.
const BACKLOGGED: f64 = 0.5;
/// The share from which a queue is building: a budget stops growing there (the knee
/// is sharp: a few per cent more and the ring overflows within a period).
const QUEUEING: f64 = 0.1;
/// The share of the budget under which the SYNs that reach the worker say the budget
/// no longer binds (the demand fell).
const UNUSED: f64 = 0.5;
/// The share of the budget from which it binds (the SYNs that reach the worker use it).
const BINDING: f64 = 0.9;
/// SYNs over connections opened from which new connections are the pressure.
const PRESSURE: f64 = 1.2;
/// SYNs a second not counted as pressure (a handshake spans periods).
const PRESSURE_MARGIN: f64 = 500.0;
/// Periods in a row of demand under the budget, without overload, before the budget
/// is lifted.
const CALM_PERIODS: u32 = 10;
/// The first budget, as a share of the opening rate shown.
const START: f64 = 0.95;
/// Periods over which the highest opening rate is kept (five seconds): long enough to
/// remember the rate of a worker at its best before the flood.
const PEAK_PERIODS: usize = 100;
/// The budget's cut a period in which frames were lost with it in force.
const BACK_OFF: f64 = 0.85;
/// The budget's cut a period in which the queue was backlogged, nothing lost.
const EASE: f64 = 0.95;
/// The growth of a binding budget a period without overload.
const INCREASE: f64 = 1.02;
/// Periods after a cut before the next: the time the queue that called for it takes
/// to drain.
const COOLDOWN: u32 = 2;
/// After a backlog at a budget, growth stops short of it ([`KNEE_MARGIN`] under it)
/// for this many periods (two seconds), then may probe past it again: past the knee
/// the worker's queue grows within a period and frames are lost before any signal.
const KNEE_PERIODS: u32 = 40;
const KNEE_MARGIN: f64 = 0.97;
/// The smallest budget, SYNs a second: a worker kept busy by established connections
/// still takes some new ones.
const MIN_RATE: f64 = 1000.0;
/// The burst a budget allows, as time at its rate: enough for a burst of clients
/// (200 at a budget of 10 000 a second)...
const BURST_TIME: f64 = 0.020;
/// ...and at most a quarter of a default RX ring (2048). A burst is also cut where
/// more than [`SYN_RING_FILL`] frames wait in the ring, whatever the budget allows:
/// a worker that keeps up takes a burst of 512 as it comes, one that does not, only
/// what it can queue.
const MAX_BURST: f64 = 512.0;

/// How the steering program admits new connections on each queue.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Admission {
    /// Every SYN reaches the worker.
    Off,
    /// At the rate the worker has shown it opens connections, once new ones overload
    /// it (see the module's comment); every SYN otherwise.
    #[default]
    Adaptive,
    /// At most this budget, always.
    Fixed(SynBudget),
}

/// The worker's counters the controller reads (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    pub elapsed_us: u64,
    /// SYNs to a listener that reached the worker.
    pub syns: u64,
    /// New connections whose handshake completed.
    pub opened: u64,
    /// Frames the kernel dropped for a full RX ring or an empty fill ring.
    pub ring_drops: u64,
    /// Rounds, and those that found a full batch in the RX ring.
    pub polls: u64,
    pub polls_full: u64,
}

/// One worker's admission controller.
#[derive(Debug)]
pub(crate) struct Controller {
    mode: Admission,
    next: Instant,
    last: Option<Sample>,
    budget: Option<SynBudget>,
    calm: u32,
    /// The last period was overloaded by new connections.
    strained: bool,
    /// The last period was overloaded.
    overloaded: bool,
    /// The last period's opening rate.
    previous_rate: f64,
    /// The opening rate of the last `PEAK_PERIODS` periods (each averaged with the one
    /// before), oldest first.
    recent: std::collections::VecDeque<f64>,
    /// The budget was written since it was created (a fixed one is written once).
    written: bool,
    /// Periods before the budget may be cut again.
    cooldown: u32,
    /// The budget at the last backlog, and the periods it still caps growth for.
    knee: Option<(f64, u32)>,
}

impl Controller {
    pub(crate) fn new(mode: Admission, now: Instant) -> Controller {
        Controller {
            mode,
            next: now + PERIOD,
            last: None,
            budget: None,
            calm: 0,
            strained: false,
            overloaded: false,
            previous_rate: 0.0,
            recent: std::collections::VecDeque::with_capacity(PEAK_PERIODS),
            written: false,
            cooldown: 0,
            knee: None,
        }
    }

    /// The budget in force (None: every SYN admitted).
    #[cfg(test)]
    pub(crate) fn budget(&self) -> Option<SynBudget> {
        self.budget
    }

    /// Whether a period has passed since the last look (cheap: every round asks).
    pub(crate) fn due(&self, now: Instant) -> bool {
        match self.mode {
            Admission::Off => false,
            Admission::Fixed(_) => !self.written,
            Admission::Adaptive => now >= self.next,
        }
    }

    /// Called every round: once a period, reconsiders the budget from the worker's
    /// counters. Returns the budget to write when it changed (`Some(None)`: lift it).
    pub(crate) fn tick(&mut self, now: Instant, sample: Sample) -> Option<Option<SynBudget>> {
        match self.mode {
            Admission::Off => return None,
            Admission::Fixed(b) => {
                if self.written {
                    return None;
                }
                self.written = true;
                self.budget = Some(b);
                return Some(self.budget);
            }
            Admission::Adaptive => {}
        }
        if now < self.next {
            return None;
        }
        self.next = now + PERIOD;
        // The first period only sets the baseline.
        let last = self.last.replace(sample)?;
        let elapsed = sample.elapsed_us.saturating_sub(last.elapsed_us);
        if elapsed == 0 {
            return None;
        }
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 * 1e6 / elapsed as f64;
        let polls = sample.polls.saturating_sub(last.polls);
        let full = sample.polls_full.saturating_sub(last.polls_full);
        let period = Period {
            backlogged: polls > 0 && full as f64 >= polls as f64 * BACKLOGGED,
            queueing: polls > 0 && full as f64 >= polls as f64 * QUEUEING,
            syn_rate: rate(sample.syns, last.syns),
            opened_rate: rate(sample.opened, last.opened),
            dropped: sample.ring_drops > last.ring_drops,
        };
        let next = self.decide(period);
        tracing::debug!(?period, budget = ?next.map(|b| b.per_second), "admission");
        if next == self.budget {
            return None;
        }
        self.budget = next;
        Some(next)
    }

    fn decide(&mut self, p: Period) -> Option<SynBudget> {
        let averaged = (p.opened_rate + self.previous_rate) / 2.0;
        self.previous_rate = p.opened_rate;
        if self.recent.len() == PEAK_PERIODS {
            self.recent.pop_front();
        }
        self.recent.push_back(averaged);
        // Frames lost without a backlog are a stall (the worker's core taken from it for
        // milliseconds) or a burst: no rate of new connections would have avoided
        // them, and cutting it would only shed clients. A backlog is overload.
        let overloaded = p.backlogged;
        let pressure = p.syn_rate > p.opened_rate * PRESSURE + PRESSURE_MARGIN;
        let strained = std::mem::replace(&mut self.strained, overloaded && pressure);
        let was_overloaded = std::mem::replace(&mut self.overloaded, overloaded);
        self.cooldown = self.cooldown.saturating_sub(1);
        self.knee = self
            .knee
            .and_then(|(rate, left)| (left > 1).then_some((rate, left - 1)));
        let Some(current) = self.budget else {
            // A budget is set only on the second such period in a row: a burst of
            // clients (a few hundred SYNs at once) lasts less than a period.
            if overloaded && pressure && strained {
                let shown = self.recent.iter().copied().fold(0.0, f64::max);
                self.cooldown = COOLDOWN;
                return Some(budget_at(shown * START));
            }
            return None;
        };
        if overloaded {
            self.calm = 0;
            if !was_overloaded {
                // One backlogged period is as often a stall (the worker's core taken
                // from it for milliseconds, then a full ring to catch up on) as
                // overload: a backlog that lasts two is overload.
                return Some(current);
            }
            if self.cooldown > 0 {
                // The queue the last cut found takes a while to drain: cutting again
                // for it would overshoot (as TCP cuts its window once a round trip).
                return Some(current);
            }
            self.cooldown = COOLDOWN;
            self.knee = Some((current.per_second, KNEE_PERIODS));
            // Frames lost with the budget in force: multiplicative decrease, as TCP's on
            // loss. A queue that lasts without loss: a little more gets in than the
            // worker finishes (or its established connections took more of it).
            let cut = if p.dropped { BACK_OFF } else { EASE };
            return Some(budget_at(current.per_second * cut));
        }
        if p.syn_rate < current.per_second * UNUSED {
            // The demand is well under the budget: lifted once it stays there.
            self.calm += 1;
            if self.calm >= CALM_PERIODS {
                self.calm = 0;
                return None;
            }
            return Some(current);
        }
        self.calm = 0;
        // Frames lost, or a queue building: not the time to grow.
        if p.syn_rate >= current.per_second * BINDING && !p.queueing && !p.dropped {
            let mut next = current.per_second * INCREASE;
            if let Some((knee, _)) = self.knee {
                next = next.min(knee * KNEE_MARGIN).max(current.per_second);
            }
            return Some(budget_at(next));
        }
        Some(current)
    }
}

/// One period's measurements.
#[derive(Clone, Copy, Debug)]
struct Period {
    /// Most rounds found a full batch waiting.
    backlogged: bool,
    /// Some did ([`QUEUEING`]).
    queueing: bool,
    syn_rate: f64,
    opened_rate: f64,
    /// The kernel dropped frames for the worker's rings.
    dropped: bool,
}

fn budget_at(per_second: f64) -> SynBudget {
    let per_second = per_second.max(MIN_RATE).round();
    SynBudget {
        per_second,
        burst: (per_second * BURST_TIME).min(MAX_BURST).ceil() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One period's load: whether the worker's queue was backlogged, SYNs and
    /// connections opened in it, and whether the kernel dropped frames.
    #[derive(Clone, Copy)]
    struct Load {
        backlogged: bool,
        syns: u64,
        opened: u64,
        dropped: bool,
    }

    fn period(c: &mut Controller, t: &mut Instant, s: &mut Sample, l: Load) {
        let us = PERIOD.as_micros() as u64;
        *t += PERIOD;
        s.elapsed_us += us;
        s.polls += 1000;
        s.polls_full += if l.backlogged { 900 } else { 20 };
        s.syns += l.syns;
        s.opened += l.opened;
        s.ring_drops += u64::from(l.dropped);
        c.tick(*t, *s);
    }

    fn start() -> (Controller, Instant, Sample) {
        let t = Instant::from_micros(1);
        let mut c = Controller::new(Admission::Adaptive, t);
        let mut t2 = t;
        let mut s = Sample::default();
        let idle = Load {
            backlogged: false,
            syns: 0,
            opened: 0,
            dropped: false,
        };
        period(&mut c, &mut t2, &mut s, idle);
        (c, t2, s)
    }

    #[test]
    fn a_worker_with_room_admits_everything() {
        let (mut c, mut t, mut s) = start();
        for _ in 0..20 {
            // A burst: many new connections, more SYNs than completions in a period,
            // but no lasting backlog and nothing lost.
            let burst = Load {
                backlogged: false,
                syns: 5000,
                opened: 1000,
                dropped: false,
            };
            period(&mut c, &mut t, &mut s, burst);
            assert_eq!(c.budget(), None);
        }
    }

    #[test]
    fn a_flood_answered_with_cookies_without_overload_is_not_shed() {
        let (mut c, mut t, mut s) = start();
        let flood = Load {
            backlogged: false,
            syns: 20_000,
            opened: 0,
            dropped: false,
        };
        for _ in 0..5 {
            period(&mut c, &mut t, &mut s, flood);
        }
        assert_eq!(c.budget(), None);
    }

    #[test]
    fn overload_by_new_connections_sets_the_budget_to_what_completes() {
        let (mut c, mut t, mut s) = start();
        // A second at 60 000 connections a second, with room.
        for _ in 0..20 {
            let steady = Load {
                backlogged: false,
                syns: 3000,
                opened: 3000,
                dropped: false,
            };
            period(&mut c, &mut t, &mut s, steady);
        }
        assert_eq!(c.budget(), None);
        // Then a flood: a backlog, ring drops, SYNs far above completions, and fewer
        // completions (1 000 in 50 ms): the budget is what it has shown it completes,
        // not what it completes now.
        let flooded = Load {
            backlogged: true,
            syns: 30_000,
            opened: 1000,
            dropped: true,
        };
        period(&mut c, &mut t, &mut s, flooded);
        assert_eq!(c.budget(), None, "one period could be a burst");
        period(&mut c, &mut t, &mut s, flooded);
        let b = c.budget().expect("a budget under overload");
        assert_eq!(b.per_second, (60_000.0 * START).round(), "{b:?}");
        assert_eq!(b.burst, MAX_BURST as u32, "bounded by the ring");
        // Still backlogged and losing frames: the queue it found takes a while to
        // drain, so it waits before it cuts, then backs off as TCP does.
        for _ in 0..COOLDOWN - 1 {
            period(&mut c, &mut t, &mut s, flooded);
            assert_eq!(c.budget(), Some(b));
        }
        period(&mut c, &mut t, &mut s, flooded);
        let b2 = c.budget().unwrap();
        assert_eq!(b2.per_second, (b.per_second * BACK_OFF).round());
        // Frames lost without a backlog (a stall, a burst): no cut.
        let stall = Load {
            backlogged: false,
            syns: 2500,
            opened: 2500,
            dropped: true,
        };
        for _ in 0..COOLDOWN {
            period(&mut c, &mut t, &mut s, stall);
        }
        assert_eq!(c.budget(), Some(b2));
        // One backlogged period alone (a stall's catching up): no cut either; a
        // second in a row, without loss: it eases.
        let backlog = Load {
            backlogged: true,
            syns: 2500,
            opened: 2500,
            dropped: false,
        };
        period(&mut c, &mut t, &mut s, backlog);
        assert_eq!(c.budget(), Some(b2));
        period(&mut c, &mut t, &mut s, backlog);
        let b3 = c.budget().unwrap();
        assert_eq!(b3.per_second, (b2.per_second * EASE).round());
        // Room, and the budget binds: it grows back, but not up to where it met the
        // backlog, for a while.
        let knee = b2.per_second;
        for _ in 0..5 {
            let current = c.budget().unwrap().per_second;
            let room = Load {
                backlogged: false,
                syns: (current * 0.05) as u64,
                opened: (current * 0.05) as u64,
                dropped: false,
            };
            period(&mut c, &mut t, &mut s, room);
            let next = c.budget().unwrap().per_second;
            assert_eq!(next, (current * INCREASE).min(knee * KNEE_MARGIN).round());
        }
        assert!(c.budget().unwrap().per_second < knee);
        // Room, and it does not bind (between UNUSED and BINDING of it): it holds.
        let held = c.budget().unwrap();
        let some = Load {
            backlogged: false,
            syns: (held.per_second * 0.05 * 0.7) as u64,
            opened: (held.per_second * 0.05 * 0.7) as u64,
            dropped: false,
        };
        period(&mut c, &mut t, &mut s, some);
        assert_eq!(c.budget(), Some(held));
        // Calm for long enough: lifted.
        for _ in 0..CALM_PERIODS {
            assert!(c.budget().is_some());
            let calm = Load {
                backlogged: false,
                syns: 100,
                opened: 100,
                dropped: false,
            };
            period(&mut c, &mut t, &mut s, calm);
        }
        assert_eq!(c.budget(), None);
    }

    #[test]
    fn syns_are_dropped_past_256_frames_waiting_or_a_quarter_of_a_small_ring() {
        assert_eq!(ring_limit(4096, Admission::Adaptive), 256);
        assert_eq!(ring_limit(512, Admission::Adaptive), 128);
        assert_eq!(ring_limit(4096, Admission::Off), 0);
    }

    #[test]
    fn a_small_budget_keeps_its_burst_for_a_burst_of_clients() {
        let b = budget_at(10_000.0);
        assert_eq!(b.burst, 200);
    }

    #[test]
    fn a_flood_that_completes_nothing_keeps_a_floor_for_newcomers() {
        let (mut c, mut t, mut s) = start();
        let flood = Load {
            backlogged: true,
            syns: 50_000,
            opened: 0,
            dropped: true,
        };
        period(&mut c, &mut t, &mut s, flood);
        period(&mut c, &mut t, &mut s, flood);
        assert_eq!(c.budget().unwrap().per_second, MIN_RATE);
    }

    #[test]
    fn off_and_fixed() {
        let t = Instant::from_micros(1);
        let mut off = Controller::new(Admission::Off, t);
        let flooded = Sample {
            elapsed_us: 1_000_000,
            syns: 1_000_000,
            opened: 10,
            ring_drops: 1000,
            polls: 1000,
            polls_full: 1000,
        };
        assert_eq!(off.tick(t + Duration::from_secs(1), flooded), None);
        let fixed = SynBudget {
            per_second: 500.0,
            burst: 10,
        };
        let mut c = Controller::new(Admission::Fixed(fixed), t);
        assert_eq!(c.tick(t, Sample::default()), Some(Some(fixed)));
        assert_eq!(c.tick(t + Duration::from_secs(1), flooded), None);
    }
}
