//! NewReno (RFC 5681 congestion control, RFC 6582 fast recovery) with RFC 3465 byte
//! counting.

use core::time::Duration;

use super::{CongestionControl, Window};
use crate::seq::SeqNumber;
use crate::time::Instant;

/// RFC 5681 slow start and congestion avoidance, counting bytes (RFC 3465, L = 2).
#[derive(Debug, Clone)]
pub struct NewReno {
    w: Window,
    /// RFC 3465's bytes_acked: acknowledged bytes not yet turned into cwnd growth in
    /// congestion avoidance.
    bytes_acked: usize,
}

impl NewReno {
    /// A controller starting at the RFC 6928 initial window for `mss`.
    pub fn new(mss: usize) -> NewReno {
        NewReno {
            w: Window::new(mss),
            bytes_acked: 0,
        }
    }

    /// RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2·SMSS).
    fn halve(&mut self, bytes_in_flight: usize) {
        self.w.ssthresh = (bytes_in_flight / 2).max(2 * self.w.mss);
        self.bytes_acked = 0;
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> usize {
        self.w.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.w.ssthresh
    }

    fn on_ack(&mut self, _now: Instant, acked: usize, prior: usize, _rtt: Option<Duration>) {
        if !self.w.ack_may_grow(acked, prior) {
            return;
        }
        if self.w.cwnd < self.w.ssthresh {
            self.w.slow_start(acked);
        } else {
            // RFC 3465 §2.1: one SMSS per cwnd's worth of acknowledged bytes.
            self.bytes_acked = self.bytes_acked.saturating_add(acked);
            if self.bytes_acked >= self.w.cwnd {
                self.bytes_acked -= self.w.cwnd;
                self.w.cwnd = self.w.cwnd.saturating_add(self.w.mss);
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, bytes_in_flight: usize) {
        self.halve(bytes_in_flight);
        // RFC 6675 §5 step 4.2 / RFC 5681 without the +3 SMSS inflation: a connection
        // doing NewReno without SACK adds the inflation with `Rfc6582Recovery`.
        self.w.cwnd = self.w.ssthresh;
        self.w.in_recovery = true;
    }

    fn on_retransmission_timeout(&mut self, _now: Instant, bytes_in_flight: usize) {
        if !self.w.after_timeout {
            self.halve(bytes_in_flight);
        }
        self.bytes_acked = 0;
        self.w.loss_window();
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        if self.w.in_recovery {
            self.w.in_recovery = false;
            self.w.cwnd = self.w.ssthresh.max(self.w.mss);
        }
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        self.w.idle_restart();
    }

    fn set_mss(&mut self, mss: usize) {
        self.w.set_mss(mss);
    }

    fn in_recovery(&self) -> bool {
        self.w.in_recovery
    }

    fn resume_after_undo(&mut self, bytes_in_flight: usize, newly_acked: usize, at_least: usize) {
        self.w
            .resume_after_undo(bytes_in_flight, newly_acked, at_least);
    }
}

/// What an ACK means to fast recovery without SACK (RFC 6582).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAck {
    /// Not in fast recovery: nothing to do here.
    NotInRecovery,
    /// The ACK covered the recovery point: recovery is over; the connection calls
    /// [`CongestionControl::on_recovery_exit`].
    Full,
    /// RFC 6582 §3.2 step 5: retransmit the first unacknowledged segment, and restart the
    /// retransmission timer if this is the first partial ACK of the episode.
    Partial {
        /// This was the first partial ACK since recovery began.
        first: bool,
    },
}

/// The recovery-point bookkeeping of RFC 6582 (NewReno without SACK), kept apart from the
/// congestion controller because it is about sequence numbers, not window sizes; it also
/// carries the RFC 5681 window inflation (3 SMSS on entry, 1 per further duplicate ACK,
/// deflated by partial ACKs) so both CUBIC and NewReno can recover without SACK.
///
/// A SACK connection uses the scoreboard's pipe (RFC 6675) instead of the inflation, but
/// still uses `recover` to tell a new loss episode from the tail of the previous one.
#[derive(Debug, Clone)]
pub struct Rfc6582Recovery {
    /// One past the highest sequence number sent when recovery began (SND.NXT then):
    /// a full ACK is one at or beyond it.
    recover: SeqNumber,
    active: bool,
    partial_seen: bool,
    /// Bytes added to (or, after deflation, removed from) cwnd while in recovery.
    inflation: i64,
}

impl Rfc6582Recovery {
    /// RFC 6582 §3.2 step 1: `recover` starts at the initial send sequence number.
    pub fn new(iss: SeqNumber) -> Rfc6582Recovery {
        Rfc6582Recovery {
            recover: iss + 1,
            active: false,
            partial_seen: false,
            inflation: 0,
        }
    }

    /// Whether fast recovery is in progress.
    pub fn in_recovery(&self) -> bool {
        self.active
    }

    /// One past the highest sequence number outstanding when recovery (or the last
    /// timeout) began.
    pub fn recover(&self) -> SeqNumber {
        self.recover
    }

    /// RFC 6582 §3.2 step 2: on the third duplicate ACK, a new recovery episode starts
    /// only if the cumulative ACK covers more than `recover` (otherwise these duplicates
    /// are the echo of retransmissions from the previous episode or timeout).
    pub fn should_enter(&self, ack: SeqNumber) -> bool {
        !self.active && ack >= self.recover
    }

    /// Enter recovery: remember SND.NXT (`snd_nxt`, one past the highest byte sent) and
    /// inflate the window by the three segments the duplicate ACKs say have left.
    pub fn enter(&mut self, snd_nxt: SeqNumber, mss: usize) {
        self.recover = snd_nxt;
        self.active = true;
        self.partial_seen = false;
        self.inflation = 3 * mss as i64;
    }

    /// A further duplicate ACK during recovery: one more segment has left the network.
    pub fn on_dup_ack(&mut self, mss: usize) {
        if self.active {
            self.inflation = self.inflation.saturating_add(mss as i64);
        }
    }

    /// An ACK that advanced SND.UNA to `ack` by `newly_acked` bytes.
    pub fn on_ack(&mut self, ack: SeqNumber, newly_acked: usize, mss: usize) -> RecoveryAck {
        if !self.active {
            return RecoveryAck::NotInRecovery;
        }
        if ack >= self.recover {
            self.active = false;
            self.inflation = 0;
            return RecoveryAck::Full;
        }
        // Deflate by what was acknowledged, add back one segment if at least one left:
        // keeps about ssthresh bytes in flight as the holes are repaired one per RTT.
        let acked = i64::try_from(newly_acked).unwrap_or(i64::MAX);
        self.inflation = self.inflation.saturating_sub(acked);
        if newly_acked >= mss {
            self.inflation = self.inflation.saturating_add(mss as i64);
        }
        let first = !self.partial_seen;
        self.partial_seen = true;
        RecoveryAck::Partial { first }
    }

    /// The retransmission timer expired (RFC 6582 §3.2 step 4's companion in RFC 6582
    /// §4.1): recovery ends and `recover` moves to SND.NXT (`snd_nxt`), so that duplicate
    /// ACKs caused by the go-back-N retransmissions do not start a new episode.
    pub fn on_timeout(&mut self, snd_nxt: SeqNumber) {
        self.recover = snd_nxt;
        self.active = false;
        self.inflation = 0;
    }

    /// The window the sender may fill: cwnd plus the inflation during recovery, at least
    /// one segment.
    pub fn window(&self, cwnd: usize, mss: usize) -> usize {
        if !self.active {
            return cwnd;
        }
        let w = i64::try_from(cwnd)
            .unwrap_or(i64::MAX)
            .saturating_add(self.inflation);
        usize::try_from(w.max(mss as i64)).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;
    const T: Instant = Instant::ZERO;

    #[test]
    fn slow_start_grows_by_acked_bytes_at_most_two_segments() {
        let mut c = NewReno::new(MSS);
        assert_eq!(c.cwnd(), 10 * MSS);
        assert_eq!(c.ssthresh(), usize::MAX);
        c.on_ack(T, MSS, 10 * MSS, None);
        assert_eq!(c.cwnd(), 11 * MSS);
        c.on_ack(T, 300, 10 * MSS, None);
        assert_eq!(c.cwnd(), 11 * MSS + 300);
        // A stretch ACK of five segments grows by at most L = 2.
        c.on_ack(T, 5 * MSS, 11 * MSS, None);
        assert_eq!(c.cwnd(), 13 * MSS + 300);
        // Duplicate ACKs carry no growth.
        c.on_ack(T, 0, 11 * MSS, None);
        assert_eq!(c.cwnd(), 13 * MSS + 300);
    }

    #[test]
    fn one_round_trip_of_slow_start_doubles() {
        // The sender refills the window as each ACK opens it, so flight tracks cwnd.
        let mut c = NewReno::new(MSS);
        for _ in 0..10 {
            c.on_ack(T, MSS, c.cwnd(), None);
        }
        assert_eq!(c.cwnd(), 20 * MSS);
    }

    #[test]
    fn congestion_avoidance_adds_one_segment_per_window() {
        let mut c = NewReno::new(MSS);
        c.on_congestion_event(T, 20 * MSS);
        c.on_recovery_exit(T);
        assert_eq!(c.cwnd(), 10 * MSS);
        assert!(!c.in_slow_start());
        for _ in 0..9 {
            c.on_ack(T, MSS, 10 * MSS, None);
        }
        assert_eq!(c.cwnd(), 10 * MSS);
        c.on_ack(T, MSS, 10 * MSS, None);
        assert_eq!(c.cwnd(), 11 * MSS);
        // The surplus carries over: 11 more segments for the next increase.
        for _ in 0..10 {
            c.on_ack(T, MSS, 11 * MSS, None);
        }
        assert_eq!(c.cwnd(), 11 * MSS);
        c.on_ack(T, MSS, 11 * MSS, None);
        assert_eq!(c.cwnd(), 12 * MSS);
    }

    #[test]
    fn fast_recovery_halves_and_holds() {
        let mut c = NewReno::new(MSS);
        c.on_congestion_event(T, 30 * MSS);
        assert_eq!(c.ssthresh(), 15 * MSS);
        assert_eq!(c.cwnd(), 15 * MSS);
        assert!(c.in_recovery());
        c.on_ack(T, 5 * MSS, 30 * MSS, None);
        assert_eq!(c.cwnd(), 15 * MSS);
        c.on_recovery_exit(T);
        assert_eq!(c.cwnd(), 15 * MSS);
        // Tiny flight: the floor is two segments.
        c.on_congestion_event(T, MSS);
        assert_eq!(c.ssthresh(), 2 * MSS);
        assert_eq!(c.cwnd(), 2 * MSS);
    }

    #[test]
    fn timeout_collapses_to_one_segment_and_slow_starts() {
        let mut c = NewReno::new(MSS);
        c.on_retransmission_timeout(T, 40 * MSS);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 20 * MSS);
        // A second timeout of the same data keeps ssthresh (flight is now one segment).
        c.on_retransmission_timeout(T, MSS);
        assert_eq!(c.ssthresh(), 20 * MSS);
        c.on_ack(T, MSS, MSS, None);
        assert_eq!(c.cwnd(), 2 * MSS);
        // After new data was acknowledged, a timeout recomputes it.
        c.on_retransmission_timeout(T, 6 * MSS);
        assert_eq!(c.ssthresh(), 3 * MSS);
        assert_eq!(c.cwnd(), MSS);
        // Slow start stops at ssthresh, then byte counting.
        c.on_ack(T, MSS, MSS, None);
        c.on_ack(T, MSS, 2 * MSS, None);
        assert_eq!(c.cwnd(), 3 * MSS);
        assert!(!c.in_slow_start());
        c.on_ack(T, MSS, 3 * MSS, None);
        assert_eq!(c.cwnd(), 3 * MSS);
    }

    #[test]
    fn no_growth_when_not_using_the_window() {
        let mut c = NewReno::new(MSS);
        // Slow start: under half of cwnd in flight.
        c.on_ack(T, MSS, 4 * MSS, None);
        assert_eq!(c.cwnd(), 10 * MSS);
        c.on_ack(T, MSS, 5 * MSS, None);
        assert_eq!(c.cwnd(), 11 * MSS);
        // Congestion avoidance: needs the window (less two segments of slack) in use.
        c.on_congestion_event(T, 40 * MSS);
        c.on_recovery_exit(T);
        for _ in 0..100 {
            c.on_ack(T, MSS, 17 * MSS, None);
        }
        assert_eq!(c.cwnd(), 20 * MSS);
    }

    #[test]
    fn idle_restart_and_mss_change() {
        let mut c = NewReno::new(536);
        c.set_mss(MSS);
        assert_eq!(c.cwnd(), 10 * MSS);
        for _ in 0..20 {
            c.on_ack(T, MSS, c.cwnd(), None);
        }
        assert_eq!(c.cwnd(), 30 * MSS);
        c.on_idle_restart(T);
        assert_eq!(c.cwnd(), 10 * MSS);
        // Once data flowed, a new MSS only keeps cwnd at least one segment.
        c.set_mss(500);
        assert_eq!(c.cwnd(), 10 * MSS);
    }

    #[test]
    fn rfc6582_recovery_point() {
        let iss = SeqNumber(u32::MAX - 5000);
        let mut r = Rfc6582Recovery::new(iss);
        let una = iss + 1;
        assert!(r.should_enter(una));
        r.enter(una + 20 * MSS, MSS);
        assert!(r.in_recovery());
        assert!(!r.should_enter(una));
        assert_eq!(r.window(10 * MSS, MSS), 13 * MSS);
        r.on_dup_ack(MSS);
        r.on_dup_ack(MSS);
        assert_eq!(r.window(10 * MSS, MSS), 15 * MSS);
        // Partial ACK of 4 segments: deflate by 4, add back 1.
        assert_eq!(
            r.on_ack(una + 4 * MSS, 4 * MSS, MSS),
            RecoveryAck::Partial { first: true }
        );
        assert_eq!(r.window(10 * MSS, MSS), 12 * MSS);
        assert_eq!(
            r.on_ack(una + 4 * MSS + 100, 100, MSS),
            RecoveryAck::Partial { first: false }
        );
        assert_eq!(r.window(10 * MSS, MSS), 12 * MSS - 100);
        // Full ACK ends it; the window is plain cwnd again.
        assert_eq!(
            r.on_ack(una + 20 * MSS, 16 * MSS - 100, MSS),
            RecoveryAck::Full
        );
        assert!(!r.in_recovery());
        assert_eq!(r.window(10 * MSS, MSS), 10 * MSS);
        assert_eq!(
            r.on_ack(una + 21 * MSS, MSS, MSS),
            RecoveryAck::NotInRecovery
        );
        // Duplicate ACKs below the old recovery point do not start an episode after a
        // timeout.
        r.on_timeout(una + 40 * MSS);
        assert!(!r.should_enter(una + 30 * MSS));
        assert!(r.should_enter(una + 40 * MSS));
        // Deflation never takes the window below one segment.
        r.enter(una + 50 * MSS, MSS);
        r.on_ack(una + 49 * MSS, 9 * MSS, MSS);
        assert_eq!(r.window(2 * MSS, MSS), MSS);
    }
}
