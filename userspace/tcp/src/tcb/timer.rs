//! The connection's timers: one table keyed by what each is for (quinn-proto's
//! `TimerTable`), so that arming, stopping, the earliest deadline and "stop them all"
//! are one operation each instead of seven fields folded by hand; what arms them; and
//! what happens when they fire.

use core::fmt;
use core::time::Duration;

use super::{CloseReason, State, Tcb};
use crate::congestion::CongestionControl;
use crate::time::Instant;

/// What a timer is for. The order is the order [`TimerTable`]'s `Debug` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission (RFC 6298), including the SYN's.
    Rto,
    /// A delayed ACK is due.
    DelayedAck,
    /// A zero-window probe is due.
    Persist,
    /// Idle keepalive, or the next keepalive probe.
    Keepalive,
    /// TIME-WAIT ends.
    TimeWait,
    /// An orphaned connection gives up waiting in FIN-WAIT-2 for the peer's FIN.
    FinWait2,
    /// An active open that has not completed fails (`Config::connect_timeout`).
    Connect,
}

impl Timer {
    pub(crate) const ALL: [Timer; 7] = [
        Timer::Rto,
        Timer::DelayedAck,
        Timer::Persist,
        Timer::Keepalive,
        Timer::TimeWait,
        Timer::FinWait2,
        Timer::Connect,
    ];
}

/// Deadlines by [`Timer`]. Unarmed is [`Instant::MAX`], a moment no clock reaches, so
/// that the earliest deadline is a plain minimum over seven integers (the worker asks
/// for it after every segment).
#[derive(Clone, Copy)]
pub(crate) struct TimerTable {
    at: [Instant; 7],
}

impl Default for TimerTable {
    fn default() -> Self {
        TimerTable {
            at: [Instant::MAX; 7],
        }
    }
}

impl TimerTable {
    /// Arms `timer` for `at` (re-arming replaces the old deadline).
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = at;
    }

    /// Arms `timer` for `at` unless it is already due sooner.
    pub(crate) fn set_at_most(&mut self, timer: Timer, at: Instant) {
        let slot = &mut self.at[timer as usize];
        *slot = (*slot).min(at);
    }

    /// Arms `timer` for `at` if it is not armed.
    pub(crate) fn set_if_unarmed(&mut self, timer: Timer, at: Instant) {
        if !self.is_armed(timer) {
            self.set(timer, at);
        }
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = Instant::MAX;
    }

    pub(crate) fn stop_all(&mut self) {
        self.at = [Instant::MAX; 7];
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        let at = self.at[timer as usize];
        (at != Instant::MAX).then_some(at)
    }

    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.at[timer as usize] != Instant::MAX
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn expired(&self, timer: Timer, now: Instant) -> bool {
        let at = self.at[timer as usize];
        at != Instant::MAX && at <= now
    }

    /// The earliest deadline of any armed timer.
    pub(crate) fn next(&self) -> Option<Instant> {
        let mut min = Instant::MAX;
        for at in self.at {
            min = min.min(at);
        }
        (min != Instant::MAX).then_some(min)
    }
}

/// The armed timers, in absolute microseconds.
impl fmt::Debug for TimerTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for t in Timer::ALL {
            if let Some(at) = self.get(t) {
                m.entry(&t, &at.as_micros());
            }
        }
        m.finish()
    }
}

impl Tcb {
    /// A zero window with data waiting and nothing in flight: nothing would ever reopen
    /// it but a probe (RFC 9293 §3.8.6.1), so arm the persist timer.
    pub(super) fn arm_persist(&mut self, now: Instant) {
        if self.snd_wnd == 0
            && self.unsent() > 0
            && self.snd_una == self.snd_nxt
            && !self.timers.is_armed(Timer::Persist)
            && self.state.synchronized()
        {
            let backoff = 1u32 << self.persist_backoff.min(6);
            self.timers.set(
                Timer::Persist,
                now + self.rtt.rto().max(Duration::from_millis(200)) * backoff,
            );
        }
    }

    pub(super) fn arm_fin_wait_2(&mut self, now: Instant) {
        if self.orphaned && self.state == State::FinWait2 && !self.timers.is_armed(Timer::FinWait2)
        {
            self.timers
                .set(Timer::FinWait2, now + self.config.fin_wait_2_timeout);
        }
    }

    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.config.keepalive {
            if self.state.synchronized() {
                self.timers.set(Timer::Keepalive, now + ka.after);
            }
        }
    }

    /// The earliest moment [`Tcb::on_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the timers that are due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.timers.expired(Timer::Connect, now) {
            // From SYN-SENT silently, as Linux gives up a connect (the peer never
            // answered); from SYN-RECEIVED (a simultaneous open) the peer has our SYN
            // and gets a RST.
            self.reset(CloseReason::TimedOut);
            return;
        }
        if self.timers.expired(Timer::TimeWait, now) {
            self.enter_closed(CloseReason::Finished);
            return;
        }
        if self.timers.expired(Timer::FinWait2, now) {
            // An orphan whose peer never closed: reset it (Linux drops it silently;
            // the RST tells the peer).
            self.abort();
            return;
        }
        if self.timers.expired(Timer::DelayedAck, now) {
            self.timers.stop(Timer::DelayedAck);
            self.ack_now = true;
        }
        if self.timers.expired(Timer::Rto, now) {
            self.on_rto(now);
        }
        if self.timers.expired(Timer::Persist, now) {
            self.timers.stop(Timer::Persist);
            self.probe_now = true;
        }
        if let (Some(t), Some(ka)) = (self.timers.get(Timer::Keepalive), self.config.keepalive) {
            if t <= now {
                if self.keepalive_sent >= ka.probes {
                    self.enter_closed(CloseReason::TimedOut);
                    return;
                }
                if self.snd_una == self.snd_max {
                    self.keepalive_sent += 1;
                    self.probe_now = true;
                }
                self.timers.set(Timer::Keepalive, now + ka.interval);
            }
        }
    }

    pub(super) fn on_rto(&mut self, now: Instant) {
        self.retries += 1;
        let limit = match (self.state.synchronized(), self.orphaned) {
            (false, _) => self.config.syn_retries,
            (true, false) => self.config.data_retries,
            (true, true) => self.config.orphan_retries.min(self.config.data_retries),
        };
        if self.retries > limit {
            self.enter_closed(CloseReason::TimedOut);
            return;
        }
        self.rtt.on_timeout_backoff();
        self.stats.timeouts += 1;
        self.retransmitted = true;
        self.timed = None;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            self.syn_due = true;
        } else {
            self.cc
                .on_retransmission_timeout(now, self.snd_max - self.snd_una);
            self.sack_recovery = false;
            self.undo = None;
            // Go back to SND.UNA and resend from there as the window allows, skipping
            // what the peer has SACKed.
            self.snd_nxt = self.snd_una;
            if self.fin_sent && self.snd_una < self.snd_max {
                self.fin_sent = false;
            }
            self.dupacks = 0;
        }
        self.timers.set(Timer::Rto, now + self.rtt.rto());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Keepalive, Instant::from_millis(50));
        t.set(Timer::Rto, Instant::from_millis(20));
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        t.stop(Timer::Rto);
        assert_eq!(t.next(), Some(Instant::from_millis(50)));
        assert!(t.expired(Timer::Keepalive, Instant::from_millis(50)));
        assert!(!t.expired(Timer::Keepalive, Instant::from_millis(49)));
        assert!(!t.expired(Timer::Rto, Instant::from_millis(1_000)));
        t.stop_all();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn set_at_most_keeps_the_sooner_deadline() {
        let mut t = TimerTable::default();
        t.set_at_most(Timer::Rto, Instant::from_millis(30));
        t.set_at_most(Timer::Rto, Instant::from_millis(40));
        assert_eq!(t.get(Timer::Rto), Some(Instant::from_millis(30)));
        t.set_if_unarmed(Timer::Rto, Instant::from_millis(10));
        assert_eq!(t.get(Timer::Rto), Some(Instant::from_millis(30)));
    }
}
