//! Admission of new connections, decided in the steering program from a budget each
//! worker sets for its queue (ebpf/sluice_xdp.c): a worker offered more connections
//! than it can finish spends its core copying, answering and forgetting SYNs while the
//! segments of the connections it did accept wait behind them in the RX ring, and its
//! goodput collapses. Dropping the excess SYNs in XDP costs tens of nanoseconds each.
//!
//! The budget follows the connections the worker measures it opens (completes the
//! handshake of), not how full its ring is
//! (a burst of legitimate clients fills a ring too). Every period the worker looks at
//! whether it is overloaded (the kernel dropped frames for its full RX ring or empty
//! fill ring, or its own rounds kept it busy [`SATURATED`] of the time: on a core it
//! shares with the NIC's receive work, its busy share alone understates the load)
//! and whether new connections are the pressure (more SYNs reached it than
//! [`PRESSURE`] times the connections it opened, plus a margin). Opened, not served to
//! their end: connections that stay open (a resolver's, or a million held ones) never
//! end, and would read as a flood.
//! - Both, two periods in a row (a burst of clients lasts less than one): new
//!   connections are admitted at the rate it has shown it opens them (the highest of
//!   its rate of completed handshakes, smoothed over a few periods, in the last
//!   [`PEAK_PERIODS`]; one period's count swings with bursts), a little
//!   less ([`DECREASE`]) so that the backlog drains, never below [`MIN_RATE`]. Taking
//!   the rate of the overloaded period itself spirals down: overload lowers it.
//! - With a budget, frames lost in a period: the budget is cut by [`BACK_OFF`] (as
//!   TCP's window on loss). Busy past [`SATURATED`] with nothing lost: it holds.
//! - With a budget and no overload: the budget grows by [`INCREASE`] a period while it
//!   binds (the SYNs reaching the worker use it), and is lifted once the demand has
//!   stayed under [`UNUSED`] of it for [`CALM_PERIODS`] periods.
//! - With no budget, nothing is dropped: a burst of clients at a worker with room is
//!   never shed, and neither is a SYN flood the worker answers with SYN cookies
//!   without overload.
//!
//! This is the sans-IO part: it takes the worker's counters and time and says what the
//! budget becomes; the worker writes it to the program.

use std::time::Duration;

use tcp::Instant;
use xsk::SynBudget;

/// How often the budget is reconsidered.
pub(crate) const PERIOD: Duration = Duration::from_millis(50);
/// The busy share from which the worker counts as saturated.
const SATURATED: f64 = 0.90;
/// The share of the budget under which the SYNs that reach the worker say the budget
/// no longer binds (the demand fell).
const UNUSED: f64 = 0.5;
/// SYNs over connections opened from which new connections are the pressure.
const PRESSURE: f64 = 1.2;
/// SYNs a second not counted as pressure (a handshake spans periods).
const PRESSURE_MARGIN: f64 = 500.0;
/// Periods in a row of demand under the budget, without overload, before the budget
/// is lifted.
const CALM_PERIODS: u32 = 10;
/// The budget under overload, as a share of the opening rate shown.
const DECREASE: f64 = 0.9;
/// The smoothing of the opening rate: the weight of the latest period.
const SMOOTHING: f64 = 0.25;
/// Periods over which the highest smoothed opening rate is kept (a second).
const PEAK_PERIODS: usize = 20;
/// The budget's cut a period in which frames were lost with it in force.
const BACK_OFF: f64 = 0.9;
/// The growth of a budget a period without overload (doubling in about 0.7 s).
const INCREASE: f64 = 1.05;
/// The smallest budget, SYNs a second: a worker kept busy by established connections
/// still takes some new ones.
const MIN_RATE: f64 = 1000.0;
/// The burst a budget allows, as time at its rate: enough for a burst of clients
/// (200 at a budget of 10 000 a second).
const BURST_TIME: f64 = 0.020;

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
    pub busy_us: u64,
    pub elapsed_us: u64,
    /// SYNs to a listener that reached the worker.
    pub syns: u64,
    /// New connections whose handshake completed.
    pub opened: u64,
    /// Frames the kernel dropped for a full RX ring or an empty fill ring.
    pub ring_drops: u64,
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
    /// The opening rate, smoothed.
    smoothed: f64,
    /// The smoothed rate of the last `PEAK_PERIODS` periods, oldest first.
    recent: std::collections::VecDeque<f64>,
    /// The budget was written since it was created (a fixed one is written once).
    written: bool,
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
            smoothed: 0.0,
            recent: std::collections::VecDeque::with_capacity(PEAK_PERIODS),
            written: false,
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
        let period = Period {
            busy: sample.busy_us.saturating_sub(last.busy_us) as f64 / elapsed as f64,
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
        self.smoothed += SMOOTHING * (p.opened_rate - self.smoothed);
        if self.recent.len() == PEAK_PERIODS {
            self.recent.pop_front();
        }
        self.recent.push_back(self.smoothed);
        let shown = self.recent.iter().copied().fold(0.0, f64::max);
        let overloaded = p.dropped || p.busy >= SATURATED;
        let pressure = p.syn_rate > p.opened_rate * PRESSURE + PRESSURE_MARGIN;
        let strained = std::mem::replace(&mut self.strained, overloaded && pressure);
        if overloaded && pressure && (strained || self.budget.is_some()) {
            // A budget is set only on the second such period in a row: a burst of
            // clients (a few hundred SYNs at once) lasts less than a period.
            self.calm = 0;
            let lower = budget_at(shown * DECREASE);
            // Never up on overload: a budget already lower stays.
            return Some(match self.budget {
                Some(b) if b.per_second < lower.per_second => b,
                _ => lower,
            });
        }
        let current = self.budget?;
        if p.dropped {
            // Frames lost with the budget in force: too much still gets in for the
            // worker's share of the core (on a core shared with the receive work, that
            // share shrinks as the flood grows). Multiplicative decrease, as TCP's on
            // loss.
            self.calm = 0;
            return Some(budget_at(current.per_second * BACK_OFF));
        }
        if overloaded {
            // Busy with what it already admitted, nothing lost: hold.
            self.calm = 0;
            return Some(current);
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
        Some(budget_at(current.per_second * INCREASE))
    }
}

/// One period's measurements.
#[derive(Clone, Copy, Debug)]
struct Period {
    busy: f64,
    syn_rate: f64,
    opened_rate: f64,
    /// The kernel dropped frames for the worker's rings.
    dropped: bool,
}

fn budget_at(per_second: f64) -> SynBudget {
    let per_second = per_second.max(MIN_RATE).round();
    SynBudget {
        per_second,
        burst: (per_second * BURST_TIME).ceil() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One period's load: the busy share, SYNs and connections opened in it, and
    /// whether the kernel dropped frames.
    #[derive(Clone, Copy)]
    struct Load {
        busy: f64,
        syns: u64,
        opened: u64,
        dropped: bool,
    }

    fn period(c: &mut Controller, t: &mut Instant, s: &mut Sample, l: Load) {
        let us = PERIOD.as_micros() as u64;
        *t += PERIOD;
        s.elapsed_us += us;
        s.busy_us += (us as f64 * l.busy) as u64;
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
            busy: 0.1,
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
            // but no overload.
            let burst = Load {
                busy: 0.8,
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
            busy: 0.6,
            syns: 20_000,
            opened: 0,
            dropped: false,
        };
        period(&mut c, &mut t, &mut s, flood);
        assert_eq!(c.budget(), None);
    }

    #[test]
    fn overload_by_new_connections_sets_the_budget_to_what_completes() {
        let (mut c, mut t, mut s) = start();
        // A second at 60 000 connections a second, with room.
        for _ in 0..20 {
            let steady = Load {
                busy: 0.7,
                syns: 3000,
                opened: 3000,
                dropped: false,
            };
            period(&mut c, &mut t, &mut s, steady);
        }
        assert_eq!(c.budget(), None);
        // Then a flood: ring drops (its busy share is low: the core goes to the receive
        // work), SYNs far above completions, and fewer completions (1 000 in 50 ms):
        // the budget is what it has shown it completes, not what it completes now.
        let flooded = || Load {
            busy: 0.3,
            syns: 30_000,
            opened: 1000,
            dropped: true,
        };
        period(&mut c, &mut t, &mut s, flooded());
        assert_eq!(c.budget(), None, "one period could be a burst");
        period(&mut c, &mut t, &mut s, flooded());
        let b = c.budget().expect("a budget under overload");
        // 90 % of 60 000 (the smoothing from zero leaves 0.3 % out).
        let near = |v: f64, want: f64| (v - want).abs() < want * 0.005;
        assert!(near(b.per_second, 54_000.0), "{b:?}");
        assert_eq!(b.burst, (b.per_second * BURST_TIME).ceil() as u32);
        // Still flooded: it does not spiral down with the completions.
        period(&mut c, &mut t, &mut s, flooded());
        assert_eq!(c.budget(), Some(b));
        // Overloaded by established traffic only: it holds.
        let busy = Load {
            busy: 0.95,
            syns: 100,
            opened: 100,
            dropped: false,
        };
        period(&mut c, &mut t, &mut s, busy);
        assert_eq!(c.budget(), Some(b));
        // Room again: it grows back.
        let room = Load {
            busy: 0.7,
            syns: 3000,
            opened: 3000,
            dropped: false,
        };
        period(&mut c, &mut t, &mut s, room);
        assert_eq!(
            c.budget().unwrap().per_second,
            (b.per_second * INCREASE).round()
        );
        // Calm for long enough: lifted.
        for _ in 0..CALM_PERIODS {
            assert!(c.budget().is_some());
            let calm = Load {
                busy: 0.2,
                syns: 100,
                opened: 100,
                dropped: false,
            };
            period(&mut c, &mut t, &mut s, calm);
        }
        assert_eq!(c.budget(), None);
    }

    #[test]
    fn a_flood_that_completes_nothing_keeps_a_floor_for_newcomers() {
        let (mut c, mut t, mut s) = start();
        let flood = Load {
            busy: 1.0,
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
            busy_us: 1_000_000,
            elapsed_us: 1_000_000,
            syns: 1_000_000,
            opened: 10,
            ring_drops: 1000,
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
