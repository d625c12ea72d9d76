//! SYN cookies, as Linux does them (net/ipv4/syncookies.c), for when the half-open
//! backlog is full.
//!
//! The listener keeps no state for a SYN answered with a cookie; everything it needs to
//! build the connection when the handshake's ACK arrives is carried in the ISN it chose
//! (and echoed back as ACK - 1) and, if the client uses timestamps, in the TSval it sent
//! (echoed back as TSecr):
//!
//! ```text
//! ISN   = H(tuple) + client_isn + (count << 24 | MAC(tuple, count, client_isn, mss_index) << 2 | mss_index)
//! TSval = ts_now with its low 6 bits replaced by | ecn:1 = 0 | sack:1 | wscale:4 |
//! ```
//!
//! `count` is a minute counter; a cookie is accepted while `count` is at most
//! [`MAX_AGE_MINUTES`] - 1 minutes old. `H` and the 22-bit `MAC` are SipHash-2-4 under a
//! key the caller supplies, with a domain byte separating the two uses. This is Linux's
//! layout (a 2-bit MSS index and 8-bit minute counter under a 24-bit hashed part, options
//! in the TSval's low 6 bits) with one deliberate difference: Linux *adds* the index to
//! a hash, so an ACK number off by one or two still decodes (to another MSS); here the MAC
//! covers the index and the client's ISN, so any change to either is detected. A blind
//! attacker guessing ACK numbers succeeds with probability 2^-22 per guess per valid
//! minute. Without timestamps, window scaling and SACK cannot be remembered and the
//! connection goes without them (as with Linux).

use std::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::isn::tuple_bytes;
use crate::time::Instant;

/// The MSS values a cookie can carry (2 bits), those Linux uses for IPv4: the client's MSS
/// is rounded down to one of them.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// How many values of the minute counter a cookie stays valid for (Linux's
/// MAX_SYNCOOKIE_AGE): issued this minute or the previous one.
pub const MAX_AGE_MINUTES: u32 = 2;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
const INDEX_BITS: u32 = 2;
const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
/// RFC 7323 §2.3: the largest valid shift (15 is the "none" marker in the TSval).
const MAX_WSCALE: u8 = 14;

/// The options of a SYN a cookie can remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CookieOptions {
    /// The client's window-scale shift, if it sent the option (values above 14 are
    /// treated as 14, RFC 7323 §2.3).
    pub window_scale: Option<u8>,
    /// The client sent SACK-permitted.
    pub sack_permitted: bool,
    /// The client sent timestamps (and the SYN-ACK will carry them).
    pub timestamps: bool,
}

/// What a valid cookie tells about the connection to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The MSS to use toward the client (a [`MSS_TABLE`] entry).
    pub mss: u16,
    /// The options in force. Window scale and SACK are only known when timestamps are.
    pub opts: CookieOptions,
    /// Our initial sequence number (the cookie): the ACK's SEG.ACK - 1.
    pub iss: u32,
    /// The client's initial sequence number: the ACK's SEG.SEQ - 1.
    pub irs: u32,
}

/// The SYN-cookie codec of a listener (or of the whole stack).
#[derive(Clone)]
pub struct SynCookies {
    hasher: SipHasher24,
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SynCookies { .. }")
    }
}

fn minutes(now: Instant) -> u32 {
    (now.as_micros() / 60_000_000) as u32
}

impl SynCookies {
    /// A codec keyed with `key`, which must be secret and random (the stack fills it from
    /// the OS RNG at start-up; rotating it invalidates outstanding cookies).
    pub fn new(key: [u8; 16]) -> SynCookies {
        SynCookies {
            hasher: SipHasher24::new_with_key(&key),
        }
    }

    /// The additive part: makes cookies unpredictable and different per 4-tuple.
    fn hash(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut b = [0u8; 13];
        b[..12].copy_from_slice(&tuple_bytes(local, remote));
        b[12] = 0;
        self.hasher.hash(&b) as u32
    }

    /// The low 24 bits of the cookie: the MAC in bits 2..24, the MSS index in bits 0..2.
    fn mac(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        count: u32,
        client_isn: u32,
        index: u32,
    ) -> u32 {
        let mut b = [0u8; 22];
        b[..12].copy_from_slice(&tuple_bytes(local, remote));
        b[12..16].copy_from_slice(&count.to_be_bytes());
        b[16..20].copy_from_slice(&client_isn.to_be_bytes());
        b[20] = index as u8;
        b[21] = 1;
        let mac = self.hasher.hash(&b) as u32;
        ((mac << INDEX_BITS) | index) & COOKIE_MASK
    }

    /// The cookie for a SYN from `remote` to `local` with sequence number `client_isn`:
    /// returns our ISN for the SYN-ACK and, if `opts.timestamps`, the TSval to send in it.
    ///
    /// `mss` is the MSS we would use toward the client (its MSS option clamped to ours);
    /// it is rounded down to a [`MSS_TABLE`] entry. `ts_now` is the connection's
    /// timestamp clock now (the TSval it would send): the returned TSval is at most that,
    /// so later TSvals never go backwards for the peer's PAWS check.
    // Each argument is a separate fact about the SYN; a struct would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: u32,
        mss: u16,
        opts: CookieOptions,
        ts_now: u32,
        now: Instant,
    ) -> (u32, Option<u32>) {
        let index = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let count = minutes(now);
        let v = (count << COOKIE_BITS) | self.mac(local, remote, count, client_isn, index);
        let isn = self
            .hash(local, remote)
            .wrapping_add(client_isn)
            .wrapping_add(v);
        let tsval = opts.timestamps.then(|| {
            let mut bits = match opts.window_scale {
                Some(ws) => u32::from(ws.min(MAX_WSCALE)),
                None => TS_WSCALE_NONE,
            };
            if opts.sack_permitted {
                bits |= TS_SACK;
            }
            let ts = (ts_now & !TS_MASK) | bits;
            // Never in the future of the connection's clock.
            if (ts.wrapping_sub(ts_now) as i32) > 0 {
                ts.wrapping_sub(1 << TS_BITS)
            } else {
                ts
            }
        });
        (isn, tsval)
    }

    /// Check the ACK that completes a cookie handshake from `remote` to `local`.
    ///
    /// `seg_seq` and `seg_ack` are the ACK's SEG.SEQ and SEG.ACK as received (the cookie is
    /// `seg_ack - 1`, the client's ISN `seg_seq - 1`); `tsecr` is its TSecr if it carried a
    /// timestamp option. Returns `None` if the cookie is forged, belongs to another 4-tuple
    /// or client ISN, or is older than [`MAX_AGE_MINUTES`], or if the echoed options are
    /// impossible (a window scale above 14, or bits we never set).
    pub fn decode(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg_seq: u32,
        seg_ack: u32,
        tsecr: Option<u32>,
        now: Instant,
    ) -> Option<Decoded> {
        let iss = seg_ack.wrapping_sub(1);
        let irs = seg_seq.wrapping_sub(1);
        let count = minutes(now);
        let v = iss.wrapping_sub(self.hash(local, remote)).wrapping_sub(irs);
        let age = count.wrapping_sub(v >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if age >= MAX_AGE_MINUTES {
            return None;
        }
        let issued = count.wrapping_sub(age);
        let index = v & ((1 << INDEX_BITS) - 1);
        if v & COOKIE_MASK != self.mac(local, remote, issued, irs, index) {
            return None;
        }
        let mss = MSS_TABLE[index as usize];
        let opts = match tsecr {
            None => CookieOptions::default(),
            Some(ts) => {
                let bits = ts & TS_MASK;
                if bits & !(TS_SACK | 0xf) != 0 {
                    return None;
                }
                // Four bits hold 0..=14 or the "none" marker 15: nothing else to check.
                let ws = (bits & 0xf) as u8;
                let window_scale = (u32::from(ws) != TS_WSCALE_NONE).then_some(ws);
                CookieOptions {
                    window_scale,
                    sack_permitted: bits & TS_SACK != 0,
                    timestamps: true,
                }
            }
        };
        Some(Decoded {
            mss,
            opts,
            iss,
            irs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn a(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    const KEY: [u8; 16] = *b"syncookie-secret";

    fn setup() -> (SynCookies, SocketAddrV4, SocketAddrV4) {
        (
            SynCookies::new(KEY),
            a([192, 0, 2, 1], 53),
            a([198, 51, 100, 9], 51_000),
        )
    }

    #[test]
    fn round_trip_with_timestamps() {
        let (c, l, r) = setup();
        let now = Instant::from_secs(3600);
        let opts = CookieOptions {
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: true,
        };
        let (isn, ts) = c.encode(l, r, 1000, 1460, opts, 777_777, now);
        let ts = ts.unwrap();
        assert!(ts <= 777_777 && ts > 777_777 - 64);
        let d = c
            .decode(l, r, 1001, isn.wrapping_add(1), Some(ts), now)
            .unwrap();
        assert_eq!(
            d,
            Decoded {
                mss: 1460,
                opts,
                iss: isn,
                irs: 1000
            }
        );
    }

    #[test]
    fn round_trip_without_timestamps_loses_the_other_options() {
        let (c, l, r) = setup();
        let now = Instant::from_secs(10);
        let opts = CookieOptions {
            window_scale: Some(9),
            sack_permitted: true,
            timestamps: false,
        };
        let (isn, ts) = c.encode(l, r, u32::MAX, 1400, opts, 5, now);
        assert_eq!(ts, None);
        let d = c.decode(l, r, 0, isn.wrapping_add(1), None, now).unwrap();
        assert_eq!(d.mss, 1300);
        assert_eq!(d.opts, CookieOptions::default());
        assert_eq!(d.irs, u32::MAX);
    }

    #[test]
    fn mss_is_rounded_down_to_the_table() {
        let (c, l, r) = setup();
        let now = Instant::ZERO;
        for (mss, want) in [
            (100, 536),
            (536, 536),
            (1299, 536),
            (1300, 1300),
            (1459, 1440),
            (9000, 1460),
        ] {
            let (isn, _) = c.encode(l, r, 42, mss, CookieOptions::default(), 0, now);
            let d = c.decode(l, r, 43, isn.wrapping_add(1), None, now).unwrap();
            assert_eq!(d.mss, want, "mss {mss}");
        }
    }

    #[test]
    fn no_window_scale_and_clock_edge() {
        let (c, l, r) = setup();
        let opts = CookieOptions {
            window_scale: None,
            sack_permitted: false,
            timestamps: true,
        };
        // ts_now whose low bits are below the options' bits: the TSval steps back one
        // 64-tick block rather than into the future.
        let (isn, ts) = c.encode(l, r, 1, 1460, opts, 0x100, Instant::ZERO);
        assert_eq!(ts, Some(0xcf));
        let d = c
            .decode(l, r, 2, isn.wrapping_add(1), ts, Instant::ZERO)
            .unwrap();
        assert_eq!(d.opts, opts);
        // Near zero the clock wraps backwards, still never ahead.
        let (_, ts) = c.encode(l, r, 1, 1460, opts, 3, Instant::ZERO);
        assert_eq!(ts, Some(0xffff_ffcf));
    }

    #[test]
    fn ages_out_after_two_minute_ticks() {
        let (c, l, r) = setup();
        let t0 = Instant::from_secs(60 * 1000 + 59);
        let (isn, _) = c.encode(l, r, 9, 1460, CookieOptions::default(), 0, t0);
        let ok = |t: Instant| c.decode(l, r, 10, isn.wrapping_add(1), None, t).is_some();
        assert!(ok(t0));
        assert!(ok(t0 + Duration::from_secs(1)));
        assert!(ok(t0 + Duration::from_secs(60)));
        assert!(!ok(t0 + Duration::from_secs(61)));
        assert!(!ok(t0 + Duration::from_secs(3600)));
        // A cookie from the future (clock skew between encode and decode) is rejected too.
        assert!(!ok(t0 - Duration::from_secs(60)));
    }

    #[test]
    fn tampering_is_rejected() {
        let (c, l, r) = setup();
        let now = Instant::from_secs(100);
        let opts = CookieOptions {
            window_scale: Some(2),
            sack_permitted: false,
            timestamps: true,
        };
        let (isn, ts) = c.encode(l, r, 5000, 1460, opts, 1 << 20, now);
        let ack = isn.wrapping_add(1);
        assert!(c.decode(l, r, 5001, ack, ts, now).is_some());
        // Wrong ACK numbers.
        for delta in [1u32, 2, 1 << 8, 1 << 24, 0x8000_0000] {
            assert!(c
                .decode(l, r, 5001, ack.wrapping_add(delta), ts, now)
                .is_none());
        }
        // Another client ISN, another 4-tuple, another key.
        assert!(c.decode(l, r, 5002, ack, ts, now).is_none());
        assert!(c
            .decode(l, a([198, 51, 100, 9], 51_001), 5001, ack, ts, now)
            .is_none());
        assert!(c
            .decode(a([192, 0, 2, 2], 53), r, 5001, ack, ts, now)
            .is_none());
        assert!(c.decode(r, l, 5001, ack, ts, now).is_none());
        assert!(SynCookies::new([0; 16])
            .decode(l, r, 5001, ack, ts, now)
            .is_none());
        // The ECN bit is never set by us: an ACK echoing it was not our SYN-ACK's.
        let ts = ts.unwrap();
        assert!(c
            .decode(l, r, 5001, ack, Some((ts & !0x3f) | 0x20), now)
            .is_none());
        assert!(c
            .decode(l, r, 5001, ack, Some((ts & !0x3f) | 14), now)
            .is_some());
        assert!(c
            .decode(l, r, 5001, ack, Some((ts & !0x3f) | 0x1e), now)
            .is_some());
        assert!(c
            .decode(l, r, 5001, ack, Some((ts & !0xf) | 0xe), now)
            .is_some());
        assert_eq!(format!("{c:?}"), "SynCookies { .. }");
    }

    proptest! {
        #[test]
        fn round_trips_and_rejects_neighbours(
            lip in any::<[u8; 4]>(), lport in any::<u16>(),
            rip in any::<[u8; 4]>(), rport in any::<u16>(),
            client_isn in any::<u32>(), mss in any::<u16>(),
            ws in proptest::option::of(0u8..=14), sack in any::<bool>(), tstamps in any::<bool>(),
            ts_now in any::<u32>(), secs in 0u64..1_000_000_000, later in 0u64..60,
            flip in 0u32..32,
        ) {
            let c = SynCookies::new(KEY);
            let (l, r) = (a(lip, lport), a(rip, rport));
            let now = Instant::from_secs(secs);
            let opts = CookieOptions { window_scale: ws, sack_permitted: sack, timestamps: tstamps };
            let (isn, ts) = c.encode(l, r, client_isn, mss, opts, ts_now, now);
            let seq = client_isn.wrapping_add(1);
            let ack = isn.wrapping_add(1);
            let d = c.decode(l, r, seq, ack, ts, now + Duration::from_secs(later));
            let d = d.expect("valid cookie rejected");
            prop_assert!(d.mss <= mss.max(536));
            prop_assert_eq!(d.iss, isn);
            prop_assert_eq!(d.irs, client_isn);
            if tstamps {
                prop_assert_eq!(d.opts, opts);
            } else {
                prop_assert_eq!(d.opts, CookieOptions::default());
            }
            // Flipping any bit of the ACK number breaks it (except with probability 2^-22,
            // a MAC collision).
            let bad = c.decode(l, r, seq, ack ^ (1 << flip), ts, now);
            prop_assert!(bad.is_none());
        }
    }
}
