//! The sender's SACK scoreboard for loss recovery (RFC 6675).
//!
//! Remembers which parts of the outstanding send space [SND.UNA, SND.NXT) the receiver
//! has selectively acknowledged, in a fixed array (no allocation, 8 bytes a range), and
//! answers RFC 6675's questions: IsLost, NextSeg and SetPipe. Holes and counts are
//! computed per range rather than per octet as the RFC describes them: IsLost is
//! monotonic in the sequence number (the higher the number, the less has been SACKed
//! above it), so a single "lost below here" boundary summarises it.

use crate::seq::SeqNumber;

/// How many disjoint SACKed ranges are remembered. When a new block needs a slot and
/// none is free, the highest range is forgotten: the lowest ones decide which holes are
/// lost and retransmitted first, and forgetting a SACK only risks a needless
/// retransmission later (the receiver may renege anyway, RFC 2018 §8).
pub const MAX_SACKED: usize = 16;

/// RFC 6675's default DupThresh.
pub const DUP_THRESH: usize = 3;

/// What RFC 6675 NextSeg() says to send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextSeg {
    /// Rules 1 and 3: retransmit `len` bytes (at most one MSS, never crossing into SACKed
    /// data or past SND.NXT) from `seq`. The caller then raises HighRxt to `seq + len`.
    Retransmit {
        /// First octet to resend.
        seq: SeqNumber,
        /// How many octets.
        len: usize,
    },
    /// Rule 2: send one segment of new data from SND.NXT (the caller said some is
    /// available and the peer's window allows it).
    NewData,
    /// Rule 4: the rescue retransmission, `len` bytes from `seq`, ending at the highest
    /// outstanding unSACKed octet. The caller sets RescueRxt to its RecoveryPoint and
    /// does not move HighRxt.
    Rescue {
        /// First octet to resend.
        seq: SeqNumber,
        /// How many octets.
        len: usize,
    },
}

/// The sender's view of its send space that NextSeg() and SetPipe() need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSpace {
    /// SND.UNA: the first unacknowledged octet (RFC 6675's HighACK + 1).
    pub snd_una: SeqNumber,
    /// SND.NXT: one past the highest octet sent (HighData + 1).
    pub snd_nxt: SeqNumber,
    /// One past the highest octet retransmitted in this recovery (HighRxt + 1); SND.UNA
    /// when recovery starts.
    pub high_rxt: SeqNumber,
    /// The sender's MSS.
    pub mss: usize,
    /// DupThresh ([`DUP_THRESH`] unless the connection adapts it).
    pub dupthresh: usize,
}

/// Selectively acknowledged ranges of the send space above SND.UNA.
///
/// Invariant: `ranges[..len]` are sorted, non-empty, disjoint and non-adjacent, and all
/// lie at or above the SND.UNA given to the last [`update`](Self::update).
#[derive(Debug, Clone)]
pub struct Scoreboard {
    ranges: [(SeqNumber, SeqNumber); MAX_SACKED],
    len: u8,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Scoreboard {
    /// An empty scoreboard.
    pub const fn new() -> Scoreboard {
        Scoreboard {
            ranges: [(SeqNumber(0), SeqNumber(0)); MAX_SACKED],
            len: 0,
        }
    }

    /// Forget all SACK information (after a retransmission timeout, RFC 6675 §5.1, or
    /// when the connection resets).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SACKed ranges `[left, right)`, lowest first.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        self.ranges[..self.len as usize].iter().copied()
    }

    /// Total SACKed bytes.
    pub fn sacked_bytes(&self) -> usize {
        self.ranges().map(|(l, r)| r - l).sum()
    }

    /// One past the highest SACKed octet, if any octet is SACKed.
    pub fn highest_sacked(&self) -> Option<SeqNumber> {
        match self.len {
            0 => None,
            n => Some(self.ranges[n as usize - 1].1),
        }
    }

    /// Whether octet `seq` has been SACKed.
    pub fn is_sacked(&self, seq: SeqNumber) -> bool {
        self.ranges().any(|(l, r)| seq.in_range(l, r))
    }

    /// Process an ACK: drop what SND.UNA (`snd_una`) now covers, then record the SACK
    /// `blocks` (as parsed, `(left, right)`), each clipped to the outstanding space
    /// [`snd_una`, `snd_nxt`). Blocks that are empty, inverted, or entirely outside it
    /// (D-SACKs of data below SND.UNA, RFC 2883, and forged or stale blocks) are ignored;
    /// a D-SACK inside the window merely repeats what is known. Returns how many bytes
    /// were SACKed for the first time (RFC 6675's "new SACK information" when > 0).
    pub fn update(
        &mut self,
        snd_una: SeqNumber,
        snd_nxt: SeqNumber,
        blocks: &[Option<(u32, u32)>; 4],
    ) -> usize {
        self.advance(snd_una);
        let window = i64::from(snd_nxt.distance(snd_una).max(0));
        let mut newly = 0;
        for &(l, r) in blocks.iter().flatten() {
            // Offsets from SND.UNA, clamped to the window: this also makes any block
            // a hostile peer can craft (wrapping, 2 GiB wide) harmless.
            let lo = i64::from(SeqNumber(l).distance(snd_una)).clamp(0, window);
            let hi = i64::from(SeqNumber(r).distance(snd_una)).clamp(0, window);
            if hi <= lo {
                continue;
            }
            newly += self.insert(snd_una + lo as usize, snd_una + hi as usize);
        }
        newly
    }

    fn advance(&mut self, snd_una: SeqNumber) {
        let n = self.len as usize;
        let gone = self.ranges[..n].partition_point(|&(_, r)| r <= snd_una);
        self.ranges.copy_within(gone..n, 0);
        self.len = (n - gone) as u8;
        if let Some(first) = self.ranges[..self.len as usize].first_mut() {
            first.0 = first.0.max(snd_una);
        }
    }

    /// Add `[l, r)`; returns the bytes not previously covered.
    fn insert(&mut self, l: SeqNumber, r: SeqNumber) -> usize {
        let n = self.len as usize;
        let first = self.ranges[..n].partition_point(|&(_, e)| e < l);
        let last = self.ranges[..n].partition_point(|&(s, _)| s <= r);
        if first < last {
            let covered: usize = self.ranges[first..last]
                .iter()
                .map(|&(s, e)| e.min(r).distance(s.max(l)).max(0) as usize)
                .sum();
            let s = l.min(self.ranges[first].0);
            let e = r.max(self.ranges[last - 1].1);
            self.ranges[first] = (s, e);
            self.ranges.copy_within(last..n, first + 1);
            self.len = (n - (last - first - 1)) as u8;
            (r - l) - covered
        } else {
            if n == MAX_SACKED {
                if first == n {
                    return 0;
                }
                self.len -= 1;
            }
            let n = self.len as usize;
            self.ranges.copy_within(first..n, first + 1);
            self.ranges[first] = (l, r);
            self.len += 1;
            r - l
        }
    }

    /// The boundary below which every unSACKed octet is lost (RFC 6675 IsLost): the start
    /// of the highest range such that the ranges from it upward number `dupthresh` or
    /// hold more than `(dupthresh - 1) * mss` bytes (every hole below it has at least
    /// that much SACKed above it). `None` if nothing is lost.
    fn lost_below(&self, mss: usize, dupthresh: usize) -> Option<SeqNumber> {
        let byte_limit = dupthresh.saturating_sub(1).saturating_mul(mss);
        let mut bytes = 0usize;
        for (count, &(l, r)) in self.ranges[..self.len as usize].iter().rev().enumerate() {
            bytes += r - l;
            if count + 1 >= dupthresh || bytes > byte_limit {
                return Some(l);
            }
        }
        None
    }

    /// RFC 6675 IsLost(seq): `dupthresh` discontiguous SACKed ranges, or more than
    /// `(dupthresh - 1) * mss` SACKed bytes, lie above the unSACKed octet `seq`.
    pub fn is_lost(&self, seq: SeqNumber, mss: usize, dupthresh: usize) -> bool {
        match self.lost_below(mss, dupthresh) {
            Some(b) => seq < b && !self.is_sacked(seq),
            None => false,
        }
    }

    /// RFC 6675 NextSeg(), all four rules.
    ///
    /// `new_data_ok` says rule 2 may apply (unsent data exists and the peer's window allows
    /// a segment). `rescue_ok` says rule 4 may apply (HighACK > RescueRxt, i.e. no rescue
    /// retransmission yet in this recovery); pass `false` to leave rule 4 out. The caller
    /// paces calls with `cwnd - pipe >= MSS` (RFC 6675 §5 step C).
    pub fn next_seg(&self, sp: &SendSpace, new_data_ok: bool, rescue_ok: bool) -> Option<NextSeg> {
        let SendSpace {
            snd_una,
            snd_nxt,
            high_rxt,
            mss,
            dupthresh,
        } = *sp;
        let mss = mss.max(1);
        let from = high_rxt.max(snd_una);
        let top = self.highest_sacked().map(|h| h.min(snd_nxt));
        if let Some(top) = top {
            // Rules 1 and 3 both look at the lowest unSACKed octet at or above HighRxt and
            // below the highest SACKed one; rule 1 wants it lost, rule 3 takes it anyway
            // after rule 2.
            if let Some((s, end)) = self.first_hole(from, top) {
                let len = (end - s).min(mss);
                let lost = self
                    .lost_below(mss, dupthresh)
                    .is_some_and(|boundary| s < boundary);
                if lost {
                    return Some(NextSeg::Retransmit { seq: s, len });
                }
                if new_data_ok {
                    return Some(NextSeg::NewData);
                }
                return Some(NextSeg::Retransmit { seq: s, len });
            }
        }
        if new_data_ok {
            return Some(NextSeg::NewData);
        }
        if rescue_ok {
            // The highest outstanding unSACKed octet, and the segment ending with it.
            let mut end = snd_nxt;
            for &(l, r) in self.ranges[..self.len as usize].iter().rev() {
                if r < end {
                    break;
                }
                end = end.min(l);
            }
            if end > snd_una {
                let len = (end - snd_una).min(mss);
                return Some(NextSeg::Rescue {
                    seq: SeqNumber(end.0.wrapping_sub(len as u32)),
                    len,
                });
            }
        }
        None
    }

    /// The first unSACKed run `[s, e)` with `from <= s < limit`, `e` clipped to `limit`.
    fn first_hole(&self, from: SeqNumber, limit: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        let mut s = from;
        for &(l, r) in &self.ranges[..self.len as usize] {
            if r <= s {
                continue;
            }
            if l > s {
                let e = l.min(limit);
                return (s < e).then_some((s, e));
            }
            s = r;
        }
        (s < limit).then_some((s, limit))
    }

    /// RFC 6675 SetPipe(): the sender's estimate of the bytes in the network. Counts each
    /// unSACKed octet in [SND.UNA, SND.NXT) once if it is not lost, and once more if it
    /// was retransmitted (below `high_rxt`).
    pub fn pipe(&self, sp: &SendSpace) -> usize {
        let SendSpace {
            snd_una,
            snd_nxt,
            high_rxt,
            mss,
            dupthresh,
        } = *sp;
        if snd_nxt <= snd_una {
            return 0;
        }
        let boundary = self
            .lost_below(mss.max(1), dupthresh)
            .map_or(snd_una, |b| b.max(snd_una).min(snd_nxt));
        let high_rxt = high_rxt.max(snd_una).min(snd_nxt);
        self.unsacked(boundary, snd_nxt) + self.unsacked(snd_una, high_rxt)
    }

    /// UnSACKed octets in [a, b).
    fn unsacked(&self, a: SeqNumber, b: SeqNumber) -> usize {
        if b <= a {
            return 0;
        }
        let sacked: usize = self
            .ranges()
            .map(|(l, r)| {
                let (l, r) = (l.max(a), r.min(b));
                if r > l {
                    r - l
                } else {
                    0
                }
            })
            .sum();
        (b - a) - sacked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: usize = 1000;

    fn s(v: u32) -> SeqNumber {
        SeqNumber(v)
    }

    fn sp(snd_una: SeqNumber, snd_nxt: SeqNumber, high_rxt: SeqNumber) -> SendSpace {
        SendSpace {
            snd_una,
            snd_nxt,
            high_rxt,
            mss: MSS,
            dupthresh: DUP_THRESH,
        }
    }

    fn blocks(b: &[(u32, u32)]) -> [Option<(u32, u32)>; 4] {
        let mut out = [None; 4];
        for (i, &x) in b.iter().enumerate() {
            out[i] = Some(x);
        }
        out
    }

    #[test]
    fn first_segment_lost_then_recovered() {
        // Ten segments sent from 0; the first is lost, the next three are SACKed.
        let (una, nxt) = (s(0), s(10_000));
        let mut sb = Scoreboard::new();
        assert_eq!(sb.update(una, nxt, &blocks(&[(1000, 2000)])), 1000);
        assert_eq!(sb.update(una, nxt, &blocks(&[(1000, 3000)])), 1000);
        // Two segments above: not yet more than (3 - 1) * MSS.
        assert!(!sb.is_lost(una, MSS, DUP_THRESH));
        assert_eq!(sb.pipe(&sp(una, nxt, una)), 8000);
        assert_eq!(sb.update(una, nxt, &blocks(&[(1000, 4000)])), 1000);
        assert!(sb.is_lost(una, MSS, DUP_THRESH));
        assert!(!sb.is_lost(s(1500), MSS, DUP_THRESH));
        assert!(!sb.is_lost(s(4000), MSS, DUP_THRESH));
        // SetPipe: the lost segment is out of the pipe, the six above the SACKs are in.
        assert_eq!(sb.pipe(&sp(una, nxt, una)), 6000);
        // NextSeg rule 1: the lost segment.
        assert_eq!(
            sb.next_seg(&sp(una, nxt, una), true, true),
            Some(NextSeg::Retransmit {
                seq: s(0),
                len: 1000
            })
        );
        // Once retransmitted it is back in the pipe; rule 2 is next.
        let high_rxt = s(1000);
        assert_eq!(sb.pipe(&sp(una, nxt, high_rxt)), 7000);
        assert_eq!(
            sb.next_seg(&sp(una, nxt, high_rxt), true, true),
            Some(NextSeg::NewData)
        );
        // No new data: nothing below the highest SACK is left, so rule 4 rescues the
        // tail.
        assert_eq!(
            sb.next_seg(&sp(una, nxt, high_rxt), false, true),
            Some(NextSeg::Rescue {
                seq: s(9000),
                len: 1000
            })
        );
        assert_eq!(sb.next_seg(&sp(una, nxt, high_rxt), false, false), None);
        // The retransmission arrives: the cumulative ACK jumps over the SACKed data.
        assert_eq!(sb.update(s(4000), nxt, &[None; 4]), 0);
        assert!(sb.is_empty());
        assert_eq!(sb.pipe(&sp(s(4000), nxt, high_rxt)), 6000);
    }

    #[test]
    fn discontiguous_sacks_mark_loss_and_rule_three() {
        // Segments 0, 2, 4 lost; 1, 3, 5 SACKed (three discontiguous ranges).
        let (una, nxt) = (s(0), s(8000));
        let mut sb = Scoreboard::new();
        let b = blocks(&[(5000, 6000), (3000, 4000), (1000, 2000)]);
        assert_eq!(sb.update(una, nxt, &b), 3000);
        assert_eq!(sb.ranges().count(), 3);
        // Above 0: three ranges -> lost. Above 2000: two ranges, 2000 bytes -> not lost.
        assert!(sb.is_lost(s(0), MSS, DUP_THRESH));
        assert!(!sb.is_lost(s(2000), MSS, DUP_THRESH));
        assert!(!sb.is_lost(s(1000), MSS, DUP_THRESH));
        // Pipe: 0..1000 lost; 2000..3000, 4000..5000, 6000..8000 in flight.
        assert_eq!(sb.pipe(&sp(una, nxt, una)), 4000);
        assert_eq!(
            sb.next_seg(&sp(una, nxt, una), false, false),
            Some(NextSeg::Retransmit {
                seq: s(0),
                len: 1000
            })
        );
        // After it, 2000 is not lost: rule 2 first if possible, else rule 3 sends it.
        let hr = s(1000);
        assert_eq!(
            sb.next_seg(&sp(una, nxt, hr), true, false),
            Some(NextSeg::NewData)
        );
        assert_eq!(
            sb.next_seg(&sp(una, nxt, hr), false, false),
            Some(NextSeg::Retransmit {
                seq: s(2000),
                len: 1000
            })
        );
        // A retransmitted octet that is not lost counts twice.
        assert_eq!(sb.pipe(&sp(una, nxt, s(3000))), 6000);
        // Segments never cross into SACKed data, even with a large MSS.
        assert_eq!(
            sb.next_seg(
                &SendSpace {
                    mss: 4000,
                    dupthresh: 1,
                    ..sp(una, nxt, una)
                },
                false,
                false
            ),
            Some(NextSeg::Retransmit {
                seq: s(0),
                len: 1000
            })
        );
    }

    #[test]
    fn blocks_outside_the_window_and_dsacks_are_harmless() {
        let (una, nxt) = (s(u32::MAX - 999), s(4000));
        let mut sb = Scoreboard::new();
        // D-SACK below SND.UNA, a block past SND.NXT, an inverted block.
        let b = blocks(&[
            (u32::MAX - 2999, u32::MAX - 1999),
            (5000, 6000),
            (3000, 2000),
        ]);
        assert_eq!(sb.update(una, nxt, &b), 0);
        assert!(sb.is_empty());
        // Straddling blocks are clipped; a repeat (D-SACK in window) adds nothing.
        let b = blocks(&[(3000, 9000), (u32::MAX - 1999, 500)]);
        assert_eq!(sb.update(una, nxt, &b), 1000 + 1500);
        assert_eq!(sb.update(una, nxt, &blocks(&[(3000, 4000)])), 0);
        assert_eq!(
            sb.ranges().collect::<Vec<_>>(),
            [(una, s(500)), (s(3000), nxt)]
        );
        // Hostile: a block 2 GiB wide.
        assert_eq!(sb.update(una, nxt, &blocks(&[(1000, 1000 + (1 << 31))])), 0);
        assert!(sb.update(una, nxt, &blocks(&[(0x8000_0000, 0x7fff_ffff)])) <= 5000);
        assert!(sb.sacked_bytes() <= 5000);
        // Nothing outstanding at all.
        let mut sb = Scoreboard::new();
        assert_eq!(sb.update(nxt, nxt, &blocks(&[(0, 100)])), 0);
        assert_eq!(sb.pipe(&sp(nxt, nxt, nxt)), 0);
        assert_eq!(sb.next_seg(&sp(nxt, nxt, nxt), false, true), None);
    }

    #[test]
    fn full_board_forgets_the_highest_range() {
        let mut sb = Scoreboard::new();
        let (una, nxt) = (s(0), s(1_000_000));
        for i in 0..MAX_SACKED as u32 {
            sb.update(una, nxt, &blocks(&[(1000 + 2000 * i, 2000 + 2000 * i)]));
        }
        let top = sb.highest_sacked().unwrap();
        assert_eq!(sb.update(una, nxt, &blocks(&[(900_000, 901_000)])), 0);
        assert_eq!(sb.highest_sacked(), Some(top));
        assert_eq!(sb.update(una, nxt, &blocks(&[(100, 200)])), 100);
        assert_eq!(sb.ranges().count(), MAX_SACKED);
        assert!(sb.highest_sacked().unwrap() < top);
    }

    /// Octet-by-octet model of the RFC's definitions.
    struct Naive {
        una: u32,
        sacked: Vec<bool>,
    }

    impl Naive {
        fn is_sacked(&self, o: u32) -> bool {
            self.sacked[(o - self.una) as usize]
        }
        fn is_lost(&self, o: u32, mss: usize, dt: usize) -> bool {
            if self.is_sacked(o) {
                return false;
            }
            let above = &self.sacked[(o - self.una) as usize + 1..];
            let bytes = above.iter().filter(|b| **b).count();
            let mut runs = 0;
            let mut prev = false;
            for &b in above {
                if b && !prev {
                    runs += 1;
                }
                prev = b;
            }
            runs >= dt || bytes > (dt - 1) * mss
        }
        fn pipe(&self, nxt: u32, high_rxt: u32, mss: usize, dt: usize) -> usize {
            (self.una..nxt)
                .filter(|&o| !self.is_sacked(o))
                .map(|o| usize::from(!self.is_lost(o, mss, dt)) + usize::from(o < high_rxt))
                .sum()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn matches_octet_model(
            base in any::<u32>(),
            len in 1u32..400,
            acks in proptest::collection::vec(
                (0u32..20, proptest::collection::vec((0u32..450, 0u32..60), 0..4)), 1..8),
            mss in 1usize..40,
            dt in 1usize..5,
            rxt in 0u32..400,
        ) {
            let mut sb = Scoreboard::new();
            let nxt = base.wrapping_add(len);
            let mut una_off = 0u32;
            let mut model = vec![false; len as usize];
            for (adv, bl) in &acks {
                una_off = (una_off + adv).min(len);
                let una = base.wrapping_add(una_off);
                let mut b = [None; 4];
                let mut expect_new = 0;
                for (i, &(o, l)) in bl.iter().enumerate() {
                    // Offsets a little outside the window on both sides on purpose.
                    let lo = base.wrapping_add(o).wrapping_sub(20);
                    b[i] = Some((lo, lo.wrapping_add(l)));
                    let (lo_off, hi_off) = (o as i64 - 20, o as i64 - 20 + l as i64);
                    for off in lo_off.max(una_off as i64)..hi_off.min(len as i64) {
                        if !model[off as usize] {
                            model[off as usize] = true;
                            expect_new += 1;
                        }
                    }
                }
                let got = sb.update(SeqNumber(una), SeqNumber(nxt), &b);
                prop_assume!(sb.ranges().count() < MAX_SACKED);
                prop_assert_eq!(got, expect_new);
                // The model indexes octets by offset from `base`.
                let naive_off = Naive { una: una_off, sacked: model[una_off as usize..].to_vec() };
                for o in una_off..len {
                    let seq = SeqNumber(base.wrapping_add(o));
                    prop_assert_eq!(sb.is_sacked(seq), naive_off.is_sacked(o));
                }
                for o in una_off..len {
                    prop_assert_eq!(
                        sb.is_lost(SeqNumber(base.wrapping_add(o)), mss, dt),
                        naive_off.is_lost(o, mss, dt),
                        "is_lost at offset {}", o
                    );
                }
                let hr = rxt.clamp(una_off, len);
                let space = SendSpace {
                    snd_una: SeqNumber(una),
                    snd_nxt: SeqNumber(nxt),
                    high_rxt: SeqNumber(base.wrapping_add(hr)),
                    mss,
                    dupthresh: dt,
                };
                prop_assert_eq!(
                    sb.pipe(&space),
                    naive_off.pipe(len, hr, mss, dt)
                );
                // NextSeg rule 1 returns the lowest lost octet at or above HighRxt that is
                // below the highest SACK.
                let top = (una_off..len).rev().find(|&o| model[o as usize]).map(|o| o + 1);
                let want = top.and_then(|top| {
                    (hr..top).find(|&o| !model[o as usize] && naive_off.is_lost(o, mss, dt))
                });
                let got = sb.next_seg(&space, false, false);
                match (want, got) {
                    (Some(o), Some(NextSeg::Retransmit { seq, len: l })) => {
                        prop_assert_eq!(seq, SeqNumber(base.wrapping_add(o)));
                        prop_assert!(l >= 1 && l <= mss);
                        for k in 0..l as u32 {
                            prop_assert!(!model[(o + k) as usize]);
                        }
                    }
                    (Some(_), other) => prop_assert!(false, "expected rule 1, got {:?}", other),
                    (None, Some(NextSeg::Retransmit { seq, .. })) => {
                        // Rule 3: an unSACKed, not-lost octet below the highest SACK.
                        let o = seq.0.wrapping_sub(base);
                        prop_assert!(o >= hr && !model[o as usize]);
                        prop_assert!(!naive_off.is_lost(o, mss, dt));
                    }
                    (None, None) => {}
                    (None, other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
