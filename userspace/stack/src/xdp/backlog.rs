//! The TX-backlog policy: how long frames a full device left in the TX ring keep the
//! loop polling, and how long the loop may sleep.

use std::time::Duration;

/// How long frames waiting in the TX ring for a full device keep the loop polling
/// before it falls back to retrying once a millisecond.
pub(super) const TX_BACKLOG_SPIN_US: u64 = 1000;

/// The TX-backlog rule of [`Shard::tx_backlog_is_work`](super::shard::Shard): given the last record (frames
/// waiting, since when the device took none of them), the frames waiting now and
/// whether the device was full (a refused kick is not polled again at once), the new
/// record (which makes `next_timer` retry within a millisecond) and whether they count
/// as work.
pub(super) fn backlog_is_work(
    last: Option<(u32, u64)>,
    backlog: u32,
    device_full: bool,
    now_us: u64,
) -> (Option<(u32, u64)>, bool) {
    if backlog == 0 {
        return (None, false);
    }
    let since = match last {
        // Fewer frames waiting: the device took some, and the clock starts again.
        Some((before, since)) if backlog >= before => since,
        _ => now_us,
    };
    let work = device_full && now_us - since < TX_BACKLOG_SPIN_US;
    (Some((backlog, since)), work)
}

/// How long the loop may sleep: until the earlier of the timer wheel's next deadline
/// and, with frames waiting to be sent (in the TX ring, or for a free frame), a retry
/// a millisecond away.
pub(super) fn next_wait(tx_retry: bool, deadline_ms: Option<u64>, now_ms: u64) -> Option<Duration> {
    let retry = tx_retry.then_some(Duration::from_millis(1));
    let timer = deadline_ms.map(|d| Duration::from_millis(d.saturating_sub(now_ms)));
    match (retry, timer) {
        (Some(r), Some(t)) => Some(r.min(t)),
        (r, t) => r.or(t),
    }
}

#[cfg(test)]
mod tests {
    use super::{backlog_is_work, next_wait, TX_BACKLOG_SPIN_US};
    use std::time::Duration;

    #[test]
    fn a_backlog_is_work_while_a_full_device_takes_frames() {
        // A backlog appears: work, and the clock starts.
        let (r, work) = backlog_is_work(None, 40, true, 100);
        assert_eq!((r, work), (Some((40, 100)), true));
        // No progress, but within the spin time: still work.
        let (r, work) = backlog_is_work(r, 40, true, 100 + TX_BACKLOG_SPIN_US - 1);
        assert!(work);
        // More frames queued than the device took is no progress either.
        let (r, work) = backlog_is_work(r, 41, true, 100 + TX_BACKLOG_SPIN_US);
        assert!(!work);
        assert_eq!(r, Some((41, 100)));
        // The device took some: the clock starts again.
        let now = 100 + 5 * TX_BACKLOG_SPIN_US;
        let (r, work) = backlog_is_work(r, 8, true, now);
        assert_eq!((r, work), (Some((8, now)), true));
        // Drained: no record, no work; a later backlog starts a fresh clock.
        let (r, work) = backlog_is_work(r, 0, true, now + 10);
        assert_eq!((r, work), (None, false));
        let later = now + 50 * TX_BACKLOG_SPIN_US;
        assert_eq!(backlog_is_work(r, 3, true, later), (Some((3, later)), true));
    }

    #[test]
    fn a_refused_kick_is_retried_by_timer_not_polled() {
        let (r, work) = backlog_is_work(None, 5, false, 100);
        assert_eq!((r, work), (Some((5, 100)), false));
        // The record makes the loop's sleep end within a millisecond.
        assert_eq!(
            next_wait(r.is_some(), None, 0),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn the_sleep_ends_at_the_earlier_of_the_retry_and_the_next_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(next_wait(false, None, 10), None);
        assert_eq!(next_wait(false, Some(15), 10), Some(ms(5)));
        assert_eq!(next_wait(true, None, 10), Some(ms(1)));
        assert_eq!(next_wait(true, Some(15), 10), Some(ms(1)));
        // A deadline due sooner than the retry (or already past) wins.
        assert_eq!(next_wait(true, Some(10), 10), Some(ms(0)));
        assert_eq!(next_wait(true, Some(3), 10), Some(ms(0)));
    }
}
