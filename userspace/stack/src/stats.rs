//! What a worker counts, for operators (`sluice stats`) and tests.

/// Counters of one worker since it started. The AF_XDP backend fills every field; the
/// kernel backend only those it can see (accepted connections, open connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames that were not IPv4/TCP for us, or failed their checksums.
    pub rx_dropped: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Frames that found the TX ring full (the segment is resent by TCP later).
    pub tx_ring_full: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now (any state, TIME-WAIT included).
    pub connections: u64,
    /// RSTs sent for segments that matched no connection or listener.
    pub resets_sent: u64,
    /// SYNs answered with a SYN cookie because the half-open backlog was full.
    pub syn_cookies_sent: u64,
    /// Connections made from a returned SYN cookie.
    pub syn_cookies_accepted: u64,
    /// SYNs that opened a new connection on a 4-tuple we still held in TIME-WAIT
    /// (RFC 6191), retiring the old one.
    pub time_wait_reopened: u64,
    /// Frames of another worker's connection that arrived on this worker's queue and
    /// were handed to it.
    pub handed_out: u64,
    /// Frames other workers handed to this one.
    pub handed_in: u64,
    /// Segments sent again, over all connections, closed ones included.
    pub retransmits: u64,
    /// Retransmission timeouts, likewise.
    pub timeouts: u64,
    /// Microseconds the worker spent on rounds that moved a frame or fired a timer,
    /// and on the flow tasks those rounds woke. A busy-polling worker shows a full
    /// core to the OS whatever its load; `busy_us / elapsed_us` is its real load.
    pub busy_us: u64,
    /// Microseconds the worker spent polling with nothing to do (`busy_poll`), not
    /// asleep: what to take off the OS's CPU time for the work done.
    pub idle_poll_us: u64,
    /// Microseconds since the worker started (as of its last round).
    pub elapsed_us: u64,
}
