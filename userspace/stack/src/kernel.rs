//! The kernel backend: the same flow API over ordinary kernel sockets.
//!
//! Each worker is a thread pinned to its core running a single-threaded tokio runtime
//! (epoll underneath) with its own SO_REUSEPORT listener per port, so the kernel spreads
//! new connections over the workers and no state is shared between them. It is the
//! fallback where AF_XDP is unavailable and the baseline every benchmark compares with.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{KernelConfig, StackConfig};
use crate::context::{Connecting, Connector, WorkerContext};
use crate::error::{Error, StartError, WriteError};
use crate::listener::{Keepalive, Listeners};
use crate::runtime::Tasks;
use crate::workers::{Command, Commands, Workers};
use crate::Flow;

/// Bytes a read asks the kernel for at most; the buffer is reused between reads.
const READ_CHUNK: usize = 16 * 1024;

/// A flow over a kernel TCP socket.
pub(crate) struct KernelFlow {
    stream: TcpStream,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    buf: BytesMut,
    write_closed: bool,
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        // The backend only ever binds IPv4 sockets.
        SocketAddr::V6(a) => SocketAddrV4::new(
            a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
            a.port(),
        ),
    }
}

impl KernelFlow {
    pub(crate) fn new(stream: TcpStream) -> io::Result<KernelFlow> {
        Ok(KernelFlow {
            src: v4(stream.local_addr()?),
            dst: v4(stream.peer_addr()?),
            stream,
            buf: BytesMut::new(),
            write_closed: false,
        })
    }

    pub(crate) fn dst(&self) -> SocketAddrV4 {
        self.dst
    }

    pub(crate) fn src(&self) -> SocketAddrV4 {
        self.src
    }

    pub(crate) async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        if self.buf.capacity() < READ_CHUNK / 4 {
            // Reclaims the old allocation when every Bytes handed out from it is gone.
            self.buf.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(self.buf.split().freeze())),
            // Keepalive gave up: the seed reports a lost connection as Eof.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(Error::from_io(e)),
        }
    }

    pub(crate) async fn writev(&mut self, bufs: &[Bytes]) -> Result<(), WriteError> {
        if self.write_closed {
            return Err(WriteError::Closed);
        }
        let mut index = 0; // first buffer not fully written
        let mut offset = 0; // bytes of it already written
        const MAX_IOV: usize = 64;
        while index < bufs.len() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, b) in bufs[index..].iter().enumerate().take(MAX_IOV) {
                slices[n] = IoSlice::new(if i == 0 { &b[offset..] } else { &b[..] });
                n += 1;
            }
            let mut written = self
                .stream
                .write_vectored(&slices[..n])
                .await
                .map_err(WriteError::from_io)?;
            if written == 0 {
                return Err(WriteError::Closed);
            }
            while index < bufs.len() && written > 0 {
                let left = bufs[index].len() - offset;
                if written >= left {
                    written -= left;
                    index += 1;
                    offset = 0;
                } else {
                    offset += written;
                    written = 0;
                }
            }
            while index < bufs.len() && bufs[index].len() == offset {
                index += 1;
                offset = 0;
            }
        }
        Ok(())
    }

    pub(crate) async fn writev_nodelay(&mut self, bufs: &[Bytes]) -> Result<(), WriteError> {
        self.stream.set_nodelay(true).map_err(WriteError::from_io)?;
        let result = self.writev(bufs).await;
        if result.is_ok() {
            self.wait_transmitted().await;
        }
        let _ = self.stream.set_nodelay(false);
        result
    }

    /// Waits until the kernel has sent everything queued (SIOCOUTQNSD reaches zero), so
    /// that write_nodelay returns once the data is on the wire, as the seed asks. Gives
    /// up after a second: a peer with a closed window must not hang the writer forever.
    async fn wait_transmitted(&self) {
        const SIOCOUTQNSD: libc::c_ulong = 0x894b;
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut spins = 0u32;
        loop {
            let mut unsent: libc::c_int = 0;
            // SAFETY: a valid socket descriptor and an int out-pointer, as the ioctl takes.
            let rc = unsafe { libc::ioctl(self.stream.as_raw_fd(), SIOCOUTQNSD, &mut unsent) };
            if rc != 0 || unsent == 0 || Instant::now() > deadline {
                return;
            }
            spins += 1;
            if spins < 64 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    pub(crate) async fn close(&mut self) {
        if !self.write_closed {
            self.write_closed = true;
            let _ = self.stream.shutdown().await;
        }
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write_closed = true;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

fn apply_keepalive(sock: SockRef<'_>, keepalive: &Keepalive) -> io::Result<()> {
    let ka = TcpKeepalive::new()
        .with_time(keepalive.after)
        .with_interval(keepalive.interval)
        .with_retries(keepalive.probes);
    sock.set_tcp_keepalive(&ka)?;
    // Without a user timeout, unacknowledged data would keep the connection alive past
    // the probes; bound it the same way, as the seed's "eventually disconnected" asks.
    let limit = keepalive.after + keepalive.interval * keepalive.probes;
    sock.set_tcp_user_timeout(Some(limit))
}

/// Opens a connection from a kernel worker (the seed's create_connection).
pub(crate) async fn connect(
    dst: SocketAddrV4,
    keepalive: Option<Keepalive>,
    timeout: Duration,
) -> Result<Flow, Error> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(Error::from_io)?;
    if let Some(ka) = &keepalive {
        apply_keepalive(SockRef::from(&socket), ka).map_err(Error::from_io)?;
    }
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    let stream = match tokio::time::timeout(timeout, socket.connect(SocketAddr::V4(dst))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Error::from_io(e)),
        Err(_) => return Err(Error::Timeout),
    };
    Ok(Flow::kernel(
        KernelFlow::new(stream).map_err(Error::from_io)?,
    ))
}

/// A listening socket of one worker: SO_REUSEPORT, so every worker has its own and the
/// kernel balances connections between them.
fn reuseport_listener(addr: SocketAddrV4, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(addr).into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Refuses to start when a socket without SO_REUSEPORT (another program) holds the port:
/// our workers would bind beside it only if it also used SO_REUSEPORT, and then the
/// kernel would split connections between us and it.
pub(crate) fn check_port_free(addr: SocketAddrV4) -> Result<(), StartError> {
    let probe = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| StartError::Io("socket", e))?;
    probe
        .set_reuse_address(true)
        .map_err(|e| StartError::Io("setsockopt", e))?;
    match probe.bind(&SocketAddr::V4(addr).into()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Err(StartError::PortInUse(addr)),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            Err(StartError::AddressNotLocal(*addr.ip()))
        }
        Err(e) => Err(StartError::Io("bind", e)),
    }
}

/// Starts the kernel backend's workers: one per listed core (or `workers` of them),
/// each with its own SO_REUSEPORT listener on every port.
pub(crate) fn start(
    config: &StackConfig,
    kernel: &KernelConfig,
    listeners: &Listeners,
    workers: &mut Workers,
) -> Result<(), StartError> {
    let addrs = if config.addrs.is_empty() {
        vec![Ipv4Addr::UNSPECIFIED]
    } else {
        config.addrs.clone()
    };
    let count = kernel.workers.unwrap_or(config.cores.len().max(1));
    if count == 0 {
        return Err(StartError::Config("at least one worker is needed".into()));
    }
    for port in listeners.ports() {
        for addr in &addrs {
            check_port_free(SocketAddrV4::new(*addr, port))?;
        }
    }
    for index in 0..count {
        let setup = WorkerSetup {
            index,
            listeners: listeners.clone(),
            addrs: addrs.clone(),
            listen_backlog: kernel.listen_backlog,
            connect_timeout: config.connect_timeout,
        };
        workers.launch(index, &config.cores, move |commands, ready| {
            run_worker(setup, commands, ready)
        })??;
    }
    Ok(())
}

/// Everything a kernel worker thread starts from.
struct WorkerSetup {
    index: usize,
    listeners: Listeners,
    addrs: Vec<Ipv4Addr>,
    listen_backlog: i32,
    connect_timeout: Duration,
}

/// How a kernel worker opens connections.
struct KernelConnector {
    timeout: Duration,
}

impl Connector for KernelConnector {
    fn connect(&self, dst: SocketAddrV4, keepalive: Option<Keepalive>) -> Connecting<'_> {
        Box::pin(connect(dst, keepalive, self.timeout))
    }
}

/// Runs one kernel worker until told to shut down.
fn run_worker(setup: WorkerSetup, mut commands: Commands, ready: Sender<Result<(), StartError>>) {
    let WorkerSetup {
        index,
        listeners,
        addrs,
        listen_backlog,
        connect_timeout,
    } = setup;
    let runtime = match crate::runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StartError::Io("building the worker runtime", e)));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let tasks = Tasks::default();
        let accepted = Rc::new(Cell::new(0u64));
        let mut accept_tasks = Vec::new();
        match bind_all(&listeners, &addrs, listen_backlog) {
            Ok(bound) => {
                let _ = ready.send(Ok(()));
                for (listener, port) in bound {
                    let listeners = listeners.clone();
                    let tasks = tasks.clone();
                    let accepted = accepted.clone();
                    accept_tasks.push(tokio::task::spawn_local(crate::runtime::abort_on_panic(
                        "an accept loop",
                        index,
                        async move {
                            accept_loop(listener, port, &listeners, tasks, accepted).await;
                        },
                    )));
                }
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
        let connector = Rc::new(KernelConnector {
            timeout: connect_timeout,
        });
        let ctx = WorkerContext::new(index, connector);
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::Spawn(f) => {
                    let ctx = ctx.clone();
                    // Called inside the task, so that a panic in it ends only the task.
                    tasks.spawn(async move { f(ctx).await });
                }
                Command::Stats(reply) => {
                    let _ = reply.send(crate::WorkerStats {
                        accepted: accepted.get(),
                        connections: tasks.running() as u64,
                        ..Default::default()
                    });
                }
                Command::Shutdown { drain } => {
                    // Stop accepting; give the flows in progress `drain` to finish.
                    for t in &accept_tasks {
                        t.abort();
                    }
                    let deadline = tokio::time::Instant::now() + drain;
                    while tasks.running() > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    return;
                }
            }
        }
    });
}

fn bind_all(
    listeners: &Listeners,
    addrs: &[Ipv4Addr],
    backlog: i32,
) -> Result<Vec<(TcpListener, u16)>, StartError> {
    let mut bound = Vec::new();
    for port in listeners.ports() {
        for addr in addrs {
            let sa = SocketAddrV4::new(*addr, port);
            let std_listener =
                reuseport_listener(sa, backlog).map_err(|e| match e.raw_os_error() {
                    Some(libc::EADDRINUSE) => StartError::PortInUse(sa),
                    Some(libc::EADDRNOTAVAIL) => StartError::AddressNotLocal(*addr),
                    _ => StartError::Io("listen", e),
                })?;
            let listener =
                TcpListener::from_std(std_listener).map_err(|e| StartError::Io("listen", e))?;
            bound.push((listener, port));
        }
    }
    Ok(bound)
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    listeners: &Listeners,
    tasks: Tasks,
    accepted: Rc<Cell<u64>>,
) {
    let Some(l) = listeners.get(port) else { return };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the listener stays.
                tracing::warn!(port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Some(ka) = &l.keepalive {
            if let Err(e) = apply_keepalive(SockRef::from(&stream), ka) {
                tracing::warn!(port, error = %e, "setting keepalive failed");
            }
        }
        let flow = match KernelFlow::new(stream) {
            Ok(f) => Flow::kernel(f),
            Err(_) => continue, // the peer is already gone
        };
        accepted.set(accepted.get() + 1);
        let handler = l.handler.clone();
        // The handler is called inside the task: a panic in it ends that task only.
        tasks.spawn(async move { handler(flow).await });
    }
}
