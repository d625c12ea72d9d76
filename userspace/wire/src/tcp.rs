//! TCP headers and options (RFC 9293, RFC 7323, RFC 2018).
//!
//! Option parsing is written for hostile input: an option whose length is 0 or 1, runs
//! past the header, or is wrong for its kind is `Err(Malformed)`, and every step of the
//! walk consumes at least one byte, so it always ends.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::field::{read_u16, read_u32};
use crate::ipv4::IpProtocol;
use crate::{ChecksumMode, Error, Result};

/// Where the fields of a TCP header are (RFC 9293 §3.1), the bits inside them, and the
/// kinds and lengths of the options this crate knows.
mod field {
    #![allow(non_snake_case)]

    use crate::field::Field;

    /// Source port.
    pub(crate) const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub(crate) const DST_PORT: Field = 2..4;
    /// Sequence number of the first byte of data (or of the SYN).
    pub(crate) const SEQ_NUM: Field = 4..8;
    /// The next sequence number the sender expects, when ACK is set.
    pub(crate) const ACK_NUM: Field = 8..12;
    /// Data offset (high 4 bits: header length in 32-bit words), reserved bits, and
    /// the control bits (`FLG_*`) below them.
    pub(crate) const FLAGS: Field = 12..14;
    /// The receive window, before the peer's window scale is applied.
    pub(crate) const WIN_SIZE: Field = 14..16;
    /// Ones' complement checksum of the pseudo-header, header and data.
    pub(crate) const CHECKSUM: Field = 16..18;
    /// Urgent pointer; the options, if any, follow it.
    pub(crate) const URGENT: Field = 18..20;

    /// The options area of a header `header_len` bytes long: from the end of the fixed
    /// header to the data.
    pub(crate) const fn OPTIONS(header_len: usize) -> Field {
        URGENT.end..header_len
    }

    /// How far up FLAGS the data offset sits.
    pub(crate) const DATA_OFFSET_SHIFT: u32 = 12;
    /// FIN: no more data from the sender.
    pub(crate) const FLG_FIN: u16 = 0x001;
    /// SYN: synchronise sequence numbers.
    pub(crate) const FLG_SYN: u16 = 0x002;
    /// RST: reset the connection.
    pub(crate) const FLG_RST: u16 = 0x004;
    /// PSH: push the data to the application.
    pub(crate) const FLG_PSH: u16 = 0x008;
    /// ACK: the acknowledgment number is meaningful.
    pub(crate) const FLG_ACK: u16 = 0x010;
    /// URG: the urgent pointer is meaningful.
    pub(crate) const FLG_URG: u16 = 0x020;
    /// ECE: ECN echo (RFC 3168).
    pub(crate) const FLG_ECE: u16 = 0x040;
    /// CWR: congestion window reduced (RFC 3168).
    pub(crate) const FLG_CWR: u16 = 0x080;
    /// Every control bit FLAGS can carry: the eight above and NS (RFC 3540, historic),
    /// the lowest reserved bit. Data offset and the other reserved bits are not flags.
    pub(crate) const FLG_MASK: u16 = 0x1ff;

    /// Option kind: end of the option list.
    pub(crate) const OPT_END: u8 = 0;
    /// Option kind: no-operation, padding between options.
    pub(crate) const OPT_NOP: u8 = 1;
    /// Option kind: maximum segment size.
    pub(crate) const OPT_MSS: u8 = 2;
    /// Option kind: window scale (RFC 7323).
    pub(crate) const OPT_WS: u8 = 3;
    /// Option kind: SACK permitted (RFC 2018).
    pub(crate) const OPT_SACKPERM: u8 = 4;
    /// Option kind: SACK blocks (RFC 2018).
    pub(crate) const OPT_SACKRNG: u8 = 5;
    /// Option kind: timestamps (RFC 7323).
    pub(crate) const OPT_TSTAMP: u8 = 8;

    /// Length of a whole MSS option: kind, length, 16-bit size.
    pub(crate) const OPT_MSS_LEN: u8 = 4;
    /// Length of a whole window-scale option: kind, length, shift.
    pub(crate) const OPT_WS_LEN: u8 = 3;
    /// Length of a whole SACK-permitted option: kind and length alone.
    pub(crate) const OPT_SACKPERM_LEN: u8 = 2;
    /// Length of a whole timestamps option: kind, length, two 32-bit clocks.
    pub(crate) const OPT_TSTAMP_LEN: u8 = 10;
}

/// Bytes of a TCP header without options.
pub const TCP_HEADER_LEN: usize = field::URGENT.end;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = 40;

/// The control bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(u16);

macro_rules! flag {
    ($get:ident, $set:ident, $bit:expr) => {
        #[doc = concat!("The ", stringify!($get), " bit.")]
        #[inline]
        pub const fn $get(&self) -> bool {
            self.0 & $bit != 0
        }

        #[doc = concat!("Sets or clears the ", stringify!($get), " bit.")]
        #[inline]
        pub fn $set(&mut self, on: bool) {
            if on {
                self.0 |= $bit
            } else {
                self.0 &= !$bit
            }
        }
    };
}

impl TcpFlags {
    flag!(fin, set_fin, field::FLG_FIN);
    flag!(syn, set_syn, field::FLG_SYN);
    flag!(rst, set_rst, field::FLG_RST);
    flag!(psh, set_psh, field::FLG_PSH);
    flag!(ack, set_ack, field::FLG_ACK);
    flag!(urg, set_urg, field::FLG_URG);
    flag!(ece, set_ece, field::FLG_ECE);
    flag!(cwr, set_cwr, field::FLG_CWR);

    /// The bits as on the wire (the low byte of the flags field, plus NS in bit 8).
    pub const fn bits(&self) -> u16 {
        self.0
    }

    /// Flags from wire bits (unknown bits are kept).
    pub const fn from_bits(bits: u16) -> TcpFlags {
        TcpFlags(bits & field::FLG_MASK)
    }
}

/// The timestamps option (RFC 7323).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpTimestamp {
    /// The sender's clock.
    pub tsval: u32,
    /// The echoed clock of the peer.
    pub tsecr: u32,
}

/// One option, as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: nothing follows.
    EndOfList,
    /// Kind 1: padding.
    NoOperation,
    /// Kind 2.
    MaxSegmentSize(u16),
    /// Kind 3.
    WindowScale(u8),
    /// Kind 4.
    SackPermitted,
    /// Kind 5: up to four (left, right) blocks.
    SackRange([Option<(u32, u32)>; 4]),
    /// Kind 8.
    TimeStamp(TcpTimestamp),
    /// Any other kind, skipped by its length.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The option's data (after kind and length).
        data: &'a [u8],
    },
}

/// Walks the options area; yields each option or the first error, then stops.
pub struct TcpOptions<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TcpOptions<'a> {
    /// The options in `area` (the bytes between the fixed header and the data).
    pub fn new(area: &'a [u8]) -> Self {
        TcpOptions {
            rest: area,
            failed: false,
        }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            field::OPT_END => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            field::OPT_NOP => {
                self.rest = after;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let fail = |me: &mut Self| {
            me.failed = true;
            Some(Err(Error::Malformed))
        };
        let Some(&len) = after.first() else {
            return fail(self);
        };
        // The length covers the kind and length bytes themselves, then the data.
        let size = len as usize;
        if size < 2 || size > self.rest.len() {
            return fail(self);
        }
        let data = &self.rest[2..size];
        self.rest = &self.rest[size..];
        let be16 = |d: &[u8]| u16::from_be_bytes([d[0], d[1]]);
        let be32 = |d: &[u8]| u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        use field::{
            OPT_MSS, OPT_MSS_LEN, OPT_SACKPERM, OPT_SACKPERM_LEN, OPT_SACKRNG, OPT_TSTAMP,
            OPT_TSTAMP_LEN, OPT_WS, OPT_WS_LEN,
        };
        let option = match (kind, len) {
            (OPT_MSS, OPT_MSS_LEN) => TcpOption::MaxSegmentSize(be16(data)),
            (OPT_WS, OPT_WS_LEN) => TcpOption::WindowScale(data[0]),
            (OPT_SACKPERM, OPT_SACKPERM_LEN) => TcpOption::SackPermitted,
            // One to four blocks of two 32-bit edges.
            (OPT_SACKRNG, _)
                if !data.is_empty() && data.len().is_multiple_of(8) && data.len() <= 32 =>
            {
                let mut blocks = [None; 4];
                for (slot, b) in blocks.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((be32(&b[..4]), be32(&b[4..])));
                }
                TcpOption::SackRange(blocks)
            }
            (OPT_TSTAMP, OPT_TSTAMP_LEN) => TcpOption::TimeStamp(TcpTimestamp {
                tsval: be32(&data[..4]),
                tsecr: be32(&data[4..]),
            }),
            // A kind we know with a length it cannot have.
            (OPT_MSS | OPT_WS | OPT_SACKPERM | OPT_SACKRNG | OPT_TSTAMP, _) => return fail(self),
            _ => TcpOption::Unknown { kind, data },
        };
        Some(Ok(option))
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` (the IPv4 payload) after checking the data offset.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < TCP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let p = TcpPacket { buffer };
        let hl = p.header_len();
        if hl < TCP_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.b(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.b(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.b(), field::SEQ_NUM)
    }

    /// Acknowledgment number field (meaningful when ACK is set).
    pub fn ack_number(&self) -> u32 {
        read_u32(self.b(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        (read_u16(self.b(), field::FLAGS) >> field::DATA_OFFSET_SHIFT) as usize * 4
    }

    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(read_u16(self.b(), field::FLAGS))
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.b(), field::WIN_SIZE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_pointer(&self) -> u16 {
        read_u16(self.b(), field::URGENT)
    }

    /// The options area.
    pub fn options(&self) -> &[u8] {
        &self.b()[field::OPTIONS(self.header_len())]
    }

    /// The data.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }

    /// Whether the checksum verifies, for a segment between `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.b();
        let s = checksum::combine(
            checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), b.len() as u32),
            checksum::sum(b),
        );
        checksum::fold32(s) == 0xffff
    }

    /// Whether the checksum field holds exactly the folded pseudo-header sum, which is
    /// what Linux leaves there for a CHECKSUM_PARTIAL frame (the device was to add the
    /// segment's own sum): such a frame, seen before any device completed it.
    pub fn has_partial_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.b();
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), b.len() as u32);
        self.checksum() == checksum::fold32(pseudo)
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// The data, borrowed for the buffer's lifetime.
    pub fn payload_slice(&self) -> &'a [u8] {
        &self.buffer[self.header_len()..]
    }
}

/// A parsed TCP segment.
///
/// `ack_number` is `Some` exactly when the ACK bit is set; `flags` never carries the ACK
/// bit itself (it is derived from `ack_number` on emit), so the two cannot disagree.
///
/// The default is an empty segment between ports 0: no flags, no options, no payload;
/// write `TcpRepr { src_port, dst_port, seq_number, .., ..Default::default() }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number, when ACK is set.
    pub ack_number: Option<u32>,
    /// Every control bit but ACK.
    pub flags: TcpFlags,
    /// Window field, unscaled.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_pointer: u16,
    /// MSS option.
    pub max_seg_size: Option<u16>,
    /// Window-scale option (the shift).
    pub window_scale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// SACK blocks (left, right), first ones first.
    pub sack_ranges: [Option<(u32, u32)>; 4],
    /// Timestamps option.
    pub timestamp: Option<TcpTimestamp>,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a checked segment, verifying its checksum against the pseudo-header of
    /// `src` → `dst` unless told not to.
    pub fn parse(
        p: &TcpPacket<&'a [u8]>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mode: ChecksumMode,
    ) -> Result<TcpRepr<'a>> {
        let good = match mode {
            ChecksumMode::Ignore => true,
            ChecksumMode::Verify => p.verify_checksum(src, dst),
            ChecksumMode::VerifyOrPartial => {
                p.verify_checksum(src, dst) || p.has_partial_checksum(src, dst)
            }
        };
        if !good {
            return Err(Error::BadChecksum);
        }
        if p.src_port() == 0 || p.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        let mut flags = p.flags();
        let ack_number = flags.ack().then(|| p.ack_number());
        flags.set_ack(false);
        let mut repr = TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number,
            flags,
            window_len: p.window_len(),
            urgent_pointer: p.urgent_pointer(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload: p.payload_slice(),
        };
        for option in TcpOptions::new(p.options()) {
            match option? {
                TcpOption::EndOfList => break,
                TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(m) => repr.max_seg_size = Some(m),
                TcpOption::WindowScale(s) => repr.window_scale = Some(s),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(blocks) => repr.sack_ranges = blocks,
                TcpOption::TimeStamp(t) => repr.timestamp = Some(t),
            }
        }
        Ok(repr)
    }

    /// SACK blocks that fit beside the other options (each takes 8 bytes plus 4 for
    /// the option's NOP NOP kind length).
    fn sack_blocks_emitted(&self) -> usize {
        let n = self.sack_ranges.iter().take_while(|r| r.is_some()).count();
        if n == 0 {
            return 0;
        }
        let room = MAX_OPTIONS_LEN - self.fixed_options_len();
        n.min(room.saturating_sub(4) / 8)
    }

    fn fixed_options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += 4;
        }
        len += match (self.sack_permitted, self.timestamp.is_some()) {
            (true, true) => 12,
            (false, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// Header bytes: 20 plus the options, a multiple of 4. SACK blocks that would push
    /// the options past 40 bytes are left out (the oldest, last ones first): the peer
    /// learns them from a later ACK, which RFC 2018 allows.
    pub fn header_len(&self) -> usize {
        let blocks = self.sack_blocks_emitted();
        let sack = if blocks > 0 { 4 + 8 * blocks } else { 0 };
        TCP_HEADER_LEN + self.fixed_options_len() + sack
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// How many bytes of sequence space it occupies (data, SYN and FIN).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + self.flags.syn() as usize + self.flags.fin() as usize
    }

    /// Writes the header only (options included, checksum field zero) into `buf`.
    /// Returns the header length.
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<usize> {
        let hl = self.header_len();
        if buf.len() < hl {
            return Err(Error::Truncated);
        }
        buf[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        buf[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[field::SEQ_NUM].copy_from_slice(&self.seq_number.to_be_bytes());
        buf[field::ACK_NUM].copy_from_slice(&self.ack_number.unwrap_or(0).to_be_bytes());
        let mut flags = self.flags;
        flags.set_ack(self.ack_number.is_some());
        // `bits` stays within FLG_MASK, below the data offset; the reserved bits are 0.
        let offset_and_flags = (((hl / 4) as u16) << field::DATA_OFFSET_SHIFT) | flags.bits();
        buf[field::FLAGS].copy_from_slice(&offset_and_flags.to_be_bytes());
        buf[field::WIN_SIZE].copy_from_slice(&self.window_len.to_be_bytes());
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::URGENT].copy_from_slice(&self.urgent_pointer.to_be_bytes());
        // Options in Linux's order, so they pack without padding.
        use field::{
            OPT_MSS, OPT_MSS_LEN, OPT_NOP, OPT_SACKPERM, OPT_SACKPERM_LEN, OPT_SACKRNG, OPT_TSTAMP,
            OPT_TSTAMP_LEN, OPT_WS, OPT_WS_LEN,
        };
        let mut at = field::OPTIONS(hl).start;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.max_seg_size {
            let m = mss.to_be_bytes();
            put(&[OPT_MSS, OPT_MSS_LEN, m[0], m[1]]);
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(t)) => {
                put(&[OPT_SACKPERM, OPT_SACKPERM_LEN, OPT_TSTAMP, OPT_TSTAMP_LEN]);
                put(&t.tsval.to_be_bytes());
                put(&t.tsecr.to_be_bytes());
            }
            (false, Some(t)) => {
                put(&[OPT_NOP, OPT_NOP, OPT_TSTAMP, OPT_TSTAMP_LEN]);
                put(&t.tsval.to_be_bytes());
                put(&t.tsecr.to_be_bytes());
            }
            (true, None) => put(&[OPT_NOP, OPT_NOP, OPT_SACKPERM, OPT_SACKPERM_LEN]),
            (false, None) => {}
        }
        if let Some(ws) = self.window_scale {
            put(&[OPT_NOP, OPT_WS, OPT_WS_LEN, ws]);
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            // Kind, length, then two 32-bit edges per block.
            put(&[OPT_NOP, OPT_NOP, OPT_SACKRNG, (2 + 8 * blocks) as u8]);
            for (l, r) in self.sack_ranges.iter().take(blocks).flatten() {
                put(&l.to_be_bytes());
                put(&r.to_be_bytes());
            }
        }
        debug_assert_eq!(at, hl);
        Ok(hl)
    }

    /// Computes and writes the checksum of the segment in `seg` (header and data).
    pub fn fill_checksum(seg: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        seg[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let s = checksum::combine(
            checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), seg.len() as u32),
            checksum::sum(seg),
        );
        let c = !checksum::fold32(s);
        seg[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// Writes the whole segment (header, data, checksum) into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::Truncated);
        }
        let hl = self.emit_header(buf)?;
        buf[hl..len].copy_from_slice(self.payload);
        Self::fill_checksum(&mut buf[..len], src, dst);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// A SYN as Linux sends it: MSS 1460, SACK-permitted, timestamps, NOP, WS 7.
    fn linux_syn() -> Vec<u8> {
        let mut s = vec![
            0xc3, 0x50, 0x00, 0x35, // 50000 -> 53
            0x12, 0x34, 0x56, 0x78, // seq
            0x00, 0x00, 0x00, 0x00, // ack
            0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window 64240
            0x00, 0x00, 0x00, 0x00, // checksum, urgent
            0x02, 0x04, 0x05, 0xb4, // MSS 1460
            0x04, 0x02, 0x08, 0x0a, // SACK-permitted, TS
            0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, // tsval, tsecr
            0x01, 0x03, 0x03, 0x07, // NOP, WS 7
        ];
        TcpRepr::fill_checksum(&mut s, SRC, DST);
        s
    }

    #[test]
    fn a_linux_syn_parses_completely() {
        let s = linux_syn();
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        let r = TcpRepr::parse(&p, SRC, DST, ChecksumMode::Verify).unwrap();
        assert_eq!(
            (r.src_port, r.dst_port, r.seq_number, r.ack_number),
            (50000, 53, 0x12345678, None)
        );
        assert!(r.flags.syn() && !r.flags.fin());
        assert_eq!(r.window_len, 64240);
        assert_eq!(r.max_seg_size, Some(1460));
        assert!(r.sack_permitted);
        assert_eq!(
            r.timestamp,
            Some(TcpTimestamp {
                tsval: 0x00010203,
                tsecr: 0
            })
        );
        assert_eq!(r.window_scale, Some(7));
        // And it emits back to the same bytes.
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out, SRC, DST).unwrap();
        assert_eq!(out, s);
    }

    #[test]
    fn hostile_options_are_errors_not_loops() {
        for opts in [
            &[2u8, 0, 0, 0][..], // length 0
            &[2, 1, 0, 0],       // length 1
            &[8, 10, 0, 0],      // runs past the header
            &[2, 3, 5, 0],       // MSS with the wrong length
            &[5, 3, 0, 0],       // SACK with a partial block
            &[3, 4, 7, 0],       // WS with the wrong length
            &[0xfe, 0, 0, 0],    // unknown kind, length 0
        ] {
            let mut s = linux_syn()[..20].to_vec();
            s[12] = 0x60; // doff 6
            s.extend_from_slice(opts);
            TcpRepr::fill_checksum(&mut s, SRC, DST);
            let p = TcpPacket::new_checked(&s[..]).unwrap();
            assert_eq!(
                TcpRepr::parse(&p, SRC, DST, ChecksumMode::Verify),
                Err(Error::Malformed),
                "{opts:?}"
            );
        }
    }

    #[test]
    fn unknown_options_are_skipped_and_eol_ends() {
        let mut s = linux_syn()[..20].to_vec();
        s[12] = 0x80; // doff 8: 12 option bytes
        s.extend_from_slice(&[0x1e, 4, 0xaa, 0xbb, 3, 3, 9, 0, 2, 0, 0, 0]); // unknown, WS 9, EOL, junk after
        TcpRepr::fill_checksum(&mut s, SRC, DST);
        let r = TcpRepr::parse(
            &TcpPacket::new_checked(&s[..]).unwrap(),
            SRC,
            DST,
            ChecksumMode::Verify,
        )
        .unwrap();
        assert_eq!(r.window_scale, Some(9));
        assert_eq!(r.max_seg_size, None, "bytes after EOL are not options");
    }

    #[test]
    fn a_partial_checksum_passes_only_where_asked() {
        let mut s = linux_syn();
        // What Linux leaves in a CHECKSUM_PARTIAL segment: the folded pseudo-header sum.
        let pseudo = checksum::fold32(checksum::pseudo_header(SRC, DST, 6, s.len() as u32));
        s[16..18].copy_from_slice(&pseudo.to_be_bytes());
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert!(p.has_partial_checksum(SRC, DST));
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST, ChecksumMode::Verify),
            Err(Error::BadChecksum)
        );
        assert!(TcpRepr::parse(&p, SRC, DST, ChecksumMode::VerifyOrPartial).is_ok());
        // Any other wrong value fails in both modes; a complete checksum passes both.
        let mut wrong = s.clone();
        wrong[16..18].copy_from_slice(&pseudo.wrapping_add(1).to_be_bytes());
        let p = TcpPacket::new_checked(&wrong[..]).unwrap();
        for mode in [ChecksumMode::Verify, ChecksumMode::VerifyOrPartial] {
            assert_eq!(TcpRepr::parse(&p, SRC, DST, mode), Err(Error::BadChecksum));
        }
        let good = linux_syn();
        let p = TcpPacket::new_checked(&good[..]).unwrap();
        assert!(TcpRepr::parse(&p, SRC, DST, ChecksumMode::VerifyOrPartial).is_ok());
        // The pseudo-header names the addresses: another pair's partial sum fails.
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(
                &p,
                DST,
                Ipv4Addr::new(10, 9, 9, 9),
                ChecksumMode::VerifyOrPartial
            ),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn bad_offsets_and_checksums() {
        let s = linux_syn();
        let mut bad = s.clone();
        bad[12] = 0x40; // doff 4
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap_err(),
            Error::Malformed
        );
        let mut bad = s.clone();
        bad[12] = 0xf0; // doff 15: 60 bytes, more than we have
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap_err(),
            Error::Truncated
        );
        let mut bad = s;
        bad[4] ^= 1;
        let p = TcpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST, ChecksumMode::Verify),
            Err(Error::BadChecksum)
        );
        assert!(TcpRepr::parse(&p, SRC, DST, ChecksumMode::Ignore).is_ok());
    }

    #[test]
    fn sack_blocks_that_do_not_fit_are_left_out() {
        let r = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq_number: 0,
            ack_number: Some(0),
            flags: TcpFlags::default(),
            window_len: 0,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [Some((1, 2)), Some((3, 4)), Some((5, 6)), Some((7, 8))],
            timestamp: Some(TcpTimestamp::default()),
            payload: &[],
        };
        assert_eq!(
            r.header_len(),
            20 + 12 + 4 + 3 * 8,
            "timestamps leave room for three blocks"
        );
        let mut buf = [0u8; 60];
        let n = r.emit(&mut buf, SRC, DST).unwrap();
        let back = TcpRepr::parse(
            &TcpPacket::new_checked(&buf[..n]).unwrap(),
            SRC,
            DST,
            ChecksumMode::Verify,
        )
        .unwrap();
        assert_eq!(
            back.sack_ranges,
            [Some((1, 2)), Some((3, 4)), Some((5, 6)), None]
        );
    }

    fn arb_repr(payload: &[u8]) -> impl Strategy<Value = TcpRepr<'_>> {
        (
            (
                1u16..,
                1u16..,
                any::<u32>(),
                proptest::option::of(any::<u32>()),
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
            ),
            (
                proptest::option::of(any::<u16>()),
                proptest::option::of(0u8..15),
                any::<bool>(),
                0usize..4,
                proptest::option::of((any::<u32>(), any::<u32>())),
            ),
        )
            .prop_map(
                move |((sp, dp, seq, ack, flags, win, urg), (mss, ws, sp_ok, nsack, ts))| {
                    let mut f = TcpFlags::from_bits(flags);
                    f.set_ack(false);
                    let mut sack = [None; 4];
                    // At most three blocks fit with timestamps and the rest; keep what fits.
                    for (i, s) in sack.iter_mut().enumerate().take(nsack) {
                        *s = Some((i as u32 * 100, i as u32 * 100 + 50));
                    }
                    let mut r = TcpRepr {
                        src_port: sp,
                        dst_port: dp,
                        seq_number: seq,
                        ack_number: ack,
                        flags: f,
                        window_len: win,
                        urgent_pointer: urg,
                        max_seg_size: mss,
                        window_scale: ws,
                        sack_permitted: sp_ok,
                        sack_ranges: sack,
                        timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                        payload,
                    };
                    let kept = r.sack_blocks_emitted();
                    for s in r.sack_ranges.iter_mut().skip(kept) {
                        *s = None;
                    }
                    r
                },
            )
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..200), seed in any::<u64>()) {
            let mut runner = proptest::test_runner::TestRunner::new_with_rng(
                proptest::test_runner::Config::default(),
                proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
                    let mut s = [0u8; 32];
                    s[..8].copy_from_slice(&seed.to_le_bytes());
                    s
                }),
            );
            let r = arb_repr(&payload).new_tree(&mut runner).unwrap().current();
            let mut buf = vec![0u8; r.buffer_len()];
            let n = r.emit(&mut buf, SRC, DST).unwrap();
            prop_assert_eq!(n, buf.len());
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&p, SRC, DST, ChecksumMode::Verify).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = TcpRepr::parse(&p, SRC, DST, ChecksumMode::Ignore);
                let _ = TcpRepr::parse(&p, SRC, DST, ChecksumMode::Verify);
            }
            for o in TcpOptions::new(&data) {
                let _ = o;
            }
        }
    }
}
