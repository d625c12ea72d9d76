//! The connection as the AF_XDP worker drives it: everything that touches the sans-IO
//! `tcp` crate, in one place. Time is the worker's clock ([`tcp::Instant`], from the
//! shard's epoch).

use std::net::SocketAddrV4;
use std::time::Duration;

use bytes::BytesMut;
use tcp::seq::SeqNumber;
use tcp::tcb::{CloseReason, Config as TcpConfig, Event, Keepalive as TcpKeepalive};
use tcp::time::Instant;
use wire::TcpRepr;

use crate::error::Error;
use crate::listener::Keepalive;

/// The flow API's error for a connection that failed for `reason`.
pub(crate) fn close_error(reason: CloseReason) -> Error {
    match reason {
        CloseReason::TimedOut => Error::Timeout,
        CloseReason::Refused => Error::Refused,
        CloseReason::Reset | CloseReason::Finished | CloseReason::Aborted => Error::Reset,
    }
}

fn keepalive(k: Option<Keepalive>) -> Option<TcpKeepalive> {
    k.map(|k| TcpKeepalive {
        after: k.after,
        interval: k.interval,
        probes: k.probes,
    })
}

/// Makes connections with the worker's settings and its keyed ISN generator.
pub(crate) struct TcbFactory {
    config: TcpConfig,
    isn: tcp::isn::IsnGenerator,
    /// For SYNs that arrive while the half-open backlog is full.
    cookies: tcp::syncookie::SynCookies,
}

/// `N` random bytes from the kernel (None if getrandom fails).
pub(crate) fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut b = [0u8; N];
    // SAFETY: b is a valid, writable N-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), N, 0) };
    (n == N as isize).then_some(b)
}

/// 16 random bytes from the kernel, for the ISN key.
fn random_key() -> [u8; 16] {
    random_bytes().expect("getrandom failed: the ISN key would be predictable")
}

impl TcbFactory {
    pub(crate) fn new(config: &TcpConfig) -> TcbFactory {
        TcbFactory {
            config: config.clone(),
            isn: tcp::isn::IsnGenerator::new(random_key()),
            cookies: tcp::syncookie::SynCookies::new(random_key()),
        }
    }

    /// A stateless SYN-ACK carrying a SYN cookie, for when the backlog is full.
    pub(crate) fn cookie_syn_ack(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr<'_>,
        now: Instant,
    ) -> Option<TcpRepr<'static>> {
        tcp::tcb::Tcb::cookie_syn_ack(&self.config, local, remote, syn, &self.cookies, now)
    }

    /// The connection for the ACK that returns a valid SYN cookie, if `ack` is one.
    pub(crate) fn accept_cookie(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ack: &TcpRepr<'_>,
        ka: Option<Keepalive>,
        now: Instant,
    ) -> Option<Connection> {
        let mut config = self.config.clone();
        config.keepalive = keepalive(ka);
        tcp::tcb::Tcb::accept_cookie(config, local, remote, ack, &self.cookies, now).map(Connection)
    }

    /// A passive open from `syn`. `isn_floor`: the lowest initial sequence number
    /// allowed, when `syn` reopens a 4-tuple still in TIME-WAIT ([`tcp::tcb::Tcb::reopening_isn`]).
    pub(crate) fn accept(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr<'_>,
        ka: Option<Keepalive>,
        isn_floor: Option<SeqNumber>,
        now: Instant,
    ) -> Connection {
        let generated = self.isn.generate(local, remote, now);
        let isn = isn_floor.map_or(generated, |floor| generated.max(floor));
        let mut config = self.config.clone();
        config.keepalive = keepalive(ka);
        Connection(tcp::tcb::Tcb::accept(config, local, remote, syn, isn, now))
    }

    pub(crate) fn connect(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ka: Option<Keepalive>,
        timeout: Duration,
        now: Instant,
    ) -> Connection {
        let isn = self.isn.generate(local, remote, now);
        let mut config = self.config.clone();
        config.keepalive = keepalive(ka);
        config.connect_timeout = Some(timeout);
        Connection(tcp::tcb::Tcb::connect(config, local, remote, isn, now))
    }
}

/// One TCP connection: the `tcp` crate's machine, with the worker's buffers and
/// frames on its edges.
#[derive(Debug)]
pub(crate) struct Connection(tcp::tcb::Tcb);

impl Connection {
    pub(crate) fn on_segment(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        self.0.on_segment(seg, now);
    }

    /// The lowest ISN for a new incarnation, if `syn` may reopen this connection from
    /// TIME-WAIT (RFC 6191).
    pub(crate) fn reopening_isn(&self, syn: &TcpRepr<'_>) -> Option<SeqNumber> {
        self.0.reopening_isn(syn)
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) {
        self.0.on_timeout(now);
    }

    /// When [`Connection::on_timeout`] next has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    pub(crate) fn events(&mut self, mut f: impl FnMut(Event)) {
        while let Some(e) = self.0.poll_event() {
            f(e);
        }
    }

    /// Hands each segment the connection wants to send to `emit` (header, payload
    /// length, and a closure that copies the payload into the frame), until `emit`
    /// refuses one (no TX room) or nothing is left.
    pub(crate) fn transmit(
        &mut self,
        now: Instant,
        mut emit: impl FnMut(&TcpRepr<'_>, usize, &mut dyn FnMut(&mut [u8])) -> bool,
    ) {
        while let Some(t) = self.0.poll_transmit(now) {
            let header = t.header();
            let len = t.payload_len();
            let conn = &self.0;
            if !emit(&header, len, &mut |dst| conn.write_payload(&t, dst)) {
                // No room in the TX ring: the segment counts as lost and is resent by
                // the retransmission machinery, which is what a full NIC queue does too.
                break;
            }
        }
    }

    pub(crate) fn wants_to_send(&self) -> bool {
        self.0.wants_to_send()
    }

    /// Moves what has arrived, up to `chunk` bytes, to the end of `buf`, growing it for
    /// just that: a DNS query does not cost a 16 KiB buffer. Only the bytes about to be
    /// overwritten are initialised (zeroing the whole spare capacity on every read, even
    /// one that found nothing, was the largest single cost of a one-query connection).
    pub(crate) fn recv_into(&mut self, buf: &mut BytesMut, chunk: usize) -> usize {
        let take = self.0.recv_available().min(chunk);
        if take == 0 {
            return 0;
        }
        let start = buf.len();
        buf.resize(start + take, 0);
        let n = self.0.recv(&mut buf[start..]);
        buf.truncate(start + n);
        n
    }

    /// Reads what has arrived into `dst`; returns how many bytes.
    pub(crate) fn recv(&mut self, dst: &mut [u8]) -> usize {
        self.0.recv(dst)
    }

    /// The peer has closed and every byte it sent has been read.
    pub(crate) fn at_eof(&self) -> bool {
        self.0.at_eof()
    }

    pub(crate) fn can_send(&self) -> bool {
        self.0.can_send()
    }

    pub(crate) fn send(&mut self, data: &[u8], nodelay: bool) -> usize {
        if nodelay {
            self.0.send_nodelay(data)
        } else {
            self.0.send(data)
        }
    }

    pub(crate) fn unsent(&self) -> usize {
        self.0.unsent()
    }

    pub(crate) fn close(&mut self) {
        self.0.close();
    }

    /// The flow let go: close, or reset if received data will never be read (see
    /// [`tcp::tcb::Tcb::release`]). Returns whether it reset.
    pub(crate) fn release(&mut self, now: Instant, unread_by_app: bool) -> bool {
        self.0.release(now, unread_by_app)
    }

    pub(crate) fn abort(&mut self) {
        self.0.abort();
    }

    pub(crate) fn stats(&self) -> tcp::tcb::TcbStats {
        self.0.stats()
    }

    pub(crate) fn state(&self) -> tcp::tcb::State {
        self.0.state()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}
