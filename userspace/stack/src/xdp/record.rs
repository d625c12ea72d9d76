//! A connection as the worker keeps it: its TCP endpoint, where its frames go, and
//! what the application side waits on.

use std::task::Waker;

use tcp::tcb::CloseReason;
use tcp::Instant;

use super::conn::Connection;
use super::frames::Path;
use super::table::FourTuple;

/// A connection as the worker keeps it.
pub(crate) struct Conn {
    pub(super) tcb: Connection,
    pub(super) tuple: FourTuple,
    pub(super) path: Path,
    /// The wheel entry's time, when one is armed.
    pub(super) armed: Option<Instant>,
    pub(super) read_waker: Option<Waker>,
    pub(super) write_waker: Option<Waker>,
    /// Accepted from a listener and not yet handed to its handler.
    pub(super) pending_handler: Option<u16>,
    /// An active open waiting for the handshake.
    pub(super) connect_waker: Option<Waker>,
    pub(super) connected: bool,
    /// Why TCP gave up on it, when it failed (reset, timed out, refused).
    pub(super) failed: Option<CloseReason>,
    /// The application holds a Flow for it (or a connect is waiting): keep the slot
    /// until the Flow is dropped, even after TCP is done with it.
    pub(super) attached: bool,
    pub(super) queued: bool,
    /// The synchronous session serving it, for a session listener's connection.
    pub(super) session: Option<Box<super::sessions::SessionState>>,
}

impl Conn {
    /// A connection a listener accepted (from a SYN, or a SYN cookie's ACK), to be
    /// handed to the handler of `port` once its handshake completes.
    pub(super) fn accepted(tcb: Connection, tuple: FourTuple, path: Path, port: u16) -> Conn {
        Conn {
            pending_handler: Some(port),
            attached: false,
            ..Conn::new(tcb, tuple, path)
        }
    }

    /// An active open, its caller waiting for the handshake.
    pub(super) fn connecting(tcb: Connection, tuple: FourTuple, path: Path) -> Conn {
        Conn {
            attached: true,
            ..Conn::new(tcb, tuple, path)
        }
    }

    fn new(tcb: Connection, tuple: FourTuple, path: Path) -> Conn {
        Conn {
            tcb,
            tuple,
            path,
            armed: None,
            read_waker: None,
            write_waker: None,
            pending_handler: None,
            connect_waker: None,
            connected: false,
            session: None,
            failed: None,
            attached: false,
            queued: false,
        }
    }
}
