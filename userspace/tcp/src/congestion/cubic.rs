//! CUBIC (RFC 9438).
//!
//! The window curve is computed in floating point, in segments and seconds as the RFC
//! writes it: it runs once per ACK in congestion avoidance, where a few multiplications
//! cost nothing next to the segment itself, and it keeps the code checkable against the
//! RFC's figures. Slow start is RFC 5681's with byte counting (RFC 9438 §4.10 allows it
//! where HyStart++ is not used; HyStart++ is not implemented). Spurious-loss undo
//! (§4.9): the connection puts back the controller from before a fast recovery that
//! timestamps prove spurious (RFC 3522, in `tcb`), and the window returns through slow
//! start ([`CongestionControl::resume_after_undo`]).

use core::time::Duration;

use super::{CongestionControl, Window};
use crate::time::Instant;

/// RFC 9438 §5: C = 0.4, in segments / s³.
pub const C: f64 = 0.4;
/// RFC 9438 §4.6: the multiplicative decrease factor.
pub const BETA: f64 = 0.7;
/// RFC 9438 §4.3: the Reno-friendly additive increase, 3(1-β)/(1+β).
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9438 Figure 2: the time (s) the curve takes from `cwnd_epoch` to `w_max`
/// (segments). Zero if the epoch starts at or above `w_max`.
pub fn k(w_max: f64, cwnd_epoch: f64) -> f64 {
    ((w_max - cwnd_epoch).max(0.0) / C).cbrt()
}

/// RFC 9438 Figure 1: the window (segments) `t` seconds into the epoch.
pub fn w_cubic(t: f64, k: f64, w_max: f64) -> f64 {
    let d = t - k;
    C * d * d * d + w_max
}

/// The CUBIC controller.
#[derive(Debug, Clone)]
pub struct Cubic {
    w: Window,
    /// W_max: the window (segments) just before the last reduction, after fast
    /// convergence; 0 before any congestion event.
    w_max: f64,
    /// cwnd_prior (segments) at the last reduction, for the Reno-friendly α switch.
    cwnd_prior: f32,
    /// Start of the current congestion-avoidance epoch, if `epoch_started`.
    t_epoch: Instant,
    cwnd_epoch: f64,
    k: f64,
    /// W_est (segments), the Reno-friendly estimate.
    w_est: f64,
    /// A timeout preceded this epoch: RFC 9438 §4.8 sets K = 0 and W_max = cwnd_epoch.
    epoch_after_timeout: bool,
    /// Smoothed RTT from the samples passed to `on_ack` (µs), for W(t + RTT).
    /// 0 until the first sample (an RTT of 0 would mean the same: look no time ahead).
    srtt_us: u32,
    /// Fractional bytes of growth not yet added to cwnd.
    carry: f32,
    /// The first ACK of the current epoch has been seen (`t_epoch` is valid).
    epoch_started: bool,
}

impl Cubic {
    /// A controller starting at the RFC 6928 initial window for `mss`.
    pub fn new(mss: usize) -> Cubic {
        Cubic {
            w: Window::new(mss),
            w_max: 0.0,
            cwnd_prior: 0.0,
            t_epoch: Instant::ZERO,
            cwnd_epoch: 0.0,
            k: 0.0,
            w_est: 0.0,
            epoch_after_timeout: false,
            srtt_us: 0,
            carry: 0.0,
            epoch_started: false,
        }
    }

    /// W_max in segments (0 before the first congestion event).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// K of the current epoch, in seconds (0 if no epoch has started).
    pub fn k(&self) -> f64 {
        self.k
    }

    fn segments(&self, bytes: usize) -> f64 {
        bytes as f64 / self.w.mss as f64
    }

    /// RFC 9438 §4.6 and §4.7: W_max with fast convergence and cwnd_prior.
    fn remember_max(&mut self) {
        let cwnd = self.segments(self.w.cwnd);
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd as f32;
        self.epoch_started = false;
    }

    fn reduced_ssthresh(&self, bytes_in_flight: usize) -> usize {
        // RFC 9438 Figure 5 with flight_size (the normative choice; growth is already
        // limited to a window in use, so cwnd would also be allowed).
        ((bytes_in_flight as f64 * BETA) as usize).max(2 * self.w.mss)
    }

    fn start_epoch(&mut self, now: Instant) {
        let cwnd = self.segments(self.w.cwnd);
        self.t_epoch = now;
        self.epoch_started = true;
        self.cwnd_epoch = cwnd;
        self.w_est = cwnd;
        if self.epoch_after_timeout || self.w_max < cwnd {
            // §4.8 after a timeout; likewise when slow start overshot the old maximum (or
            // there was none): the curve starts at its plateau and probes upward.
            self.w_max = cwnd;
        }
        self.epoch_after_timeout = false;
        self.k = k(self.w_max, self.cwnd_epoch);
        self.carry = 0.0;
    }

    fn congestion_avoidance(&mut self, now: Instant, acked: usize) {
        if !self.epoch_started {
            self.start_epoch(now);
        }
        let t = (now - self.t_epoch).as_secs_f64();
        let rtt = f64::from(self.srtt_us) / 1e6;
        let cwnd = self.segments(self.w.cwnd);
        let acked_segs = self.segments(acked);

        // §4.3: W_est grows like Reno with α_cubic, then with α = 1 once past cwnd_prior.
        let alpha = if self.w_est >= f64::from(self.cwnd_prior) {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked_segs / cwnd;

        let new_cwnd = if w_cubic(t, self.k, self.w_max) < self.w_est {
            // Reno-friendly region.
            self.w_est.max(cwnd)
        } else {
            // §4.4/§4.5: concave and convex regions, target clamped to [cwnd, 1.5 cwnd];
            // the per-ACK step (target - cwnd)/cwnd scales with the segments acked.
            let target = w_cubic(t + rtt, self.k, self.w_max).clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) / cwnd * acked_segs
        };
        let grow = (new_cwnd - cwnd) * self.w.mss as f64 + f64::from(self.carry);
        if grow >= 1.0 {
            let whole = grow.floor();
            self.carry = (grow - whole) as f32;
            self.w.cwnd = self.w.cwnd.saturating_add(whole as usize);
        } else {
            self.carry = grow.max(0.0) as f32;
        }
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> usize {
        self.w.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.w.ssthresh
    }

    fn on_ack(&mut self, now: Instant, acked: usize, prior: usize, rtt: Option<Duration>) {
        if let Some(r) = rtt {
            let r = u32::try_from(r.as_micros()).unwrap_or(u32::MAX);
            self.srtt_us = match self.srtt_us {
                0 => r,
                s => s - s / 8 + r / 8,
            };
        }
        if !self.w.ack_may_grow(acked, prior) {
            return;
        }
        if self.w.cwnd < self.w.ssthresh {
            self.w.slow_start(acked);
        } else {
            self.congestion_avoidance(now, acked);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, bytes_in_flight: usize) {
        self.remember_max();
        self.w.ssthresh = self.reduced_ssthresh(bytes_in_flight);
        self.w.cwnd = self.w.ssthresh;
        self.w.in_recovery = true;
    }

    fn on_retransmission_timeout(&mut self, _now: Instant, bytes_in_flight: usize) {
        if !self.w.after_timeout {
            // §4.8: Reno's loss window, but ssthresh with β_cubic.
            self.remember_max();
            self.w.ssthresh = self.reduced_ssthresh(bytes_in_flight);
        }
        self.epoch_after_timeout = true;
        self.epoch_started = false;
        self.w.loss_window();
    }

    fn on_recovery_exit(&mut self, _now: Instant) {
        if self.w.in_recovery {
            self.w.in_recovery = false;
            self.w.cwnd = self.w.ssthresh.max(self.w.mss);
            self.epoch_started = false;
        }
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        self.w.idle_restart();
        // The curve's clock must not run while nothing was sent (Linux shifts the epoch by
        // the idle time; restarting it from the current window is the sans-IO equivalent).
        self.epoch_started = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn close(a: f64, b: f64, eps: f64) -> bool {
        (a - b).abs() <= eps
    }

    #[test]
    fn curve_against_hand_computed_values() {
        // K = cbrt((100 - 70) / 0.4) = cbrt(75) = 4.217163...
        let kk = k(100.0, 70.0);
        assert!(close(kk, 4.217_163_326, 1e-6), "{kk}");
        assert!(close(w_cubic(0.0, kk, 100.0), 70.0, 1e-9));
        assert!(close(w_cubic(kk, kk, 100.0), 100.0, 1e-12));
        // 0.4 * (2 - 4.217163)^3 + 100 = 100 - 0.4 * 10.89925 = 95.6403
        assert!(close(w_cubic(2.0, kk, 100.0), 95.640_3, 1e-3));
        // Convex side: 0.4 * (6 - 4.217163)^3 + 100 = 102.2667
        assert!(close(w_cubic(6.0, kk, 100.0), 102.266_7, 1e-3));
        assert_eq!(k(50.0, 60.0), 0.0);
        assert!(close(ALPHA, 0.529_411_76, 1e-6));
    }

    /// Acknowledge one window per RTT, one segment per ACK, evenly spread.
    fn run_rtts(c: &mut Cubic, now: &mut Instant, rtt: Duration, rtts: usize) {
        for _ in 0..rtts {
            let segs = c.cwnd() / MSS;
            let step = rtt / segs as u32;
            for _ in 0..segs {
                *now += step;
                let flight = c.cwnd();
                c.on_ack(*now, MSS, flight, Some(rtt));
            }
        }
    }

    #[test]
    fn reduction_is_beta_and_the_curve_returns_to_w_max_after_k() {
        let mut c = Cubic::new(MSS);
        let mut now = Instant::from_secs(1);
        // Grow to 100 segments in slow start, then a loss with the window full.
        while c.cwnd() < 100 * MSS {
            let f = c.cwnd();
            c.on_ack(now, MSS, f, Some(Duration::from_millis(100)));
        }
        assert_eq!(c.cwnd(), 100 * MSS);
        c.on_congestion_event(now, 100 * MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        assert_eq!(c.cwnd(), 70 * MSS);
        assert!(close(c.w_max(), 100.0, 1e-9));
        c.on_recovery_exit(now);
        // K = cbrt(30/0.4) = 4.217 s, i.e. ~42 RTTs of 100 ms.
        let rtt = Duration::from_millis(100);
        run_rtts(&mut c, &mut now, rtt, 1);
        assert!(close(c.k(), 4.217_163, 1e-5), "{}", c.k());
        run_rtts(&mut c, &mut now, rtt, 40);
        let w = c.cwnd() as f64 / MSS as f64;
        // Concave approach: close to but not past W_max (the target looks one RTT ahead).
        assert!(w > 97.0 && w < 100.6, "{w}");
        // Then the plateau and the convex probe beyond W_max.
        run_rtts(&mut c, &mut now, rtt, 30);
        let w = c.cwnd() as f64 / MSS as f64;
        assert!(w > 105.0, "{w}");
    }

    #[test]
    fn reno_friendly_region_on_short_rtts() {
        let mut c = Cubic::new(MSS);
        let mut now = Instant::ZERO;
        c.on_congestion_event(now, 10 * MSS);
        c.on_recovery_exit(now);
        assert_eq!(c.cwnd(), 7 * MSS);
        // 1 ms RTT: the cubic curve barely moves in 20 ms (K = cbrt(3/0.4) ≈ 1.96 s), so
        // cwnd follows W_est: +0.53 segments per RTT up to cwnd_prior = 10, then +1.
        let rtt = Duration::from_millis(1);
        run_rtts(&mut c, &mut now, rtt, 20);
        let w = c.cwnd() as f64 / MSS as f64;
        assert!(w > 20.0 && w < 26.0, "{w}");
        // The cubic curve alone would still be near 7 segments.
        assert!(w_cubic(0.02, k(10.0, 7.0), 10.0) < 7.1);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut c = Cubic::new(MSS);
        let now = Instant::ZERO;
        for _ in 0..90 {
            let f = c.cwnd();
            c.on_ack(now, MSS, f, None);
        }
        assert_eq!(c.cwnd(), 100 * MSS);
        c.on_congestion_event(now, 100 * MSS);
        c.on_recovery_exit(now);
        assert!(close(c.w_max(), 100.0, 1e-9));
        // A second loss below the previous maximum: W_max = 70 * (1 + 0.7) / 2 = 59.5.
        c.on_congestion_event(now, 70 * MSS);
        assert!(close(c.w_max(), 59.5, 1e-9));
        assert_eq!(c.cwnd(), 49 * MSS);
    }

    #[test]
    fn timeout_uses_beta_then_restarts_the_curve_at_its_plateau() {
        let mut c = Cubic::new(MSS);
        let mut now = Instant::ZERO;
        c.on_retransmission_timeout(now, 40 * MSS);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 28 * MSS);
        c.on_retransmission_timeout(now, MSS);
        assert_eq!(c.ssthresh(), 28 * MSS);
        while c.cwnd() < c.ssthresh() {
            let f = c.cwnd();
            c.on_ack(now, MSS, f, None);
        }
        assert_eq!(c.cwnd(), 28 * MSS);
        run_rtts(&mut c, &mut now, Duration::from_millis(50), 1);
        // §4.8: K = 0 and W_max = cwnd at the start of congestion avoidance.
        assert_eq!(c.k(), 0.0);
        assert!(close(c.w_max(), 28.0, 1e-9));
        assert!(c.cwnd() >= 28 * MSS);
    }

    #[test]
    fn no_growth_in_recovery_or_when_application_limited() {
        let mut c = Cubic::new(MSS);
        let now = Instant::ZERO;
        c.on_congestion_event(now, 20 * MSS);
        let w = c.cwnd();
        c.on_ack(now, 5 * MSS, 20 * MSS, None);
        assert_eq!(c.cwnd(), w);
        c.on_recovery_exit(now);
        let mut now = now;
        for _ in 0..1000 {
            now += Duration::from_millis(10);
            c.on_ack(now, MSS, 3 * MSS, Some(Duration::from_millis(10)));
        }
        assert_eq!(c.cwnd(), w);
    }
}
