//! The steady path of a connection, one side at a time, with no counterpart: the
//! receiver is fed in-order full-sized segments (built once, sequence numbers advanced)
//! and reads them; the sender writes, emits and gets each segment ACKed. Shared by the
//! per-segment benchmark and the test that the path allocates nothing.

use std::net::{Ipv4Addr, SocketAddrV4};

use tcp::tcb::{Config, Tcb, Transmit};
use tcp::{Instant, SeqNumber};
use wire::{ChecksumMode, TcpFlags, TcpPacket, TcpRepr, TcpTimestamp};

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 9000);

/// A full-sized segment's payload with timestamps (MSS 1460 less 12 option bytes).
pub const SEGMENT: usize = 1448;

/// Two connections after the handshake (done through `wire`, as on a real link).
pub struct Established {
    pub a: Tcb,
    pub b: Tcb,
    pub now: Instant,
}

fn carry(
    t: &Transmit,
    from: &Tcb,
    to: &mut Tcb,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    now: Instant,
) {
    let mut payload = vec![0u8; t.payload_len()];
    from.write_payload(t, &mut payload);
    let repr = TcpRepr {
        payload: &payload,
        ..t.header()
    };
    let mut frame = vec![0u8; repr.buffer_len()];
    repr.emit(&mut frame, *src.ip(), *dst.ip()).unwrap();
    let p = TcpPacket::new_checked(&frame[..]).unwrap();
    let seg = TcpRepr::parse(&p, *src.ip(), *dst.ip(), ChecksumMode::Verify).unwrap();
    to.on_segment(&seg, now);
}

impl Established {
    pub fn new() -> Established {
        let now = Instant::from_secs(100);
        let mut a = Tcb::connect(Config::default(), A, B, SeqNumber(0x1000), now);
        let syn = a.poll_transmit(now).expect("a SYN");
        let mut b = Tcb::accept(
            Config::default(),
            B,
            A,
            &syn.header(),
            SeqNumber(0x9000),
            now,
        );
        let syn_ack = b.poll_transmit(now).expect("a SYN-ACK");
        carry(&syn_ack, &b, &mut a, B, A, now);
        let ack = a.poll_transmit(now).expect("the handshake's ACK");
        carry(&ack, &a, &mut b, A, B, now);
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        Established { a, b, now }
    }
}

/// The receiving side: `b` takes in-order full segments from a (never sent by a: built
/// here), the application reads them, and `b` produces its ACKs (every second segment).
pub struct Receiver {
    pub b: Tcb,
    now: Instant,
    seq: u32,
    ack: u32,
    tsval: u32,
    payload: Vec<u8>,
    read: Vec<u8>,
    /// ACK segments b produced.
    pub acks: u64,
}

impl Receiver {
    pub fn new() -> Receiver {
        let mut e = Established::new();
        // a's next sequence number and what it acknowledges, from a segment it would send.
        assert_eq!(e.a.send(&[0u8; SEGMENT]), SEGMENT);
        let t = e.a.poll_transmit(e.now).expect("a data segment");
        let h = t.header();
        let tsval = h.timestamp.map_or(0, |t| t.tsval);
        let mut r = Receiver {
            b: e.b,
            now: e.now,
            seq: h.seq_number,
            ack: h.ack_number.unwrap(),
            tsval,
            payload: vec![0x5a; SEGMENT],
            read: vec![0; 64 * 1024],
            acks: 0,
        };
        // Warm up: the buffers are allocated on first use.
        for _ in 0..64 {
            r.segment();
        }
        r
    }

    /// One in-order data segment received, read, and ACKed when due.
    #[inline]
    pub fn segment(&mut self) {
        let mut flags = TcpFlags::default();
        flags.set_ack(true);
        flags.set_psh(true);
        let seg = TcpRepr {
            src_port: A.port(),
            dst_port: B.port(),
            seq_number: self.seq,
            ack_number: Some(self.ack),
            flags,
            window_len: 4096,
            timestamp: Some(TcpTimestamp {
                tsval: self.tsval,
                tsecr: 0,
            }),
            payload: &self.payload,
            ..TcpRepr::default()
        };
        self.b.on_segment(&seg, self.now);
        self.seq = self.seq.wrapping_add(SEGMENT as u32);
        while self.b.recv(&mut self.read) > 0 {}
        while self.b.poll_event().is_some() {}
        while let Some(t) = self.b.poll_transmit(self.now) {
            debug_assert_eq!(t.payload_len(), 0);
            self.acks += 1;
        }
    }
}

/// The sending side: `a` is written a full segment, emits it (copying the payload into
/// a frame, as into a UMEM frame), and takes the peer's ACK of it.
pub struct Sender {
    pub a: Tcb,
    now: Instant,
    data: Vec<u8>,
    frame: Vec<u8>,
    peer_seq: u32,
    peer_tsval: u32,
    /// Segments a sent.
    pub sent: u64,
}

impl Sender {
    pub fn new() -> Sender {
        let e = Established::new();
        let mut s = Sender {
            a: e.a,
            now: e.now,
            data: vec![0xa5; SEGMENT],
            frame: vec![0; 2048],
            peer_seq: 0,
            peer_tsval: 0,
            sent: 0,
        };
        // b's next sequence number, from the ACK b would send.
        let mut b = e.b;
        b.close();
        let fin = b.poll_transmit(s.now).expect("b's FIN");
        s.peer_seq = fin.header().seq_number;
        s.peer_tsval = fin.header().timestamp.map_or(0, |t| t.tsval);
        for _ in 0..64 {
            s.segment();
        }
        s
    }

    /// One full segment written, emitted, and ACKed.
    #[inline]
    pub fn segment(&mut self) {
        assert_eq!(self.a.send(&self.data), SEGMENT);
        let t = self.a.poll_transmit(self.now).expect("a data segment");
        let len = t.payload_len();
        self.a.write_payload(&t, &mut self.frame[..len]);
        let h = t.header();
        let mut flags = TcpFlags::default();
        flags.set_ack(true);
        let ack = TcpRepr {
            src_port: B.port(),
            dst_port: A.port(),
            seq_number: self.peer_seq,
            ack_number: Some(h.seq_number.wrapping_add(len as u32)),
            flags,
            window_len: 4096,
            timestamp: h.timestamp.map(|ts| TcpTimestamp {
                tsval: self.peer_tsval,
                tsecr: ts.tsval,
            }),
            ..TcpRepr::default()
        };
        self.a.on_segment(&ack, self.now);
        while self.a.poll_event().is_some() {}
        self.sent += 1;
    }
}
