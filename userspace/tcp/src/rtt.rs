//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Integer microseconds throughout: samples arrive on every ACK (and, with timestamps,
//! several per window), so the estimator must be cheap and exactly reproducible in tests.
//! Which samples to take is the caller's business: Karn's algorithm (RFC 6298 §3: no
//! sample from a retransmitted segment unless timestamps disambiguate it) and RFC 7323 §4
//! (TSecr of an acceptable ACK, not of a duplicate) are applied where the ACK is parsed.

use core::time::Duration;

/// RFC 6298 §2's clock granularity G. The stack's timers fire on a millisecond wheel, so an
/// RTO closer than 1 ms to SRTT could not be honoured anyway.
const GRANULARITY_US: u64 = 1_000;

/// The most doublings of the RTO kept track of; past this the RTO is pinned at its maximum
/// anyway (1 s << 16 is 18 hours) and the count only has to not overflow.
const MAX_BACKOFF: u8 = 16;

/// RFC 6298 §5.7: the RTO used once data flows if the SYN or SYN-ACK had to be retransmitted
/// and no RTT sample exists.
const SYN_FALLBACK_RTO_US: u32 = 3_000_000;

/// Smoothed RTT, RTT variance and the retransmission timeout of one connection.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    // All in µs, as u32 to keep the per-connection state small: 2^32 µs is 71 minutes,
    // far above any RTO, and every stored value is clamped to `max_rto_us`.
    /// Smoothed RTT; `None` until the first sample (RFC 6298 §2.1).
    srtt_us: Option<u32>,
    rttvar_us: u32,
    /// The RTO before backoff, recomputed on each sample.
    base_rto_us: u32,
    min_rto_us: u32,
    max_rto_us: u32,
    backoff: u8,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl RttEstimator {
    /// A new estimator with no samples: the RTO is `initial_rto` (RFC 6298 §2.1 says 1 s),
    /// and every computed RTO is clamped to `[min_rto, max_rto]` (RFC 6298 §2.4 says at
    /// least 1 s; Linux uses 200 ms, which suits data-centre paths; §2.5 allows a maximum,
    /// which must be at least 60 s).
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        let min_rto_us = micros(min_rto);
        let max_rto_us = micros(max_rto).max(min_rto_us);
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            base_rto_us: micros(initial_rto).clamp(min_rto_us, max_rto_us),
            min_rto_us,
            max_rto_us,
            backoff: 0,
        }
    }

    /// Take one RTT measurement (RFC 6298 §2.2 for the first, §2.3 after).
    pub fn on_sample(&mut self, rtt: Duration) {
        self.sample(u64::from(micros(rtt)), 1);
    }

    /// Take one of several RTT measurements made within one window, as timestamps allow
    /// (RFC 7323 Appendix G): the gains are divided by `expected_samples` =
    /// ceil(FlightSize / (2·SMSS)), so that taking a sample on every ACK does not shorten
    /// the estimator's memory to a fraction of an RTT. `expected_samples` of 0 or 1 is the
    /// plain RFC 6298 update.
    pub fn on_sample_scaled(&mut self, rtt: Duration, expected_samples: u32) {
        self.sample(u64::from(micros(rtt)), u64::from(expected_samples.max(1)));
    }

    fn sample(&mut self, r: u64, n: u64) {
        // A sample larger than any RTO we would ever use carries no information and could
        // overflow the arithmetic below.
        let max = u64::from(self.max_rto_us);
        let r = r.min(max);
        match self.srtt_us.map(u64::from) {
            None => {
                self.srtt_us = Some(r as u32);
                self.rttvar_us = (r / 2) as u32;
            }
            Some(srtt) => {
                // RTTVAR <- (1 - beta) RTTVAR + beta |SRTT - R'|, beta = 1/4 (scaled by 1/n)
                // SRTT <- (1 - alpha) SRTT + alpha R', alpha = 1/8 (scaled by 1/n)
                // computed in i128 so the signed differences cannot overflow.
                let err = (srtt as i128 - r as i128).unsigned_abs() as i128;
                let var = self.rttvar_us as i128;
                let var = var + (err - var) / (4 * n as i128);
                let s = srtt as i128 - (srtt as i128 - r as i128) / (8 * n as i128);
                // Both stay within [0, max]: they move toward samples clamped to it.
                self.rttvar_us = var.clamp(0, i128::from(max)) as u32;
                self.srtt_us = Some(s.clamp(0, i128::from(max)) as u32);
            }
        }
        let srtt = self.srtt_us.map_or(r, u64::from);
        // RTO <- SRTT + max(G, K*RTTVAR), K = 4 (RFC 6298 §2.3), then §2.4/§2.5 bounds.
        let rto = srtt + GRANULARITY_US.max(u64::from(self.rttvar_us) * 4);
        self.base_rto_us = rto.clamp(u64::from(self.min_rto_us), max) as u32;
    }

    /// The current retransmission timeout, including exponential backoff, at most the
    /// configured maximum.
    pub fn rto(&self) -> Duration {
        // base < 2^32 and backoff <= 16, so the shift cannot overflow a u64.
        let rto = u64::from(self.base_rto_us) << self.backoff;
        Duration::from_micros(rto.min(u64::from(self.max_rto_us)))
    }

    /// The retransmission timer expired: double the RTO (RFC 6298 §5.5).
    pub fn on_timeout_backoff(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// New data was acknowledged: stop backing off (RFC 6298 §5.7 keeps the backed-off RTO
    /// only until then; the next sample recomputes it).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// How many times the RTO has been doubled since the last [`reset_backoff`].
    ///
    /// [`reset_backoff`]: Self::reset_backoff
    pub fn backoff(&self) -> u32 {
        u32::from(self.backoff)
    }

    /// RFC 6298 §5.7: the SYN (or SYN-ACK) was retransmitted and no sample was taken, so
    /// once the connection is established the RTO starts from 3 s rather than the initial
    /// value (a path that lost the handshake may be slower than the guess). Backoff is
    /// cleared. Does nothing if a sample exists or the initial RTO was already 3 s or more.
    pub fn on_handshake_retransmitted(&mut self) {
        if self.srtt_us.is_none() {
            self.base_rto_us = self
                .base_rto_us
                .max(SYN_FALLBACK_RTO_US)
                .clamp(self.min_rto_us, self.max_rto_us);
        }
        self.backoff = 0;
    }

    /// The smoothed RTT, once at least one sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(|v| Duration::from_micros(u64::from(v)))
    }

    /// The RTT variance estimate (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(u64::from(self.rttvar_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn linux_like() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(200), ms(60_000))
    }

    #[test]
    fn initial_rto_and_backoff() {
        let mut e = linux_like();
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), Duration::ZERO);
        assert_eq!(e.rto(), ms(1000));
        let expect = [2000, 4000, 8000, 16000, 32000, 60000, 60000];
        for want in expect {
            e.on_timeout_backoff();
            assert_eq!(e.rto(), ms(want));
        }
        for _ in 0..100 {
            e.on_timeout_backoff();
        }
        assert_eq!(e.backoff(), u32::from(MAX_BACKOFF));
        assert_eq!(e.rto(), ms(60_000));
        e.reset_backoff();
        assert_eq!(e.rto(), ms(1000));
    }

    #[test]
    fn rfc6298_first_and_subsequent_samples() {
        // Without the 200 ms floor to see the raw formula.
        let mut e = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        e.on_sample(ms(100));
        // SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR.
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        assert_eq!(e.rto(), ms(300));
        e.on_sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 250_000));
        // A steady RTT converges: RTTVAR decays, RTO approaches SRTT + G.
        for _ in 0..200 {
            e.on_sample(ms(100));
        }
        let srtt = e.srtt().unwrap();
        assert!(
            srtt >= ms(100) && srtt < Duration::from_micros(100_010),
            "{srtt:?}"
        );
        assert!(e.rto() <= srtt + ms(1) + Duration::from_micros(40));
        assert!(e.rto() >= srtt + ms(1));
    }

    #[test]
    fn min_and_max_bound_the_rto() {
        let mut e = linux_like();
        e.on_sample(Duration::from_micros(50));
        assert_eq!(e.rto(), ms(200));
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(2000));
        e.on_sample(ms(5000));
        assert_eq!(e.rto(), ms(2000));
        e.on_timeout_backoff();
        assert_eq!(e.rto(), ms(2000));
        // Absurd samples and limits do not overflow.
        let mut e = RttEstimator::new(Duration::MAX, Duration::ZERO, Duration::MAX);
        e.on_sample(Duration::MAX);
        e.on_sample(Duration::ZERO);
        e.on_sample_scaled(Duration::MAX, u32::MAX);
        for _ in 0..40 {
            e.on_timeout_backoff();
        }
        assert!(e.rto() > Duration::ZERO);
    }

    #[test]
    fn scaled_samples_move_the_estimate_less() {
        let mut plain = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        let mut scaled = plain.clone();
        plain.on_sample(ms(100));
        scaled.on_sample_scaled(ms(100), 10);
        assert_eq!(plain.srtt(), scaled.srtt());
        plain.on_sample(ms(180));
        scaled.on_sample_scaled(ms(180), 10);
        // alpha' = 1/80: SRTT moves by 80/80 = 1 ms instead of 10 ms.
        assert_eq!(plain.srtt(), Some(ms(110)));
        assert_eq!(scaled.srtt(), Some(ms(101)));
        // beta' = 1/40: RTTVAR = 50 + (80 - 50)/40 = 50.75 ms.
        assert_eq!(scaled.rttvar(), Duration::from_micros(50_750));
        // Ten scaled samples move it about as far as one plain one.
        let mut e = RttEstimator::new(ms(1000), ms(1), ms(60_000));
        e.on_sample(ms(100));
        for _ in 0..10 {
            e.on_sample_scaled(ms(180), 10);
        }
        let s = e.srtt().unwrap();
        assert!(s > ms(109) && s < ms(110), "{s:?}");
    }

    #[test]
    fn handshake_retransmission_raises_the_rto_to_three_seconds() {
        let mut e = linux_like();
        e.on_timeout_backoff();
        e.on_handshake_retransmitted();
        assert_eq!(e.rto(), ms(3000));
        let mut e = linux_like();
        e.on_sample(ms(10));
        e.on_handshake_retransmitted();
        assert_eq!(e.rto(), ms(200));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any samples, scales and backoffs: the RTO stays within the configured bounds,
        /// never shrinks when backing off, and SRTT stays within the range of the samples.
        #[test]
        fn rto_stays_bounded(
            min_ms in 0u64..2000,
            span_ms in 0u64..120_000,
            init_ms in 0u64..10_000,
            ops in proptest::collection::vec((any::<u64>(), 0u32..64, 0u8..4), 1..100),
        ) {
            let (min, max) = (min_ms * 1000, (min_ms + span_ms) * 1000);
            let mut e = RttEstimator::new(
                Duration::from_millis(init_ms),
                Duration::from_micros(min),
                Duration::from_micros(max),
            );
            let (mut lo, mut hi) = (u64::MAX, 0u64);
            for (sample, n, op) in ops {
                let sample = sample % 200_000_000;
                match op {
                    0 => e.on_sample(Duration::from_micros(sample)),
                    1 => e.on_sample_scaled(Duration::from_micros(sample), n),
                    2 => {
                        let before = e.rto();
                        e.on_timeout_backoff();
                        prop_assert!(e.rto() >= before);
                        continue;
                    }
                    _ => {
                        e.reset_backoff();
                        continue;
                    }
                }
                let clamped = sample.min(max);
                lo = lo.min(clamped);
                hi = hi.max(clamped);
                let srtt = e.srtt().unwrap().as_micros() as u64;
                prop_assert!(srtt >= lo && srtt <= hi, "{} not in [{}, {}]", srtt, lo, hi);
                let rto = e.rto().as_micros() as u64;
                prop_assert!(rto >= min && rto <= max);
            }
        }
    }
}
