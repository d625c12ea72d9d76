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

/// Milliseconds per slot.
pub(crate) const TICK_MS: u64 = 1;
/// Slots in the wheel: deadlines further away than this land in the furthest slot and
/// are re-armed when it comes round.
const SLOTS: usize = 4096;

/// The wheel. Times are milliseconds on the worker's monotonic clock.
pub(crate) struct TimerWheel {
    slots: Vec<Vec<u32>>,
    /// The tick the wheel has advanced to: every slot before it has been expired.
    now_tick: u64,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new(now_ms: u64) -> TimerWheel {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            now_tick: now_ms / TICK_MS,
            len: 0,
        }
    }

    /// Arms `key` to fire at `deadline_ms` (or at the wheel's horizon, if later; or at
    /// the next tick, if already past). Returns when the entry fires.
    pub(crate) fn insert(&mut self, key: u32, deadline_ms: u64) -> u64 {
        let tick = (deadline_ms / TICK_MS).clamp(self.now_tick, self.now_tick + SLOTS as u64 - 1);
        self.slots[(tick % SLOTS as u64) as usize].push(key);
        self.len += 1;
        tick * TICK_MS
    }

    /// Arms `key` for `deadline_ms` unless its live entry fires no later. `armed` is the
    /// caller's record of when that entry fires (None: no live entry).
    pub(crate) fn arm(&mut self, key: u32, deadline_ms: u64, armed: &mut Option<u64>) {
        if armed.is_none_or(|at| deadline_ms < at) {
            *armed = Some(self.insert(key, deadline_ms));
        }
    }

    /// Entries armed, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Advances to `now_ms`, handing every key whose slot has passed to `fire`.
    /// Returns how many fired.
    pub(crate) fn expire(&mut self, now_ms: u64, mut fire: impl FnMut(u32)) -> usize {
        let target = now_ms / TICK_MS;
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
    pub(crate) fn next_deadline_ms(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        (0..SLOTS as u64)
            .map(|i| self.now_tick + i)
            .find(|t| !self.slots[(t % SLOTS as u64) as usize].is_empty())
            .map(|t| t * TICK_MS)
    }
}

/// For an entry of a key that [`TimerWheel::expire`] fired at `now_ms`: whether it is the
/// key's live entry (then `armed` is cleared, and the caller handles the key and arms it
/// again), or a stale one left behind when the key's deadline moved earlier, which the
/// caller drops.
pub(crate) fn fired_is_live(armed: &mut Option<u64>, now_ms: u64) -> bool {
    if armed.is_some_and(|at| at > now_ms) {
        return false;
    }
    *armed = None;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_not_before() {
        let mut w = TimerWheel::new(1000);
        w.insert(1, 1005);
        w.insert(2, 1002);
        w.insert(3, 900); // already past: next tick
        let mut got = Vec::new();
        w.expire(1001, |k| got.push(k));
        assert_eq!(got, vec![3]);
        assert_eq!(w.next_deadline_ms(), Some(1002));
        w.expire(1004, |k| got.push(k));
        assert_eq!(got, vec![3, 2]);
        w.expire(1005, |k| got.push(k));
        assert_eq!(got, vec![3, 2, 1]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline_ms(), None);
    }

    #[test]
    fn far_deadlines_fire_at_the_horizon_for_rearming() {
        let mut w = TimerWheel::new(0);
        w.insert(7, 60_000);
        let mut got = Vec::new();
        w.expire(SLOTS as u64 - 2, |k| got.push(k));
        assert!(got.is_empty());
        w.expire(SLOTS as u64 - 1, |k| got.push(k));
        assert_eq!(
            got,
            vec![7],
            "a far deadline must come back at the horizon to be re-armed"
        );
    }

    #[test]
    fn a_long_sleep_fires_everything_once() {
        let mut w = TimerWheel::new(0);
        for k in 0..100 {
            w.insert(k, k as u64 * 37);
        }
        let mut got = Vec::new();
        w.expire(1_000_000, |k| got.push(k));
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(w.len(), 0);
        w.insert(5, 1_000_010);
        w.expire(1_000_009, |_| panic!("too early"));
        let mut n = 0;
        w.expire(1_000_010, |_| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn rearming_inside_fire_is_kept() {
        let mut w = TimerWheel::new(0);
        w.insert(1, 3);
        let mut rearm = Vec::new();
        w.expire(3, |k| rearm.push(k));
        for k in rearm {
            w.insert(k, 10);
        }
        let mut got = Vec::new();
        w.expire(10, |k| got.push(k));
        assert_eq!(got, vec![1]);
    }

    /// One key whose deadline behaves as a persistent connection's under pipelined
    /// requests: every 5 ms a segment arrives and arms the delayed ACK (40 ms), then the
    /// answer goes out, the delayed ACK is off and the retransmission timer runs
    /// (1 s, restarted each time). The owner handles fired entries as the worker does.
    /// Returns the wheel's largest population over `secs` and how often the key's
    /// timer work ran (`on_timeout`) with its deadline not yet due.
    fn persistent_connection(secs: u64, drop_stale: bool) -> (usize, u64) {
        let mut w = TimerWheel::new(0);
        let mut armed = None;
        let mut deadline = None::<u64>;
        let (mut most, mut early) = (0, 0);
        for now in 0..secs * 1000 {
            let mut fired = Vec::new();
            w.expire(now, |k| fired.push(k));
            for _ in fired {
                let live = if drop_stale {
                    fired_is_live(&mut armed, now)
                } else {
                    armed = None;
                    true
                };
                if live {
                    if deadline.is_some_and(|d| d > now) {
                        early += 1;
                    }
                    if let Some(d) = deadline {
                        w.arm(0, d, &mut armed);
                    }
                }
            }
            if now % 5 == 0 {
                // The segment: the delayed ACK is the deadline; then the answer: the
                // retransmission timer is.
                w.arm(0, now + 40, &mut armed);
                deadline = Some(now + 1000);
                w.arm(0, now + 1000, &mut armed);
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
        let mut w = TimerWheel::new(0);
        let mut armed = None;
        let far = 10 * SLOTS as u64;
        w.arm(3, far, &mut armed);
        assert_eq!(armed, Some(SLOTS as u64 - 1), "parked at the horizon");
        // Arming the same far deadline again adds nothing.
        w.arm(3, far, &mut armed);
        assert_eq!(w.len(), 1);
        let mut fired = Vec::new();
        let mut now = 0;
        while fired.is_empty() {
            now += 1;
            w.expire(now, |k| fired.push(k));
        }
        assert_eq!((now, fired), (SLOTS as u64 - 1, vec![3]));
        assert!(fired_is_live(&mut armed, now));
        assert_eq!(armed, None);
    }

    #[test]
    fn an_entry_due_now_or_before_is_live_a_later_one_is_not() {
        let mut armed = Some(100);
        assert!(!fired_is_live(&mut armed, 99));
        assert_eq!(armed, Some(100));
        assert!(fired_is_live(&mut armed, 100));
        assert_eq!(armed, None);
        assert!(fired_is_live(&mut armed, 100), "no record: handled");
    }
}
