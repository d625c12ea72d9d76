//! A flow over the AF_XDP backend: a handle to a connection in its worker's table.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::ReadBuf;

use super::shard::Shard;
use super::table::Handle;
use crate::error::{Error, WriteError};
use tcp::tcb::CloseReason;

/// Bytes a read hands out at most; the buffer is reused between reads.
const READ_CHUNK: usize = 16 * 1024;

pub(crate) struct XdpFlow {
    state: Rc<RefCell<Shard>>,
    h: Handle,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    buf: BytesMut,
    closed: bool,
}

impl XdpFlow {
    pub(crate) fn new(state: Rc<RefCell<Shard>>, h: Handle) -> XdpFlow {
        let (src, dst) = {
            let mut s = state.borrow_mut();
            match s.conns.get_mut(h) {
                Some(c) => (c.tuple.local, c.tuple.remote),
                None => (
                    SocketAddrV4::new(0.into(), 0),
                    SocketAddrV4::new(0.into(), 0),
                ),
            }
        };
        XdpFlow {
            state,
            h,
            src,
            dst,
            buf: BytesMut::new(),
            closed: false,
        }
    }

    pub(crate) fn src(&self) -> SocketAddrV4 {
        self.src
    }

    pub(crate) fn dst(&self) -> SocketAddrV4 {
        self.dst
    }

    /// Moves received bytes into `self.buf`; Ready(Ok(true)) with data, Ready(Ok(false))
    /// at Eof, Pending when there is nothing yet.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Error>> {
        let mut s = self.state.borrow_mut();
        let Some(c) = s.conns.get_mut(self.h) else {
            return Poll::Ready(Ok(false));
        };
        let n = c.tcb.recv_into(&mut self.buf, READ_CHUNK);
        if n > 0 {
            // Reading may open the window enough to announce it.
            if c.tcb.wants_to_send() {
                let h = self.h;
                s.mark_dirty(h);
            }
            return Poll::Ready(Ok(true));
        }
        match c.failed {
            Some(CloseReason::Reset) => return Poll::Ready(Err(Error::Reset)),
            // Keepalive gave up: the seed reports a lost connection as Eof.
            Some(_) => return Poll::Ready(Ok(false)),
            None => {}
        }
        if c.tcb.at_eof() {
            return Poll::Ready(Ok(false));
        }
        c.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        match poll_fn(|cx| self.poll_fill(cx)).await? {
            true => Ok(Some(self.buf.split().freeze())),
            false => Ok(None),
        }
    }

    /// Queues as much of `data` as the send buffer takes; Pending (with the waker kept)
    /// when it takes nothing.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
        nodelay: bool,
    ) -> Poll<Result<usize, WriteError>> {
        if self.closed {
            return Poll::Ready(Err(WriteError::Closed));
        }
        let mut s = self.state.borrow_mut();
        let h = self.h;
        let Some(c) = s.conns.get_mut(h) else {
            return Poll::Ready(Err(WriteError::Closed));
        };
        if c.failed.is_some() || !c.tcb.can_send() {
            return Poll::Ready(Err(WriteError::Closed));
        }
        let n = c.tcb.send(data, nodelay);
        if n == 0 {
            c.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        s.mark_dirty(h);
        Poll::Ready(Ok(n))
    }

    pub(crate) async fn writev(&mut self, bufs: &[Bytes], nodelay: bool) -> Result<(), WriteError> {
        for b in bufs {
            let mut at = 0;
            while at < b.len() {
                at += poll_fn(|cx| self.poll_send(cx, &b[at..], nodelay)).await?;
            }
        }
        if nodelay {
            // Returns once everything queued has left (the seed's write_nodelay).
            poll_fn(|cx| {
                let mut s = self.state.borrow_mut();
                let Some(c) = s.conns.get_mut(self.h) else {
                    return Poll::Ready(Err(WriteError::Closed));
                };
                if c.failed.is_some() {
                    return Poll::Ready(Err(WriteError::Closed));
                }
                if c.tcb.unsent() == 0 {
                    return Poll::Ready(Ok(()));
                }
                c.write_waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut s = self.state.borrow_mut();
        let h = self.h;
        if let Some(c) = s.conns.get_mut(h) {
            c.tcb.close();
        }
        s.mark_dirty(h);
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            match self.poll_fill(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, e)))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.buf.len().min(out.remaining());
        out.put_slice(&self.buf.split_to(n));
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, data, false)
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    pub(crate) fn poll_shutdown(&mut self) -> Poll<io::Result<()>> {
        if !self.closed {
            self.closed = true;
            let mut s = self.state.borrow_mut();
            let h = self.h;
            if let Some(c) = s.conns.get_mut(h) {
                c.tcb.close();
            }
            s.mark_dirty(h);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for XdpFlow {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.try_borrow_mut() {
            s.detach(self.h, !self.buf.is_empty());
        }
    }
}
