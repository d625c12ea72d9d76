//! A hashed timing wheel: one per worker, one live entry per connection.
//!
//! TCP moves a connection's deadline on almost every segment (each ACK restarts the
//! retransmission timer), so entries are never cancelled. The owner keeps, per
//! connection, when its live entry fires ([`TimerWheel::arm`]): a deadline that moved
//! later is found early by that entry, checked against the real deadline and re-armed;
//! one that moved earlier gets a new live entry, and the old one turns stale. When a
//! stale entry fires, [`fired_is_live`] says so and the owner drops it: re-arming from
//! it too would give the connection a second live chain for every time its deadline
//! moved earlier (a delayed ACK after a retransmission timer), and the wheel would
//! grow with the connection's age (on persistent connections, an entry per segment).
//! Slots keep their capacity, so a steady state allocates nothing.

use tcp::Instant;

/// Microseconds per slot (a millisecond).
const TICK_US: u64 = 1000;
/// Slots in the wheel: deadlines further away than this land in the furthest slot and
/// are re-armed when it comes round.
const SLOTS: usize = 4096;

/// The tick a deadline belongs to: the first whose start is not before it, so that an
/// entry never fires early.
fn deadline_tick(t: Instant) -> u64 {
    t.as_micros().div_ceil(TICK_US)
}

/// The tick `now` lies in.
fn current_tick(now: Instant) -> u64 {
    now.as_micros() / TICK_US
}

fn tick_start(tick: u64) -> Instant {
    Instant::from_micros(tick.saturating_mul(TICK_US))
}

/// The wheel, on the worker's clock.
pub(crate) struct TimerWheel {
    slots: Vec<Vec<u32>>,
    /// The tick the wheel has advanced to: every slot before it has been expired.
    now_tick: u64,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new(now: Instant) -> TimerWheel {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            now_tick: current_tick(now),
            len: 0,
        }
    }

    /// Arms `key` to fire at `deadline` (or at the wheel's horizon, if later; or at
    /// the next tick, if already past). Returns when the entry fires.
    pub(crate) fn insert(&mut self, key: u32, deadline: Instant) -> Instant {
        let tick = deadline_tick(deadline).clamp(self.now_tick, self.now_tick + SLOTS as u64 - 1);
        self.slots[(tick % SLOTS as u64) as usize].push(key);
        self.len += 1;
        tick_start(tick)
    }

    /// Arms `key` for `deadline` unless its live entry fires no later. `armed` is the
    /// caller's record of when that entry fires (None: no live entry).
    pub(crate) fn arm(&mut self, key: u32, deadline: Instant, armed: &mut Option<Instant>) {
        if armed.is_none_or(|at| deadline_tick(deadline) < deadline_tick(at)) {
            *armed = Some(self.insert(key, deadline));
        }
    }

    /// Entries armed, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Advances to `now`, handing every key whose slot has passed to `fire`.
    /// Returns how many fired.
    pub(crate) fn expire(&mut self, now: Instant, mut fire: impl FnMut(u32)) -> usize {
        let target = current_tick(now);
        let mut fired = 0;
        // Never walk more than one lap: later laps would find the same slots.
        let end = target.min(self.now_tick + SLOTS as u64);
        while self.now_tick <= end {
            let slot = (self.now_tick % SLOTS as u64) as usize;
            let mut keys = std::mem::take(&mut self.slots[slot]);
            self.len -= keys.len();
            fired += keys.len();
            for k in keys.drain(..) {
                fire(k);
            }
            // Give the (now empty) vector back so its capacity is reused, unless `fire`
            // re-armed into this very slot meanwhile.
            if self.slots[slot].is_empty() {
                self.slots[slot] = keys;
            }
            if self.now_tick == end {
                break;
            }
            self.now_tick += 1;
        }
        self.now_tick = target.max(self.now_tick);
        fired
    }

    /// The earliest time at which something may fire, for the idle wait: the next
    /// non-empty slot's start.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        (0..SLOTS as u64)
            .map(|i| self.now_tick + i)
            .find(|t| !self.slots[(t % SLOTS as u64) as usize].is_empty())
            .map(tick_start)
    }
}

/// For an entry of a key that [`TimerWheel::expire`] fired at `now`: whether it is the
/// key's live entry (then `armed` is cleared, and the caller handles the key and arms it
/// again), or a stale one left behind when the key's deadline moved earlier, which the
/// caller drops.
pub(crate) fn fired_is_live(armed: &mut Option<Instant>, now: Instant) -> bool {
    if armed.is_some_and(|at| deadline_tick(at) > current_tick(now)) {
        return false;
    }
    *armed = None;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn fires_in_order_and_not_before() {
        let mut w = TimerWheel::new(ms(1000));
        w.insert(1, ms(1005));
        w.insert(2, ms(1002));
        w.insert(3, ms(900)); // already past: next tick
        let mut got = Vec::new();
        w.expire(ms(1001), |k| got.push(k));
        assert_eq!(got, vec![3]);
        assert_eq!(w.next_deadline(), Some(ms(1002)));
        w.expire(ms(1004), |k| got.push(k));
        assert_eq!(got, vec![3, 2]);
        w.expire(ms(1005), |k| got.push(k));
        assert_eq!(got, vec![3, 2, 1]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn far_deadlines_fire_at_the_horizon_for_rearming() {
        let mut w = TimerWheel::new(ms(0));
        w.insert(7, ms(60_000));
        let mut got = Vec::new();
        w.expire(ms(SLOTS as u64 - 2), |k| got.push(k));
        assert!(got.is_empty());
        w.expire(ms(SLOTS as u64 - 1), |k| got.push(k));
        assert_eq!(
            got,
            vec![7],
            "a far deadline must come back at the horizon to be re-armed"
        );
    }

    #[test]
    fn a_long_sleep_fires_everything_once() {
        let mut w = TimerWheel::new(ms(0));
        for k in 0..100 {
            w.insert(k, ms(k as u64 * 37));
        }
        let mut got = Vec::new();
        w.expire(ms(1_000_000), |k| got.push(k));
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(w.len(), 0);
        w.insert(5, ms(1_000_010));
        w.expire(ms(1_000_009), |_| panic!("too early"));
        let mut n = 0;
        w.expire(ms(1_000_010), |_| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn rearming_inside_fire_is_kept() {
        let mut w = TimerWheel::new(ms(0));
        w.insert(1, ms(3));
        let mut rearm = Vec::new();
        w.expire(ms(3), |k| rearm.push(k));
        for k in rearm {
            w.insert(k, ms(10));
        }
        let mut got = Vec::new();
        w.expire(ms(10), |k| got.push(k));
        assert_eq!(got, vec![1]);
    }

    /// One key whose deadline behaves as a persistent connection's under pipelined
    /// requests: every 5 ms a segment arrives and arms the delayed ACK (40 ms), then the
    /// answer goes out, the delayed ACK is off and the retransmission timer runs
    /// (1 s, restarted each time). The owner handles fired entries as the worker does.
    /// Returns the wheel's largest population over `secs` and how often the key's
    /// timer work ran (`on_timeout`) with its deadline not yet due.
    fn persistent_connection(secs: u64, drop_stale: bool) -> (usize, u64) {
        let mut w = TimerWheel::new(ms(0));
        let mut armed = None;
        let mut deadline = None::<u64>;
        let (mut most, mut early) = (0, 0);
        for now in 0..secs * 1000 {
            let mut fired = Vec::new();
            w.expire(ms(now), |k| fired.push(k));
            for _ in fired {
                let live = if drop_stale {
                    fired_is_live(&mut armed, ms(now))
                } else {
                    armed = None;
                    true
                };
                if live {
                    if deadline.is_some_and(|d| d > now) {
                        early += 1;
                    }
                    if let Some(d) = deadline {
                        w.arm(0, ms(d), &mut armed);
                    }
                }
            }
            if now % 5 == 0 {
                // The segment: the delayed ACK is the deadline; then the answer: the
                // retransmission timer is.
                w.arm(0, ms(now + 40), &mut armed);
                deadline = Some(now + 1000);
                w.arm(0, ms(now + 1000), &mut armed);
            }
            most = most.max(w.len());
        }
        (most, early)
    }

    #[test]
    fn stale_entries_are_dropped_not_rearmed() {
        let (most, early) = persistent_connection(60, true);
        // The live entry, and those the delayed ACK left behind within a second.
        assert!(most <= 2 + 1000 / 40, "{most} entries for one key");
        // At most one per delayed-ACK period (its entry fires though the ACK went out).
        assert!(early <= 60 * 1000 / 40, "{early} early wake-ups in 60 s");
        // Re-arming from every fired entry, stale ones too, multiplies them.
        let (most, early) = persistent_connection(60, false);
        assert!(
            most > 1000 && early > 100_000,
            "{most} entries, {early} early"
        );
    }

    #[test]
    fn a_live_entry_at_the_horizon_stays_live() {
        let mut w = TimerWheel::new(ms(0));
        let mut armed = None;
        let far = 10 * SLOTS as u64;
        w.arm(3, ms(far), &mut armed);
        assert_eq!(armed, Some(ms(SLOTS as u64 - 1)), "parked at the horizon");
        // Arming the same far deadline again adds nothing.
        w.arm(3, ms(far), &mut armed);
        assert_eq!(w.len(), 1);
        let mut fired = Vec::new();
        let mut now = 0;
        while fired.is_empty() {
            now += 1;
            w.expire(ms(now), |k| fired.push(k));
        }
        assert_eq!((now, fired), (SLOTS as u64 - 1, vec![3]));
        assert!(fired_is_live(&mut armed, ms(now)));
        assert_eq!(armed, None);
    }

    #[test]
    fn an_entry_due_now_or_before_is_live_a_later_one_is_not() {
        let mut armed = Some(ms(100));
        assert!(!fired_is_live(&mut armed, ms(99)));
        assert_eq!(armed, Some(ms(100)));
        assert!(fired_is_live(&mut armed, ms(100)));
        assert_eq!(armed, None);
        assert!(fired_is_live(&mut armed, ms(100)), "no record: handled");
    }
}
