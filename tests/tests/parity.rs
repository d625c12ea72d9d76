//! The in-memory device's frames are the AF_XDP path's frames. One scripted client (the
//! `tcp` crate's connection with a fixed ISN, in lockstep) runs the same exchange
//! against a session listener twice: over veth through AF_XDP (its frames sent and
//! captured on a packet socket in the peer namespace) and over the in-memory device.
//! The server's segments must match field for field, once what differs by design is set
//! aside: the addresses, the server's ISN (keyed, random) and the timestamps' values.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use e2e::{require_root, PacketSocket, Topology, TopologyConfig};
use stack::{
    Listener, Listeners, MemoryConfig, MemoryLink, Next, Session, Stack, StackConfig, XdpConfig,
};
use tcp::tcb::{Config, State, Tcb};
use tcp::SeqNumber;
use wire::{ChecksumMode, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr};

const PORT: u16 = 7100;
/// Not an address of the peer namespace: its kernel ignores the server's replies, which
/// only the packet socket sees.
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 77, 7);
const CLIENT_ISN: u32 = 4242;

/// Echoes each read; closes at the peer's FIN.
struct Echo;

impl Session for Echo {
    fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, _now: Instant) -> Next {
        reply.extend_from_slice(data);
        Next::Wait(None)
    }
    fn on_deadline(&mut self, _now: Instant) -> Next {
        Next::Close
    }
}

fn listeners() -> Listeners {
    let mut l = Listeners::new();
    l.listen(
        PORT,
        Listener::session(|_, _| Some(Box::new(Echo) as Box<dyn Session>)),
    );
    l
}

/// Frames to the server and from it.
trait Wire {
    fn send(&mut self, frame: &[u8]);
    fn recv(&mut self, frames: &mut Vec<Vec<u8>>);
}

impl Wire for MemoryLink {
    fn send(&mut self, frame: &[u8]) {
        assert!(self.send_with(|buf| {
            buf[..frame.len()].copy_from_slice(frame);
            frame.len()
        }));
        self.flush();
    }
    fn recv(&mut self, frames: &mut Vec<Vec<u8>>) {
        MemoryLink::recv(self, 64, |f| frames.push(f.to_vec()));
    }
}

impl Wire for PacketSocket {
    fn send(&mut self, frame: &[u8]) {
        PacketSocket::send(self, frame);
    }
    fn recv(&mut self, frames: &mut Vec<Vec<u8>>) {
        PacketSocket::recv(self, frames);
    }
}

/// A server segment with what differs by design set aside.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    flags: u16,
    seq_from_isn: u32,
    ack: Option<u32>,
    window: u16,
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    timestamps: bool,
    payload: Vec<u8>,
    ttl: u8,
    dont_frag: bool,
    ident: u16,
}

/// Runs the client's script over `wire`; returns the server's segments, in order.
fn exchange(
    wire: &mut dyn Wire,
    server: SocketAddrV4,
    server_mac: [u8; 6],
    client_mac: [u8; 6],
) -> Vec<Seen> {
    let mut clock = 1_000u64;
    let mut tcb = Tcb::connect(
        Config::default(),
        SocketAddrV4::new(CLIENT, 40100),
        server,
        SeqNumber(CLIENT_ISN),
        tcp::Instant::from_millis(clock),
    );
    let eth = EthernetRepr {
        src_addr: EthernetAddress(client_mac),
        dst_addr: EthernetAddress(server_mac),
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src_addr: CLIENT,
        dst_addr: *server.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: 0,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    let mut seen = Vec::new();
    let mut server_isn = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    // One step of the script: send what the client has, then wait for the server's
    // answer to it (or a short while, for segments that call for none).
    let mut step = |tcb: &mut Tcb, seen: &mut Vec<Seen>, expect_reply: bool| {
        clock += 1;
        let now = tcp::Instant::from_millis(clock);
        while let Some(t) = tcb.poll_transmit(now) {
            let mut buf = [0u8; 2048];
            let n = wire::frame::emit_tcp_ipv4_with(
                &mut buf,
                &eth,
                &ip,
                &t.header(),
                t.payload_len(),
                |d| tcb.write_payload(&t, d),
            )
            .unwrap();
            wire.send(&buf[..n]);
        }
        let waited = Instant::now();
        loop {
            assert!(Instant::now() < deadline, "the exchange stalled: {tcb:?}");
            let mut frames = Vec::new();
            wire.recv(&mut frames);
            let mut got = false;
            for f in &frames {
                let Ok(p) = wire::frame::parse_tcp_ipv4(f, ChecksumMode::Verify) else {
                    continue;
                };
                if p.ip.src_addr != *server.ip() || p.ip.dst_addr != CLIENT {
                    continue;
                }
                got = true;
                let isn = *server_isn.get_or_insert(p.tcp.seq_number);
                seen.push(Seen {
                    flags: p.tcp.flags.bits(),
                    seq_from_isn: p.tcp.seq_number.wrapping_sub(isn),
                    ack: p.tcp.ack_number,
                    window: p.tcp.window_len,
                    mss: p.tcp.max_seg_size,
                    window_scale: p.tcp.window_scale,
                    sack_permitted: p.tcp.sack_permitted,
                    timestamps: p.tcp.timestamp.is_some(),
                    payload: p.tcp.payload.to_vec(),
                    ttl: p.ip.ttl,
                    dont_frag: p.ip.dont_frag,
                    ident: p.ip.ident,
                });
                tcb.on_segment(&p.tcp, now);
            }
            let quiet =
                waited.elapsed() > Duration::from_millis(if expect_reply { 2000 } else { 100 });
            if (got && expect_reply) || quiet {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    step(&mut tcb, &mut seen, true); // SYN -> SYN-ACK
    assert_eq!(tcb.state(), State::Established, "{seen:?}");
    step(&mut tcb, &mut seen, false); // the handshake's ACK
    assert_eq!(tcb.send_nodelay(b"parity check"), 12);
    step(&mut tcb, &mut seen, true); // data -> the echo
    let mut echo = [0u8; 32];
    assert_eq!(tcb.recv(&mut echo), 12);
    tcb.close();
    step(&mut tcb, &mut seen, true); // FIN -> the server's FIN
    step(&mut tcb, &mut seen, false); // the last ACK
    seen
}

#[test]
fn the_in_memory_device_sends_what_af_xdp_sends() {
    require_root!();
    let topo = Topology::create(&TopologyConfig::default()).expect("topology");
    let (server_ip, iface) = (topo.server_ip, topo.server_if.clone());
    let mut xdp_stack = topo
        .run_in(&topo.server_ns.clone(), move || {
            let mut config = StackConfig::xdp(XdpConfig::new(iface));
            config.addrs = vec![server_ip];
            Stack::start(config, listeners())
        })
        .unwrap()
        .expect("the AF_XDP stack starts");
    let peer_if = topo.peer_if.clone();
    let mut packets = topo
        .run_in(&topo.peer_ns.clone(), move || PacketSocket::open(&peer_if))
        .unwrap();
    let server = SocketAddrV4::new(topo.server_ip, PORT);
    let on_xdp = exchange(&mut packets, server, topo.server_mac, topo.peer_mac);
    xdp_stack.shutdown(Duration::ZERO);

    let memory = MemoryConfig::default();
    let mac = memory.mac;
    let mut config = StackConfig::memory(memory);
    config.addrs = vec![topo.server_ip];
    let mut mem_stack = Stack::start(config, listeners()).expect("the in-memory stack starts");
    let mut link = mem_stack.take_memory_links().pop().unwrap();
    let on_memory = exchange(&mut link, server, mac, topo.peer_mac);
    mem_stack.shutdown(Duration::ZERO);

    assert!(
        on_xdp.len() >= 3,
        "SYN-ACK, the echo and a FIN at least: {on_xdp:?}"
    );
    assert!(
        on_xdp.iter().any(|s| s.payload == b"parity check"),
        "the echo: {on_xdp:?}"
    );
    assert!(
        on_xdp.iter().any(|s| s.flags & 0x01 != 0),
        "the server's FIN: {on_xdp:?}"
    );
    assert_eq!(on_xdp, on_memory);
}
