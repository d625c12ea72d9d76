//! A connection's settings.

use core::time::Duration;

use crate::congestion::Algorithm;

/// Keepalive, as the flow API's: probes after `after` idle, every `interval`, lost after
/// `probes` unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub after: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is lost.
    pub probes: u32,
}

/// A connection's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our MSS (MTU minus 40 for IPv4 and TCP headers).
    pub mss: u16,
    /// Send buffer, bytes.
    pub send_buffer: usize,
    /// Receive buffer (the largest window we advertise), bytes.
    pub recv_buffer: usize,
    /// TIME-WAIT duration (2·MSL).
    pub time_wait: Duration,
    /// RTO before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Floor of the RTO.
    pub min_rto: Duration,
    /// Ceiling of the RTO.
    pub max_rto: Duration,
    /// Longest an ACK is delayed.
    pub delayed_ack: Duration,
    /// Nagle's algorithm for writes that do not ask to bypass it.
    pub nagle: bool,
    /// Congestion control.
    pub congestion: Algorithm,
    /// Offer and use SACK.
    pub sack: bool,
    /// Offer and use timestamps.
    pub timestamps: bool,
    /// Our window-scale shift, offered in the SYN (None: no scaling).
    pub window_scale: Option<u8>,
    /// Keepalive, if any.
    pub keepalive: Option<Keepalive>,
    /// SYN (or SYN-ACK) retransmissions before giving up.
    pub syn_retries: u32,
    /// Data retransmissions of the same segment before the connection is lost.
    pub data_retries: u32,
    /// Retransmissions of the same segment before an orphaned connection (see
    /// [`Tcb::orphan`](super::Tcb::orphan)) is given up: nobody waits for it, so it
    /// gets fewer than `data_retries` (Linux's `tcp_orphan_retries`, whose 0 means 8).
    pub orphan_retries: u32,
    /// How long an orphaned connection waits in FIN-WAIT-2 for the peer's FIN before
    /// it is reset (the bound of Linux's `tcp_fin_timeout`; Linux then drops it
    /// silently, we tell the peer): a peer that acknowledges our FIN and
    /// never sends its own would otherwise hold the connection for ever.
    pub fin_wait_2_timeout: Duration,
    /// How long an active open may take before it fails
    /// ([`CloseReason::TimedOut`](super::CloseReason::TimedOut)), whatever
    /// `syn_retries` would still allow (None: only they bound it). On the connection's
    /// own timer, so an application's connect needs no timer of its own.
    pub connect_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss: 1460,
            // 64 KiB each: below the allocator's mmap threshold, so a new connection's
            // first buffer costs a malloc and a short memset, not an mmap and page faults
            // (256 KiB made a one-request connection cost ~80 us of CPU).
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
            time_wait: Duration::from_secs(60),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            nagle: true,
            congestion: Algorithm::Cubic,
            sack: true,
            timestamps: true,
            window_scale: Some(7),
            keepalive: None,
            syn_retries: 6,
            data_retries: 15,
            orphan_retries: 8,
            fin_wait_2_timeout: Duration::from_secs(60),
            connect_timeout: None,
        }
    }
}
