//! `Flow`: one TCP connection as the application sees it, the Rust form of MirageOS's
//! TCP flow (docs/design.md, "The flow API"), on either backend.

use std::io;
use std::net::SocketAddrV4;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, WriteError};
use crate::kernel::KernelFlow;
use crate::xdp::flow::XdpFlow;

/// A TCP connection: read, write, writev, their no-delay forms, close (half-close) and
/// dst, with the seed's semantics. It lives on the worker that owns the connection and
/// is not `Send`.
///
/// Dropping a flow closes it as [`Flow::close`] does, except that when received bytes
/// are still unread it resets the connection, so the peer learns its data was lost
/// (RFC 1122 §4.2.2.13; the kernel's `close()` does the same).
///
/// `Flow` also implements tokio's [`AsyncRead`] and [`AsyncWrite`], so protocol
/// libraries written against them (codecs, TLS, HTTP) run over it unchanged. tokio's
/// traits rather than the `futures` crate's: they are what most of the ecosystem's
/// network libraries accept, and `tokio-util::compat` bridges to the other pair.
pub struct Flow {
    inner: Inner,
}

enum Inner {
    Kernel(KernelFlow),
    Xdp(XdpFlow),
}

impl Flow {
    pub(crate) fn kernel(flow: KernelFlow) -> Flow {
        Flow {
            inner: Inner::Kernel(flow),
        }
    }

    pub(crate) fn xdp(flow: XdpFlow) -> Flow {
        Flow {
            inner: Inner::Xdp(flow),
        }
    }

    /// Waits for data and returns at least one byte of it; `Ok(None)` (the seed's `Eof`)
    /// once the peer has closed and every byte it sent has been read, or once keepalive
    /// has declared the connection lost.
    ///
    /// ```no_run
    /// # async fn f(mut flow: stack::Flow) -> Result<(), stack::Error> {
    /// while let Some(bytes) = flow.read().await? {
    ///     println!("{} bytes", bytes.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        match &mut self.inner {
            Inner::Kernel(f) => f.read().await,
            Inner::Xdp(f) => f.read().await,
        }
    }

    /// Hands `data` to the stack for sending; waits while the send buffer is full.
    /// `Err(Closed)` once the connection is gone.
    ///
    /// ```no_run
    /// # async fn f(mut flow: stack::Flow) -> Result<(), stack::WriteError> {
    /// flow.write(bytes::Bytes::from_static(b"hello")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write(&mut self, data: Bytes) -> Result<(), WriteError> {
        match &mut self.inner {
            Inner::Kernel(f) => f.writev(std::slice::from_ref(&data)).await,
            Inner::Xdp(f) => f.writev(std::slice::from_ref(&data), false).await,
        }
    }

    /// Hands several buffers to the stack at once, to leave in as few segments as the
    /// MSS allows (one system call on the kernel backend).
    ///
    /// ```no_run
    /// # async fn f(mut flow: stack::Flow) -> Result<(), stack::WriteError> {
    /// use bytes::Bytes;
    /// flow.writev(&[Bytes::from_static(b"\x00\x05"), Bytes::from_static(b"hello")]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn writev(&mut self, bufs: &[Bytes]) -> Result<(), WriteError> {
        match &mut self.inner {
            Inner::Kernel(f) => f.writev(bufs).await,
            Inner::Xdp(f) => f.writev(bufs, false).await,
        }
    }

    /// Writes `data`, bypassing Nagle, and returns once it has been transmitted.
    ///
    /// ```no_run
    /// # async fn f(mut flow: stack::Flow) -> Result<(), stack::WriteError> {
    /// flow.write_nodelay(bytes::Bytes::from_static(b"now")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_nodelay(&mut self, data: Bytes) -> Result<(), WriteError> {
        self.writev_nodelay(std::slice::from_ref(&data)).await
    }

    /// Writes `bufs`, bypassing Nagle, and returns once they have been transmitted.
    ///
    /// ```no_run
    /// # async fn f(mut flow: stack::Flow) -> Result<(), stack::WriteError> {
    /// use bytes::Bytes;
    /// flow.writev_nodelay(&[Bytes::from_static(b"a"), Bytes::from_static(b"b")]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn writev_nodelay(&mut self, bufs: &[Bytes]) -> Result<(), WriteError> {
        match &mut self.inner {
            Inner::Kernel(f) => f.writev_nodelay(bufs).await,
            Inner::Xdp(f) => f.writev(bufs, true).await,
        }
    }

    /// Flushes what was written and sends FIN: the peer reads `Eof` after the data. The
    /// flow can still read (half-close) until the peer closes too. Unlike the seed's
    /// text, it does not wait for the peer's FIN, so a half-closed flow stays usable.
    ///
    /// ```no_run
    /// # async fn f(mut flow: stack::Flow) {
    /// flow.close().await;
    /// while let Ok(Some(_)) = flow.read().await {}
    /// # }
    /// ```
    pub async fn close(&mut self) {
        match &mut self.inner {
            Inner::Kernel(f) => f.close().await,
            Inner::Xdp(f) => f.close().await,
        }
    }

    /// The remote address and port (the seed's `dst`).
    ///
    /// ```no_run
    /// # fn f(flow: &stack::Flow) {
    /// println!("talking to {}", flow.dst());
    /// # }
    /// ```
    pub fn dst(&self) -> SocketAddrV4 {
        match &self.inner {
            Inner::Kernel(f) => f.dst(),
            Inner::Xdp(f) => f.dst(),
        }
    }

    /// The local address and port.
    pub fn src(&self) -> SocketAddrV4 {
        match &self.inner {
            Inner::Kernel(f) => f.src(),
            Inner::Xdp(f) => f.src(),
        }
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("src", &self.src())
            .field("dst", &self.dst())
            .finish()
    }
}

impl AsyncRead for Flow {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Kernel(f) => f.poll_read(cx, buf),
            Inner::Xdp(f) => f.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Flow {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Kernel(f) => f.poll_write(cx, buf),
            Inner::Xdp(f) => f.poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Kernel(f) => f.poll_flush(cx),
            // Written data is in the stack's send buffer already: nothing to flush.
            Inner::Xdp(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Kernel(f) => f.poll_shutdown(cx),
            Inner::Xdp(f) => f.poll_shutdown(),
        }
    }
}
