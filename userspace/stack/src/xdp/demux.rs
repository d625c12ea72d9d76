//! Demultiplexing: where a received frame goes. To its connection by 4-tuple, to a
//! listener (a new connection, or a SYN cookie's answer), to the worker that owns it,
//! or back as a RST.

use std::net::{Ipv4Addr, SocketAddrV4};

use wire::TcpRepr;

use super::frames::{self, Path, Unusable};
use super::handover::Peer;
use super::record::Conn;
use super::table::{FourTuple, Handle, Table};
use crate::listener::Listeners;
use crate::stats::WorkerStats;

/// What a frame asks of the receive loop.
pub(super) enum FrameAction {
    /// Taken (or dropped, or handed to its owner): the frame can be reused.
    Done,
    /// Send the frame back, rewritten in place into this many bytes (a RST, or a
    /// SYN-ACK with a cookie).
    Reply(usize),
}

/// What handling one frame may touch: the parts of the worker's shard it needs.
pub(super) struct FrameContext<'a> {
    pub(super) conns: &'a mut Table<Conn>,
    pub(super) listeners: &'a Listeners,
    pub(super) tcp: &'a mut super::conn::TcbFactory,
    pub(super) stats: &'a mut WorkerStats,
    pub(super) half_open: &'a mut usize,
    pub(super) max_half_open: usize,
    pub(super) mac: [u8; 6],
    pub(super) addrs: &'a [Ipv4Addr],
    pub(super) checksums: wire::ChecksumMode,
    pub(super) ports: super::ports::PortRange,
    pub(super) index: usize,
    pub(super) workers: usize,
    pub(super) peers: &'a [Peer],
    pub(super) touched: &'a mut Vec<Handle>,
    pub(super) now: tcp::Instant,
}

/// A received frame: to its connection, to a listener, to the worker that owns it, or
/// answered with a RST.
pub(super) fn on_frame(cx: &mut FrameContext<'_>, frame: &mut [u8]) -> FrameAction {
    let f = match frames::parse(frame, cx.checksums) {
        Ok(f) => f,
        Err(why) => {
            cx.stats.rx_dropped += 1;
            let d = &mut cx.stats.rx_drops;
            *match why {
                Unusable::Malformed => &mut d.malformed,
                Unusable::NotIpv4Tcp => &mut d.not_ipv4_tcp,
                Unusable::BadIpv4Checksum => &mut d.bad_ipv4_checksum,
                Unusable::BadTcpChecksum => &mut d.bad_tcp_checksum,
            } += 1;
            return FrameAction::Done;
        }
    };
    if !cx.addrs.contains(&f.ip.dst_addr) {
        cx.stats.rx_dropped += 1;
        cx.stats.rx_drops.not_our_address += 1;
        return FrameAction::Done;
    }
    let tuple = FourTuple {
        local: SocketAddrV4::new(f.ip.dst_addr, f.tcp.dst_port),
        remote: SocketAddrV4::new(f.ip.src_addr, f.tcp.src_port),
    };
    let mut isn_floor = None;
    if let Some(h) = cx.conns.lookup(&tuple) {
        let Some(c) = cx.conns.get_mut(h) else {
            return FrameAction::Done;
        };
        // A client that reuses its port may open a new connection while we still hold
        // the old one in TIME-WAIT (Linux accepts it too); otherwise it would get a
        // challenge ACK, reset it, and wait a second for its SYN's retransmission.
        // Not while a flow still holds it: it may not have read all the old data yet.
        let reopening = c.tcb.reopening_isn(&f.tcp).filter(|_| {
            !c.attached
                && cx.listeners.get(f.tcp.dst_port).is_some()
                && *cx.half_open < cx.max_half_open
        });
        match reopening {
            Some(floor) => {
                isn_floor = Some(floor);
                cx.stats.add_tcb(c.tcb.stats());
                cx.stats.time_wait_reopened += 1;
                cx.conns.remove(&tuple, h);
            }
            None => {
                c.tcb.on_segment(&f.tcp, cx.now);
                cx.touched.push(h);
                return FrameAction::Done;
            }
        }
    }
    let owner = tuple.owner(cx.workers);
    if owner != cx.index && cx.ports.contains(tuple.local.port()) {
        // A reply to another worker's active open, on this worker's queue (the peer's
        // hash, not ours, chose the queue): hand it to the owner. A rare path, so a
        // copy in a fresh buffer is fine.
        let peer = &cx.peers[owner];
        if peer.inbox.send(frame.to_vec()).is_ok() {
            peer.wake.notify_one();
            cx.stats.handed_out += 1;
        }
        return FrameAction::Done;
    }
    let is_syn = f.tcp.flags.syn() && f.tcp.ack_number.is_none() && !f.tcp.flags.rst();
    let listener = cx.listeners.get(f.tcp.dst_port);
    cx.stats.syns_received += u64::from(is_syn && listener.is_some());
    // Answered with a RST below: a client asking for a service nobody offers here.
    cx.stats.syns_no_listener += u64::from(is_syn && listener.is_none());
    let path = Path {
        local_mac: cx.mac,
        remote_mac: f.eth.src_addr.0,
        local_ip: f.ip.dst_addr,
        remote_ip: f.ip.src_addr,
    };
    let new_conn = match listener {
        Some(l) if is_syn && *cx.half_open < cx.max_half_open => Some(cx.tcp.accept(
            tuple.local,
            tuple.remote,
            &f.tcp,
            l.keepalive,
            isn_floor,
            cx.now,
        )),
        Some(_) if is_syn => {
            // The backlog is full: answer with a SYN cookie and keep nothing; the
            // connection exists only if the client's ACK brings the cookie back.
            let Some(syn_ack) = cx
                .tcp
                .cookie_syn_ack(tuple.local, tuple.remote, &f.tcp, cx.now)
            else {
                return FrameAction::Done;
            };
            return reply_in_place(frame, &path, &syn_ack, &mut cx.stats.syn_cookies_sent);
        }
        Some(l) if f.tcp.ack_number.is_some() && !f.tcp.flags.rst() && !f.tcp.flags.syn() => {
            let t = cx
                .tcp
                .accept_cookie(tuple.local, tuple.remote, &f.tcp, l.keepalive, cx.now);
            if t.is_some() {
                cx.stats.syn_cookies_accepted += 1;
            }
            t
        }
        _ => None,
    };
    if let Some(tcb) = new_conn {
        let h = cx
            .conns
            .insert(tuple, Conn::accepted(tcb, tuple, path, f.tcp.dst_port));
        // Counted half-open until its handshake completes (at once for a cookie).
        *cx.half_open += 1;
        cx.stats.accepted += 1;
        cx.touched.push(h);
        return FrameAction::Done;
    }
    // Nothing here for it: answer with a RST in place of the frame itself.
    let Some(rst) = frames::reset_for(&f.tcp) else {
        return FrameAction::Done;
    };
    let path = Path {
        local_mac: f.eth.dst_addr.0,
        remote_mac: f.eth.src_addr.0,
        local_ip: f.ip.dst_addr,
        remote_ip: f.ip.src_addr,
    };
    reply_in_place(frame, &path, &rst, &mut cx.stats.resets_sent)
}

/// Rewrites `frame` into the payload-less segment `repr` on `path`, counting it in
/// `counter`; nothing if it does not fit.
fn reply_in_place(
    frame: &mut [u8],
    path: &Path,
    repr: &TcpRepr<'_>,
    counter: &mut u64,
) -> FrameAction {
    match frames::emit(frame, path, repr, 0, |_| {}) {
        0 => FrameAction::Done,
        len => {
            *counter += 1;
            FrameAction::Reply(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use wire::{TcpFlags, TcpRepr};

    use super::*;
    use crate::listener::Listener;
    use crate::xdp::conn::TcbFactory;
    use crate::xdp::handover::{peers, Peer};
    use crate::xdp::ports::PortRange;

    const OURS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
    const DNS: u16 = 53;

    /// A worker's demultiplexing state without a device: one of `workers`, listening on
    /// port 53 of OURS.
    struct Rig {
        conns: Table<Conn>,
        listeners: Listeners,
        tcp: TcbFactory,
        stats: WorkerStats,
        half_open: usize,
        peers: Arc<[Peer]>,
        inboxes: Vec<std::sync::mpsc::Receiver<Vec<u8>>>,
        touched: Vec<Handle>,
        workers: usize,
    }

    impl Rig {
        fn new(workers: usize) -> Rig {
            let mut listeners = Listeners::new();
            listeners.listen(DNS, Listener::new(|_flow| async {}));
            let (peers, inboxes) = peers(workers);
            Rig {
                conns: Table::new(),
                listeners,
                tcp: TcbFactory::new(&tcp::tcb::Config::default()),
                stats: WorkerStats::default(),
                half_open: 0,
                peers,
                inboxes,
                touched: Vec::new(),
                workers,
            }
        }

        fn frame(&mut self, frame: &mut [u8]) -> FrameAction {
            let mut cx = FrameContext {
                conns: &mut self.conns,
                listeners: &self.listeners,
                tcp: &mut self.tcp,
                stats: &mut self.stats,
                half_open: &mut self.half_open,
                max_half_open: 16,
                mac: [2, 0, 0, 0, 0, 1],
                addrs: &[OURS],
                checksums: wire::ChecksumMode::Verify,
                ports: PortRange::default(),
                index: 0,
                workers: self.workers,
                peers: &self.peers,
                touched: &mut self.touched,
                now: tcp::Instant::from_millis(1),
            };
            on_frame(&mut cx, frame)
        }
    }

    /// A segment from `src` to `dst` as it arrives on the wire.
    fn segment(src: SocketAddrV4, dst: SocketAddrV4, tcp: TcpRepr<'_>) -> Vec<u8> {
        let path = Path {
            local_mac: [2, 0, 0, 0, 0, 7],
            remote_mac: [2, 0, 0, 0, 0, 1],
            local_ip: *src.ip(),
            remote_ip: *dst.ip(),
        };
        let repr = TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            ..tcp
        };
        let mut buf = vec![0u8; 1514];
        let len = frames::emit(&mut buf, &path, &repr, 0, |_| {});
        assert!(len > 0);
        buf.truncate(len);
        buf
    }

    fn syn(seq: u32) -> TcpRepr<'static> {
        let mut flags = TcpFlags::default();
        flags.set_syn(true);
        TcpRepr {
            seq_number: seq,
            flags,
            window_len: 65535,
            max_seg_size: Some(1460),
            ..TcpRepr::default()
        }
    }

    fn client(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(CLIENT, port)
    }

    #[test]
    fn a_syn_to_a_listener_opens_a_half_open_connection() {
        let mut r = Rig::new(1);
        let mut f = segment(client(40000), SocketAddrV4::new(OURS, DNS), syn(7));
        assert!(matches!(r.frame(&mut f), FrameAction::Done));
        assert_eq!((r.conns.count(), r.half_open, r.stats.accepted), (1, 1, 1));
        assert_eq!(r.touched.len(), 1, "its SYN-ACK is due");
        // The same connection's next segment goes to it, not to the listener.
        let mut again = segment(client(40000), SocketAddrV4::new(OURS, DNS), syn(7));
        r.touched.clear();
        r.frame(&mut again);
        assert_eq!((r.conns.count(), r.stats.accepted), (1, 1));
        assert_eq!(r.touched.len(), 1);
    }

    #[test]
    fn a_syn_to_a_closed_port_is_answered_in_place_with_a_rst() {
        let mut r = Rig::new(1);
        let mut f = segment(client(40001), SocketAddrV4::new(OURS, 4444), syn(1000));
        let FrameAction::Reply(len) = r.frame(&mut f) else {
            panic!("no RST");
        };
        let reply = frames::parse(&f[..len], wire::ChecksumMode::Verify).expect("a valid frame");
        assert!(reply.tcp.flags.rst());
        assert_eq!(reply.tcp.ack_number, Some(1001));
        assert_eq!((reply.ip.dst_addr, reply.tcp.dst_port), (CLIENT, 40001));
        assert_eq!((r.conns.count(), r.stats.resets_sent), (0, 1));
        assert_eq!(r.stats.syns_no_listener, 1);
    }

    #[test]
    fn frames_not_for_us_or_damaged_are_dropped_and_counted() {
        let mut r = Rig::new(1);
        let other = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 99), DNS);
        let mut f = segment(client(40002), other, syn(1));
        assert!(matches!(r.frame(&mut f), FrameAction::Done));
        let mut bad = segment(client(40003), SocketAddrV4::new(OURS, DNS), syn(1));
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // in the TCP header: its checksum no longer holds
        assert!(matches!(r.frame(&mut bad), FrameAction::Done));
        // IPv4, cut short inside its header.
        let mut short = segment(client(40006), SocketAddrV4::new(OURS, DNS), syn(1))[..30].to_vec();
        assert!(matches!(r.frame(&mut short), FrameAction::Done));
        let mut bad_ip = segment(client(40004), SocketAddrV4::new(OURS, DNS), syn(1));
        bad_ip[14 + 8] ^= 0x01; // the TTL: the IPv4 header's checksum no longer holds
        assert!(matches!(r.frame(&mut bad_ip), FrameAction::Done));
        let mut arp = segment(client(40005), SocketAddrV4::new(OURS, DNS), syn(1));
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(matches!(r.frame(&mut arp), FrameAction::Done));
        assert_eq!((r.stats.rx_dropped, r.conns.count()), (5, 0));
        // Each under its reason.
        let d = r.stats.rx_drops;
        assert_eq!(
            (
                d.not_our_address,
                d.bad_tcp_checksum,
                d.malformed,
                d.bad_ipv4_checksum,
                d.not_ipv4_tcp
            ),
            (1, 1, 1, 1, 1)
        );
    }

    #[test]
    fn a_reply_to_another_workers_active_open_is_handed_to_it() {
        let mut r = Rig::new(2);
        // A local port of the client range whose 4-tuple worker 1 owns.
        let range = PortRange::default();
        let port = (range.first..=range.last)
            .find(|&p| {
                FourTuple {
                    local: SocketAddrV4::new(OURS, p),
                    remote: SocketAddrV4::new(CLIENT, 53),
                }
                .owner(2)
                    == 1
            })
            .unwrap();
        let mut f = segment(
            SocketAddrV4::new(CLIENT, 53),
            SocketAddrV4::new(OURS, port),
            syn(5),
        );
        assert!(matches!(r.frame(&mut f), FrameAction::Done));
        assert_eq!(r.stats.handed_out, 1);
        assert_eq!(r.inboxes[1].try_recv().unwrap(), f);
        assert_eq!(r.conns.count(), 0);
    }
}
