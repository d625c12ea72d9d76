//! Segments to and from the bytes that travel over the simulated link, through the `wire`
//! crate's real emit and parse (so the simulations exercise them too).

use std::net::{Ipv4Addr, SocketAddrV4};

use wire::TcpRepr;
use wire::{ChecksumMode, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr};

/// Largest frame the harness builds: Ethernet + IPv4 + TCP with options + a 1460-byte MSS
/// payload fits with room to spare; jumbo-MSS tests pass their own size.
pub const MAX_FRAME: usize = 14 + 20 + 60 + 9000;

fn mac_for(ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([2, 0, o[0], o[1], o[2], o[3]])
}

/// Emit `tcp` from `src` to `dst` as an Ethernet/IPv4/TCP frame with valid checksums.
/// The ports in `tcp` are overwritten from the addresses.
pub fn emit(src: SocketAddrV4, dst: SocketAddrV4, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME.max(14 + 20 + 60 + tcp.payload.len())];
    let eth = EthernetRepr {
        src_addr: mac_for(*src.ip()),
        dst_addr: mac_for(*dst.ip()),
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: 0,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    };
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        ..*tcp
    };
    let n = wire::frame::emit_tcp_ipv4(&mut buf, &eth, &ip, &tcp).expect("frame fits");
    buf.truncate(n);
    buf
}

/// A parsed frame: who sent it to whom, and the segment (borrowing the frame's bytes).
pub struct Parsed<'a> {
    /// Sender's address and port.
    pub src: SocketAddrV4,
    /// Receiver's address and port.
    pub dst: SocketAddrV4,
    /// The segment.
    pub tcp: TcpRepr<'a>,
}

/// Parse a frame produced by [`emit`], verifying checksums.
pub fn parse(frame: &[u8]) -> Result<Parsed<'_>, wire::Error> {
    let f = wire::frame::parse_tcp_ipv4(frame, ChecksumMode::Verify)?;
    Ok(Parsed {
        src: SocketAddrV4::new(f.ip.src_addr, f.tcp.src_port),
        dst: SocketAddrV4::new(f.ip.dst_addr, f.tcp.dst_port),
        tcp: f.tcp,
    })
}
