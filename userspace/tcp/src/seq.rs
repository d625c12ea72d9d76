//! Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).
//!
//! Every comparison of sequence numbers must go through this type: a plain `u32`
//! comparison is wrong as soon as the space wraps, which it does every 4 GiB sent.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number. Ordered by the signed distance between two numbers, which is
/// meaningful as long as they lie within 2^31 of each other (always true for one window).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The signed distance `self - other`, in bytes.
    #[inline]
    pub fn distance(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The later of the two numbers.
    #[inline]
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self > other {
            self
        } else {
            other
        }
    }

    /// The earlier of the two numbers.
    #[inline]
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            self
        } else {
            other
        }
    }

    /// `start <= self < end`, in sequence space.
    #[inline]
    pub fn in_range(self, start: SeqNumber, end: SeqNumber) -> bool {
        start <= self && self < end
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialOrd for SeqNumber {
    #[inline]
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Not a total order over all of u32 (no such order exists modulo 2^32); it is one over
/// any set of numbers spanning less than 2^31, which is what TCP guarantees.
impl Ord for SeqNumber {
    #[inline]
    fn cmp(&self, other: &SeqNumber) -> Ordering {
        self.distance(*other).cmp(&0)
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn add(self, rhs: usize) -> SeqNumber {
        // Truncation is the point: the space is modulo 2^32.
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    #[inline]
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

/// `a - b` for `a >= b` in sequence space: the number of bytes from `b` to `a`.
/// Panics in debug builds if `a` is before `b`, which is a logic error in the caller.
impl Sub for SeqNumber {
    type Output = usize;
    #[inline]
    fn sub(self, rhs: SeqNumber) -> usize {
        let d = self.distance(rhs);
        debug_assert!(d >= 0, "sequence subtraction went negative: {self} - {rhs}");
        d.max(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_wrap() {
        let a = SeqNumber(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert_eq!(b - a, 20);
        assert_eq!(a.max(b), b);
        assert!(SeqNumber(u32::MAX).in_range(a, b));
        assert!(!b.in_range(a, b));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Offsets within one half of the space: the range over which TCP relies on order.
    fn off() -> impl Strategy<Value = u32> {
        0u32..(1 << 31)
    }

    proptest! {
        #[test]
        fn add_then_sub_round_trips(a in any::<u32>(), n in off()) {
            let a = SeqNumber(a);
            prop_assert_eq!((a + n as usize) - a, n as usize);
            prop_assert_eq!((a + n as usize).distance(a), n as i32);
            let mut b = a;
            b += n as usize;
            prop_assert_eq!(b, a + n as usize);
        }

        #[test]
        fn order_follows_offsets_within_a_window(a in any::<u32>(), i in off(), j in off()) {
            // Two numbers at offsets i, j from a base: they compare as the offsets do as
            // long as they are less than 2^31 apart.
            prop_assume!(i.abs_diff(j) < (1 << 31));
            let (x, y) = (SeqNumber(a) + i as usize, SeqNumber(a) + j as usize);
            prop_assert_eq!(x.cmp(&y), i.cmp(&j));
            prop_assert_eq!(x.max(y), SeqNumber(a) + i.max(j) as usize);
            prop_assert_eq!(x.min(y), SeqNumber(a) + i.min(j) as usize);
        }

        #[test]
        fn distance_is_antisymmetric(a in any::<u32>(), b in any::<u32>()) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            let d = a.distance(b);
            prop_assume!(d != i32::MIN);
            prop_assert_eq!(b.distance(a), -d);
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        }

        #[test]
        fn in_range_is_offset_below_length(a in any::<u32>(), n in off(), x in any::<u32>()) {
            let start = SeqNumber(a);
            let end = start + n as usize;
            let inside = x.wrapping_sub(a) < n;
            prop_assert_eq!(SeqNumber(x).in_range(start, end), inside);
        }
    }
}
