//! The flow API on the kernel backend over loopback: no privileges needed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener as StdListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use stack::{
    BackendConfig, Bytes, Error, Flow, KernelConfig, Listener, Listeners, Stack, StackConfig,
    StartError, WriteError,
};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config() -> StackConfig {
    StackConfig {
        backend: BackendConfig::Kernel(KernelConfig {
            workers: Some(2),
            ..KernelConfig::default()
        }),
        addrs: vec![Ipv4Addr::LOCALHOST],
        ..StackConfig::kernel()
    }
}

fn echo() -> Listener {
    Listener::new(|mut flow: Flow| async move {
        while let Ok(Some(data)) = flow.read().await {
            if flow.write(data).await.is_err() {
                return;
            }
        }
        flow.close().await;
    })
}

#[test]
fn echo_and_half_close_with_a_kernel_client() {
    let port = free_port();
    let mut listeners = Listeners::new();
    listeners.listen(port, echo());
    let mut stack = Stack::start(config(), listeners).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let writer = {
        let mut c = c.try_clone().unwrap();
        let payload = payload.clone();
        std::thread::spawn(move || {
            c.write_all(&payload).unwrap();
            // Half-close: the server still has our data to echo, then it closes too.
            c.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got, payload);
    stack.shutdown(Duration::from_secs(1));
}

#[test]
fn connect_writev_nodelay_and_errors() {
    let port = free_port();
    let server = StdListener::bind(("127.0.0.1", port)).unwrap();
    let closed_port = free_port();
    let mut stack = Stack::start(config(), Listeners::new()).unwrap();
    let (tx, rx) = mpsc::channel();
    stack
        .spawn(1, move |ctx| async move {
            let refused = ctx
                .connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, closed_port), None)
                .await;
            let mut flow = ctx
                .connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), None)
                .await
                .unwrap();
            let dst = flow.dst();
            flow.writev(&[
                Bytes::from_static(b"one "),
                Bytes::from_static(b""),
                Bytes::from_static(b"two "),
            ])
            .await
            .unwrap();
            flow.write_nodelay(Bytes::from_static(b"three"))
                .await
                .unwrap();
            flow.close().await;
            let after_close = flow.write(Bytes::from_static(b"late")).await;
            let reply = flow.read().await.unwrap();
            let eof = flow.read().await.unwrap();
            tx.send((
                refused.err().map(|e| e.to_string()),
                dst,
                matches!(after_close, Err(WriteError::Closed)),
                reply,
                eof,
            ))
            .unwrap();
        })
        .unwrap();
    let (mut conn, _) = server.accept().unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap(); // ends at our FIN
    assert_eq!(got, b"one two three");
    conn.write_all(b"bye").unwrap();
    drop(conn);
    let (refused, dst, closed, reply, eof) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        refused.as_deref(),
        Some(Error::Refused.to_string().as_str())
    );
    assert_eq!(dst, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    assert!(closed, "write after close must be Err(Closed)");
    assert_eq!(reply.as_deref(), Some(&b"bye"[..]));
    assert!(eof.is_none());
    stack.shutdown(Duration::from_secs(1));
}

#[test]
fn a_port_served_by_another_program_is_refused_at_start() {
    let other = StdListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    let mut listeners = Listeners::new();
    listeners.listen(port, echo());
    let err = Stack::start(config(), listeners).unwrap_err();
    assert!(
        matches!(err, StartError::PortInUse(a) if a.port() == port),
        "{err}"
    );
    assert!(err.to_string().contains("already in use"));
}

#[test]
fn an_address_we_do_not_have_is_refused_at_start() {
    let mut listeners = Listeners::new();
    listeners.listen(free_port(), echo());
    let cfg = StackConfig {
        addrs: vec![Ipv4Addr::new(198, 18, 99, 99)],
        ..config()
    };
    let err = Stack::start(cfg, listeners).unwrap_err();
    assert!(matches!(err, StartError::AddressNotLocal(_)), "{err}");
}

/// Replies to anything with 8 MiB and closes; the deadline is 300 ms from the start.
struct Flood;

impl stack::Session for Flood {
    fn on_start(&mut self, now: std::time::Instant) -> stack::Next {
        stack::Next::Wait(Some(now + Duration::from_millis(300)))
    }
    fn on_data(
        &mut self,
        _data: &[u8],
        reply: &mut Vec<u8>,
        _now: std::time::Instant,
    ) -> stack::Next {
        reply.resize(8 << 20, b'x');
        stack::Next::Close
    }
    fn on_deadline(&mut self, _now: std::time::Instant) -> stack::Next {
        stack::Next::Close
    }
}

#[test]
fn a_session_closing_with_a_reply_nobody_reads_is_bounded_by_its_deadline() {
    let port = free_port();
    let mut listeners = Listeners::new();
    listeners.listen(
        port,
        Listener::session(|_, _| Some(Box::new(Flood) as Box<dyn stack::Session>)),
    );
    let mut stack = Stack::start(config(), listeners).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"?").unwrap();
    // Read nothing for a second: the server's write stalls on our full window, and the
    // session's last deadline (300 ms) must end the connection, not the write's end.
    std::thread::sleep(Duration::from_secs(1));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let ended = match c.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        ended,
        "the connection was not ended ({} bytes read)",
        sink.len()
    );
    assert!(
        sink.len() < 8 << 20,
        "the whole reply could not have been sent"
    );
    stack.shutdown(Duration::ZERO);
}
