//! Out-of-order reassembly bookkeeping for the receive side.
//!
//! The bytes themselves live in the connection's receive ring; this module only remembers
//! *which* byte ranges beyond the in-order point (RCV.NXT) have arrived, so that the
//! connection can tell when a hole is filled and which SACK blocks (RFC 2018) to send.
//!
//! Memory is bounded by a fixed array of [`MAX_RANGES`] disjoint ranges: a peer cannot make
//! us allocate by sending a segment into every other byte of the window. When the array is
//! full, the range furthest from the in-order point is given up (RFC 2018 §8 allows the
//! receiver to renege on data it has SACKed; the sender keeps everything until it is
//! cumulatively acknowledged), because lower data is closer to being delivered.

use crate::seq::SeqNumber;

/// How many disjoint out-of-order ranges are tracked at once.
///
/// Each costs 8 bytes inline in every connection. Sixteen holes in one window is already a
/// badly damaged path (at 5 % loss a 64-segment window has about three); past that the
/// sender's retransmissions fill the front holes first and the highest ranges are reneged.
pub const MAX_RANGES: usize = 16;

/// How many recently received segments are remembered to order SACK blocks (RFC 2018 §4
/// puts the block holding the latest segment first, then the previously reported ones).
/// Four is the most blocks a TCP header can carry.
const RECENT: usize = 4;

/// `add` could not record a range: all [`MAX_RANGES`] slots are in use by ranges nearer
/// the in-order point. The segment's bytes must be treated as not received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyHoles;

impl core::fmt::Display for TooManyHoles {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("too many out-of-order ranges")
    }
}

impl std::error::Error for TooManyHoles {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Range {
    start: u32,
    end: u32,
}

/// The set of received byte ranges beyond the in-order point, as offsets from it.
///
/// Invariant: `ranges[..len]` is sorted, non-empty, pairwise disjoint and non-adjacent
/// (touching ranges are merged), so each slot is a real hole boundary.
#[derive(Debug, Clone)]
pub struct Assembler {
    ranges: [Range; MAX_RANGES],
    len: u8,
    /// Offsets of the most recently received segments, latest first, each inside a
    /// different range of `ranges` (or stale, pointing at a reneged range).
    recent: [u32; RECENT],
    recent_len: u8,
}

impl Default for Assembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Assembler {
    /// An empty assembler: nothing received beyond the in-order point.
    pub const fn new() -> Assembler {
        Assembler {
            ranges: [Range { start: 0, end: 0 }; MAX_RANGES],
            len: 0,
            recent: [0; RECENT],
            recent_len: 0,
        }
    }

    /// No data is held beyond the in-order point (no holes, nothing at the front).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of disjoint ranges held.
    #[inline]
    pub fn range_count(&self) -> usize {
        self.len as usize
    }

    /// Forget everything (e.g. when the connection is reset).
    pub fn clear(&mut self) {
        self.len = 0;
        self.recent_len = 0;
    }

    /// The held ranges as `(start, end)` offsets from the in-order point, lowest first.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges[..self.len as usize]
            .iter()
            .map(|r| (r.start as usize, r.end as usize))
    }

    /// Whether the byte at `offset` from the in-order point has been received.
    pub fn contains(&self, offset: usize) -> bool {
        let Ok(off) = u32::try_from(offset) else {
            return false;
        };
        self.ranges[..self.len as usize]
            .iter()
            .any(|r| r.start <= off && off < r.end)
    }

    /// One past the highest received offset, or 0 if nothing is held.
    pub fn highest(&self) -> usize {
        match self.len {
            0 => 0,
            n => self.ranges[n as usize - 1].end as usize,
        }
    }

    /// Record that `len` bytes at `offset` (from the in-order point) have arrived.
    /// Overlapping and duplicate ranges merge. Offsets past `u32::MAX` are clamped (no
    /// receive window is that large, so such bytes are outside it anyway).
    ///
    /// When the new range needs a slot and none is free, the highest range is reneged if
    /// it lies beyond the new one; otherwise the new range is refused with
    /// [`TooManyHoles`]. Data at offset 0 is therefore always accepted, so the connection
    /// can always make progress.
    pub fn add(&mut self, offset: usize, len: usize) -> Result<(), TooManyHoles> {
        if len == 0 {
            return Ok(());
        }
        let start = u32::try_from(offset).unwrap_or(u32::MAX);
        let end = u32::try_from(offset.saturating_add(len)).unwrap_or(u32::MAX);
        if start >= end {
            return Ok(());
        }
        let n = self.len as usize;
        // First range that ends at or after `start` (could merge or lies beyond).
        let first = self.ranges[..n].partition_point(|r| r.end < start);
        // One past the last range that starts at or before `end` (could merge).
        let last = self.ranges[..n].partition_point(|r| r.start <= end);
        let merged = if first < last {
            let s = start.min(self.ranges[first].start);
            let e = end.max(self.ranges[last - 1].end);
            self.ranges[first] = Range { start: s, end: e };
            // Ranges first+1..last are swallowed: close the gap.
            self.ranges.copy_within(last..n, first + 1);
            self.len = (n - (last - first - 1)) as u8;
            self.ranges[first]
        } else {
            // Disjoint from everything: needs a slot of its own at index `first`.
            if n == MAX_RANGES {
                if first == n {
                    return Err(TooManyHoles);
                }
                // Renege the highest range to make room for this lower one.
                self.len -= 1;
            }
            let n = self.len as usize;
            self.ranges.copy_within(first..n, first + 1);
            let r = Range { start, end };
            self.ranges[first] = r;
            self.len += 1;
            r
        };
        self.note_recent(start, merged);
        Ok(())
    }

    fn note_recent(&mut self, offset: u32, merged: Range) {
        // Keep one entry per range: older entries now inside the merged range describe the
        // same SACK block as the new one, which goes first.
        let mut kept = [0u32; RECENT];
        let mut k = 1;
        kept[0] = offset;
        for &o in &self.recent[..self.recent_len as usize] {
            if k == RECENT {
                break;
            }
            if !(merged.start <= o && o < merged.end) {
                kept[k] = o;
                k += 1;
            }
        }
        self.recent = kept;
        self.recent_len = k as u8;
    }

    /// If data is now contiguous from the in-order point, drop it from the set and return
    /// its length (the caller advances RCV.NXT by that much); the remaining ranges are
    /// rebased onto the new in-order point. Returns 0 if the front is still a hole.
    pub fn remove_front(&mut self) -> usize {
        if self.len == 0 || self.ranges[0].start != 0 {
            return 0;
        }
        let n = self.len as usize;
        let advance = self.ranges[0].end;
        self.ranges.copy_within(1..n, 0);
        self.len -= 1;
        for r in &mut self.ranges[..self.len as usize] {
            // Disjoint and non-adjacent, so every later range starts beyond `advance`.
            r.start -= advance;
            r.end -= advance;
        }
        let mut k = 0;
        for i in 0..self.recent_len as usize {
            let o = self.recent[i];
            if o >= advance {
                self.recent[k] = o - advance;
                k += 1;
            }
        }
        self.recent_len = k as u8;
        advance as usize
    }

    /// Fill `out` with up to `max` (at most 4) SACK blocks as `(left, right)` sequence
    /// numbers, given `base` = RCV.NXT, per RFC 2018 §4: the block holding the most
    /// recently received segment first, then the blocks of the previously received
    /// segments, latest first; any remaining slots get the other ranges, lowest first
    /// (those are the holes the sender should fill soonest). Unused slots are `None`.
    /// Returns the number of blocks written.
    ///
    /// A range at offset 0 (not yet removed with [`remove_front`](Self::remove_front)) is
    /// not a SACK block and is skipped.
    pub fn sack_blocks(
        &self,
        base: SeqNumber,
        out: &mut [Option<(u32, u32)>; 4],
        max: usize,
    ) -> usize {
        let max = max.min(out.len());
        *out = [None; 4];
        let n = self.len as usize;
        let mut used = [false; MAX_RANGES];
        let mut k = 0;
        let block = |r: &Range| ((base + r.start as usize).0, (base + r.end as usize).0);
        for &o in &self.recent[..self.recent_len as usize] {
            if k == max {
                return k;
            }
            let i = self.ranges[..n].partition_point(|r| r.end <= o);
            if i < n && self.ranges[i].start <= o && self.ranges[i].start != 0 && !used[i] {
                used[i] = true;
                out[k] = Some(block(&self.ranges[i]));
                k += 1;
            }
        }
        for (r, _) in self.ranges[..n].iter().zip(used).filter(|(_, u)| !u) {
            if k == max {
                break;
            }
            if r.start != 0 {
                out[k] = Some(block(r));
                k += 1;
            }
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    #[test]
    fn in_order_data_is_immediately_contiguous() {
        let mut a = Assembler::new();
        assert!(a.is_empty());
        a.add(0, 100).unwrap();
        assert_eq!(a.remove_front(), 100);
        assert!(a.is_empty());
        assert_eq!(a.remove_front(), 0);
    }

    #[test]
    fn hole_then_fill() {
        let mut a = Assembler::new();
        a.add(100, 50).unwrap();
        a.add(200, 50).unwrap();
        assert_eq!(a.remove_front(), 0);
        assert_eq!(ranges(&a), [(100, 150), (200, 250)]);
        a.add(0, 100).unwrap();
        assert_eq!(a.remove_front(), 150);
        assert_eq!(ranges(&a), [(50, 100)]);
        a.add(0, 50).unwrap();
        assert_eq!(a.remove_front(), 100);
        assert!(a.is_empty());
    }

    #[test]
    fn overlaps_and_duplicates_merge() {
        let mut a = Assembler::new();
        a.add(10, 10).unwrap();
        a.add(30, 10).unwrap();
        a.add(50, 10).unwrap();
        a.add(10, 10).unwrap();
        assert_eq!(a.range_count(), 3);
        // Adjacent on both sides: bridges 10..20 and 30..40.
        a.add(20, 10).unwrap();
        assert_eq!(ranges(&a), [(10, 40), (50, 60)]);
        // Covers everything.
        a.add(5, 100).unwrap();
        assert_eq!(ranges(&a), [(5, 105)]);
        a.add(0, 0).unwrap();
        assert_eq!(ranges(&a), [(5, 105)]);
    }

    #[test]
    fn full_reneges_highest_or_refuses() {
        let mut a = Assembler::new();
        for i in 0..MAX_RANGES {
            a.add(10 + 20 * i, 10).unwrap();
        }
        assert_eq!(a.range_count(), MAX_RANGES);
        let top = a.highest();
        // Beyond everything: refused, nothing changes.
        assert_eq!(a.add(top + 100, 10), Err(TooManyHoles));
        assert_eq!(a.highest(), top);
        // Merging needs no slot.
        a.add(top, 5).unwrap();
        assert_eq!(a.highest(), top + 5);
        // Below the top: the top range is given up.
        a.add(2, 3).unwrap();
        assert_eq!(a.range_count(), MAX_RANGES);
        assert_eq!(a.highest(), top - 20);
        // In-order data is always accepted.
        a.add(0, 1).unwrap();
        assert_eq!(a.remove_front(), 1);
    }

    #[test]
    fn huge_offsets_do_not_panic() {
        let mut a = Assembler::new();
        a.add(usize::MAX - 3, 10).unwrap();
        a.add(u32::MAX as usize, 10).unwrap();
        a.add(u32::MAX as usize - 1, usize::MAX).unwrap();
        assert_eq!(ranges(&a), [(u32::MAX as usize - 1, u32::MAX as usize)]);
        assert!(!a.contains(usize::MAX));
        let mut out = [None; 4];
        assert_eq!(a.sack_blocks(SeqNumber(5), &mut out, 4), 1);
    }

    #[test]
    fn sack_order_is_most_recent_first() {
        let base = SeqNumber(1000);
        let mut a = Assembler::new();
        let mut out = [None; 4];
        a.add(100, 10).unwrap();
        a.add(300, 10).unwrap();
        a.add(200, 10).unwrap();
        assert_eq!(a.sack_blocks(base, &mut out, 4), 3);
        assert_eq!(
            out,
            [
                Some((1200, 1210)),
                Some((1300, 1310)),
                Some((1100, 1110)),
                None
            ]
        );
        // A segment extending the first range moves it to the front; no duplicates.
        a.add(110, 10).unwrap();
        a.sack_blocks(base, &mut out, 4);
        assert_eq!(
            out,
            [
                Some((1100, 1120)),
                Some((1200, 1210)),
                Some((1300, 1310)),
                None
            ]
        );
        // With timestamps only three blocks fit.
        a.add(500, 10).unwrap();
        a.add(400, 10).unwrap();
        assert_eq!(a.sack_blocks(base, &mut out, 3), 3);
        assert_eq!(
            out,
            [
                Some((1400, 1410)),
                Some((1500, 1510)),
                Some((1100, 1120)),
                None
            ]
        );
        // More ranges than recent entries: the rest are filled lowest first.
        a.add(700, 10).unwrap();
        a.add(800, 10).unwrap();
        a.add(900, 10).unwrap();
        a.add(950, 10).unwrap();
        a.add(50, 10).unwrap();
        assert_eq!(a.sack_blocks(base, &mut out, 4), 4);
        assert_eq!(
            out,
            [
                Some((1050, 1060)),
                Some((1950, 1960)),
                Some((1900, 1910)),
                Some((1800, 1810))
            ]
        );
        // After the front is filled, blocks are relative to the new base.
        a.add(0, 50).unwrap();
        assert_eq!(a.remove_front(), 60);
        let base = base + 60;
        a.sack_blocks(base, &mut out, 4);
        assert_eq!(out[0], Some((1950, 1960)));
        assert_eq!(a.sack_blocks(base, &mut out, 0), 0);
        assert_eq!(out, [None; 4]);
    }

    #[test]
    fn sack_blocks_wrap_the_sequence_space() {
        let mut a = Assembler::new();
        a.add(10, 20).unwrap();
        let mut out = [None; 4];
        a.sack_blocks(SeqNumber(u32::MAX - 14), &mut out, 4);
        assert_eq!(out[0], Some((u32::MAX - 4, 15)));
    }

    #[test]
    fn front_range_is_not_a_sack_block() {
        let mut a = Assembler::new();
        a.add(0, 10).unwrap();
        a.add(20, 10).unwrap();
        let mut out = [None; 4];
        assert_eq!(a.sack_blocks(SeqNumber(0), &mut out, 4), 1);
        assert_eq!(out[0], Some((20, 30)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        RemoveFront,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..600, 0usize..80).prop_map(|(o, l)| Op::Add(o, l)),
            1 => Just(Op::RemoveFront),
        ]
    }

    /// Bitmap model of received bytes beyond the in-order point.
    #[derive(Default)]
    struct Model {
        bits: Vec<bool>,
    }

    impl Model {
        fn add(&mut self, o: usize, l: usize) {
            if self.bits.len() < o + l {
                self.bits.resize(o + l, false);
            }
            self.bits[o..o + l].iter_mut().for_each(|b| *b = true);
        }
        fn remove_front(&mut self) -> usize {
            let n = self.bits.iter().take_while(|b| **b).count();
            self.bits.drain(..n);
            n
        }
        fn ranges(&self) -> Vec<(usize, usize)> {
            let mut v = Vec::new();
            let mut i = 0;
            while i < self.bits.len() {
                if self.bits[i] {
                    let s = i;
                    while i < self.bits.len() && self.bits[i] {
                        i += 1;
                    }
                    v.push((s, i));
                } else {
                    i += 1;
                }
            }
            v
        }
        fn clear_from(&mut self, from: usize) {
            self.bits.truncate(from);
        }
    }

    fn check_invariants(a: &Assembler) {
        let r = ranges(a);
        for w in r.windows(2) {
            assert!(w[0].1 < w[1].0, "ranges not disjoint/non-adjacent: {r:?}");
        }
        for &(s, e) in &r {
            assert!(s < e);
        }
        assert!(a.range_count() <= MAX_RANGES);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The assembler agrees byte for byte with a bitmap, except where the bounded array
        /// reneged or refused; those cases are replayed into the model (it drops what the
        /// assembler dropped), so any other difference is a bug.
        #[test]
        fn matches_bitmap_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut a = Assembler::new();
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::Add(o, l) => {
                        let before = a.highest();
                        let count = a.range_count();
                        let res = a.add(o, l);
                        match res {
                            Ok(()) => {
                                // A renege happened iff the count stayed at the maximum and
                                // the new range needed its own slot; the model forgets the
                                // same tail.
                                m.add(o, l);
                                if count == MAX_RANGES && a.highest() < before.max(o + l) {
                                    m.clear_from(a.highest());
                                }
                            }
                            Err(TooManyHoles) => {
                                prop_assert_eq!(count, MAX_RANGES);
                                prop_assert!(o > before);
                            }
                        }
                    }
                    Op::RemoveFront => {
                        prop_assert_eq!(a.remove_front(), m.remove_front());
                    }
                }
                check_invariants(&a);
                prop_assert_eq!(ranges(&a), m.ranges());
            }
        }

        /// Every SACK block is a held range, none repeats, and the first one holds the
        /// latest segment.
        #[test]
        fn sack_blocks_are_held_ranges(
            adds in proptest::collection::vec((1usize..2000, 1usize..50), 1..40),
            base in any::<u32>(),
            max in 0usize..=4,
        ) {
            let mut a = Assembler::new();
            let mut last = None;
            for &(o, l) in &adds {
                if a.add(o, l).is_ok() {
                    last = Some(o);
                }
            }
            let mut out = [None; 4];
            let k = a.sack_blocks(SeqNumber(base), &mut out, max);
            prop_assert_eq!(k, max.min(a.range_count()));
            let held: Vec<(u32, u32)> = a
                .ranges()
                .map(|(s, e)| ((SeqNumber(base) + s).0, (SeqNumber(base) + e).0))
                .collect();
            for (i, b) in out.iter().enumerate() {
                if i < k {
                    let b = b.unwrap();
                    prop_assert!(held.contains(&b));
                    prop_assert!(!out[..i].contains(&Some(b)));
                } else {
                    prop_assert_eq!(*b, None);
                }
            }
            if let (Some(o), true) = (last, k > 0) {
                if a.contains(o) {
                    let (l, r) = out[0].unwrap();
                    let o = (SeqNumber(base) + o).0;
                    prop_assert!(SeqNumber(o).in_range(SeqNumber(l), SeqNumber(r)));
                }
            }
        }
    }
}
