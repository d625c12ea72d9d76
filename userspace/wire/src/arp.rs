//! ARP for Ethernet and IPv4 (RFC 826).

use core::net::Ipv4Addr;

use crate::ethernet::EthernetAddress;
use crate::{Error, Result};

/// Bytes of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;

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

    fn u16_at(&self, i: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[i], b[i + 1]])
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.u16_at(0)
    }

    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(2)
    }

    /// Hardware and protocol address lengths.
    pub fn address_lengths(&self) -> (u8, u8) {
        let b = self.buffer.as_ref();
        (b[4], b[5])
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        self.u16_at(6).into()
    }

    fn mac_at(&self, i: usize) -> EthernetAddress {
        let b = self.buffer.as_ref();
        EthernetAddress([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5]])
    }

    fn ip_at(&self, i: usize) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3])
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
        if p.hardware_type() != 1 || p.protocol_type() != 0x0800 || p.address_lengths() != (6, 4) {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.mac_at(8),
            source_protocol_addr: p.ip_at(14),
            target_hardware_addr: p.mac_at(18),
            target_protocol_addr: p.ip_at(24),
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
        buf[0..2].copy_from_slice(&1u16.to_be_bytes());
        buf[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        buf[4] = 6;
        buf[5] = 4;
        buf[6..8].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        buf[8..14].copy_from_slice(&self.source_hardware_addr.0);
        buf[14..18].copy_from_slice(&self.source_protocol_addr.octets());
        buf[18..24].copy_from_slice(&self.target_hardware_addr.0);
        buf[24..28].copy_from_slice(&self.target_protocol_addr.octets());
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
