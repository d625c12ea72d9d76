//! What the connection tells the application, and how it ended.

/// What happened, for the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected,
    /// Data arrived.
    Readable,
    /// Room appeared in the send buffer.
    Writable,
    /// The peer sent FIN: after the buffered data, reads see the end.
    PeerClosed,
    /// The connection is over, for this reason; always the last event.
    Closed(CloseReason),
}

/// How a connection ended (quinn's `ConnectionLost` reason, TCP's few cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Closed as asked: both FINs exchanged (TIME-WAIT over), or closed before the
    /// handshake completed.
    Finished,
    /// This side reset it: the application aborted it, or an orphaned connection was
    /// given up (FIN-WAIT-2 timeout, data nobody will read).
    Aborted,
    /// The peer reset the connection.
    Reset,
    /// Retransmissions, keepalive probes or the connect timeout ran out.
    TimedOut,
    /// The peer refused the connection (RST to our SYN).
    Refused,
}

impl CloseReason {
    /// Whether the connection failed, as opposed to ending as one side asked.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            CloseReason::Reset | CloseReason::TimedOut | CloseReason::Refused
        )
    }
}

/// The events that are flags, in the order [`Tcb::poll_event`] reports them; `Closed`
/// comes after them all.
pub(super) const EVENTS: [Event; 4] = [
    Event::Connected,
    Event::Readable,
    Event::Writable,
    Event::PeerClosed,
];

pub(super) fn event_bit(e: Event) -> u8 {
    1 << EVENTS
        .iter()
        .position(|x| *x == e)
        .expect("every event is listed")
}
