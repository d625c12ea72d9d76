//! Congestion control: how much unacknowledged data the sender may have in flight.
//!
//! The connection owns loss detection and recovery (dupacks, SACK scoreboard, the
//! retransmission timer) and tells the controller what happened through
//! [`CongestionControl`]; the controller only answers "how big is cwnd / ssthresh".
//!
//! # Why an enum and not `Box<dyn CongestionControl>`
//! Every connection holds a [`Congestion`] inline: no allocation per connection, no
//! pointer chase on the per-ACK path, and the match on two variants is cheaper than an
//! indirect call and lets the compiler inline both algorithms. The trait still exists so
//! that each algorithm is written (and tested) against one contract, and so that a third
//! algorithm is added by implementing it and adding a variant.

use core::time::Duration;

use crate::time::Instant;

pub mod cubic;
pub mod newreno;

pub use cubic::Cubic;
pub use newreno::{NewReno, RecoveryAck, Rfc6582Recovery};

/// The initial congestion window of RFC 6928: min(10·MSS, max(2·MSS, 14600)) bytes.
pub fn initial_window(mss: usize) -> usize {
    let mss = mss.max(1);
    (10 * mss).min((2 * mss).max(14_600))
}

/// The operations a congestion controller must support. All sizes are in bytes.
pub trait CongestionControl {
    /// The congestion window: the most bytes that may be in flight outside recovery.
    fn cwnd(&self) -> usize;

    /// The slow-start threshold (`usize::MAX` until the first congestion event).
    fn ssthresh(&self) -> usize;

    /// Whether the controller is in slow start (cwnd below ssthresh).
    fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }

    /// An ACK advanced SND.UNA by `newly_acked` bytes. `prior_in_flight` is the number of
    /// bytes that were outstanding *before* this ACK (so an application- or
    /// receiver-window-limited sender, which keeps less than cwnd in flight, does not
    /// grow cwnd without bound: RFC 7661, and RFC 9438 §4.6's requirement). `rtt_sample`
    /// is this ACK's RTT measurement, if it gave one. Does not grow cwnd during fast
    /// recovery (the connection paces recovery with pipe or window inflation).
    fn on_ack(
        &mut self,
        now: Instant,
        newly_acked: usize,
        prior_in_flight: usize,
        rtt_sample: Option<Duration>,
    );

    /// Loss was detected by duplicate ACKs or SACK (or ECN-Echo): reduce ssthresh and
    /// cwnd once and enter fast recovery. The connection must call this once per
    /// recovery episode (RFC 6582's `recover` decides when a new episode starts).
    /// `bytes_in_flight` is FlightSize at the time (RFC 5681 eq. 4).
    fn on_congestion_event(&mut self, now: Instant, bytes_in_flight: usize);

    /// The retransmission timer expired: ssthresh is reduced (only for the first timeout
    /// in a row: RFC 5681 §3.1 keeps it for repeated timeouts of the same data) and cwnd
    /// becomes the loss window, one segment. Leaves fast recovery if it was in it.
    fn on_retransmission_timeout(&mut self, now: Instant, bytes_in_flight: usize);

    /// Fast recovery ended (a full ACK covered the recovery point): cwnd is ssthresh
    /// (RFC 6582 §3.2 step 3, option 2) and congestion avoidance resumes.
    fn on_recovery_exit(&mut self, now: Instant);

    /// The connection was idle for more than an RTO: cwnd is cut to at most the initial
    /// window (RFC 5681 §4.1), so that a burst after the pause does not hit a path whose
    /// state has changed.
    fn on_idle_restart(&mut self, now: Instant);

    /// The sender's maximum segment size changed (it is known after the handshake). If no
    /// ACK has been processed yet, cwnd is re-initialised to the initial window for it.
    fn set_mss(&mut self, mss: usize);

    /// Whether the controller is in fast recovery.
    fn in_recovery(&self) -> bool;

    /// This controller is the one from before a fast recovery that proved spurious, put
    /// back by the connection. Its window comes back through slow start rather than at
    /// once (RFC 4015 §3.2: a whole window at line rate, with no pacing, would follow the
    /// ACK): ssthresh becomes the window from before, cwnd what is in flight plus at most
    /// an initial window of what this ACK covered, but never less than `at_least` (the
    /// window the connection had when it found out).
    fn resume_after_undo(&mut self, bytes_in_flight: usize, newly_acked: usize, at_least: usize);
}

/// Which algorithm a connection uses (a configuration value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681 / RFC 6582 NewReno with RFC 3465 byte counting.
    NewReno,
    /// RFC 9438 CUBIC (Linux's default).
    #[default]
    Cubic,
}

/// A congestion controller, dispatched by `match` (see the module docs).
#[derive(Debug, Clone)]
pub enum Congestion {
    /// See [`NewReno`].
    NewReno(NewReno),
    /// See [`Cubic`].
    Cubic(Cubic),
}

impl Congestion {
    /// A controller of the given kind, starting with the initial window for `mss`.
    pub fn new(algorithm: Algorithm, mss: usize) -> Congestion {
        match algorithm {
            Algorithm::NewReno => Congestion::NewReno(NewReno::new(mss)),
            Algorithm::Cubic => Congestion::Cubic(Cubic::new(mss)),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Congestion::NewReno(_) => Algorithm::NewReno,
            Congestion::Cubic(_) => Algorithm::Cubic,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            Congestion::NewReno($c) => $e,
            Congestion::Cubic($c) => $e,
        }
    };
}

impl CongestionControl for Congestion {
    #[inline]
    fn cwnd(&self) -> usize {
        dispatch!(self, c => c.cwnd())
    }
    #[inline]
    fn ssthresh(&self) -> usize {
        dispatch!(self, c => c.ssthresh())
    }
    #[inline]
    fn on_ack(&mut self, now: Instant, acked: usize, prior: usize, rtt: Option<Duration>) {
        dispatch!(self, c => c.on_ack(now, acked, prior, rtt))
    }
    #[inline]
    fn on_congestion_event(&mut self, now: Instant, bytes_in_flight: usize) {
        dispatch!(self, c => c.on_congestion_event(now, bytes_in_flight))
    }
    #[inline]
    fn on_retransmission_timeout(&mut self, now: Instant, bytes_in_flight: usize) {
        dispatch!(self, c => c.on_retransmission_timeout(now, bytes_in_flight))
    }
    #[inline]
    fn on_recovery_exit(&mut self, now: Instant) {
        dispatch!(self, c => c.on_recovery_exit(now))
    }
    #[inline]
    fn on_idle_restart(&mut self, now: Instant) {
        dispatch!(self, c => c.on_idle_restart(now))
    }
    #[inline]
    fn set_mss(&mut self, mss: usize) {
        dispatch!(self, c => c.set_mss(mss))
    }
    #[inline]
    fn in_recovery(&self) -> bool {
        dispatch!(self, c => c.in_recovery())
    }
    #[inline]
    fn resume_after_undo(&mut self, bytes_in_flight: usize, newly_acked: usize, at_least: usize) {
        dispatch!(self, c => c.resume_after_undo(bytes_in_flight, newly_acked, at_least))
    }
}

/// State and rules shared by both algorithms: RFC 5681 slow start with RFC 3465
/// appropriate byte counting, the loss window, and the bookkeeping around recovery.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) mss: usize,
    pub(crate) cwnd: usize,
    pub(crate) ssthresh: usize,
    pub(crate) in_recovery: bool,
    /// A timeout reduced ssthresh and no new data has been acknowledged since: a further
    /// timeout must not reduce it again (RFC 5681 §3.1, eq. 4's note).
    pub(crate) after_timeout: bool,
    /// No ACK has been processed yet (so a new MSS re-initialises cwnd).
    pub(crate) pristine: bool,
}

/// RFC 3465's L: at most two segments of growth per ACK in slow start, which limits the
/// burst a stretch ACK (or an ACK after a lost run of ACKs) can trigger.
const ABC_LIMIT_SEGMENTS: usize = 2;

impl Window {
    pub(crate) fn new(mss: usize) -> Window {
        let mss = mss.max(1);
        Window {
            mss,
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            in_recovery: false,
            after_timeout: false,
            pristine: true,
        }
    }

    /// Common start of ACK processing; false if cwnd must not grow on this ACK.
    pub(crate) fn ack_may_grow(&mut self, newly_acked: usize, prior_in_flight: usize) -> bool {
        if newly_acked == 0 {
            return false;
        }
        self.pristine = false;
        self.after_timeout = false;
        if self.in_recovery {
            return false;
        }
        self.cwnd_limited(prior_in_flight)
    }

    /// Whether the sender was using its window. In slow start, more than half of it
    /// (Linux's rule: slow start doubles per RTT, so half-full is still growth-limited);
    /// in congestion avoidance, all of it but for the sub-segment remainder a sender
    /// avoiding silly windows leaves unused (plus one segment of slack for a final short
    /// segment).
    fn cwnd_limited(&self, prior_in_flight: usize) -> bool {
        if self.cwnd < self.ssthresh {
            prior_in_flight.saturating_mul(2) >= self.cwnd
        } else {
            prior_in_flight.saturating_add(2 * self.mss) >= self.cwnd
        }
    }

    /// RFC 5681 §3.1 slow start, RFC 3465 §2.2 byte counting with L = 2.
    pub(crate) fn slow_start(&mut self, newly_acked: usize) {
        let inc = newly_acked.min(ABC_LIMIT_SEGMENTS * self.mss);
        self.cwnd = self.cwnd.saturating_add(inc);
    }

    pub(crate) fn loss_window(&mut self) {
        self.cwnd = self.mss;
        self.in_recovery = false;
        self.after_timeout = true;
    }

    pub(crate) fn resume_after_undo(
        &mut self,
        bytes_in_flight: usize,
        newly_acked: usize,
        at_least: usize,
    ) {
        let before = self.cwnd;
        self.ssthresh = before.max(2 * self.mss);
        let resumed = bytes_in_flight.saturating_add(newly_acked.min(initial_window(self.mss)));
        self.cwnd = before.min(resumed).max(at_least).max(self.mss);
    }

    pub(crate) fn idle_restart(&mut self) {
        self.cwnd = self.cwnd.min(initial_window(self.mss));
    }

    pub(crate) fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        if self.pristine {
            self.cwnd = initial_window(self.mss);
        }
        self.cwnd = self.cwnd.max(self.mss);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6928_initial_window() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(1448), 14_480);
        assert_eq!(initial_window(536), 5_360);
        assert_eq!(initial_window(9000), 18_000);
        assert_eq!(initial_window(0), 10);
    }

    #[test]
    fn dispatch_reaches_each_algorithm() {
        for algo in [Algorithm::NewReno, Algorithm::Cubic] {
            let mut c = Congestion::new(algo, 1000);
            assert_eq!(c.algorithm(), algo);
            assert_eq!(c.cwnd(), 10_000);
            assert!(c.in_slow_start());
            c.set_mss(1460);
            assert_eq!(c.cwnd(), 14_600);
            c.on_ack(Instant::ZERO, 1460, 14_600, None);
            assert_eq!(c.cwnd(), 16_060);
            c.on_congestion_event(Instant::ZERO, 20_000);
            assert!(c.in_recovery());
            let expect = match algo {
                Algorithm::NewReno => 10_000,
                Algorithm::Cubic => 14_000,
            };
            assert_eq!(c.ssthresh(), expect);
            assert_eq!(c.cwnd(), expect);
            c.on_recovery_exit(Instant::ZERO);
            assert!(!c.in_recovery());
            c.on_retransmission_timeout(Instant::ZERO, 20_000);
            assert_eq!(c.cwnd(), 1460);
            c.on_idle_restart(Instant::ZERO);
            assert_eq!(c.cwnd(), 1460);
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Ev {
        Ack {
            dt_us: u32,
            acked: u32,
            prior: u32,
            rtt_us: Option<u32>,
        },
        Congestion(u32),
        Timeout(u32),
        RecoveryExit,
        Idle,
        Mss(u16),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            10 => (any::<u32>(), any::<u32>(), any::<u32>(), proptest::option::of(any::<u32>()))
                .prop_map(|(dt_us, acked, prior, rtt_us)| Ev::Ack { dt_us, acked, prior, rtt_us }),
            1 => any::<u32>().prop_map(Ev::Congestion),
            1 => any::<u32>().prop_map(Ev::Timeout),
            1 => Just(Ev::RecoveryExit),
            1 => Just(Ev::Idle),
            1 => any::<u16>().prop_map(Ev::Mss),
        ]
    }

    proptest! {
        /// Whatever a peer (through the connection) makes happen: no panic, cwnd at least
        /// one segment, ssthresh at least two once set, and the reductions reduce.
        #[test]
        fn invariants_hold_under_any_event_sequence(
            cubic in any::<bool>(),
            mss0 in 1usize..9000,
            evs in proptest::collection::vec(ev(), 1..300),
        ) {
            let algo = if cubic { Algorithm::Cubic } else { Algorithm::NewReno };
            let mut c = Congestion::new(algo, mss0);
            let mut mss = mss0;
            let mut now = Instant::from_secs(1);
            let mut repeated_timeout = false;
            for e in evs {
                match e {
                    Ev::Ack { dt_us, acked, prior, rtt_us } => {
                        now += core::time::Duration::from_micros(u64::from(dt_us));
                        let rtt = rtt_us.map(|r| core::time::Duration::from_micros(u64::from(r)));
                        let before = c.cwnd();
                        let in_rec = c.in_recovery();
                        c.on_ack(now, acked as usize, prior as usize, rtt);
                        repeated_timeout &= acked == 0;
                        if in_rec || acked == 0 {
                            prop_assert_eq!(c.cwnd(), before);
                        } else {
                            prop_assert!(c.cwnd() >= before);
                        }
                    }
                    Ev::Congestion(f) => {
                        c.on_congestion_event(now, f as usize);
                        prop_assert!(c.in_recovery());
                        prop_assert_eq!(c.cwnd(), c.ssthresh());
                        prop_assert!(c.ssthresh() >= 2 * mss);
                        prop_assert!(c.ssthresh() <= (f as usize).max(2 * mss));
                    }
                    Ev::Timeout(f) => {
                        let before = c.ssthresh();
                        c.on_retransmission_timeout(now, f as usize);
                        prop_assert_eq!(c.cwnd(), mss);
                        prop_assert!(!c.in_recovery());
                        if repeated_timeout {
                            // RFC 5681 §3.1: the same data timing out again keeps ssthresh.
                            prop_assert_eq!(c.ssthresh(), before);
                        } else {
                            prop_assert!(c.ssthresh() >= 2 * mss);
                            prop_assert!(c.ssthresh() <= (f as usize).max(2 * mss));
                        }
                        repeated_timeout = true;
                    }
                    Ev::RecoveryExit => c.on_recovery_exit(now),
                    Ev::Idle => {
                        let before = c.cwnd();
                        c.on_idle_restart(now);
                        prop_assert!(c.cwnd() <= before.max(mss));
                    }
                    Ev::Mss(m) => {
                        mss = usize::from(m).max(1);
                        c.set_mss(mss);
                    }
                }
                prop_assert!(c.cwnd() >= mss);
            }
        }
    }
}
