//! IPv4 headers (RFC 791).

use core::net::Ipv4Addr;

use crate::checksum;
use crate::field::{array, read_u16};
use crate::{ChecksumMode, Error, Result};

/// Where the fields of an IPv4 header are (RFC 791 §3.1), and the bits inside them.
mod field {
    use crate::field::Field;

    /// Version (high 4 bits) and IHL, the header length in 32-bit words (low 4 bits).
    pub(crate) const VER_IHL: usize = 0;
    /// DSCP and ECN, once the type of service; sent as zero.
    pub(crate) const DSCP_ECN: usize = 1;
    /// Total length: header, options and payload, in bytes.
    pub(crate) const LENGTH: Field = 2..4;
    /// Identification, which ties the fragments of one datagram together.
    pub(crate) const IDENT: Field = 4..6;
    /// The flags (high 3 bits) and the fragment offset in 8-byte units (low 13 bits).
    pub(crate) const FLG_OFF: Field = 6..8;
    /// Time to live.
    pub(crate) const TTL: usize = 8;
    /// The protocol of the payload.
    pub(crate) const PROTOCOL: usize = 9;
    /// Ones' complement checksum of the header (options included).
    pub(crate) const CHECKSUM: Field = 10..12;
    /// Source address.
    pub(crate) const SRC_ADDR: Field = 12..16;
    /// Destination address; the options, if any, follow it.
    pub(crate) const DST_ADDR: Field = 16..20;

    /// IPv4's version number, in the high bits of VER_IHL.
    pub(crate) const VERSION_4: u8 = 4;
    /// How far up VER_IHL the version sits.
    pub(crate) const VERSION_SHIFT: u32 = 4;
    /// IHL's bits in VER_IHL.
    pub(crate) const IHL_MASK: u8 = 0x0f;
    /// Don't-fragment, in FLG_OFF.
    pub(crate) const FLG_DF: u16 = 0x4000;
    /// More-fragments, in FLG_OFF: not the last fragment of its datagram.
    pub(crate) const FLG_MF: u16 = 0x2000;
    /// The fragment offset's bits in FLG_OFF.
    pub(crate) const OFFSET_MASK: u16 = 0x1fff;
}

/// Bytes of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = field::DST_ADDR.end;

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
        self.b()[field::VER_IHL] >> field::VERSION_SHIFT
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> u8 {
        (self.b()[field::VER_IHL] & field::IHL_MASK) * 4
    }

    /// Total length: header and payload.
    pub fn total_len(&self) -> u16 {
        read_u16(self.b(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.b(), field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.b(), field::FLG_OFF) & field::FLG_DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.b(), field::FLG_OFF) & field::FLG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.b(), field::FLG_OFF) & field::OFFSET_MASK) * 8
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        self.b()[field::PROTOCOL].into()
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.b(), field::SRC_ADDR))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.b(), field::DST_ADDR))
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
        if p.version() != field::VERSION_4 {
            return Err(Error::Malformed);
        }
        // A CHECKSUM_PARTIAL frame's IPv4 header checksum is complete all the same.
        if mode != ChecksumMode::Ignore && !p.verify_checksum() {
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
        // No options: IHL is the fixed header's 5 words.
        buf[field::VER_IHL] =
            (field::VERSION_4 << field::VERSION_SHIFT) | (IPV4_HEADER_LEN / 4) as u8;
        buf[field::DSCP_ECN] = 0;
        buf[field::LENGTH].copy_from_slice(&(total as u16).to_be_bytes());
        buf[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        // Never a fragment: offset 0, MF clear.
        let flags = if self.dont_frag { field::FLG_DF } else { 0 };
        buf[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol.into();
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        buf[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        let c = checksum::checksum(&buf[..IPV4_HEADER_LEN]);
        buf[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
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
