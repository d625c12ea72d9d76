//! Admission of new connections, decided in the steering program from a budget each
//! worker sets for its queue (ebpf/sluice_xdp.c): a worker offered more connections
//! than it can finish spends its core copying, answering and forgetting SYNs while the
//! segments of the connections it did accept wait behind them in the RX ring, and its
//! goodput collapses. Dropping the excess SYNs in XDP costs tens of nanoseconds each.
//!
//! The budget follows what the worker measures it completes, not how full its ring is
//! (a burst of legitimate clients fills a ring too): every period it looks at its busy
//! share (its rounds that did work, over the time) and at the connections it accepted.
//! - Saturated (busy at least [`SATURATED`]): new connections are admitted at the rate
//!   it accepted them in the period, a little less ([`DECREASE`]) so that the backlog
//!   drains, never below [`MIN_RATE`].
//! - Not saturated with a budget set: the budget grows by [`INCREASE`] a period, and is
//!   lifted after [`CALM_PERIODS`] periods under [`CALM`] busy.
//! - With no budget, nothing is dropped: a burst of clients at a worker with room is
//!   never shed.
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
/// The busy share under which the worker is calm.
const CALM: f64 = 0.50;
/// Calm periods in a row before the budget is lifted.
const CALM_PERIODS: u32 = 4;
/// The saturated budget, as a share of the rate of accepted connections.
const DECREASE: f64 = 0.95;
/// The growth of a budget a period while not saturated.
const INCREASE: f64 = 1.25;
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
    /// At the rate the worker finishes connections, once it is saturated (see
    /// the module's comment); every SYN otherwise.
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
    pub accepted: u64,
}

/// One worker's admission controller.
#[derive(Debug)]
pub(crate) struct Controller {
    mode: Admission,
    next: Instant,
    last: Option<Sample>,
    budget: Option<SynBudget>,
    calm: u32,
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
            written: false,
        }
    }

    /// The budget in force (None: every SYN admitted).
    #[cfg(test)]
    pub(crate) fn budget(&self) -> Option<SynBudget> {
        self.budget
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
        let busy = sample.busy_us.saturating_sub(last.busy_us) as f64 / elapsed as f64;
        let accepted_rate =
            sample.accepted.saturating_sub(last.accepted) as f64 * 1e6 / elapsed as f64;
        let next = self.decide(busy, accepted_rate);
        if next == self.budget {
            return None;
        }
        self.budget = next;
        Some(next)
    }

    fn decide(&mut self, busy: f64, accepted_rate: f64) -> Option<SynBudget> {
        if busy >= SATURATED {
            self.calm = 0;
            return Some(budget_at(accepted_rate * DECREASE));
        }
        let current = self.budget?;
        if busy < CALM {
            self.calm += 1;
            if self.calm >= CALM_PERIODS {
                self.calm = 0;
                return None;
            }
        } else {
            self.calm = 0;
        }
        Some(budget_at(current.per_second * INCREASE))
    }
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

    /// Feeds the controller a period at `busy` share with `accepted` connections.
    fn period(c: &mut Controller, t: &mut Instant, s: &mut Sample, busy: f64, accepted: u64) {
        let us = PERIOD.as_micros() as u64;
        *t += PERIOD;
        s.elapsed_us += us;
        s.busy_us += (us as f64 * busy) as u64;
        s.accepted += accepted;
        c.tick(*t, *s);
    }

    #[test]
    fn a_worker_with_room_admits_everything() {
        let mut t = Instant::from_micros(1);
        let mut c = Controller::new(Admission::Adaptive, t);
        let mut s = Sample::default();
        for _ in 0..20 {
            // A burst: many connections, the worker busy but not saturated.
            period(&mut c, &mut t, &mut s, 0.8, 5000);
            assert_eq!(c.budget(), None);
        }
    }

    #[test]
    fn saturation_sets_the_budget_to_what_completes_then_calm_lifts_it() {
        let mut t = Instant::from_micros(1);
        let mut c = Controller::new(Admission::Adaptive, t);
        let mut s = Sample::default();
        period(&mut c, &mut t, &mut s, 0.5, 0);
        // Saturated, 3 000 accepted in 50 ms: 60 000 a second.
        period(&mut c, &mut t, &mut s, 0.99, 3000);
        let b = c.budget().expect("a budget under saturation");
        assert_eq!(b.per_second, 57_000.0);
        assert_eq!(b.burst, 1140);
        // Still saturated, fewer completing: it follows them down.
        period(&mut c, &mut t, &mut s, 0.95, 2000);
        assert_eq!(c.budget().unwrap().per_second, 38_000.0);
        // Room again: it grows back.
        period(&mut c, &mut t, &mut s, 0.7, 2000);
        assert_eq!(c.budget().unwrap().per_second, 47_500.0);
        // Calm for long enough: lifted.
        for _ in 0..CALM_PERIODS {
            assert!(c.budget().is_some());
            period(&mut c, &mut t, &mut s, 0.2, 100);
        }
        assert_eq!(c.budget(), None);
    }

    #[test]
    fn established_traffic_alone_keeps_a_floor_for_newcomers() {
        let mut t = Instant::from_micros(1);
        let mut c = Controller::new(Admission::Adaptive, t);
        let mut s = Sample::default();
        period(&mut c, &mut t, &mut s, 0.5, 0);
        period(&mut c, &mut t, &mut s, 1.0, 0);
        assert_eq!(c.budget().unwrap().per_second, MIN_RATE);
    }

    #[test]
    fn off_and_fixed() {
        let t = Instant::from_micros(1);
        let mut off = Controller::new(Admission::Off, t);
        let busy = Sample {
            busy_us: 1_000_000,
            elapsed_us: 1_000_000,
            accepted: 10,
        };
        assert_eq!(off.tick(t + Duration::from_secs(1), busy), None);
        let fixed = SynBudget {
            per_second: 500.0,
            burst: 10,
        };
        let mut c = Controller::new(Admission::Fixed(fixed), t);
        assert_eq!(c.tick(t, Sample::default()), Some(Some(fixed)));
        assert_eq!(c.tick(t + Duration::from_secs(1), busy), None);
    }
}
