//! ARP for Ethernet and IPv4 (RFC 826).

use core::net::Ipv4Addr;

use crate::ethernet::EthernetAddress;
use crate::field::{array, read_u16, Field};
use crate::{Error, Result};

/// Where the fields of an ARP packet are. The address fields' places assume
/// Ethernet/IPv4 (6-byte and 4-byte addresses), the only kind this crate parses.
mod field {
    use crate::field::Field;

    /// HTYPE: the kind of link-layer address (1 = Ethernet).
    pub(crate) const HTYPE: Field = 0..2;
    /// PTYPE: the kind of protocol address, as an EtherType (0x0800 = IPv4).
    pub(crate) const PTYPE: Field = 2..4;
    /// HLEN: bytes of a link-layer address.
    pub(crate) const HLEN: usize = 4;
    /// PLEN: bytes of a protocol address.
    pub(crate) const PLEN: usize = 5;
    /// OPER: request or reply.
    pub(crate) const OPER: Field = 6..8;
    /// SHA: the sender's MAC address.
    pub(crate) const SHA: Field = 8..14;
    /// SPA: the sender's IPv4 address.
    pub(crate) const SPA: Field = 14..18;
    /// THA: the target's MAC address.
    pub(crate) const THA: Field = 18..24;
    /// TPA: the target's IPv4 address.
    pub(crate) const TPA: Field = 24..28;
}

/// HTYPE of Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// PTYPE of IPv4 (its EtherType).
const PTYPE_IPV4: u16 = 0x0800;
/// HLEN of Ethernet: a MAC address.
const HLEN_ETHERNET: u8 = 6;
/// PLEN of IPv4: an IPv4 address.
const PLEN_IPV4: u8 = 4;

/// Bytes of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = field::TPA.end;

/// The operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOperation {
    /// Who has...?
    Request,
    /// ... is at.
    Reply,
    /// Any other code.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            o => ArpOperation::Unknown(o),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(o: ArpOperation) -> u16 {
        match o {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` after checking its length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < ARP_LEN {
            return Err(Error::Truncated);
        }
        Ok(ArpPacket { buffer })
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware and protocol address lengths.
    pub fn address_lengths(&self) -> (u8, u8) {
        let b = self.buffer.as_ref();
        (b[field::HLEN], b[field::PLEN])
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        read_u16(self.buffer.as_ref(), field::OPER).into()
    }

    /// The MAC address in `field` (SHA or THA).
    fn mac(&self, field: Field) -> EthernetAddress {
        EthernetAddress(array(self.buffer.as_ref(), field))
    }

    /// The IPv4 address in `field` (SPA or TPA).
    fn ip(&self, field: Field) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field))
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a checked packet; anything but Ethernet/IPv4 ARP is `Unsupported`.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != PTYPE_IPV4
            || p.address_lengths() != (HLEN_ETHERNET, PLEN_IPV4)
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.mac(field::SHA),
            source_protocol_addr: p.ip(field::SPA),
            target_hardware_addr: p.mac(field::THA),
            target_protocol_addr: p.ip(field::TPA),
        })
    }

    /// Bytes it takes.
    pub const fn buffer_len(&self) -> usize {
        ARP_LEN
    }

    /// Writes the packet at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < ARP_LEN {
            return Err(Error::Truncated);
        }
        buf[field::HTYPE].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        buf[field::PTYPE].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        buf[field::HLEN] = HLEN_ETHERNET;
        buf[field::PLEN] = PLEN_IPV4;
        buf[field::OPER].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        buf[field::SHA].copy_from_slice(&self.source_hardware_addr.0);
        buf[field::SPA].copy_from_slice(&self.source_protocol_addr.octets());
        buf[field::THA].copy_from_slice(&self.target_hardware_addr.0);
        buf[field::TPA].copy_from_slice(&self.target_protocol_addr.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_parses() {
        // who-has 198.18.0.1 tell 198.18.0.2, from 02:00:00:00:00:02
        let bytes = [
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 198, 18, 0,
            1,
        ];
        let repr = ArpRepr::parse(&ArpPacket::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.operation, ArpOperation::Request);
        assert_eq!(repr.source_protocol_addr, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(repr.target_protocol_addr, Ipv4Addr::new(198, 18, 0, 1));
        let mut out = [0u8; 28];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
        let mut bad = bytes;
        bad[5] = 16; // IPv6-sized protocol addresses
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&bad[..]).unwrap()),
            Err(Error::Unsupported)
        );
        assert_eq!(
            ArpPacket::new_checked(&bytes[..27]).unwrap_err(),
            Error::Truncated
        );
    }
}
