//! Whole Ethernet + IPv4 + TCP frames: what the datapath parses and emits on every
//! packet, in one call each.

use crate::ethernet::{EtherType, EthernetFrame, EthernetRepr, ETHERNET_HEADER_LEN};
use crate::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN};
use crate::tcp::{TcpPacket, TcpRepr};
use crate::{ChecksumMode, Error, Result};

/// A parsed TCP/IPv4 frame; the TCP payload borrows the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    /// The Ethernet header.
    pub eth: EthernetRepr,
    /// The IPv4 header.
    pub ip: Ipv4Repr,
    /// The TCP segment.
    pub tcp: TcpRepr<'a>,
}

/// Parses an Ethernet frame carrying IPv4/TCP. Anything else (ARP, VLAN tags, other
/// protocols) is `Unsupported`; IPv4 fragments too.
pub fn parse_tcp_ipv4(frame: &[u8], mode: ChecksumMode) -> Result<TcpFrame<'_>> {
    let eth_frame = EthernetFrame::new_checked(frame)?;
    let eth = EthernetRepr::parse(&eth_frame)?;
    if eth.ethertype != EtherType::Ipv4 {
        return Err(Error::Unsupported);
    }
    let ip_packet = Ipv4Packet::new_checked(&frame[ETHERNET_HEADER_LEN..])?;
    let ip = Ipv4Repr::parse(&ip_packet, mode)?;
    if ip.protocol != IpProtocol::Tcp {
        return Err(Error::Unsupported);
    }
    let start = ETHERNET_HEADER_LEN + ip_packet.header_len() as usize;
    let segment = &frame[start..start + ip.payload_len];
    let tcp = TcpRepr::parse(
        &TcpPacket::new_checked(segment)?,
        ip.src_addr,
        ip.dst_addr,
        mode,
    )?;
    Ok(TcpFrame { eth, ip, tcp })
}

/// Writes Ethernet, IPv4 and TCP headers and `tcp.payload` into `buf`; returns the frame
/// length. `ip.payload_len` is taken from the TCP segment, whatever it says.
pub fn emit_tcp_ipv4(
    buf: &mut [u8],
    eth: &EthernetRepr,
    ip: &Ipv4Repr,
    tcp: &TcpRepr<'_>,
) -> Result<usize> {
    let payload = tcp.payload;
    emit_tcp_ipv4_with(buf, eth, ip, tcp, payload.len(), |dst| {
        dst.copy_from_slice(payload)
    })
}

/// Like [`emit_tcp_ipv4`], but the payload is `payload_len` bytes that `fill` writes in
/// place (`tcp.payload` is ignored), so the stack can copy from its send buffer straight
/// into the frame: one copy, no intermediate buffer.
pub fn emit_tcp_ipv4_with(
    buf: &mut [u8],
    eth: &EthernetRepr,
    ip: &Ipv4Repr,
    tcp: &TcpRepr<'_>,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<usize> {
    let tcp_hl = tcp.header_len();
    let seg_len = tcp_hl + payload_len;
    let total = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + seg_len;
    if buf.len() < total {
        return Err(Error::Truncated);
    }
    eth.emit(buf)?;
    let ip = Ipv4Repr {
        payload_len: seg_len,
        protocol: IpProtocol::Tcp,
        ..*ip
    };
    ip.emit(&mut buf[ETHERNET_HEADER_LEN..])?;
    let seg = &mut buf[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..total];
    tcp.emit_header(seg)?;
    fill(&mut seg[tcp_hl..]);
    TcpRepr::fill_checksum(seg, ip.src_addr, ip.dst_addr);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EthernetAddress, TcpFlags};
    use core::net::Ipv4Addr;

    fn reprs() -> (EthernetRepr, Ipv4Repr) {
        (
            EthernetRepr {
                src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
                dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
                ethertype: EtherType::Ipv4,
            },
            Ipv4Repr {
                src_addr: Ipv4Addr::new(198, 18, 0, 1),
                dst_addr: Ipv4Addr::new(198, 18, 0, 2),
                protocol: IpProtocol::Tcp,
                payload_len: 0,
                ttl: 64,
                ident: 7,
                dont_frag: true,
            },
        )
    }

    #[test]
    fn frames_round_trip_and_payload_fills_in_place() {
        let (eth, ip) = reprs();
        let mut flags = TcpFlags::default();
        flags.set_psh(true);
        let tcp = TcpRepr {
            src_port: 53,
            dst_port: 40000,
            seq_number: 1,
            ack_number: Some(2),
            flags,
            window_len: 100,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload: b"hello",
        };
        let mut buf = [0u8; 128];
        let n = emit_tcp_ipv4(&mut buf, &eth, &ip, &tcp).unwrap();
        assert_eq!(n, 14 + 20 + 20 + 5);
        let f = parse_tcp_ipv4(&buf[..n], ChecksumMode::Verify).unwrap();
        assert_eq!(f.eth, eth);
        assert_eq!(f.tcp, tcp);
        assert_eq!(f.ip.payload_len, 25);
        let mut again = [0u8; 128];
        let m = emit_tcp_ipv4_with(
            &mut again,
            &eth,
            &ip,
            &TcpRepr {
                payload: &[],
                ..tcp
            },
            5,
            |d| d.copy_from_slice(b"hello"),
        )
        .unwrap();
        assert_eq!(&again[..m], &buf[..n]);
        assert_eq!(
            emit_tcp_ipv4(&mut buf[..40], &eth, &ip, &tcp),
            Err(Error::Truncated)
        );
        // Ethernet padding after the IPv4 total length is not payload.
        let mut padded = buf[..n].to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(
            parse_tcp_ipv4(&padded, ChecksumMode::Verify)
                .unwrap()
                .tcp
                .payload,
            b"hello"
        );
        // Not TCP/IPv4: unsupported, not an error of the frame.
        let mut arp = buf;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            parse_tcp_ipv4(&arp[..n], ChecksumMode::Verify),
            Err(Error::Unsupported)
        );
    }
}
