//! The bodies of the fuzz targets (userspace/wire/fuzz), public so that the ordinary test
//! suite also runs them over random input: a target that stops compiling or starts
//! panicking is caught without the fuzzer.

use core::net::Ipv4Addr;

use crate::arp::ARP_LEN;
use crate::{
    frame, ArpPacket, ArpRepr, ChecksumMode, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr,
    TcpOptions, TcpPacket, TcpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
};

/// Parses `data` as an Ethernet header, and re-emits what parsed.
pub fn ethernet(data: &[u8]) {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        if let Ok(r) = EthernetRepr::parse(&f) {
            let mut out = [0u8; ETHERNET_HEADER_LEN];
            r.emit(&mut out).expect("a parsed header fits its own size");
            assert_eq!(&out[..], &data[..ETHERNET_HEADER_LEN]);
        }
    }
}

/// Parses `data` as ARP, and re-emits what parsed.
pub fn arp(data: &[u8]) {
    if let Ok(p) = ArpPacket::new_checked(data) {
        if let Ok(r) = ArpRepr::parse(&p) {
            let mut out = [0u8; ARP_LEN];
            r.emit(&mut out).expect("fits");
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()),
                Ok(r)
            );
        }
    }
}

/// Parses `data` as IPv4 both ways, and checks that what parsed round-trips.
pub fn ipv4(data: &[u8]) {
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = p.payload();
        if let Ok(r) = Ipv4Repr::parse(&p, ChecksumMode::Ignore) {
            let mut out = vec![0u8; IPV4_HEADER_LEN + r.payload_len];
            r.emit(&mut out).expect("fits");
            assert_eq!(
                Ipv4Repr::parse(
                    &Ipv4Packet::new_checked(&out[..]).unwrap(),
                    ChecksumMode::Verify
                ),
                Ok(r)
            );
        }
        let _ = Ipv4Repr::parse(&p, ChecksumMode::Verify);
    }
}

/// Parses `data` as a TCP segment (and walks its options), and checks that what parsed
/// round-trips through emit.
pub fn tcp(data: &[u8]) {
    let (src, dst) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1));
    for o in TcpOptions::new(data) {
        let _ = o;
    }
    if let Ok(p) = TcpPacket::new_checked(data) {
        if let Ok(r) = TcpRepr::parse(&p, src, dst, ChecksumMode::Ignore) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out, src, dst).expect("fits");
            let again = TcpRepr::parse(
                &TcpPacket::new_checked(&out[..]).unwrap(),
                src,
                dst,
                ChecksumMode::Verify,
            )
            .expect("what we emit parses");
            // Emission may drop SACK blocks that do not fit; everything else survives.
            assert_eq!(
                TcpRepr {
                    sack_ranges: [None; 4],
                    ..again
                },
                TcpRepr {
                    sack_ranges: [None; 4],
                    ..r
                }
            );
        }
    }
}

/// Parses `data` as a whole TCP/IPv4 frame.
pub fn tcp_ipv4_frame(data: &[u8]) {
    let _ = frame::parse_tcp_ipv4(data, ChecksumMode::Verify);
    if let Ok(f) = frame::parse_tcp_ipv4(data, ChecksumMode::Ignore) {
        let mut out = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + f.tcp.buffer_len()];
        let n = frame::emit_tcp_ipv4(&mut out, &f.eth, &f.ip, &f.tcp).expect("fits");
        assert!(frame::parse_tcp_ipv4(&out[..n], ChecksumMode::Verify).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fuzz_bodies_survive_random_input(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            super::ethernet(&data);
            super::arp(&data);
            super::ipv4(&data);
            super::tcp(&data);
            super::tcp_ipv4_frame(&data);
        }

        #[test]
        fn fuzz_bodies_survive_mutated_real_frames(flips in proptest::collection::vec((0usize..74, any::<u8>()), 0..6)) {
            // A real SYN frame with options, then a few bytes changed: reaches deeper
            // than random bytes do.
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0,
                0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
                0xc3, 0x50, 0, 53, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7];
            for (i, v) in flips {
                f[i] = v;
            }
            super::tcp_ipv4_frame(&f);
            super::tcp(&f[34..]);
            super::ipv4(&f[14..]);
        }
    }
}
