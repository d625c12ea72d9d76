//! What the in-memory device's tests share: a stack on one in-memory worker, and a
//! client made of the `tcp` crate's own connection driven over the device's far side.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use stack::{Listeners, MemoryConfig, MemoryLink, Stack, StackConfig};
use tcp::tcb::{Config, Event, Tcb};
use tcp::SeqNumber;
use wire::{EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 7);
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

/// A stack with `listeners` on one in-memory worker at `SERVER`: the stack, the far
/// side of its device, and its MAC.
pub fn start(listeners: Listeners) -> (Stack, MemoryLink, [u8; 6]) {
    let memory = MemoryConfig::default();
    let mac = memory.mac;
    let mut config = StackConfig::memory(memory);
    config.addrs = vec![SERVER];
    let mut stack = Stack::start(config, listeners).expect("the in-memory stack starts");
    let link = stack.take_memory_links().pop().expect("one link");
    (stack, link, mac)
}

/// A client connection over the link, in virtual lockstep with the real clock.
pub struct Client<'a> {
    pub tcb: Tcb,
    link: &'a mut MemoryLink,
    server_mac: [u8; 6],
    epoch: Instant,
    /// Frames the worker sent it.
    pub frames_in: usize,
    /// Frames the worker sent to other local ports (other connections' frames, while
    /// this one pumps the link), parsed: (destination port, the segment's flags).
    pub others: Vec<(u16, wire::tcp::TcpFlags)>,
    local: u16,
    /// How long `until` waits between pumps (zero keeps the worker busy, never idle
    /// long enough to sleep).
    pub pause: Duration,
}

impl<'a> Client<'a> {
    /// An active open from `CLIENT:local` to `SERVER:port` (ISN: the local port); the
    /// SYN leaves at the first pump.
    pub fn connect(link: &'a mut MemoryLink, server_mac: [u8; 6], local: u16, port: u16) -> Self {
        let tcb = Tcb::connect(
            Config::default(),
            SocketAddrV4::new(CLIENT, local),
            SocketAddrV4::new(SERVER, port),
            SeqNumber(u32::from(local)),
            tcp::Instant::from_micros(1),
        );
        Client {
            tcb,
            link,
            server_mac,
            epoch: Instant::now(),
            frames_in: 0,
            others: Vec::new(),
            local,
            pause: Duration::from_micros(50),
        }
    }

    fn now(&self) -> tcp::Instant {
        tcp::Instant::from_micros(self.epoch.elapsed().as_micros() as u64 + 1)
    }

    /// Moves segments both ways once; adds the events the client saw to `events`.
    pub fn pump(&mut self, events: &mut Vec<Event>) {
        let now = self.now();
        if self.tcb.poll_timeout().is_some_and(|t| t <= now) {
            self.tcb.on_timeout(now);
        }
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
        while let Some(t) = self.tcb.poll_transmit(now) {
            let header = t.header();
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
            if parsed.tcp.dst_port != self.local {
                self.others.push((parsed.tcp.dst_port, parsed.tcp.flags));
                continue;
            }
            self.tcb.on_segment(&parsed.tcp, now);
        }
        while let Some(e) = self.tcb.poll_event() {
            events.push(e);
        }
    }

    /// Pumps until `done` says so, for at most five seconds; returns the events seen.
    pub fn until(&mut self, mut done: impl FnMut(&mut Tcb, &[Event]) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&mut self.tcb, &events) {
            assert!(
                Instant::now() < deadline,
                "stuck: {:?}, events {events:?}",
                self.tcb
            );
            self.pump(&mut events);
            std::thread::sleep(self.pause);
        }
        events
    }
}
