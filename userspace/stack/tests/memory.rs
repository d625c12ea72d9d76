//! The stack's AF_XDP worker on the in-memory device, with no root and no network: a
//! client made of the `tcp` crate's own connection, over the device's far side, talks
//! to a listener of each form (a task on a flow, and a synchronous session). Every
//! frame the worker sends must parse with valid checksums, as on the wire.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use stack::{
    Flow, Listener, Listeners, MemoryConfig, MemoryLink, Next, Session, Stack, StackConfig,
};
use tcp::tcb::{CloseReason, Config, Event, State, Tcb};
use tcp::SeqNumber;
use wire::{EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 7);
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];
const FLOW_ECHO: u16 = 7;
const SESSION_ECHO: u16 = 8;
const LINGER: u16 = 10;

/// How many times `Linger` heard the peer's end.
static EOFS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Answers the peer's FIN with "bye" and 50 ms more before it closes.
struct Linger;

impl Session for Linger {
    fn on_data(&mut self, _data: &[u8], reply: &mut Vec<u8>, _now: Instant) -> Next {
        reply.extend_from_slice(b"ok");
        Next::Wait(None)
    }
    fn on_deadline(&mut self, _now: Instant) -> Next {
        Next::Close
    }
    fn on_eof(&mut self, reply: &mut Vec<u8>, now: Instant) -> Next {
        EOFS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Written after the peer's FIN (a half-close allows it): the peer's ACK of it
        // wakes the connection again, which must not be a second end.
        reply.extend_from_slice(b"bye");
        Next::Wait(Some(now + Duration::from_millis(50)))
    }
}

/// Echoes each read, closes after 200 ms of silence (from the start, then from each
/// read) or at the peer's FIN.
struct Echo;

impl Session for Echo {
    fn on_start(&mut self, now: Instant) -> Next {
        Next::Wait(Some(now + Duration::from_millis(200)))
    }
    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, now: Instant) -> Next {
        reply.extend_from_slice(data);
        Next::Wait(Some(now + Duration::from_millis(200)))
    }
    fn on_deadline(&mut self, _now: Instant) -> Next {
        Next::Close
    }
}

fn start() -> (Stack, MemoryLink, [u8; 6]) {
    let mut listeners = Listeners::new();
    listeners.listen(
        FLOW_ECHO,
        Listener::new(|mut flow: Flow| async move {
            while let Ok(Some(data)) = flow.read().await {
                if flow.write(data).await.is_err() {
                    break;
                }
            }
            flow.close().await;
        }),
    );
    listeners.listen(
        SESSION_ECHO,
        Listener::session(|_| Some(Box::new(Echo) as Box<dyn Session>)),
    );
    listeners.listen(
        LINGER,
        Listener::session(|_| Some(Box::new(Linger) as Box<dyn Session>)),
    );
    let memory = MemoryConfig::default();
    let mac = memory.mac;
    let mut config = StackConfig::memory(memory);
    config.addrs = vec![SERVER];
    let mut stack = Stack::start(config, listeners).expect("the in-memory stack starts");
    let link = stack.take_memory_links().pop().expect("one link");
    (stack, link, mac)
}

/// A client connection over the link, in virtual lockstep with the real clock.
struct Client<'a> {
    tcb: Tcb,
    link: &'a mut MemoryLink,
    server_mac: [u8; 6],
    epoch: Instant,
    frames_in: usize,
}

impl Client<'_> {
    fn now(&self) -> tcp::Instant {
        tcp::Instant::from_micros(self.epoch.elapsed().as_micros() as u64 + 1)
    }

    /// Moves segments both ways once; returns the events the client saw.
    fn pump(&mut self, events: &mut Vec<Event>) {
        let now = self.now();
        if self.tcb.poll_timeout().is_some_and(|t| t <= now) {
            self.tcb.on_timeout(now);
        }
        while let Some(t) = self.tcb.poll_transmit(now) {
            let header = t.header();
            let eth = EthernetRepr {
                src_addr: EthernetAddress(CLIENT_MAC),
                dst_addr: EthernetAddress(self.server_mac),
                ethertype: EtherType::Ipv4,
            };
            let ip = Ipv4Repr {
                src_addr: CLIENT,
                dst_addr: SERVER,
                protocol: IpProtocol::Tcp,
                payload_len: 0,
                ttl: 64,
                ident: 0,
                dont_frag: true,
            };
            let tcb = &self.tcb;
            let sent = self.link.send_with(|buf| {
                wire::frame::emit_tcp_ipv4_with(buf, &eth, &ip, &header, t.payload_len(), |dst| {
                    tcb.write_payload(&t, dst)
                })
                .expect("a frame fits")
            });
            assert!(sent, "the link has room for a handful of frames");
        }
        self.link.flush();
        let mut frames = Vec::new();
        self.link.recv(64, |f| frames.push(f.to_vec()));
        for f in &frames {
            self.frames_in += 1;
            let parsed = wire::frame::parse_tcp_ipv4(f, wire::ChecksumMode::Verify)
                .expect("the worker's frames parse, checksums valid");
            assert_eq!(parsed.eth.dst_addr.0, CLIENT_MAC);
            assert_eq!((parsed.ip.src_addr, parsed.ip.dst_addr), (SERVER, CLIENT));
            self.tcb.on_segment(&parsed.tcp, now);
        }
        while let Some(e) = self.tcb.poll_event() {
            events.push(e);
        }
    }

    /// Pumps until `done` says so, for at most five seconds.
    fn until(&mut self, mut done: impl FnMut(&mut Tcb, &[Event]) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&mut self.tcb, &events) {
            assert!(
                Instant::now() < deadline,
                "stuck: {:?}, events {events:?}",
                self.tcb
            );
            self.pump(&mut events);
            std::thread::sleep(Duration::from_micros(50));
        }
        events
    }
}

/// Connects to `port`, sends `message`, reads the echo, closes; returns the frames the
/// worker sent.
fn echo_round_trip(link: &mut MemoryLink, server_mac: [u8; 6], port: u16, local: u16) -> usize {
    let epoch = Instant::now();
    let tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, local),
        SocketAddrV4::new(SERVER, port),
        SeqNumber(1000 + u32::from(local)),
        tcp::Instant::from_micros(1),
    );
    let mut c = Client {
        tcb,
        link,
        server_mac,
        epoch,
        frames_in: 0,
    };
    c.until(|t, _| t.state() == State::Established);
    let message: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(c.tcb.send(&message), message.len());
    let mut got = Vec::new();
    c.until(|t, _| {
        let mut buf = [0u8; 4096];
        let n = t.recv(&mut buf);
        got.extend_from_slice(&buf[..n]);
        got.len() >= message.len()
    });
    assert_eq!(got, message, "the echo is the message");
    c.tcb.close();
    let events = c.until(|t, _| t.state() == State::TimeWait || t.is_closed());
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Closed(r) if r.is_failure())),
        "closed cleanly: {events:?}"
    );
    c.frames_in
}

#[test]
fn both_listener_forms_serve_over_the_in_memory_device() {
    let (mut stack, mut link, mac) = start();
    let frames = echo_round_trip(&mut link, mac, FLOW_ECHO, 40000);
    assert!(frames >= 4, "SYN-ACK, data, FIN at least: {frames}");
    echo_round_trip(&mut link, mac, SESSION_ECHO, 40001);
    let stats = stack.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].accepted, 2, "{:?}", stats[0]);
    stack.shutdown(Duration::ZERO);
}

#[test]
fn a_session_deadline_closes_an_idle_connection() {
    let (mut stack, mut link, mac) = start();
    let tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 40002),
        SocketAddrV4::new(SERVER, SESSION_ECHO),
        SeqNumber(5),
        tcp::Instant::from_micros(1),
    );
    let mut c = Client {
        tcb,
        link: &mut link,
        server_mac: mac,
        epoch: Instant::now(),
        frames_in: 0,
    };
    c.until(|t, _| t.state() == State::Established);
    assert_eq!(c.tcb.send(b"ping"), 4);
    let opened = Instant::now();
    // The echo, then silence: the session's 200 ms deadline closes the connection.
    let events = c.until(|_, events| events.contains(&Event::PeerClosed));
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(150),
        "closed after {after:?}"
    );
    let mut buf = [0u8; 8];
    assert_eq!(c.tcb.recv(&mut buf), 4);
    assert_eq!(&buf[..4], b"ping");
    c.tcb.close();
    let events2 = c.until(|t, _| t.state() == State::TimeWait || t.is_closed());
    assert!(
        !events
            .iter()
            .chain(&events2)
            .any(|e| *e == Event::Closed(CloseReason::Reset)),
        "{events:?} {events2:?}"
    );
    stack.shutdown(Duration::ZERO);
}

#[test]
fn a_silent_connection_is_closed_at_the_sessions_first_deadline() {
    let (mut stack, mut link, mac) = start();
    let tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 40004),
        SocketAddrV4::new(SERVER, SESSION_ECHO),
        SeqNumber(5),
        tcp::Instant::from_micros(1),
    );
    let mut c = Client {
        tcb,
        link: &mut link,
        server_mac: mac,
        epoch: Instant::now(),
        frames_in: 0,
    };
    c.until(|t, _| t.state() == State::Established);
    let opened = Instant::now();
    c.until(|_, events| events.contains(&Event::PeerClosed));
    assert!(opened.elapsed() >= Duration::from_millis(150));
    stack.shutdown(Duration::ZERO);
}

#[test]
fn on_eof_is_heard_once_and_its_deadline_kept() {
    let (mut stack, mut link, mac) = start();
    let tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 40005),
        SocketAddrV4::new(SERVER, LINGER),
        SeqNumber(5),
        tcp::Instant::from_micros(1),
    );
    let mut c = Client {
        tcb,
        link: &mut link,
        server_mac: mac,
        epoch: Instant::now(),
        frames_in: 0,
    };
    c.until(|t, _| t.state() == State::Established);
    assert_eq!(c.tcb.send(b"hi"), 2);
    c.until(|t, _| t.recv_available() == 2);
    c.tcb.close();
    let closed = Instant::now();
    // Our FIN is acknowledged at once; the server's comes at its deadline, 50 ms on,
    // however many segments (ACKs, window updates) reach it meanwhile.
    c.until(|_, events| events.contains(&Event::PeerClosed));
    assert!(closed.elapsed() >= Duration::from_millis(40));
    let mut buf = [0u8; 16];
    let n = c.tcb.recv(&mut buf);
    assert_eq!(&buf[..n], b"okbye");
    assert_eq!(EOFS.load(std::sync::atomic::Ordering::SeqCst), 1);
    stack.shutdown(Duration::ZERO);
}

#[test]
fn a_segment_to_no_listener_is_reset() {
    let (mut stack, mut link, mac) = start();
    let tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 40003),
        SocketAddrV4::new(SERVER, 9),
        SeqNumber(5),
        tcp::Instant::from_micros(1),
    );
    let mut c = Client {
        tcb,
        link: &mut link,
        server_mac: mac,
        epoch: Instant::now(),
        frames_in: 0,
    };
    let events = c.until(|t, _| t.is_closed());
    assert!(
        events.contains(&Event::Closed(CloseReason::Refused)),
        "{events:?}"
    );
    stack.shutdown(Duration::ZERO);
}

/// Replies to each byte with a thousand, in parts of at most 64 KiB (`Next::More`).
struct Amplify {
    owed: usize,
}

impl Session for Amplify {
    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, _now: Instant) -> Next {
        self.owed += data.len() * 1000;
        let part = self.owed.min(64 * 1024);
        reply.resize(part, b'a');
        self.owed -= part;
        if self.owed > 0 {
            Next::More
        } else {
            Next::Wait(None)
        }
    }
    fn on_deadline(&mut self, _now: Instant) -> Next {
        Next::Close
    }
}

#[test]
fn a_session_replies_in_parts_with_more() {
    let mut listeners = Listeners::new();
    listeners.listen(
        11,
        Listener::session(|_| Some(Box::new(Amplify { owed: 0 }) as Box<dyn Session>)),
    );
    let memory = MemoryConfig::default();
    let mac = memory.mac;
    let mut config = StackConfig::memory(memory);
    config.addrs = vec![SERVER];
    let mut stack = Stack::start(config, listeners).unwrap();
    let mut link = stack.take_memory_links().pop().unwrap();
    let tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 40006),
        SocketAddrV4::new(SERVER, 11),
        SeqNumber(5),
        tcp::Instant::from_micros(1),
    );
    let mut c = Client {
        tcb,
        link: &mut link,
        server_mac: mac,
        epoch: Instant::now(),
        frames_in: 0,
    };
    c.until(|t, _| t.state() == State::Established);
    assert_eq!(c.tcb.send(&[0u8; 300]), 300);
    // 300 000 bytes back: more than the send buffer and the cap, so the parts go out
    // as the client reads.
    let mut got = 0;
    c.until(|t, _| {
        let mut buf = [0u8; 8192];
        got += t.recv(&mut buf);
        got >= 300_000
    });
    assert_eq!(got, 300_000);
    stack.shutdown(Duration::ZERO);
}
