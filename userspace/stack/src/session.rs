//! The listener registry's cheaper form, for handlers that answer from what arrives
//! (a DNS responder is one): a [`Session`] is called synchronously with each read and
//! writes its reply into a buffer, instead of running as a task that awaits a flow.
//!
//! On the AF_XDP (and in-memory) worker, a session costs no task, no future, no waker
//! and no runtime timer: the worker calls it from its loop as a connection's data
//! arrives, copies the reply straight into the connection's send buffer, and keeps the
//! session's deadline on its own timer wheel with the TCP timers. Measured on the
//! in-memory device, that is most of a one-query DNS connection's cost in the flow
//! form (bench/conn-cost.sh). On the kernel backend a session runs on a flow
//! (`drive_on_flow`), with the same behaviour.
//!
//! The async [`crate::Flow`] API stays the form for everything else: handlers that
//! read at their own pace, write on their own schedule, or open connections.

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::xdp::table::Handle;
use crate::Flow;

/// What a session wants once it has been called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep the connection open; call [`Session::on_deadline`] at this time if nothing
    /// arrives first (None: no deadline).
    Wait(Option<Instant>),
    /// Close: FIN after the reply. What the peer sends after it is not read (if it
    /// sent some that was not read, the connection is reset instead, as a socket
    /// closed with unread data is).
    Close,
    /// Reset the connection at once.
    Reset,
    /// The reply is a first part, capped by the session: call
    /// [`Session::on_data`] again, with no new data, once it is on its way (the peer's
    /// pace decides when). The deadline stays the last one given.
    More,
}

/// One connection's handler in the synchronous form; see the module's comment.
pub trait Session {
    /// The connection is established and the session starts serving it; the deadline
    /// returned is its first (a peer that never sends anything is still bounded). By
    /// default, none.
    fn on_start(&mut self, _now: Instant) -> Next {
        Next::Wait(None)
    }

    /// Bytes arrived, in order (any split: a message may span calls). Append the
    /// reply, if any, to `reply`: it leaves at once (no Nagle delay). `now` is the
    /// worker's clock for this round.
    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, now: Instant) -> Next;

    /// The deadline of the last [`Next::Wait`] passed and nothing arrived.
    fn on_deadline(&mut self, now: Instant) -> Next;

    /// The peer closed its side and everything it sent has been read; called once. By
    /// default the connection is closed too. Waiting from here needs a deadline:
    /// `Wait(None)` closes, since nothing else can call the session again.
    fn on_eof(&mut self, _reply: &mut Vec<u8>, _now: Instant) -> Next {
        Next::Close
    }
}

/// Makes the session of each accepted connection, given the peer's address and the
/// handle that wakes the session (see [`Wake`]); `None` refuses the connection (it is
/// closed at once, with nothing sent).
pub type SessionFactory = Arc<dyn Fn(SocketAddrV4, Wake) -> Option<Box<dyn Session>> + Send + Sync>;

/// Makes the stack call a session's [`Session::on_deadline`] soon (in the worker's next
/// round), whatever deadline it last gave: how the code that made a session ends it
/// from elsewhere, such as a DNS service closing the connection idle longest to admit a
/// new one. The session tells a wake-up from its deadline by its own state (its
/// deadline is not yet due). Waking a session that has ended does nothing.
///
/// It works from the thread of the worker that serves the session (a session is woken
/// from another session's call, on the same worker); from any other thread it does
/// nothing. That is what lets it cost no allocation and no atomic operation per
/// connection on the AF_XDP worker.
#[derive(Clone)]
pub struct Wake(WakeTo);

#[derive(Clone)]
enum WakeTo {
    /// A connection of an AF_XDP or in-memory worker, put on its thread's list of
    /// sessions to call (`WOKEN`), which the worker drains every round.
    Worker { thread: ThreadId, conn: Handle },
    /// A session run on a flow (`drive_on_flow`), which waits on this too.
    Flow(Arc<Notify>),
    /// Nothing to wake (a session made outside a worker).
    Nothing,
}

impl Wake {
    /// Asks for the session's `on_deadline` call.
    pub fn wake(&self) {
        match &self.0 {
            WakeTo::Worker { thread, conn } => {
                if std::thread::current().id() == *thread {
                    WOKEN.with_borrow_mut(|w| w.push(*conn));
                }
            }
            WakeTo::Flow(n) => n.notify_one(),
            WakeTo::Nothing => {}
        }
    }

    /// Whether [`Wake::wake`] works from the calling thread (it does for a flow's
    /// session from any thread, and for a worker's only from that worker's).
    pub fn is_local(&self) -> bool {
        match &self.0 {
            WakeTo::Worker { thread, .. } => std::thread::current().id() == *thread,
            WakeTo::Flow(_) | WakeTo::Nothing => true,
        }
    }

    /// A handle that wakes nothing: for a session made outside a worker (a test's).
    pub fn nothing() -> Wake {
        Wake(WakeTo::Nothing)
    }

    /// A connection of the worker running on `thread`.
    pub(crate) fn worker(thread: ThreadId, conn: Handle) -> Wake {
        Wake(WakeTo::Worker { thread, conn })
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            WakeTo::Worker { .. } => "Wake(worker)",
            WakeTo::Flow(_) => "Wake(flow)",
            WakeTo::Nothing => "Wake(nothing)",
        })
    }
}

thread_local! {
    /// The sessions of the worker on this thread to call `on_deadline` on in its next
    /// round.
    static WOKEN: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
}

/// Moves the sessions woken on this thread into `into` (emptied first); false if there
/// were none.
pub(crate) fn take_woken(into: &mut Vec<Handle>) -> bool {
    into.clear();
    WOKEN.with_borrow_mut(|w| {
        if w.is_empty() {
            return false;
        }
        std::mem::swap(w, into);
        true
    })
}

/// Runs `session` on `flow` (the kernel backend's way, and any backend's without the
/// synchronous path): each read is handed to it, its reply written, its deadline kept
/// with a timer. A reply the peer does not read in time is bounded by the deadline
/// too.
pub(crate) async fn drive_on_flow(mut flow: Flow, factory: SessionFactory) {
    let woken = Arc::new(Notify::new());
    let session = factory(flow.dst(), Wake(WakeTo::Flow(woken.clone())));
    let Some(mut session) = session else {
        flow.close().await;
        return;
    };
    let mut reply = Vec::new();
    let mut more = false;
    let mut deadline: Option<Instant> = match session.on_start(Instant::now()) {
        Next::Wait(d) => d,
        Next::Close => {
            flow.close().await;
            return;
        }
        Next::Reset => return,
        Next::More => {
            more = true;
            None
        }
    };
    // Once the peer's end has been read, there is nothing more to read: on_eof is
    // called once, and from then on only the deadline (or a wake-up) can end the wait.
    // A wake-up is taken as the deadline (`None` below).
    let mut eof = false;
    // `more`: the session asked to be called again before anything more is read.
    loop {
        let read = match (deadline, eof) {
            _ if more => Some(Ok(Some(Bytes::new()))),
            (Some(d), false) => tokio::select! {
                biased;
                read = flow.read() => Some(read),
                () = tokio::time::sleep_until(d.into()) => None,
                () = woken.notified() => None,
            },
            (None, false) => tokio::select! {
                biased;
                read = flow.read() => Some(read),
                () = woken.notified() => None,
            },
            (Some(d), true) => {
                tokio::select! {
                    () = tokio::time::sleep_until(d.into()) => {}
                    () = woken.notified() => {}
                }
                None
            }
            // At the end with no deadline: nothing can happen any more.
            (None, true) => {
                flow.close().await;
                return;
            }
        };
        // A large reply (a zone transfer) does not stay allocated for the rest of the
        // connection's life.
        if reply.capacity() > 64 * 1024 {
            reply = Vec::new();
        }
        reply.clear();
        let now = Instant::now();
        let next = match read {
            None => session.on_deadline(now),
            Some(Ok(Some(data))) => session.on_data(&data, &mut reply, now),
            Some(Ok(None)) => {
                eof = true;
                session.on_eof(&mut reply, now)
            }
            Some(Err(_)) => return,
        };
        let mut next = next;
        more = next == Next::More;
        if !reply.is_empty() {
            let write = flow.write_nodelay(Bytes::copy_from_slice(&reply));
            tokio::pin!(write);
            loop {
                // The reply is bounded by the session's new deadline, or, when it asked
                // to close, by the last one it gave: a peer that does not take it must
                // not hold the connection (as on the worker's synchronous path).
                let bound = match next {
                    Next::Wait(Some(d)) => Some(d),
                    Next::Wait(None) => None,
                    Next::Close | Next::Reset | Next::More => deadline,
                };
                // Far enough to mean never, for a reply with no deadline to bound it
                // (a wake-up can still end the wait).
                let d = bound.unwrap_or_else(|| {
                    Instant::now() + std::time::Duration::from_secs(86_400 * 365)
                });
                tokio::select! {
                    biased;
                    w = &mut write => {
                        if w.is_err() {
                            return;
                        }
                        break;
                    }
                    () = async {
                        tokio::select! {
                            () = tokio::time::sleep_until(d.into()) => {}
                            () = woken.notified() => {}
                        }
                    } => {
                        if matches!(next, Next::Close | Next::Reset) {
                            // It was closing: the peer had its time.
                            return;
                        }
                        next = session.on_deadline(Instant::now());
                        more = false;
                        if !matches!(next, Next::Wait(_)) {
                            // The write cannot finish: dropping the flow ends it.
                            return;
                        }
                        deadline = match next {
                            Next::Wait(d) => d,
                            _ => deadline,
                        };
                    }
                }
            }
        }
        match next {
            Next::Wait(d) => deadline = d,
            Next::Close => {
                flow.close().await;
                return;
            }
            // The flow API has no abort: dropping the flow closes it, and resets it if
            // what the peer sent was not all read.
            Next::Reset => return,
            Next::More => {}
        }
    }
}
