//! The connection as the AF_XDP worker drives it: everything that touches the sans-IO
//! `tcp` crate, in one place. Time is microseconds since the worker's epoch.

use std::net::SocketAddrV4;
use std::time::Duration;

use bytes::BytesMut;
use tcp::seq::SeqNumber;
use tcp::tcb::{Config as TcpConfig, Event as TcpEvent, Keepalive as TcpKeepalive};
use tcp::time::Instant;
use wire::TcpRepr;

use crate::error::Error;
use crate::listener::Keepalive;

/// What happened to a connection, as the worker and its flows care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnEvent {
    Connected,
    Readable,
    Writable,
    PeerClosed,
    Closed,
    Reset,
    TimedOut,
    Refused,
}

impl ConnEvent {
    pub(crate) fn into_error(self) -> Error {
        match self {
            ConnEvent::Reset => Error::Reset,
            ConnEvent::TimedOut => Error::Timeout,
            ConnEvent::Refused => Error::Refused,
            _ => Error::Reset,
        }
    }
}

fn instant(us: u64) -> Instant {
    Instant::from_micros(us)
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
        now_us: u64,
    ) -> Option<TcpRepr<'static>> {
        tcp::tcb::Tcb::cookie_syn_ack(
            &self.config,
            local,
            remote,
            syn,
            &self.cookies,
            instant(now_us),
        )
    }

    /// The connection for the ACK that returns a valid SYN cookie, if `ack` is one.
    pub(crate) fn accept_cookie(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ack: &TcpRepr<'_>,
        ka: Option<Keepalive>,
        now_us: u64,
    ) -> Option<Tcb> {
        let mut config = self.config.clone();
        config.keepalive = keepalive(ka);
        tcp::tcb::Tcb::accept_cookie(config, local, remote, ack, &self.cookies, instant(now_us))
            .map(Tcb)
    }

    /// A passive open from `syn`. `isn_floor`: the lowest initial sequence number
    /// allowed, when `syn` reopens a 4-tuple still in TIME-WAIT ([`Tcb::reopening_isn`]).
    pub(crate) fn accept(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr<'_>,
        ka: Option<Keepalive>,
        isn_floor: Option<SeqNumber>,
        now_us: u64,
    ) -> Tcb {
        let now = instant(now_us);
        let generated = self.isn.generate(local, remote, now);
        let isn = isn_floor.map_or(generated, |floor| generated.max(floor));
        let mut config = self.config.clone();
        config.keepalive = keepalive(ka);
        Tcb(tcp::tcb::Tcb::accept(config, local, remote, syn, isn, now))
    }

    pub(crate) fn connect(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ka: Option<Keepalive>,
        timeout: Duration,
        now_us: u64,
    ) -> Tcb {
        let now = instant(now_us);
        let isn = self.isn.generate(local, remote, now);
        let mut config = self.config.clone();
        config.keepalive = keepalive(ka);
        config.connect_timeout = Some(timeout);
        Tcb(tcp::tcb::Tcb::connect(config, local, remote, isn, now))
    }
}

/// One TCP connection.
#[derive(Debug)]
pub(crate) struct Tcb(tcp::tcb::Tcb);

impl Tcb {
    pub(crate) fn on_segment(&mut self, seg: &TcpRepr<'_>, now_us: u64) {
        self.0.on_segment(seg, instant(now_us));
    }

    /// The lowest ISN for a new incarnation, if `syn` may reopen this connection from
    /// TIME-WAIT (RFC 6191).
    pub(crate) fn reopening_isn(&self, syn: &TcpRepr<'_>) -> Option<SeqNumber> {
        self.0.reopening_isn(syn)
    }

    pub(crate) fn on_timeout(&mut self, now_us: u64) {
        self.0.on_timeout(instant(now_us));
    }

    pub(crate) fn next_deadline_us(&self) -> Option<u64> {
        self.0.poll_timeout().map(|t| t.as_micros())
    }

    pub(crate) fn events(&mut self, mut f: impl FnMut(ConnEvent)) {
        while let Some(e) = self.0.poll_event() {
            f(match e {
                TcpEvent::Connected => ConnEvent::Connected,
                TcpEvent::Readable => ConnEvent::Readable,
                TcpEvent::Writable => ConnEvent::Writable,
                TcpEvent::PeerClosed => ConnEvent::PeerClosed,
                TcpEvent::Closed => ConnEvent::Closed,
                TcpEvent::Reset => ConnEvent::Reset,
                TcpEvent::TimedOut => ConnEvent::TimedOut,
                TcpEvent::Refused => ConnEvent::Refused,
            });
        }
    }

    /// Hands each segment the connection wants to send to `emit` (header, payload
    /// length, and a closure that copies the payload into the frame), until `emit`
    /// refuses one (no TX room) or nothing is left.
    pub(crate) fn transmit(
        &mut self,
        now_us: u64,
        mut emit: impl FnMut(&TcpRepr<'_>, usize, &mut dyn FnMut(&mut [u8])) -> bool,
    ) {
        let now = instant(now_us);
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
    pub(crate) fn release(&mut self, now_us: u64, unread_by_app: bool) -> bool {
        self.0.release(instant(now_us), unread_by_app)
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
