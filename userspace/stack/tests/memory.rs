//! The stack's AF_XDP worker on the in-memory device, with no root and no network: a
//! client made of the `tcp` crate's own connection, over the device's far side, talks
//! to a listener of each form (a task on a flow, and a synchronous session). Every
//! frame the worker sends must parse with valid checksums, as on the wire.

mod support;

use std::time::{Duration, Instant};

use stack::{Flow, Listener, Listeners, MemoryLink, Next, Session, Stack, Wake};
use support::Client;
use tcp::tcb::{CloseReason, Event, State};
const FLOW_ECHO: u16 = 7;
const SESSION_ECHO: u16 = 8;
const LINGER: u16 = 10;
const LAST_ONE_STAYS: u16 = 11;

/// The `Wake` of the latest connection on `LAST_ONE_STAYS`: each new one wakes it.
static LATEST: std::sync::Mutex<Option<Wake>> = std::sync::Mutex::new(None);

/// Echoes, with no deadline: only a wake-up (`on_deadline`) ends it.
struct UntilWoken;

impl Session for UntilWoken {
    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, _now: Instant) -> Next {
        reply.extend_from_slice(data);
        Next::Wait(None)
    }
    fn on_deadline(&mut self, _now: Instant) -> Next {
        Next::Close
    }
}

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
        Listener::session(|_, _| Some(Box::new(Echo) as Box<dyn Session>)),
    );
    listeners.listen(
        LINGER,
        Listener::session(|_, _| Some(Box::new(Linger) as Box<dyn Session>)),
    );
    listeners.listen(
        LAST_ONE_STAYS,
        Listener::session(|_, wake| {
            // Wakes the one before (made in an earlier call, on this worker).
            if let Some(before) = LATEST.lock().unwrap().replace(wake) {
                before.wake();
            }
            Some(Box::new(UntilWoken) as Box<dyn Session>)
        }),
    );
    support::start(listeners)
}

/// Connects to `port`, sends `message`, reads the echo, closes; returns the frames the
/// worker sent.
fn echo_round_trip(link: &mut MemoryLink, server_mac: [u8; 6], port: u16, local: u16) -> usize {
    let mut c = Client::connect(link, server_mac, local, port);
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
    let mut c = Client::connect(&mut link, mac, 40002, SESSION_ECHO);
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
    let mut c = Client::connect(&mut link, mac, 40004, SESSION_ECHO);
    c.until(|t, _| t.state() == State::Established);
    let opened = Instant::now();
    c.until(|_, events| events.contains(&Event::PeerClosed));
    assert!(opened.elapsed() >= Duration::from_millis(150));
    stack.shutdown(Duration::ZERO);
}

#[test]
fn on_eof_is_heard_once_and_its_deadline_kept() {
    let (mut stack, mut link, mac) = start();
    let mut c = Client::connect(&mut link, mac, 40005, LINGER);
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
    let mut c = Client::connect(&mut link, mac, 40003, 9);
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
        Listener::session(|_, _| Some(Box::new(Amplify { owed: 0 }) as Box<dyn Session>)),
    );
    let (mut stack, mut link, mac) = support::start(listeners);
    let mut c = Client::connect(&mut link, mac, 40006, 11);
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

#[test]
fn a_wake_from_another_sessions_call_ends_a_session() {
    let (mut stack, mut link, mac) = start();
    {
        let mut first = Client::connect(&mut link, mac, 40020, LAST_ONE_STAYS);
        first.until(|t, _| t.state() == State::Established);
        assert_eq!(first.tcb.send(b"one"), 3);
        first.until(|t, _| {
            let mut b = [0u8; 8];
            t.recv(&mut b) == 3
        });
        // Left open and idle on the server: this client stops here.
    }
    // The second's session is made with the first idle: it wakes the first, whose
    // on_deadline closes it (it has no deadline of its own), and its FIN goes out.
    let mut second = Client::connect(&mut link, mac, 40021, LAST_ONE_STAYS);
    second.until(|t, _| t.state() == State::Established);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut events = Vec::new();
    while !second
        .others
        .iter()
        .any(|(port, f)| *port == 40020 && f.fin())
    {
        assert!(
            Instant::now() < deadline,
            "no FIN to the first: {:?}",
            second.others
        );
        second.pump(&mut events);
        std::thread::sleep(Duration::from_micros(200));
    }
    // The second is served, and stays until something wakes it.
    assert_eq!(second.tcb.send(b"two"), 3);
    second.until(|t, _| {
        let mut b = [0u8; 8];
        t.recv(&mut b) == 3
    });
    assert!(!second.tcb.at_eof());
    stack.shutdown(Duration::ZERO);
}
