//! The templated client: many DNS-over-TCP clients as a table of small records and a
//! frame template, not a second TCP stack. It writes each client segment by patching
//! the template (ports, sequence numbers, timestamps, flags, payload, checksums) and
//! reads the server's segments just far enough to answer them (flags, sequence
//! numbers, the timestamp, how many DNS answers the payload completes). Nothing is
//! ever lost on the in-memory device, so there are no retransmissions to handle: a
//! client the server resets starts over, and is counted.
//!
//! Two workloads:
//! - one query per connection: SYN; ACK with the query; FIN after the answer; ACK of
//!   the server's FIN. Then the client starts again on the next port.
//! - pipelined: connections opened once; each sends `depth` queries in one segment and
//!   the next batch (which acknowledges the answers) once all are answered.

use std::net::Ipv4Addr;

use stack::MemoryLink;
use wire::checksum;

/// The server's (the stack's) address and port.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The DNS port.
pub const SERVER_PORT: u16 = 53;
/// Our MAC; the server's comes from its configuration.
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Client addresses: 198.18.1.1 to 198.18.1.SOURCES, round robin over the clients.
const SOURCES: u32 = 64;
/// Client ports: client `i` uses `FIRST_PORT + i + k * clients` for its k-th
/// connection, wrapping inside the range, so that a port says which client it is.
const FIRST_PORT: u16 = 1024;
const PORTS: u32 = 65536 - FIRST_PORT as u32;

const ETH: usize = 14;
const IP: usize = 20;
const TCP: usize = 20;
/// Options of our SYN, as Linux orders them: MSS, SACK permitted, timestamps, NOP,
/// window scale.
const SYN_OPTIONS: usize = 20;
/// Options of the other segments: NOP, NOP, timestamps.
const TS_OPTIONS: usize = 12;

pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

/// The workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One query per connection, then close.
    OneQuery,
    /// Persistent connections, `depth` queries per batch.
    Pipelined {
        /// Queries in one segment.
        depth: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The SYN is due.
    Connecting,
    /// The SYN is out.
    SynSent,
    /// The queries are out, `answers_left` to come.
    Querying,
    /// Our FIN is out, the server's to come.
    Closing,
}

/// What a client has to send next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    Syn,
    /// ACK with `n` queries.
    Queries(usize),
    /// FIN (with ACK).
    Fin,
    /// The ACK of the server's FIN, which ends the connection.
    LastAck,
}

struct Client {
    state: State,
    ip: Ipv4Addr,
    port: u16,
    /// Next sequence number we send.
    seq: u32,
    /// Next sequence number we expect (what we acknowledge).
    ack: u32,
    /// The server's last timestamp, echoed.
    ts_recent: u32,
    answers_left: usize,
    answers: AnswerStream,
    /// Queued in `due` with this to send.
    out: Option<Out>,
}

/// What the clients have done.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// One-query connections completed (handshake, answer, both FINs).
    pub connections: u64,
    /// Answers received.
    pub answers: u64,
    /// Connections the server reset.
    pub resets: u64,
    /// Server frames that matched no client or state.
    pub strays: u64,
    /// Frames sent and received.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
}

/// Every client, and the frames they share.
pub struct Clients {
    clients: Vec<Client>,
    /// Clients with something to send, in order.
    due: std::collections::VecDeque<u32>,
    workload: Workload,
    server_mac: [u8; 6],
    /// A query's DNS-over-TCP framing (length prefix and message); ID 0.
    query: Vec<u8>,
    /// `depth` of them, back to back.
    batch: Vec<u8>,
    next_iss: u32,
    /// Our timestamp clock: a counter, moved on by the caller.
    pub ts_now: u32,
    /// Counters.
    pub tally: Tally,
}

impl Clients {
    /// `count` clients of `workload`, asking `query` (a DNS message) of the server at
    /// `server_mac`.
    pub fn new(count: usize, workload: Workload, server_mac: [u8; 6], query: &[u8]) -> Clients {
        let count = count.clamp(1, PORTS as usize);
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        let depth = match workload {
            Workload::OneQuery => 1,
            Workload::Pipelined { depth } => depth.max(1),
        };
        let batch = framed.repeat(depth);
        let clients = (0..count)
            .map(|i| Client {
                state: State::Connecting,
                ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 1)) + i as u32 % SOURCES),
                port: FIRST_PORT + i as u16,
                seq: 0,
                ack: 0,
                ts_recent: 0,
                answers_left: 0,
                answers: AnswerStream::ZERO,
                out: Some(Out::Syn),
            })
            .collect();
        Clients {
            clients,
            due: (0..count as u32).collect(),
            workload,
            server_mac,
            query: framed,
            batch,
            next_iss: 0x1000_0000,
            ts_now: 1,
            tally: Tally::default(),
        }
    }

    fn depth(&self) -> usize {
        match self.workload {
            Workload::OneQuery => 1,
            Workload::Pipelined { depth } => depth.max(1),
        }
    }

    /// Reads what the server sent and sends what is due, as much as the link takes.
    /// Returns whether anything moved.
    pub fn poll(&mut self, link: &mut MemoryLink) -> bool {
        let mut got = 0;
        loop {
            let n = link.recv(256, |frame| self.on_frame(frame));
            got += n;
            if n < 256 {
                break;
            }
        }
        self.tally.received += got as u64;
        let sent = self.send_due(link);
        if sent > 0 {
            link.flush();
        }
        got > 0 || sent > 0
    }

    fn queue(&mut self, i: usize, out: Out) {
        let c = &mut self.clients[i];
        if c.out.is_none() {
            self.due.push_back(i as u32);
        }
        c.out = Some(out);
    }

    fn send_due(&mut self, link: &mut MemoryLink) -> usize {
        let mut sent = 0;
        while let Some(&i) = self.due.front() {
            let i = i as usize;
            let Some(out) = self.clients[i].out else {
                self.due.pop_front();
                continue;
            };
            if !self.send(link, i, out) {
                break;
            }
            self.due.pop_front();
            self.clients[i].out = None;
            sent += 1;
            self.after_send(i, out);
        }
        self.tally.sent += sent as u64;
        sent
    }

    /// What a segment sent moves on.
    fn after_send(&mut self, i: usize, out: Out) {
        if out == Out::LastAck {
            self.tally.connections += 1;
            self.restart(i);
        }
    }

    /// The client's next connection, on its next port.
    fn restart(&mut self, i: usize) {
        let count = self.clients.len() as u32;
        let c = &mut self.clients[i];
        let offset = (u32::from(c.port) - u32::from(FIRST_PORT) + count) % PORTS;
        c.port = FIRST_PORT + offset as u16;
        c.state = State::Connecting;
        c.answers = AnswerStream::ZERO;
        self.queue(i, Out::Syn);
    }

    /// The client whose port `port` is.
    fn client_of(&self, port: u16) -> Option<usize> {
        let offset = u32::from(port.checked_sub(FIRST_PORT)?);
        let i = (offset % self.clients.len() as u32) as usize;
        (self.clients[i].port == port).then_some(i)
    }

    fn on_frame(&mut self, frame: &[u8]) {
        let Some(seg) = Segment::parse(frame) else {
            self.tally.strays += 1;
            return;
        };
        let Some(i) = self
            .client_of(seg.dst_port)
            .filter(|&i| self.clients[i].ip == seg.dst_ip)
        else {
            self.tally.strays += 1;
            return;
        };
        if seg.flags & RST != 0 {
            self.tally.resets += 1;
            self.restart(i);
            return;
        }
        let depth = self.depth();
        let c = &mut self.clients[i];
        if let Some(ts) = seg.tsval {
            c.ts_recent = ts;
        }
        match c.state {
            State::SynSent if seg.flags & (SYN | ACK) == SYN | ACK => {
                c.ack = seg.seq.wrapping_add(1);
                c.state = State::Querying;
                c.answers_left = depth;
                self.queue(i, Out::Queries(depth));
            }
            State::Querying | State::Closing => {
                if seg.seq != c.ack {
                    // Not what we expect next (nothing is lost here, so it cannot be
                    // ahead): a duplicate.
                    self.tally.strays += 1;
                    return;
                }
                c.ack = c.ack.wrapping_add(seg.payload.len() as u32);
                let answers = c.answers.count(seg.payload);
                c.answers_left = c.answers_left.saturating_sub(answers);
                self.tally.answers += answers as u64;
                let fin = seg.flags & FIN != 0;
                if fin {
                    c.ack = c.ack.wrapping_add(1);
                }
                match c.state {
                    State::Querying if fin => {
                        // The server closed first (it should not, but a client must
                        // cope): close too; its FIN is acknowledged by ours.
                        c.state = State::Closing;
                        self.queue(i, Out::Fin);
                    }
                    State::Querying if c.answers_left == 0 => match self.workload {
                        Workload::OneQuery => {
                            c.state = State::Closing;
                            self.queue(i, Out::Fin);
                        }
                        Workload::Pipelined { .. } => {
                            c.answers_left = depth;
                            self.queue(i, Out::Queries(depth));
                        }
                    },
                    State::Closing if fin => self.queue(i, Out::LastAck),
                    _ => {}
                }
            }
            _ => self.tally.strays += 1,
        }
    }

    /// Writes client `i`'s segment `out` into a free frame; false if the link had no
    /// room.
    fn send(&mut self, link: &mut MemoryLink, i: usize, out: Out) -> bool {
        if out == Out::Syn {
            self.next_iss = self.next_iss.wrapping_add(0x0010_0001);
            let c = &mut self.clients[i];
            c.seq = self.next_iss;
            c.state = State::SynSent;
        }
        let c = &self.clients[i];
        let payload: &[u8] = match out {
            Out::Queries(1) => &self.query,
            Out::Queries(_) => &self.batch,
            _ => &[],
        };
        let flags = match out {
            Out::Syn => SYN,
            Out::Queries(_) => ACK | PSH,
            Out::Fin => ACK | FIN,
            Out::LastAck => ACK,
        };
        let segment = Outgoing {
            ip: c.ip,
            port: c.port,
            seq: c.seq,
            ack: c.ack,
            ts_recent: c.ts_recent,
            flags,
            ts_now: self.ts_now,
            payload,
        };
        let ok = link.send_with(|buf| emit(buf, &self.server_mac, &segment));
        if !ok {
            return false;
        }
        let c = &mut self.clients[i];
        let consumed = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        c.seq = c.seq.wrapping_add(consumed);
        true
    }
}

/// The DNS framing of a connection's answer stream: bytes left of the current message,
/// and the first byte of a length prefix split across segments.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AnswerStream {
    msg_left: usize,
    len_hi: Option<u8>,
}

impl AnswerStream {
    /// At the start of a stream.
    pub(crate) const ZERO: AnswerStream = AnswerStream {
        msg_left: 0,
        len_hi: None,
    };

    /// Counts the DNS messages `payload` completes.
    pub(crate) fn count(&mut self, payload: &[u8]) -> usize {
        count_answers(self, payload)
    }
}

fn count_answers(c: &mut AnswerStream, mut payload: &[u8]) -> usize {
    let mut done = 0;
    while !payload.is_empty() {
        if c.msg_left > 0 {
            let take = c.msg_left.min(payload.len());
            c.msg_left -= take;
            payload = &payload[take..];
            if c.msg_left == 0 {
                done += 1;
            }
            continue;
        }
        let len = match c.len_hi.take() {
            Some(hi) => {
                let len = u16::from_be_bytes([hi, payload[0]]);
                payload = &payload[1..];
                len
            }
            None if payload.len() >= 2 => {
                let len = u16::from_be_bytes([payload[0], payload[1]]);
                payload = &payload[2..];
                len
            }
            None => {
                c.len_hi = Some(payload[0]);
                payload = &payload[1..];
                continue;
            }
        };
        c.msg_left = usize::from(len);
        if len == 0 {
            done += 1;
        }
    }
    done
}

/// One client segment to write: the connection's numbers, the flags and the payload.
pub(crate) struct Outgoing<'a> {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Our sequence number (the SYN's: its ISS).
    pub seq: u32,
    /// What we acknowledge (ignored in a SYN).
    pub ack: u32,
    /// The server's last timestamp, echoed.
    pub ts_recent: u32,
    pub flags: u8,
    /// Our timestamp.
    pub ts_now: u32,
    pub payload: &'a [u8],
}

/// Writes one client segment (Ethernet, IPv4, TCP with options, payload) into `buf`;
/// returns its length (0 if it does not fit).
pub(crate) fn emit(buf: &mut [u8], server_mac: &[u8; 6], c: &Outgoing) -> usize {
    let (flags, ts_now, payload) = (c.flags, c.ts_now, c.payload);
    let syn = flags & SYN != 0;
    let options = if syn { SYN_OPTIONS } else { TS_OPTIONS };
    let tcp_len = TCP + options + payload.len();
    let ip_len = IP + tcp_len;
    let len = ETH + ip_len;
    if buf.len() < len {
        return 0;
    }
    let f = &mut buf[..len];
    f[0..6].copy_from_slice(server_mac);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[ETH..ETH + IP];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&c.ip.octets());
    ip[16..20].copy_from_slice(&SERVER_IP.octets());
    let sum = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let t = &mut f[ETH + IP..];
    t[0..2].copy_from_slice(&c.port.to_be_bytes());
    t[2..4].copy_from_slice(&SERVER_PORT.to_be_bytes());
    t[4..8].copy_from_slice(&c.seq.to_be_bytes());
    let ack = if syn { 0 } else { c.ack };
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = (((TCP + options) / 4) as u8) << 4;
    t[13] = flags;
    // 65535 in the SYN (never scaled); 65535 << 7 after it: the window is never ours to
    // worry about here.
    t[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    t[16..20].copy_from_slice(&[0, 0, 0, 0]);
    let o = &mut t[TCP..TCP + options];
    if syn {
        o.copy_from_slice(&[
            2, 4, 0x05, 0xb4, // MSS 1460
            4, 2, // SACK permitted
            8, 10, 0, 0, 0, 0, 0, 0, 0, 0, // timestamps
            1, 3, 3, 7, // NOP, window scale 7
        ]);
        o[8..12].copy_from_slice(&ts_now.to_be_bytes());
    } else {
        o[0] = 1;
        o[1] = 1;
        o[2] = 8;
        o[3] = 10;
        o[4..8].copy_from_slice(&ts_now.to_be_bytes());
        o[8..12].copy_from_slice(&c.ts_recent.to_be_bytes());
    }
    t[TCP + options..tcp_len].copy_from_slice(payload);
    let pseudo = checksum::pseudo_header(c.ip, SERVER_IP, 6, tcp_len as u32);
    let sum = checksum::fold32(checksum::combine(pseudo, checksum::sum(&t[..tcp_len])));
    t[16..18].copy_from_slice(&(!sum).to_be_bytes());
    len
}

/// What the client reads of a server segment.
pub(crate) struct Segment<'a> {
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    pub seq: u32,
    /// What it acknowledges (the overload generator's resets use it).
    #[allow(dead_code)]
    pub ack: u32,
    pub flags: u8,
    pub tsval: Option<u32>,
    pub payload: &'a [u8],
}

impl<'a> Segment<'a> {
    /// The TCP segment in an Ethernet/IPv4 frame from the server, if it is one.
    pub(crate) fn parse(frame: &'a [u8]) -> Option<Segment<'a>> {
        if frame.len() < ETH + IP + TCP || frame[12..14] != [0x08, 0x00] || frame[ETH + 9] != 6 {
            return None;
        }
        let ihl = usize::from(frame[ETH] & 0x0f) * 4;
        let ip_len = usize::from(u16::from_be_bytes([frame[ETH + 2], frame[ETH + 3]]));
        let end = (ETH + ip_len).min(frame.len());
        let t = frame.get(ETH + ihl..end)?;
        let doff = usize::from(t.get(12)? >> 4) * 4;
        if doff < TCP || t.len() < doff {
            return None;
        }
        let mut tsval = None;
        let mut o = &t[TCP..doff];
        while let Some(&kind) = o.first() {
            match kind {
                0 => break,
                1 => o = &o[1..],
                _ => {
                    let len = usize::from(*o.get(1)?);
                    if len < 2 || len > o.len() {
                        break;
                    }
                    if kind == 8 && len == 10 {
                        tsval = Some(u32::from_be_bytes([o[2], o[3], o[4], o[5]]));
                    }
                    o = &o[len..];
                }
            }
        }
        Some(Segment {
            dst_ip: Ipv4Addr::new(
                frame[ETH + 16],
                frame[ETH + 17],
                frame[ETH + 18],
                frame[ETH + 19],
            ),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
            flags: t[13],
            tsval,
            payload: &t[doff..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(flags: u8, payload: &[u8]) -> Outgoing<'_> {
        Outgoing {
            ip: Ipv4Addr::new(198, 18, 1, 1),
            port: 4000,
            seq: 7,
            ack: 9,
            ts_recent: 3,
            flags,
            ts_now: 42,
            payload,
        }
    }

    #[test]
    fn answers_are_counted_across_segment_boundaries() {
        let stream = [0u8, 3, 1, 2, 3, 0, 2, 9, 9];
        // Split at every point: two messages whichever way the bytes arrive.
        for cut in 0..stream.len() {
            let mut a = AnswerStream::default();
            let n = a.count(&stream[..cut]) + a.count(&stream[cut..]);
            assert_eq!(n, 2, "cut at {cut}");
        }
        assert_eq!(AnswerStream::default().count(&stream), 2);
    }

    #[test]
    fn an_emitted_segment_parses_with_valid_checksums() {
        let mut buf = [0u8; 2048];
        let payload = [0u8, 2, 0xab, 0xcd];
        let len = emit(
            &mut buf,
            &[2, 0, 0, 0, 0, 1],
            &outgoing(ACK | PSH, &payload),
        );
        let f = wire::frame::parse_tcp_ipv4(&buf[..len], wire::ChecksumMode::Verify)
            .expect("a valid frame");
        assert_eq!(f.tcp.src_port, 4000);
        assert_eq!(f.tcp.seq_number, 7);
        assert_eq!(f.tcp.ack_number, Some(9));
        assert_eq!(f.tcp.payload, &payload);
        assert_eq!(f.tcp.timestamp.map(|t| (t.tsval, t.tsecr)), Some((42, 3)));
        let seg = Segment::parse(&buf[..len]).expect("parses");
        assert_eq!(seg.dst_ip, SERVER_IP);
        let syn = emit(&mut buf, &[2, 0, 0, 0, 0, 1], &outgoing(SYN, &[]));
        let f = wire::frame::parse_tcp_ipv4(&buf[..syn], wire::ChecksumMode::Verify)
            .expect("a valid SYN");
        assert!(f.tcp.sack_permitted && f.tcp.window_scale == Some(7));
        assert_eq!(f.tcp.max_seg_size, Some(1460));
    }
}
