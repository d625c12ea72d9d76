//! Synchronous sessions ([`crate::session`]) run from the worker's loop: a connection
//! accepted by a session listener gets its session when its handshake completes, and
//! from then on each read is handed to it and its reply copied straight into the
//! connection's send buffer, all inside the round that received the data. A session's
//! deadline shares the connection's entry on the timer wheel.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tcp::Instant;

use super::record::Conn;
use crate::session::{Next, Session, SessionFactory, Wake};

/// The most a session is handed in one call.
const READ_CHUNK: usize = 64 * 1024;
/// The largest reply buffer kept between calls.
const MAX_KEPT_REPLY: usize = 256 * 1024;

/// A connection's session and what it is waiting on.
pub(crate) struct SessionState {
    session: Box<dyn Session>,
    /// When to call `on_deadline`.
    pub(super) deadline: Option<Instant>,
    /// Reply bytes the send buffer had no room for yet: nothing more is read until they
    /// are queued (the session's flow control).
    unsent: Vec<u8>,
    /// The session asked to close once `unsent` is queued; `deadline` still bounds the
    /// wait (a peer that never reads must not hold the connection). The session is kept
    /// until then, so that what it holds (a DNS session's place in the connection
    /// limits) lasts as long as the connection.
    close_when_sent: bool,
    /// `on_eof` was called (it is called once).
    eof_delivered: bool,
    /// The session said `More`: call `on_data` again, with no data, once its reply is
    /// queued, before anything more is read.
    pub(super) more: bool,
}

/// Scratch space every session of a worker shares (one call at a time).
pub(crate) struct SessionBuffers {
    read: Vec<u8>,
    reply: Vec<u8>,
}

impl Default for SessionBuffers {
    fn default() -> Self {
        SessionBuffers {
            read: vec![0; READ_CHUNK],
            reply: Vec::new(),
        }
    }
}

/// The worker's clock for a round: its own time, and the wall-clock instant sessions
/// see.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    pub now: Instant,
    pub epoch: std::time::Instant,
}

impl Clock {
    fn wall(self) -> std::time::Instant {
        self.epoch + Duration::from_micros(self.now.as_micros())
    }

    fn worker_time(self, at: std::time::Instant) -> Instant {
        Instant::from_micros(at.saturating_duration_since(self.epoch).as_micros() as u64)
    }
}

/// What became of a session after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still serving (or no session).
    Live,
    /// It closed; `true` if the close turned into a reset (unread data).
    Closed { reset: bool },
    /// It reset the connection, or panicked.
    Reset,
}

impl crate::stats::WorkerStats {
    /// Counts how a session call ended: a close that turned into a reset, or a reset.
    pub(crate) fn count_session(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Live => {}
            Outcome::Closed { reset } => self.aborted_on_close += u64::from(reset),
            Outcome::Reset => self.sessions_reset += 1,
        }
    }
}

/// Starts the session of a connection whose handshake just completed. A refused one
/// (the factory said no) closes the connection.
pub(crate) fn start(c: &mut Conn, factory: &SessionFactory, wake: Wake, clock: Clock) -> Outcome {
    let peer = c.tuple.remote;
    match catch_unwind(AssertUnwindSafe(|| factory(peer, wake))) {
        Ok(Some(mut session)) => {
            let started = catch_unwind(AssertUnwindSafe(|| session.on_start(clock.wall())));
            c.session = Some(Box::new(SessionState {
                session,
                deadline: None,
                unsent: Vec::new(),
                close_when_sent: false,
                eof_delivered: false,
                more: false,
            }));
            match started {
                Ok(next) => apply(c, next, clock, false),
                Err(_) => {
                    c.session = None;
                    c.tcb.abort();
                    Outcome::Reset
                }
            }
        }
        Ok(None) => Outcome::Closed {
            reset: c.tcb.release(clock.now, false),
        },
        Err(_) => {
            c.tcb.abort();
            Outcome::Reset
        }
    }
}

/// Queues what the session left unsent, then hands it what has arrived, until it has
/// read everything, stops, or must wait for room to send.
pub(crate) fn drive(c: &mut Conn, bufs: &mut SessionBuffers, clock: Clock) -> Outcome {
    let Some(st) = c.session.as_mut() else {
        return Outcome::Live;
    };
    if !st.unsent.is_empty() {
        let n = c.tcb.send(&st.unsent, true);
        st.unsent.drain(..n);
        if !st.unsent.is_empty() {
            return Outcome::Live;
        }
    }
    if st.close_when_sent {
        c.session = None;
        return Outcome::Closed {
            reset: c.tcb.release(clock.now, false),
        };
    }
    loop {
        if bufs.reply.capacity() > MAX_KEPT_REPLY {
            // One large reply (a zone transfer) does not stay allocated for good.
            bufs.reply = Vec::new();
        }
        let Some(st) = c.session.as_mut() else {
            return Outcome::Live;
        };
        let session = &mut st.session;
        let eof;
        let more = std::mem::take(&mut st.more);
        let n = if more { 0 } else { c.tcb.recv(&mut bufs.read) };
        bufs.reply.clear();
        let called = if n > 0 || more {
            eof = false;
            let data = &bufs.read[..n];
            let reply = &mut bufs.reply;
            catch_unwind(AssertUnwindSafe(|| {
                session.on_data(data, reply, clock.wall())
            }))
        } else if c.tcb.at_eof() && !st.eof_delivered {
            eof = true;
            st.eof_delivered = true;
            let reply = &mut bufs.reply;
            catch_unwind(AssertUnwindSafe(|| session.on_eof(reply, clock.wall())))
        } else {
            return Outcome::Live;
        };
        let next = match called {
            Ok(next) => next,
            Err(_) => {
                c.session = None;
                c.tcb.abort();
                return Outcome::Reset;
            }
        };
        if !bufs.reply.is_empty() {
            let sent = c.tcb.send(&bufs.reply, true);
            st.unsent.extend_from_slice(&bufs.reply[sent..]);
        }
        let outcome = apply(c, next, clock, false);
        let waiting = c.session.as_ref().is_some_and(|st| !st.unsent.is_empty());
        if outcome != Outcome::Live || waiting || eof {
            return outcome;
        }
    }
}

/// The session's deadline passed.
pub(crate) fn expire(c: &mut Conn, clock: Clock) -> Outcome {
    let Some(st) = c.session.as_mut() else {
        return Outcome::Live;
    };
    if st.deadline.is_none_or(|d| d > clock.now) {
        return Outcome::Live;
    }
    st.deadline = None;
    if st.close_when_sent {
        // It closed and its reply is still not all queued: the peer had its time.
        c.session = None;
        return Outcome::Closed {
            reset: c.tcb.release(clock.now, false),
        };
    }
    let session = &mut st.session;
    match catch_unwind(AssertUnwindSafe(|| session.on_deadline(clock.wall()))) {
        Ok(next) => apply(c, next, clock, true),
        Err(_) => {
            c.session = None;
            c.tcb.abort();
            Outcome::Reset
        }
    }
}

/// Carries out what the session said. `at_deadline`: it said so when its deadline
/// passed, and a close then does not wait for a reply the peer is not taking.
fn apply(c: &mut Conn, next: Next, clock: Clock, at_deadline: bool) -> Outcome {
    let Some(st) = c.session.as_mut() else {
        return Outcome::Live;
    };
    // Past the peer's end nothing but a deadline can call the session again: waiting
    // without one would hold the connection for ever.
    let next = match next {
        Next::Wait(None) if st.eof_delivered => Next::Close,
        next => next,
    };
    match next {
        Next::Wait(d) => {
            st.deadline = d.map(|d| clock.worker_time(d));
            Outcome::Live
        }
        Next::Close if !st.unsent.is_empty() && !at_deadline => {
            // FIN after the whole reply: once it is queued (see `drive`), or at the
            // deadline the session last gave.
            st.close_when_sent = true;
            Outcome::Live
        }
        Next::Close => {
            c.session = None;
            Outcome::Closed {
                reset: c.tcb.release(clock.now, false),
            }
        }
        Next::Reset => {
            c.session = None;
            c.tcb.abort();
            Outcome::Reset
        }
        Next::More => {
            st.more = true;
            Outcome::Live
        }
    }
}
