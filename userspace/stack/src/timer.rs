//! A hashed timing wheel: one per worker, one live entry per connection.
//!
//! TCP moves a connection's deadline on almost every segment (each ACK restarts the
//! retransmission timer), so entries are never cancelled: a connection whose deadline
//! moved later is found early, checked against its real deadline and re-armed; one whose
//! deadline moved earlier gets a new entry and the old one turns stale. The owner of the
//! connections decides which fired entries are real (see [`TimerWheel::expire`]). Slots
//! keep their capacity, so a steady state allocates nothing.

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
    /// the next tick, if already past).
    pub(crate) fn insert(&mut self, key: u32, deadline_ms: u64) {
        let tick = (deadline_ms / TICK_MS).clamp(self.now_tick, self.now_tick + SLOTS as u64 - 1);
        self.slots[(tick % SLOTS as u64) as usize].push(key);
        self.len += 1;
    }

    /// Entries armed, stale ones included.
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
}
