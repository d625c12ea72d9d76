//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The sum adds 32-bit words into a 64-bit accumulator with no carry handling in the
//! loop, which the compiler vectorises; folding at the end gives the 16-bit ones'
//! complement sum because 2^16 = 1 modulo 0xffff.

use core::net::Ipv4Addr;

/// Adds `data` into a 32-bit partial sum (not folded, not complemented), as 16-bit
/// big-endian words; an odd last byte is padded with zero.
pub fn sum(data: &[u8]) -> u32 {
    // 32-bit big-endian words summed into a u64 cannot overflow below 2^32 words, and
    // 2^16 = 1 (mod 0xffff) makes the folded result equal the 16-bit word sum. A plain
    // loop with no carry handling inside is what lets the compiler vectorise it.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u32::from_be_bytes(tail) as u64;
    let folded = (acc >> 32) + (acc & 0xffff_ffff);
    let folded = (folded >> 32) + (folded & 0xffff_ffff);
    fold32(folded as u32) as u32
}

/// Folds a 32-bit partial sum to 16 bits.
#[inline]
pub fn fold32(mut s: u32) -> u16 {
    s = (s >> 16) + (s & 0xffff);
    s = (s >> 16) + (s & 0xffff);
    s as u16
}

/// Adds two partial sums.
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    fold32(s) as u32 + carry as u32
}

/// The checksum field value for `data` (the complement of its folded sum).
pub fn checksum(data: &[u8]) -> u16 {
    !fold32(sum(data))
}

/// The IPv4 pseudo-header's partial sum for TCP/UDP.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]) as u32,
        u16::from_be_bytes([s[2], s[3]]) as u32,
        u16::from_be_bytes([d[0], d[1]]) as u32,
        u16::from_be_bytes([d[2], d[3]]) as u32,
        protocol as u32,
        length & 0xffff,
        length >> 16,
    ];
    words.iter().sum()
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word of the covered data changed
/// from `old` to `new`, without re-summing the data.
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold32((!checksum) as u32 + (!old) as u32 + new as u32)
}

/// [`update_u16`] for a 32-bit field (an address, a sequence number).
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

/// The naive reference: one 16-bit word at a time. Kept for the benchmark and tests.
pub fn checksum_naive(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        s += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
        i += 2;
    }
    if i < data.len() {
        s += (data[i] as u32) << 8;
    }
    !fold32(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold32(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn an_ipv4_header_verifies() {
        // A real header (from a capture): its checksum 0xb861 makes the sum 0xffff.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0);
    }

    proptest! {
        #[test]
        fn fast_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(checksum(&data), checksum_naive(&data));
        }

        #[test]
        fn split_sums_combine(data in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..300) {
            let at = (at * 2).min(data.len() & !1);
            prop_assert_eq!(fold32(combine(sum(&data[..at]), sum(&data[at..]))), fold32(sum(&data)));
        }

        #[test]
        fn incremental_equals_recompute(mut data in proptest::collection::vec(any::<u8>(), 8..200), word in 0usize..100, new in any::<u16>(), new32 in any::<u32>()) {
            let i = (word * 2) % (data.len() & !1).max(2);
            let i = i.min(data.len() - 2) & !1;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let inc = update_u16(before, old, new);
            // Ones' complement has two zeros: compare what the receiver sees.
            prop_assert_eq!(fold32(sum(&data) + inc as u32), 0xffff);
            let j = 0;
            let before = checksum(&data);
            let old32 = u32::from_be_bytes([data[j], data[j + 1], data[j + 2], data[j + 3]]);
            data[j..j + 4].copy_from_slice(&new32.to_be_bytes());
            let inc = update_u32(before, old32, new32);
            prop_assert_eq!(fold32(sum(&data) + inc as u32), 0xffff);
        }
    }
}
