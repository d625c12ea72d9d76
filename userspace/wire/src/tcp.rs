//! TCP headers and options (RFC 9293, RFC 7323, RFC 2018).
//!
//! Option parsing is written for hostile input: an option whose length is 0 or 1, runs
//! past the header, or is wrong for its kind is `Err(Malformed)`, and every step of the
//! walk consumes at least one byte, so it always ends.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::{ChecksumMode, Error, Result};

/// Bytes of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;
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
    flag!(fin, set_fin, 0x01);
    flag!(syn, set_syn, 0x02);
    flag!(rst, set_rst, 0x04);
    flag!(psh, set_psh, 0x08);
    flag!(ack, set_ack, 0x10);
    flag!(urg, set_urg, 0x20);
    flag!(ece, set_ece, 0x40);
    flag!(cwr, set_cwr, 0x80);

    /// The bits as on the wire (the low byte of the flags field, plus NS in bit 8).
    pub const fn bits(&self) -> u16 {
        self.0
    }

    /// Flags from wire bits (unknown bits are kept).
    pub const fn from_bits(bits: u16) -> TcpFlags {
        TcpFlags(bits & 0x1ff)
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
            0 => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
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
        let len = len as usize;
        if len < 2 || len > self.rest.len() {
            return fail(self);
        }
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        let be16 = |d: &[u8]| u16::from_be_bytes([d[0], d[1]]);
        let be32 = |d: &[u8]| u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let option = match (kind, data.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(be16(data)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n > 0 && n % 8 == 0 && n <= 32 => {
                let mut blocks = [None; 4];
                for (slot, b) in blocks.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((be32(&b[..4]), be32(&b[4..])));
                }
                TcpOption::SackRange(blocks)
            }
            (8, 8) => TcpOption::TimeStamp(TcpTimestamp {
                tsval: be32(&data[..4]),
                tsecr: be32(&data[4..]),
            }),
            (2..=5 | 8, _) => return fail(self),
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
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        u32::from_be_bytes([self.b()[4], self.b()[5], self.b()[6], self.b()[7]])
    }

    /// Acknowledgment number field (meaningful when ACK is set).
    pub fn ack_number(&self) -> u32 {
        u32::from_be_bytes([self.b()[8], self.b()[9], self.b()[10], self.b()[11]])
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        (self.b()[12] >> 4) as usize * 4
    }

    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits((((self.b()[12] & 1) as u16) << 8) | self.b()[13] as u16)
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[14], self.b()[15]])
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[16], self.b()[17]])
    }

    /// Urgent pointer.
    pub fn urgent_pointer(&self) -> u16 {
        u16::from_be_bytes([self.b()[18], self.b()[19]])
    }

    /// The options area.
    pub fn options(&self) -> &[u8] {
        &self.b()[TCP_HEADER_LEN..self.header_len()]
    }

    /// The data.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }

    /// Whether the checksum verifies, for a segment between `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.b();
        let s = checksum::combine(
            checksum::pseudo_header(src, dst, 6, b.len() as u32),
            checksum::sum(b),
        );
        checksum::fold32(s) == 0xffff
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
        if mode == ChecksumMode::Verify && !p.verify_checksum(src, dst) {
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
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq_number.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ack_number.unwrap_or(0).to_be_bytes());
        let mut flags = self.flags;
        flags.set_ack(self.ack_number.is_some());
        let bits = flags.bits();
        buf[12] = ((hl / 4) as u8) << 4 | (bits >> 8) as u8;
        buf[13] = bits as u8;
        buf[14..16].copy_from_slice(&self.window_len.to_be_bytes());
        buf[16..18].copy_from_slice(&[0, 0]);
        buf[18..20].copy_from_slice(&self.urgent_pointer.to_be_bytes());
        // Options in Linux's order, so they pack without padding.
        let mut at = TCP_HEADER_LEN;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.max_seg_size {
            let m = mss.to_be_bytes();
            put(&[2, 4, m[0], m[1]]);
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(t)) => {
                put(&[4, 2, 8, 10]);
                put(&t.tsval.to_be_bytes());
                put(&t.tsecr.to_be_bytes());
            }
            (false, Some(t)) => {
                put(&[1, 1, 8, 10]);
                put(&t.tsval.to_be_bytes());
                put(&t.tsecr.to_be_bytes());
            }
            (true, None) => put(&[1, 1, 4, 2]),
            (false, None) => {}
        }
        if let Some(ws) = self.window_scale {
            put(&[1, 3, 3, ws]);
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            put(&[1, 1, 5, (2 + 8 * blocks) as u8]);
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
        seg[16..18].copy_from_slice(&[0, 0]);
        let s = checksum::combine(
            checksum::pseudo_header(src, dst, 6, seg.len() as u32),
            checksum::sum(seg),
        );
        let c = !checksum::fold32(s);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
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
