//! The DNS message header (RFC 1035 §4.1.1): where its fields are and what the bits of
//! its flags word mean, in one place for everything that reads or writes a header.
//!
//! ```text
//!   0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15   (bits, most significant first)
//! +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//! |                       ID                      |  ID, bytes 0-1
//! |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |  FLAGS, bytes 2-3
//! |                    QDCOUNT                    |  bytes 4-5
//! |                    ANCOUNT                    |  bytes 6-7
//! |                    NSCOUNT                    |  bytes 8-9
//! |                    ARCOUNT                    |  bytes 10-11
//! +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//! ```
//!
//! Every field is a big-endian 16-bit word; the flag constants are masks over FLAGS as
//! such a word. AD and CD are RFC 4035's, taken from Z's old bits.

/// The bytes of one header field, as a range of the message.
pub type Field = core::ops::Range<usize>;

/// Chosen by the client and echoed in the response, so that it can match the two.
pub const ID: Field = 0..2;
/// The flags word: QR, opcode, AA, TC, RD, RA, Z, AD, CD and RCODE (the masks below).
pub const FLAGS: Field = 2..4;
/// How many entries the question section holds (one, in any query we answer).
pub const QDCOUNT: Field = 4..6;
/// How many records the answer section holds.
pub const ANCOUNT: Field = 6..8;
/// How many records the authority section holds.
pub const NSCOUNT: Field = 8..10;
/// How many records the additional section holds (the OPT record counts).
pub const ARCOUNT: Field = 10..12;
/// Bytes of the header: the question section starts here, so a compression pointer to
/// the question name is this offset.
pub const LEN: usize = ARCOUNT.end;

/// Set in a response, clear in a query.
pub const QR: u16 = 0x8000;
/// The kind of query (0 = a standard query); a response copies it.
pub const OPCODE_MASK: u16 = 0x7800;
/// How far up FLAGS the opcode sits.
pub const OPCODE_SHIFT: u32 = 11;
/// Authoritative answer: the responder serves the zone the answer comes from.
pub const AA: u16 = 0x0400;
/// Truncated: the message did not fit (never set over TCP).
pub const TC: u16 = 0x0200;
/// Recursion desired: set by the client, copied into the response.
pub const RD: u16 = 0x0100;
/// Recursion available: a resolver's; an authoritative server leaves it clear.
pub const RA: u16 = 0x0080;
/// Reserved; zero.
pub const Z: u16 = 0x0040;
/// Authentic data (RFC 4035): the records were validated with DNSSEC.
pub const AD: u16 = 0x0020;
/// Checking disabled (RFC 4035): the client does its own DNSSEC validation.
pub const CD: u16 = 0x0010;
/// Bits of RCODE in the header. An extended rcode (EDNS, RFC 6891) keeps its low
/// `RCODE_BITS` bits here and the rest in the OPT record.
pub const RCODE_BITS: u32 = 4;
/// The response code's bits in FLAGS (see [`crate::rcode`]).
pub const RCODE_MASK: u16 = (1 << RCODE_BITS) - 1;

/// The 16-bit field `field` of `message`, or `None` when the message is too short to
/// hold it.
pub fn get(message: &[u8], field: Field) -> Option<u16> {
    let bytes: [u8; 2] = message.get(field)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_cover_the_word_once() {
        let masks = [QR, OPCODE_MASK, AA, TC, RD, RA, Z, AD, CD, RCODE_MASK];
        assert_eq!(masks.iter().fold(0, |all, m| all | m), 0xffff);
        assert_eq!(masks.iter().map(|m| m.count_ones()).sum::<u32>(), 16);
        assert_eq!(OPCODE_MASK >> OPCODE_SHIFT, 0x0f);
    }

    #[test]
    fn fields_read_only_when_whole() {
        let m = [0x12, 0x34, 0x81, 0x80, 0, 1];
        assert_eq!(get(&m, ID), Some(0x1234));
        assert_eq!(get(&m, FLAGS), Some(QR | RD | RA));
        assert_eq!(get(&m, QDCOUNT), Some(1));
        assert_eq!(get(&m, ANCOUNT), None);
        assert_eq!(get(&m[..3], FLAGS), None);
    }
}
