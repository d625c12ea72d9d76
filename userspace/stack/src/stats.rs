//! What a worker counts, for operators (`sluice stats`) and tests.

/// Counters of one worker since it started. The AF_XDP backend fills every field; the
/// kernel backend only those it can see (accepted connections, open connections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames that were not IPv4/TCP for us, or failed their checksums (by reason in
    /// `rx_drops`).
    pub rx_dropped: u64,
    /// `rx_dropped` by reason.
    pub rx_drops: RxDrops,
    /// SYNs to a port no listener serves, answered with a RST.
    pub syns_no_listener: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Frames that found the TX ring full (the segment is resent by TCP later).
    pub tx_ring_full: u64,
    /// TX kicks the kernel could take no frame from (the device's queue stopped because
    /// its ring is full, or the completion ring full): the frames waited in the TX ring
    /// for a later kick, none lost. Copy mode only.
    pub tx_device_full: u64,
    /// TX kicks the kernel refused (EBUSY/ENOBUFS); in copy mode a device that drops
    /// when full (veth without a qdisc) loses a frame with each, which TCP resends.
    pub tx_kick_refused: u64,
    /// What the kernel dropped on the worker's AF_XDP socket before the worker saw it;
    /// `None` on the kernel backend, or when the kernel would not say (reading
    /// `XDP_STATISTICS` failed), which is not the same as nothing dropped.
    pub socket_drops: Option<SocketDrops>,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now (any state, TIME-WAIT included).
    pub connections: u64,
    /// RSTs sent for segments that matched no connection or listener.
    pub resets_sent: u64,
    /// Connections reset because their flow was dropped with received data unread
    /// (Linux's TCPAbortOnClose), or their session closed with data unread.
    pub aborted_on_close: u64,
    /// Connections a synchronous session reset (it asked to, or it panicked).
    pub sessions_reset: u64,
    /// SYNs answered with a SYN cookie because the half-open backlog was full.
    pub syn_cookies_sent: u64,
    /// Connections made from a returned SYN cookie.
    pub syn_cookies_accepted: u64,
    /// SYNs to a listener that reached the worker (past the steering program's
    /// admission).
    pub syns_received: u64,
    /// Connections served to their end (established, then closed without a reset or a
    /// timeout).
    pub completed: u64,
    /// Passive opens whose handshake completed (from a SYN or a SYN cookie).
    pub handshakes: u64,
    /// The SYNs a second the steering program admits on this worker's queue (0: all;
    /// see [`crate::Admission`]).
    pub syn_budget: u64,
    /// Times the admission budget changed.
    pub syn_budget_changes: u64,
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
    /// Fast recoveries entered, likewise.
    pub recoveries: u64,
    /// Of those, the ones found spurious (reordering, not loss) and undone.
    pub undone_recoveries: u64,
    /// Times the worker took frames from its receive ring (once a round).
    pub rx_polls: u64,
    /// Of those, the times it found a full batch waiting: a worker that finds one in
    /// most rounds is behind its queue, the frames wait in the ring, and a longer
    /// backlog would overflow it.
    pub rx_polls_full: u64,
    /// Microseconds the worker spent on rounds that moved a frame or fired a timer,
    /// and on the flow tasks those rounds woke. A busy-polling worker shows a full
    /// core to the OS whatever its load; `busy_us / elapsed_us` is its real load.
    pub busy_us: u64,
    /// Microseconds the worker spent polling with nothing to do (`busy_poll`), not
    /// asleep: what to take off the OS's CPU time for the work done.
    pub idle_poll_us: u64,
    /// Microseconds since the worker started (as of its last round).
    pub elapsed_us: u64,
    /// The open connections by TCP state (AF_XDP backend), as of the call.
    pub states: ConnStates,
}

impl WorkerStats {
    /// Adds one connection's retransmission counters (when it is retired, or to a
    /// snapshot that includes the open ones).
    pub(crate) fn add_tcb(&mut self, t: tcp::tcb::TcbStats) {
        self.retransmits += u64::from(t.retransmits);
        self.timeouts += u64::from(t.timeouts);
        self.recoveries += u64::from(t.recoveries);
        self.undone_recoveries += u64::from(t.undone_recoveries);
    }
}

/// Frames a worker received and dropped before they reached a connection, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDrops {
    /// Shorter than the headers they claim, or with a field the format forbids.
    pub malformed: u64,
    /// Not IPv4/TCP, or IPv4 fragments (the steering program passes those to the
    /// kernel: few should reach a worker).
    pub not_ipv4_tcp: u64,
    /// An IPv4 header checksum that does not verify.
    pub bad_ipv4_checksum: u64,
    /// A TCP checksum that does not verify (CHECKSUM_PARTIAL frames from a local
    /// sender, where the interface is not known to carry them, land here).
    pub bad_tcp_checksum: u64,
    /// For an IPv4 address the stack does not serve.
    pub not_our_address: u64,
}

/// The kernel's own count of frames an AF_XDP socket lost (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketDrops {
    /// Frames dropped because the worker's RX ring was full: it fell behind its queue.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (the worker had given it no free frame
    /// to receive into; in copy mode each is a dropped frame).
    pub fill_empty: u64,
    /// Frames dropped on the socket for any other reason.
    pub other: u64,
}

/// How many connections are in each TCP state (RFC 9293's names), like `ss -s`: under a
/// flood, it tells half-open handshakes from idle established connections and from
/// connections waiting out TIME-WAIT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStates {
    /// SYN-SENT: our SYN is out (an active open).
    pub syn_sent: u64,
    /// SYN-RECEIVED: a SYN came in, our SYN-ACK is out.
    pub syn_received: u64,
    /// ESTABLISHED.
    pub established: u64,
    /// FIN-WAIT-1: our FIN is out, not yet acknowledged.
    pub fin_wait_1: u64,
    /// FIN-WAIT-2: our FIN is acknowledged; the peer may still send.
    pub fin_wait_2: u64,
    /// CLOSE-WAIT: the peer has closed; we have not.
    pub close_wait: u64,
    /// CLOSING: both closed at once.
    pub closing: u64,
    /// LAST-ACK: we closed after the peer; waiting for the ACK of our FIN.
    pub last_ack: u64,
    /// TIME-WAIT: closed, waiting out old duplicates.
    pub time_wait: u64,
}

impl ConnStates {
    /// Counts one connection in `state` (closed ones are not counted).
    pub(crate) fn count(&mut self, state: tcp::tcb::State) {
        use tcp::tcb::State;
        let n = match state {
            State::SynSent => &mut self.syn_sent,
            State::SynReceived => &mut self.syn_received,
            State::Established => &mut self.established,
            State::FinWait1 => &mut self.fin_wait_1,
            State::FinWait2 => &mut self.fin_wait_2,
            State::CloseWait => &mut self.close_wait,
            State::Closing => &mut self.closing,
            State::LastAck => &mut self.last_ack,
            State::TimeWait => &mut self.time_wait,
            State::Closed => return,
        };
        *n += 1;
    }
}
