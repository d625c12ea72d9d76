//! Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport, remoteip,
//! remoteport, secretkey).
//!
//! M is a clock ticking every 4 µs (RFC 9293 §3.4.1), taken from the caller's [`Instant`];
//! F is SipHash-2-4 keyed with a secret the caller draws from its RNG (this crate reads
//! no RNG), as Linux does. An off-path attacker who does not know the key cannot predict
//! the ISN of a connection, while successive incarnations of the same 4-tuple still get
//! increasing ISNs from M.

use std::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::seq::SeqNumber;
use crate::time::Instant;

/// The ISN generator of a stack (one key for all connections).
#[derive(Clone)]
pub struct IsnGenerator {
    hasher: SipHasher24,
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key is a secret: never print it.
        f.write_str("IsnGenerator { .. }")
    }
}

/// The 12 bytes of a 4-tuple, in a fixed order, for hashing.
pub(crate) fn tuple_bytes(local: SocketAddrV4, remote: SocketAddrV4) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&local.ip().octets());
    b[4..6].copy_from_slice(&local.port().to_be_bytes());
    b[6..10].copy_from_slice(&remote.ip().octets());
    b[10..12].copy_from_slice(&remote.port().to_be_bytes());
    b
}

impl IsnGenerator {
    /// A generator keyed with `key`, which must be secret and random (the stack fills it
    /// from the OS RNG at start-up).
    pub fn new(key: [u8; 16]) -> IsnGenerator {
        IsnGenerator {
            hasher: SipHasher24::new_with_key(&key),
        }
    }

    /// The ISN for a connection between `local` and `remote` opened at `now`.
    pub fn generate(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> SeqNumber {
        let f = self.hasher.hash(&tuple_bytes(local, remote)) as u32;
        // M: the 4 µs clock, modulo 2^32 (it wraps every 4.77 hours, as RFC 9293 says).
        let m = (now.as_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use std::net::Ipv4Addr;

    fn a(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    #[test]
    fn keyed_per_tuple_and_advancing_with_the_clock() {
        let g = IsnGenerator::new(*b"0123456789abcdef");
        let (l, r) = (a([10, 0, 0, 1], 53), a([10, 0, 0, 2], 40000));
        let t = Instant::from_secs(1000);
        let isn = g.generate(l, r, t);
        // Deterministic for the same inputs.
        assert_eq!(isn, g.generate(l, r, t));
        // M ticks every 4 µs.
        assert_eq!(g.generate(l, r, t + Duration::from_micros(3)), isn);
        assert_eq!(g.generate(l, r, t + Duration::from_micros(4)), isn + 1);
        assert_eq!(g.generate(l, r, t + Duration::from_secs(1)), isn + 250_000);
        // Every element of the tuple and the key changes F.
        let others = [
            g.generate(a([10, 0, 0, 1], 54), r, t),
            g.generate(a([10, 0, 0, 3], 53), r, t),
            g.generate(l, a([10, 0, 0, 2], 40001), t),
            g.generate(l, a([10, 0, 1, 2], 40000), t),
            g.generate(r, l, t),
            IsnGenerator::new(*b"0123456789abcdeF").generate(l, r, t),
        ];
        for o in others {
            assert_ne!(o, isn);
        }
        assert_eq!(format!("{g:?}"), "IsnGenerator { .. }");
    }

    #[test]
    fn f_is_not_a_simple_function_of_the_port() {
        // Consecutive source ports must not give ISNs a fixed distance apart (a counter
        // or an unkeyed sum would).
        let g = IsnGenerator::new([7; 16]);
        let t = Instant::ZERO;
        let l = a([192, 0, 2, 1], 53);
        let isns: Vec<u32> = (1000..1010)
            .map(|p| g.generate(l, a([198, 51, 100, 7], p), t).0)
            .collect();
        let diffs: Vec<u32> = isns.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(diffs.windows(2).any(|d| d[0] != d[1]));
    }
}
