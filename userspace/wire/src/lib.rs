//! Wire formats for sluice: zero-copy views over packet buffers and parsed
//! representations with `parse`/`emit`, after smoltcp's `wire` module.
//!
//! - Views (`EthernetFrame`, `ArpPacket`, `Ipv4Packet`, `TcpPacket`) wrap any
//!   `AsRef<[u8]>` and read fields in place; `new_checked` guarantees every getter is in
//!   bounds, so no getter can panic afterwards.
//! - Reprs (`EthernetRepr`, `ArpRepr`, `Ipv4Repr`, `TcpRepr`) are the parsed, validated
//!   meaning; `emit` writes them into a caller's buffer (a UMEM frame) with no allocation.
//!
//! Malformed input is always an `Err`, never a panic, an out-of-bounds read or a loop
//! that does not end (TCP options above all: see docs/design.md on Knot's bug).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
/// Fuzz target bodies: for cargo-fuzz and this crate's tests, behind the `fuzzing`
/// feature so they are not part of the API.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ipv4;
pub mod tcp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr, ETHERNET_HEADER_LEN};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN};
pub use tcp::{TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr, TcpTimestamp, TCP_HEADER_LEN};

use core::fmt;

/// Names for where header fields sit. Each header module has its own `mod field` of
/// named byte ranges built from these, so that an accessor says which field it reads
/// (`b[field::SRC_PORT]`) rather than where it happens to be (`b[0..2]`).
mod field {
    /// The bytes of one fixed-size field, as a range of the header's buffer.
    pub(crate) type Field = core::ops::Range<usize>;
    /// From where a header ends to the end of the buffer: its payload.
    pub(crate) type Rest = core::ops::RangeFrom<usize>;

    /// The bytes of `field` in `buffer`, copied into an array of the field's size.
    /// A field and `N` of different sizes is a bug in this crate, caught by any test
    /// that reads the field; a buffer too short for it cannot reach here, since the
    /// views check their length when they are made.
    #[inline]
    pub(crate) fn array<const N: usize>(buffer: &[u8], field: Field) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&buffer[field]);
        out
    }

    /// The big-endian 16-bit number in `field` of `buffer`.
    #[inline]
    pub(crate) fn read_u16(buffer: &[u8], field: Field) -> u16 {
        u16::from_be_bytes(array(buffer, field))
    }

    /// The big-endian 32-bit number in `field` of `buffer`.
    #[inline]
    pub(crate) fn read_u32(buffer: &[u8], field: Field) -> u32 {
        u32::from_be_bytes(array(buffer, field))
    }
}

/// Why a buffer did not parse (or a repr did not fit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the headers it claims.
    Truncated,
    /// A field has a value the format forbids.
    Malformed,
    /// A checksum does not verify.
    BadChecksum,
    /// Valid, but not something this crate handles (IPv4 fragments, other versions).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::BadChecksum => "bad checksum",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for Error {}

/// This crate's results.
pub type Result<T> = core::result::Result<T, Error>;

/// Whether parsing checks checksums. Frames the kernel sends over veth carry
/// CHECKSUM_PARTIAL (only the pseudo-header sum) unless TX offload is off on the sender,
/// so a caller that knows its frames come from such a peer can choose not to verify.
/// Emitting always computes checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Reject frames whose checksums do not verify.
    #[default]
    Verify,
    /// Do not look at checksums.
    Ignore,
    /// As `Verify`, except that a TCP checksum field holding exactly the folded
    /// pseudo-header sum also passes: a frame its sender's kernel left CHECKSUM_PARTIAL
    /// (TX checksum offload) on a virtual link (veth), where no NIC ever completes the
    /// checksum. Only for an interface no frame reaches from a wire.
    VerifyOrPartial,
}
