//! IPv4 headers (RFC 791).

use core::net::Ipv4Addr;

use crate::checksum;
use crate::{ChecksumMode, Error, Result};

/// Bytes of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// The protocol field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 1.
    Icmp,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            o => IpProtocol::Unknown(o),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` after checking that the header (options included) and the total
    /// length it claims are consistent and inside the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < IPV4_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = Ipv4Packet { buffer };
        let hl = p.header_len() as usize;
        let total = p.total_len() as usize;
        if hl < IPV4_HEADER_LEN || total < hl {
            return Err(Error::Malformed);
        }
        if p.buffer.as_ref().len() < total {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> u8 {
        (self.b()[0] & 0x0f) * 4
    }

    /// Total length: header and payload.
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (u16::from_be_bytes([self.b()[6], self.b()[7]]) & 0x1fff) * 8
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        self.b()[9].into()
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[10], self.b()[11]])
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Whether the header checksum verifies (options included).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len() as usize]) == 0
    }

    /// The payload: after the options, up to the total length (Ethernet padding beyond
    /// it is not payload).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len() as usize..self.total_len() as usize]
    }
}

/// A parsed IPv4 header. Options are skipped on parse and never emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parses a checked packet. Fragments are `Unsupported`: reassembly is the kernel's.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, mode: ChecksumMode) -> Result<Ipv4Repr> {
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        if mode == ChecksumMode::Verify && !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if p.more_frags() || p.frag_offset() != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len() as usize,
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    /// Bytes of the header it emits.
    pub const fn buffer_len(&self) -> usize {
        IPV4_HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let total = IPV4_HEADER_LEN + self.payload_len;
        if buf.len() < IPV4_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if total > u16::MAX as usize {
            return Err(Error::Malformed);
        }
        buf[0] = 0x45;
        buf[1] = 0;
        buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        buf[4..6].copy_from_slice(&self.ident.to_be_bytes());
        buf[6] = if self.dont_frag { 0x40 } else { 0 };
        buf[7] = 0;
        buf[8] = self.ttl;
        buf[9] = self.protocol.into();
        buf[10..12].copy_from_slice(&[0, 0]);
        buf[12..16].copy_from_slice(&self.src_addr.octets());
        buf[16..20].copy_from_slice(&self.dst_addr.octets());
        let c = checksum::checksum(&buf[..IPV4_HEADER_LEN]);
        buf[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header_with_options() -> Vec<u8> {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL), 4 bytes of payload, 2 of padding.
        let mut h = vec![
            0x46, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1, 1, 1,
            1, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0,
        ];
        let c = checksum::checksum(&h[..24]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn options_are_skipped_and_padding_ignored() {
        let h = header_with_options();
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        let r = Ipv4Repr::parse(&p, ChecksumMode::Verify).unwrap();
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.protocol, IpProtocol::Tcp);
        assert_eq!(r.ident, 0x1234);
        assert!(r.dont_frag);
    }

    #[test]
    fn bad_headers_are_errors() {
        let h = header_with_options();
        let mut bad = h.clone();
        bad[11] ^= 1;
        assert_eq!(
            Ipv4Repr::parse(
                &Ipv4Packet::new_checked(&bad[..]).unwrap(),
                ChecksumMode::Verify
            ),
            Err(Error::BadChecksum)
        );
        assert!(Ipv4Repr::parse(
            &Ipv4Packet::new_checked(&bad[..]).unwrap(),
            ChecksumMode::Ignore
        )
        .is_ok());
        let mut bad = h.clone();
        bad[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Error::Malformed
        );
        let mut bad = h.clone();
        bad[3] = 200; // total length past the buffer
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Error::Truncated
        );
        let mut bad = h.clone();
        bad[0] = 0x65; // version 6
        assert_eq!(
            Ipv4Repr::parse(
                &Ipv4Packet::new_checked(&bad[..]).unwrap(),
                ChecksumMode::Ignore
            ),
            Err(Error::Malformed)
        );
        let mut frag = h.clone();
        frag[6] = 0x20; // more fragments
        assert_eq!(
            Ipv4Repr::parse(
                &Ipv4Packet::new_checked(&frag[..]).unwrap(),
                ChecksumMode::Ignore
            ),
            Err(Error::Unsupported)
        );
        let mut frag = h;
        frag[7] = 1; // offset 8
        assert_eq!(
            Ipv4Repr::parse(
                &Ipv4Packet::new_checked(&frag[..]).unwrap(),
                ChecksumMode::Ignore
            ),
            Err(Error::Unsupported)
        );
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(), len in 0usize..1480, ttl in any::<u8>(), ident in any::<u16>(), df in any::<bool>()) {
            let r = Ipv4Repr { src_addr: src.into(), dst_addr: dst.into(), protocol: proto.into(), payload_len: len, ttl, ident, dont_frag: df };
            let mut buf = vec![0u8; 20 + len];
            r.emit(&mut buf).unwrap();
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p, ChecksumMode::Verify).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = Ipv4Repr::parse(&p, ChecksumMode::Verify);
                let _ = p.payload();
            }
        }
    }
}
