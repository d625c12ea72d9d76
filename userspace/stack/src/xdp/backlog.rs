//! The TX-backlog policy: how long frames a full device left in the TX ring keep the
//! loop polling, and how long the loop may sleep.

use std::time::Duration;

use tcp::Instant;

/// How long frames waiting in the TX ring for a full device keep the loop polling
/// before it falls back to retrying once a millisecond.
pub(super) const TX_BACKLOG_SPIN: Duration = Duration::from_millis(1);

/// Frames left waiting in the TX ring, and since when the device has taken none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TxBacklog {
    pub(super) frames: u32,
    pub(super) since: Instant,
}

/// The TX-backlog rule of [`Shard::tx_backlog_is_work`](super::shard::Shard): given the
/// last record, the frames waiting now and whether the device was full (a refused kick
/// is not polled again at once), the new record (which makes `next_wait` retry within
/// a millisecond) and whether they count as work.
pub(super) fn backlog_is_work(
    last: Option<TxBacklog>,
    frames: u32,
    device_full: bool,
    now: Instant,
) -> (Option<TxBacklog>, bool) {
    if frames == 0 {
        return (None, false);
    }
    let since = match last {
        // Fewer frames waiting: the device took some, and the clock starts again.
        Some(b) if frames >= b.frames => b.since,
        _ => now,
    };
    let work = device_full && now.saturating_duration_since(since) < TX_BACKLOG_SPIN;
    (Some(TxBacklog { frames, since }), work)
}

/// How long the loop may sleep: until the earlier of the timer wheel's next deadline
/// and, with frames waiting to be sent (in the TX ring, or for a free frame), a retry
/// a millisecond away.
pub(super) fn next_wait(
    tx_retry: bool,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<Duration> {
    let retry = tx_retry.then_some(Duration::from_millis(1));
    let timer = deadline.map(|d| d.saturating_duration_since(now));
    match (retry, timer) {
        (Some(r), Some(t)) => Some(r.min(t)),
        (r, t) => r.or(t),
    }
}

#[cfg(test)]
mod tests {
    use super::{backlog_is_work, next_wait, TxBacklog, TX_BACKLOG_SPIN};
    use std::time::Duration;
    use tcp::Instant;

    fn us(n: u64) -> Instant {
        Instant::from_micros(n)
    }

    fn record(frames: u32, since: u64) -> Option<TxBacklog> {
        Some(TxBacklog {
            frames,
            since: us(since),
        })
    }

    #[test]
    fn a_backlog_is_work_while_a_full_device_takes_frames() {
        let spin = TX_BACKLOG_SPIN.as_micros() as u64;
        // A backlog appears: work, and the clock starts.
        let (r, work) = backlog_is_work(None, 40, true, us(100));
        assert_eq!((r, work), (record(40, 100), true));
        // No progress, but within the spin time: still work.
        let (r, work) = backlog_is_work(r, 40, true, us(100 + spin - 1));
        assert!(work);
        // More frames queued than the device took is no progress either.
        let (r, work) = backlog_is_work(r, 41, true, us(100 + spin));
        assert!(!work);
        assert_eq!(r, record(41, 100));
        // The device took some: the clock starts again.
        let now = 100 + 5 * spin;
        let (r, work) = backlog_is_work(r, 8, true, us(now));
        assert_eq!((r, work), (record(8, now), true));
        // Drained: no record, no work; a later backlog starts a fresh clock.
        let (r, work) = backlog_is_work(r, 0, true, us(now + 10));
        assert_eq!((r, work), (None, false));
        let later = now + 50 * spin;
        assert_eq!(
            backlog_is_work(r, 3, true, us(later)),
            (record(3, later), true)
        );
    }

    #[test]
    fn a_refused_kick_is_retried_by_timer_not_polled() {
        let (r, work) = backlog_is_work(None, 5, false, us(100));
        assert_eq!((r, work), (record(5, 100), false));
        // The record makes the loop's sleep end within a millisecond.
        assert_eq!(
            next_wait(r.is_some(), None, us(0)),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn the_sleep_ends_at_the_earlier_of_the_retry_and_the_next_deadline() {
        let ms = Duration::from_millis;
        let at = Instant::from_millis;
        assert_eq!(next_wait(false, None, at(10)), None);
        assert_eq!(next_wait(false, Some(at(15)), at(10)), Some(ms(5)));
        assert_eq!(next_wait(true, None, at(10)), Some(ms(1)));
        assert_eq!(next_wait(true, Some(at(15)), at(10)), Some(ms(1)));
        // A deadline due sooner than the retry (or already past) wins.
        assert_eq!(next_wait(true, Some(at(10)), at(10)), Some(ms(0)));
        assert_eq!(next_wait(true, Some(at(3)), at(10)), Some(ms(0)));
    }
}
