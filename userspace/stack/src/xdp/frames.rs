//! Frames in and out of the worker: everything that touches the `wire` crate, in one
//! place. Outgoing frames are written straight into UMEM frames.

use std::net::Ipv4Addr;

use wire::frame::{emit_tcp_ipv4_with, parse_tcp_ipv4, TcpFrame};
use wire::{
    ChecksumMode, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, TcpFlags, TcpRepr,
};

/// Why a received frame was dropped before it reached a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Shorter than the headers it claims, or a field the format forbids.
    Malformed,
    /// Not IPv4/TCP, or an IPv4 fragment.
    NotIpv4Tcp,
    BadIpv4Checksum,
    BadTcpChecksum,
}

/// Parses a received frame, checking its IPv4 and TCP checksums as `mode` says.
pub(crate) fn parse(frame: &[u8], mode: ChecksumMode) -> Result<TcpFrame<'_>, Unusable> {
    parse_tcp_ipv4(frame, mode).map_err(|e| match e {
        wire::Error::Truncated | wire::Error::Malformed => Unusable::Malformed,
        wire::Error::Unsupported => Unusable::NotIpv4Tcp,
        // Which checksum: the IPv4 header's is checked first, so if it verifies, the
        // TCP one failed (only on this path, which good frames never take).
        wire::Error::BadChecksum => {
            let ipv4_good = frame
                .get(wire::ETHERNET_HEADER_LEN..)
                .and_then(|p| wire::Ipv4Packet::new_checked(p).ok())
                .is_some_and(|p| p.verify_checksum());
            if ipv4_good {
                Unusable::BadTcpChecksum
            } else {
                Unusable::BadIpv4Checksum
            }
        }
    })
}

/// Where a connection's frames go: MAC and IPv4 addresses of both ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path {
    pub local_mac: [u8; 6],
    pub remote_mac: [u8; 6],
    pub local_ip: Ipv4Addr,
    pub remote_ip: Ipv4Addr,
}

/// Writes Ethernet + IPv4 + the TCP header `tcp` + `payload_len` bytes that `payload`
/// fills in place, into `buf` (a UMEM frame). Returns the frame length, 0 if it does
/// not fit.
pub(crate) fn emit(
    buf: &mut [u8],
    path: &Path,
    tcp: &TcpRepr<'_>,
    payload_len: usize,
    payload: impl FnOnce(&mut [u8]),
) -> usize {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(path.local_mac),
        dst_addr: EthernetAddress(path.remote_mac),
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src_addr: path.local_ip,
        dst_addr: path.remote_ip,
        protocol: IpProtocol::Tcp,
        payload_len: tcp.header_len() + payload_len,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    emit_tcp_ipv4_with(buf, &eth, &ip, tcp, payload_len, payload).unwrap_or(0)
}

/// The RST answering `seg` (RFC 9293 §3.10.7.1): for a segment with ACK, the reset
/// takes its sequence number from the ACK; otherwise it acknowledges the segment.
pub(crate) fn reset_for<'a>(seg: &TcpRepr<'_>) -> Option<TcpRepr<'a>> {
    if seg.flags.rst() {
        return None;
    }
    let mut flags = TcpFlags::default();
    flags.set_rst(true);
    let (seq, ack) = match seg.ack_number {
        Some(ack) => (ack, None),
        None => {
            let len = seg.payload.len() as u32 + seg.flags.syn() as u32 + seg.flags.fin() as u32;
            (0, Some(seg.seq_number.wrapping_add(len)))
        }
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq_number: seq,
        ack_number: ack,
        flags,
        ..TcpRepr::default()
    })
}
