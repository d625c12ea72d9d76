//! The AF_XDP datapath end to end, with the Linux kernel in the peer namespace as the
//! independent judge: owned SYNs reach our RX rings, frames we build reach the peer's
//! kernel (which answers them), and what we do not own keeps working through the kernel.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e::{require_root, Topology, TopologyConfig};
use wire::frame::{emit_tcp_ipv4, parse_tcp_ipv4};
use wire::{
    ChecksumMode, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, TcpFlags, TcpRepr,
};
use xsk::{AttachMode, RxAction, SteeringCounters, XdpProgram, XskConfig, XskSocket};

const SERVICE_PORT: u16 = 7000;

fn topology(queues: u32) -> Topology {
    Topology::create(&TopologyConfig {
        queues,
        ..Default::default()
    })
    .expect("building the veth topology")
}

/// Attaches the program to the server side, binds a socket on every queue and steers
/// `ports` of the server address. Runs on a thread inside the server namespace.
fn attach_all(iface: &str, addr: Ipv4Addr, ports: &[u16]) -> (XdpProgram, Vec<XskSocket>) {
    let mut program = XdpProgram::attach(iface, AttachMode::Auto).expect("attach");
    let queues = xsk::iface::rx_queue_count(iface).expect("queue count");
    let config = XskConfig {
        frame_count: 2048,
        ring_size: 512,
        ..XskConfig::default()
    };
    let sockets: Vec<XskSocket> = (0..queues)
        .map(|q| {
            let s = XskSocket::bind(iface, q, &config).expect("bind");
            program.register_socket(&s).expect("register");
            s
        })
        .collect();
    for &port in ports {
        program.add_service(addr, port).expect("add service");
    }
    (program, sockets)
}

fn syn_reaches_rx_ring(queues: u32) {
    const FLOWS: usize = 24;
    let topo = topology(queues);
    let (iface, server_ip) = (topo.server_if.clone(), topo.server_ip);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = topo
        .spawn_in_server(move || {
            let (program, mut sockets) = attach_all(&iface, server_ip, &[SERVICE_PORT]);
            assert_eq!(sockets.len() as u32, queues);
            ready_tx.send(()).unwrap();
            // source port -> queue it arrived on
            let mut seen: HashMap<u16, u32> = HashMap::new();
            let deadline = Instant::now() + Duration::from_secs(15);
            while seen.len() < FLOWS && Instant::now() < deadline {
                for s in sockets.iter_mut() {
                    let queue = s.queue();
                    s.recv(64, |frame| {
                        if let Ok(f) = parse_tcp_ipv4(frame, ChecksumMode::Verify) {
                            if f.tcp.dst_port == SERVICE_PORT
                                && f.tcp.flags.syn()
                                && f.tcp.ack_number.is_none()
                            {
                                seen.insert(f.tcp.src_port, queue);
                            }
                        }
                        RxAction::Recycle
                    });
                    s.refill();
                }
            }
            let _ = done_rx.recv_timeout(Duration::from_secs(1));
            let stats: Vec<_> = sockets
                .iter()
                .map(|s| (s.stats(), s.kernel_stats().unwrap()))
                .collect();
            (seen, program.counters().unwrap(), stats)
        })
        .unwrap();
    ready_rx.recv().unwrap();

    // The peer's kernel opens FLOWS connections; their SYNs are never answered (we only
    // count them), so each connect times out, and that is fine.
    let target = SocketAddr::V4(SocketAddrV4::new(server_ip, SERVICE_PORT));
    let clients: Vec<_> = (0..FLOWS)
        .map(|_| {
            topo.spawn_in_peer(move || TcpStream::connect_timeout(&target, Duration::from_secs(3)))
                .unwrap()
        })
        .collect();
    let (seen, counters, stats) = server.join().unwrap();
    let _ = done_tx.send(());
    for c in clients {
        assert!(
            c.join().unwrap().is_err(),
            "a connect succeeded: the kernel answered a SYN we own"
        );
    }
    assert_eq!(
        seen.len(),
        FLOWS,
        "SYNs seen from {} of {FLOWS} flows; counters {counters:?}; sockets {stats:?}",
        seen.len()
    );
    assert_eq!(counters.no_socket, 0, "{counters:?}");
    assert!(counters.redirected >= FLOWS as u64, "{counters:?}");
    let mut per_queue = vec![0; queues as usize];
    for q in seen.values() {
        per_queue[*q as usize] += 1;
    }
    eprintln!("flows per queue: {per_queue:?}; counters {counters:?}");
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "every queue should carry some of {FLOWS} flows: {per_queue:?}"
    );
}

#[test]
fn syn_reaches_rx_ring_one_queue() {
    require_root!();
    syn_reaches_rx_ring(1);
}

#[test]
fn syn_reaches_rx_ring_two_queues() {
    require_root!();
    syn_reaches_rx_ring(2);
}

/// A SYN built with `wire` and sent from our TX ring reaches the peer's kernel, which
/// answers with a SYN-ACK that we receive (its checksums verified): headers, addresses
/// and checksums are right in both directions.
#[test]
fn built_syn_gets_a_syn_ack_from_the_peer_kernel() {
    require_root!();
    const OUR_PORT: u16 = 40000;
    const PEER_PORT: u16 = 8000;
    const ISN: u32 = 0xfffffff0; // close to the wrap, on purpose
    let topo = topology(1);
    let (iface, server_ip, peer_ip) = (topo.server_if.clone(), topo.server_ip, topo.peer_ip);
    let (server_mac, peer_mac) = (topo.server_mac, topo.peer_mac);

    let (listening_tx, listening_rx) = mpsc::channel();
    let peer = topo
        .spawn_in_peer(move || {
            let listener = TcpListener::bind((peer_ip, PEER_PORT)).unwrap();
            listening_tx.send(()).unwrap();
            // Keep the listener open until the test is done with it.
            std::thread::sleep(Duration::from_secs(3));
            drop(listener);
        })
        .unwrap();
    listening_rx.recv().unwrap();

    let answer = topo
        .run_in(&topo.server_ns.clone(), move || {
            let (_program, mut sockets) = attach_all(&iface, server_ip, &[OUR_PORT]);
            let eth = EthernetRepr {
                src_addr: EthernetAddress(server_mac),
                dst_addr: EthernetAddress(peer_mac),
                ethertype: EtherType::Ipv4,
            };
            let send = |sock: &mut XskSocket,
                        seq: u32,
                        flags: TcpFlags,
                        ack: Option<u32>,
                        mss: Option<u16>| {
                let tcp = TcpRepr {
                    src_port: OUR_PORT,
                    dst_port: PEER_PORT,
                    seq_number: seq,
                    ack_number: ack,
                    flags,
                    window_len: 64240,
                    urgent_pointer: 0,
                    max_seg_size: mss,
                    window_scale: None,
                    sack_permitted: false,
                    sack_ranges: [None; 4],
                    timestamp: None,
                    payload: &[],
                };
                let ip = Ipv4Repr {
                    src_addr: server_ip,
                    dst_addr: peer_ip,
                    protocol: IpProtocol::Tcp,
                    payload_len: tcp.buffer_len(),
                    ttl: 64,
                    ident: 1,
                    dont_frag: true,
                };
                assert!(
                    sock.transmit_with(|buf| emit_tcp_ipv4(buf, &eth, &ip, &tcp).expect("emit"))
                );
                sock.flush().unwrap();
            };
            let mut syn = TcpFlags::default();
            syn.set_syn(true);
            send(&mut sockets[0], ISN, syn, None, Some(1460));

            let deadline = Instant::now() + Duration::from_secs(5);
            let mut answer = None;
            while answer.is_none() && Instant::now() < deadline {
                let s = &mut sockets[0];
                s.reclaim();
                s.recv(64, |frame| {
                    if let Ok(f) = parse_tcp_ipv4(frame, ChecksumMode::Verify) {
                        if f.tcp.dst_port == OUR_PORT {
                            answer = Some((
                                f.ip.src_addr,
                                f.tcp.src_port,
                                f.tcp.flags,
                                f.tcp.ack_number,
                                f.tcp.max_seg_size,
                                f.tcp.seq_number,
                            ));
                        }
                    }
                    RxAction::Recycle
                });
                s.refill();
            }
            // Leave the peer's kernel with no half-open connection behind.
            if let Some((_, _, _, _, _, peer_seq)) = answer {
                let mut rst = TcpFlags::default();
                rst.set_rst(true);
                send(&mut sockets[0], ISN.wrapping_add(1), rst, None, None);
                let _ = peer_seq;
            }
            answer
        })
        .unwrap();
    peer.join().unwrap();
    let (src, sport, flags, ack, mss, _) =
        answer.expect("no answer from the peer's kernel: a header or checksum we emitted is wrong");
    assert_eq!(src, peer_ip);
    assert_eq!(sport, PEER_PORT);
    assert!(
        flags.syn() && !flags.rst(),
        "expected SYN-ACK, got {flags:?}"
    );
    assert_eq!(ack, Some(ISN.wrapping_add(1)));
    assert_eq!(mss, Some(1460));
}

/// While the program is attached and sockets are bound, what we do not own still works
/// through the kernel: ARP, ping, and a kernel TCP server on another port of the same
/// address.
#[test]
fn unowned_traffic_still_reaches_the_kernel() {
    require_root!();
    const KERNEL_PORT: u16 = 9000;
    let topo = topology(2);
    let (iface, server_ip) = (topo.server_if.clone(), topo.server_ip);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = topo
        .spawn_in_server(move || {
            let (program, mut sockets) = attach_all(&iface, server_ip, &[SERVICE_PORT]);
            let listener = TcpListener::bind((server_ip, KERNEL_PORT)).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            let mut stolen = 0u64;
            let deadline = Instant::now() + Duration::from_secs(20);
            while stop_rx.try_recv().is_err() && Instant::now() < deadline {
                if let Ok((mut conn, _)) = listener.accept() {
                    conn.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 5];
                    conn.read_exact(&mut buf).unwrap();
                    conn.write_all(&buf).unwrap();
                }
                for s in sockets.iter_mut() {
                    stolen += s.recv(64, |_| RxAction::Recycle) as u64;
                    s.refill();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (program.counters().unwrap(), stolen)
        })
        .unwrap();
    ready_rx.recv().unwrap();

    let ping = topo
        .peer_cmd("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", &server_ip.to_string()])
        .output();
    let ping = ping.expect("running ping (apt-get install iputils-ping)");
    assert!(
        ping.status.success(),
        "ping failed while attached: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    let neigh = netns::ip(&["-n", &topo.peer_ns, "neigh", "show", &server_ip.to_string()]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_string();
    let mac = topo
        .server_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        neigh.contains(&mac),
        "ARP did not resolve the server: {neigh:?}"
    );

    let echoed = topo
        .run_in(&topo.peer_ns.clone(), move || {
            let mut c = TcpStream::connect_timeout(
                &SocketAddr::from((server_ip, KERNEL_PORT)),
                Duration::from_secs(5),
            )?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"hello")?;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>(buf)
        })
        .unwrap();
    stop_tx.send(()).unwrap();
    let (counters, stolen): (SteeringCounters, u64) = server.join().unwrap();
    assert_eq!(
        &echoed.expect("kernel TCP server on another port"),
        b"hello"
    );
    assert_eq!(stolen, 0, "we received frames we do not own");
    assert_eq!(counters.redirected, 0, "{counters:?}");
    assert!(
        // At least: one ARP request, three echo requests, and SYN, ACK and data of the
        // TCP exchange; how many more depends on ACK timing.
        counters.passed >= 7,
        "ARP, ICMP and TCP should have been passed: {counters:?}"
    );
}

/// Each veth end has a queue in front of every TX queue, as a NIC has its TX ring: veth
/// then stops a full queue instead of dropping (see `netns::set_pfifo`), and a burst
/// costs no retransmission timeouts no real link would cause.
#[test]
fn every_veth_queue_has_a_pfifo_in_front() {
    require_root!();
    // 16 queues: handles past 1:9 are hexadecimal.
    for queues in [1, 2, 16] {
        let topo = topology(queues);
        for (ns, dev) in [
            (topo.server_ns.clone(), topo.server_if.clone()),
            (topo.peer_ns.clone(), topo.peer_if.clone()),
        ] {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "tc", "qdisc", "show", "dev", &dev])
                .output()
                .expect("running tc");
            let text = String::from_utf8_lossy(&out.stdout);
            let fifos = text
                .lines()
                .filter(|l| l.starts_with("qdisc pfifo "))
                .count();
            assert_eq!(fifos, queues as usize, "{dev}, {queues} queue(s):\n{text}");
            assert!(!text.contains("noqueue"), "{dev}:\n{text}");
            if queues > 1 {
                assert!(text.contains("qdisc mq 1: root"), "{dev}:\n{text}");
            }
        }
    }
}
