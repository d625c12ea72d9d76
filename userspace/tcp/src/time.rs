//! Time as the caller supplies it.
//!
//! The crate reads no clock (sans-IO, docs/design.md): every entry point takes an
//! [`Instant`] that the caller derived from its own monotonic clock (the stack's, or a
//! test's virtual one). Microsecond resolution is fine enough for RTT estimation on a
//! LAN and keeps the type a plain `u64` (8 bytes per stored timestamp, no
//! `std::time::Instant` padding).

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point on the caller's monotonic clock, in microseconds since an arbitrary epoch.
///
/// Arithmetic saturates rather than panics: a hostile or buggy caller that passes a time
/// earlier than one it passed before must not crash the stack.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The epoch of the caller's clock.
    pub const ZERO: Instant = Instant(0);
    /// Later than any instant a real clock will reach; handy as "no deadline".
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `micros` microseconds after the epoch.
    #[inline]
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    #[inline]
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1000))
    }

    /// An instant `secs` seconds after the epoch (saturating).
    #[inline]
    pub const fn from_secs(secs: u64) -> Instant {
        Instant(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    #[inline]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch (truncated).
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// `self - earlier`, or `None` if `earlier` is later than `self`.
    #[inline]
    pub fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_micros)
    }

    /// `self - earlier`, or zero if `earlier` is later than `self`.
    #[inline]
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, or `None` on overflow.
    #[inline]
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        let us = u64::try_from(d.as_micros()).ok()?;
        self.0.checked_add(us).map(Instant)
    }
}

/// Durations are truncated to whole microseconds; the sum saturates at [`Instant::MAX`].
impl Add<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn add(self, d: Duration) -> Instant {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(us))
    }
}

impl AddAssign<Duration> for Instant {
    #[inline]
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

/// Saturates at [`Instant::ZERO`].
impl Sub<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn sub(self, d: Duration) -> Instant {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(us))
    }
}

/// `a - b` is the time from `b` to `a`, or zero if `b` is later (saturating, never panics).
impl Sub<Instant> for Instant {
    type Output = Duration;
    #[inline]
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let a = Instant::from_millis(5);
        assert_eq!(a + Duration::from_micros(7), Instant(5007));
        assert_eq!((a + Duration::from_secs(1)) - a, Duration::from_secs(1));
        assert_eq!(a - Instant::from_secs(1), Duration::ZERO);
        assert_eq!(a.checked_duration_since(Instant::from_secs(1)), None);
        assert_eq!(
            Instant::from_secs(2).checked_duration_since(a),
            Some(Duration::from_micros(1_995_000))
        );
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(a - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::MAX.checked_add(Duration::from_micros(1)), None);
        assert_eq!(Instant(1).checked_add(Duration::MAX), None);
        assert_eq!(Instant(1) + Duration::MAX, Instant::MAX);
        // Sub-microsecond parts are truncated, not rounded.
        assert_eq!(Instant(0) + Duration::from_nanos(1999), Instant(1));
        assert_eq!(format!("{:?}", Instant(1_000_042)), "1.000042s");
    }
}
