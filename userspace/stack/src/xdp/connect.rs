//! Active opens (the seed's create_connection): next hop, local port, the handshake
//! wait, and letting go of a connect its caller abandons.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use super::frames::Path;
use super::record::Conn;
use super::shard::Shard;
use super::table::{FourTuple, Handle};
use crate::context::{Connecting, Connector};
use crate::error::Error;
use crate::listener::Keepalive;
use crate::Flow;

impl Shard {
    /// A local port for an active open to `remote` that this worker owns.
    fn pick_port(&mut self, local_ip: Ipv4Addr, remote: SocketAddrV4) -> Option<u16> {
        let span = self.ports.len();
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= self.ports.last {
                self.ports.first
            } else {
                port + 1
            };
            let tuple = FourTuple {
                local: SocketAddrV4::new(local_ip, port),
                remote,
            };
            if tuple.owner(self.workers) == self.index && self.conns.lookup(&tuple).is_none() {
                return Some(port);
            }
        }
        None
    }
}

/// Where the worker's search for a free local port starts: a random place in the range
/// (RFC 6056), so that a client started again soon does not reuse the 4-tuples of its
/// previous run while the server still holds them in TIME-WAIT (its new SYNs would meet
/// a challenge ACK and wait a second for their retransmission).
pub(super) fn first_port(ports: &super::ports::PortRange, index: usize) -> u16 {
    // Without randomness (getrandom failing) a fixed start still works.
    let offset = super::conn::random_bytes().map_or(index, |r| u32::from_ne_bytes(r) as usize);
    ports.first + (offset % ports.len().max(1)) as u16
}

/// How an AF_XDP worker opens connections: on its own shard.
pub(crate) struct XdpConnector {
    shard: Rc<RefCell<Shard>>,
    timeout: Duration,
}

impl XdpConnector {
    pub(crate) fn new(shard: Rc<RefCell<Shard>>, timeout: Duration) -> XdpConnector {
        XdpConnector { shard, timeout }
    }
}

impl Connector for XdpConnector {
    fn connect(&self, dst: SocketAddrV4, keepalive: Option<Keepalive>) -> Connecting<'_> {
        Box::pin(connect(&self.shard, dst, keepalive, self.timeout))
    }
}

/// Opens a connection from this worker (the seed's create_connection).
async fn connect(
    state: &Rc<RefCell<Shard>>,
    dst: SocketAddrV4,
    keepalive: Option<Keepalive>,
    timeout: Duration,
) -> Result<Flow, Error> {
    let (route, remote_mac) = super::nexthop_cache::resolve(*dst.ip())
        .await
        .map_err(|e| Error::Unreachable(e.to_string()))?;
    let h = {
        let mut s = state.borrow_mut();
        let local_ip = super::table::pick_source(&s.addrs, route.source)
            .ok_or_else(|| Error::Unreachable("no local address".into()))?;
        let port = s
            .pick_port(local_ip, dst)
            .ok_or_else(|| Error::Unreachable("no free local port".into()))?;
        let tuple = FourTuple {
            local: SocketAddrV4::new(local_ip, port),
            remote: dst,
        };
        let now = s.now();
        let path = Path {
            local_mac: s.mac,
            remote_mac,
            local_ip,
            remote_ip: *dst.ip(),
        };
        let tcb = s
            .tcp
            .connect(tuple.local, tuple.remote, keepalive, timeout, now);
        let h = s.conns.insert(tuple, Conn::connecting(tcb, tuple, path));
        s.after_tcp(h);
        s.mark_dirty(h);
        h
    };
    // Whatever ends this wait other than success (a failure, or the caller dropping
    // the future, say in a select! with a timeout of its own) lets the connection go.
    let mut pending = PendingConnect {
        state,
        h,
        waiting: true,
    };
    // The timeout is the connection's own timer (on the worker's wheel): it fails the
    // handshake with TimedOut, which ends this wait like a refusal does.
    std::future::poll_fn(|cx| {
        let mut s = state.borrow_mut();
        let Some(c) = s.conns.get_mut(h) else {
            return std::task::Poll::Ready(Err(Error::Refused));
        };
        if let Some(e) = c.failed {
            return std::task::Poll::Ready(Err(super::conn::close_error(e)));
        }
        if c.connected {
            return std::task::Poll::Ready(Ok(()));
        }
        c.connect_waker = Some(cx.waker().clone());
        std::task::Poll::Pending
    })
    .await?;
    pending.waiting = false;
    Ok(Flow::xdp(super::flow::XdpFlow::new(state.clone(), h)))
}

/// An active open its caller still waits for: dropped before the handshake completed,
/// it aborts the connection (a RST if the peer has our SYN) and lets go of it, so that
/// the entry and its port do not stay behind.
struct PendingConnect<'a> {
    state: &'a Rc<RefCell<Shard>>,
    h: Handle,
    waiting: bool,
}

impl Drop for PendingConnect<'_> {
    fn drop(&mut self) {
        if !self.waiting {
            return;
        }
        // Not borrowed by anyone at an await point; but never panic in a drop.
        let Ok(mut s) = self.state.try_borrow_mut() else {
            return;
        };
        if let Some(c) = s.conns.get_mut(self.h) {
            c.tcb.abort();
        }
        s.detach(self.h, false);
    }
}
