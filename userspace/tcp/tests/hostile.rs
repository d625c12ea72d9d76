//! The connection fuzz target's body over random scripts, in the ordinary suite: no
//! panic and no broken invariant whatever segments arrive and whenever.

use proptest::prelude::*;
use tcp::tcb::State;

/// Mostly exact (so handshakes complete and data is in order), sometimes anything.
fn delta() -> impl Strategy<Value = i16> {
    prop_oneof![3 => Just(0i16), 1 => -3000i16..3000]
}

/// Any flags, but RST only now and then (a RST at RCV.NXT ends the script's story).
fn flags() -> impl Strategy<Value = u8> {
    prop_oneof![4 => any::<u8>().prop_map(|f| f & !4), 1 => any::<u8>()]
}

/// The script of a passive open: the SYN, then the handshake's ACK with 100 bytes, then
/// a read.
fn handshake_and_data() -> Vec<u8> {
    let mut s = vec![1u8];
    // SYN: flags, seq +0, ack +0, window 0xffff, no payload, options 0x0f (TS, MSS,
    // window scale, SACK-permitted), SACK block (unused).
    s.extend_from_slice(&[2, 0, 0, 0, 0, 0xff, 0xff, 0, 0x0f, 0, 0, 0, 0]);
    // The ACK of our SYN-ACK (op 5, then the segment: flags ACK|PSH, seq +0, ack +0,
    // window, 13*8 bytes, timestamps).
    s.extend_from_slice(&[5, 0, 24, 0, 0, 0, 0, 0x40, 0, 13, 0x21, 0, 0, 0, 0]);
    s.push(3);
    s
}

#[test]
fn the_driver_reaches_established_and_delivers() {
    let (state, delivered) = tcp::fuzzing::connection(&handshake_and_data());
    assert_eq!(state, State::Established);
    assert_eq!(delivered, 104);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_segments_and_timings(script in proptest::collection::vec(any::<u8>(), 0..600)) {
        tcp::fuzzing::connection(&script);
    }

    /// Scripts made mostly of segments, so more of them reach established states.
    #[test]
    fn mostly_segments(
        head in any::<u8>(),
        segs in proptest::collection::vec(
            (5u8..8, flags(), delta(), delta(), any::<u16>(), 0u8..200, any::<u8>(), any::<u16>(), any::<u16>()),
            0..60,
        ),
    ) {
        let mut script = vec![head];
        if head & 1 == 1 {
            // The SYN that the passive side accepts.
            script.extend_from_slice(&[2, 0, 0, 0, 0, 0xff, 0xff, 0, 0x0f, 0, 0, 0, 0]);
        }
        for (op, flags, seq, ack, wnd, len, opts, sl, sn) in segs {
            script.push(op);
            script.push(flags | 16);
            script.extend_from_slice(&seq.to_be_bytes());
            script.extend_from_slice(&ack.to_be_bytes());
            script.extend_from_slice(&wnd.to_be_bytes());
            script.push(len);
            script.push(opts);
            script.extend_from_slice(&sl.to_be_bytes());
            script.extend_from_slice(&sn.to_be_bytes());
            // Let the application read and write between segments, and time pass.
            script.extend_from_slice(&[3, 1, 20, 0, 1]);
        }
        tcp::fuzzing::connection(&script);
    }
}
