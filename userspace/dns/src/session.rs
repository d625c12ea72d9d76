//! DNS over TCP (RFC 7766 §8, RFC 1035 §4.2.2): each message is preceded by its length
//! in two bytes, and messages may be split across segments or several may share one.
//! `Framer` takes the bytes as they come and hands out whole queries; a length that
//! cannot be a query ends the connection (and only it).

/// A query shorter than a DNS header cannot be answered: the stream is garbage.
pub const MIN_QUERY: usize = crate::header::LEN;

/// What the framer has for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole query, without its length prefix.
    Query(&'a [u8]),
    /// Not a whole message yet.
    NeedMore,
    /// The stream cannot be DNS: close the connection.
    Garbage(&'static str),
}

/// Reassembles length-prefixed messages from a byte stream.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    start: usize,
    max_query: usize,
}

impl Framer {
    /// A framer that refuses queries longer than `max_query` bytes (a query is one
    /// question plus an OPT: a few hundred bytes; 64 KiB minus the prefix at most).
    pub fn new(max_query: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            start: 0,
            max_query: max_query.clamp(MIN_QUERY, 65535),
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole query, if one has arrived.
    pub fn next_frame(&mut self) -> Frame<'_> {
        let pending = &self.buf[self.start..];
        if pending.len() < 2 {
            return Frame::NeedMore;
        }
        let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
        if len < MIN_QUERY {
            return Frame::Garbage("a message shorter than a DNS header");
        }
        if len > self.max_query {
            return Frame::Garbage("a query longer than any query can be");
        }
        if pending.len() < 2 + len {
            return Frame::NeedMore;
        }
        let at = self.start + 2;
        self.start = at + len;
        Frame::Query(&self.buf[at..at + len])
    }

    /// Bytes received and not yet handed out.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend((m.len() as u16).to_be_bytes());
            v.extend(m);
        }
        v
    }

    proptest! {
        /// However the stream is cut into reads, the same messages come out, in order.
        #[test]
        fn any_segmentation(sizes in proptest::collection::vec(12usize..300, 1..20), cuts in proptest::collection::vec(1usize..50, 1..200)) {
            let msgs: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n]).collect();
            let stream = framed(&msgs);
            let mut f = Framer::new(512);
            let mut got = Vec::new();
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < stream.len() {
                let n = (*cut.next().unwrap()).min(stream.len() - at);
                f.push(&stream[at..at + n]);
                at += n;
                while let Frame::Query(q) = f.next_frame() {
                    got.push(q.to_vec());
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn garbage_lengths_end_the_stream() {
        let mut f = Framer::new(512);
        f.push(&[0, 3, 1, 2, 3]);
        assert!(matches!(f.next_frame(), Frame::Garbage(_)));
        let mut f = Framer::new(512);
        f.push(&[0xff, 0xff]);
        assert!(matches!(f.next_frame(), Frame::Garbage(_)));
        let mut f = Framer::new(512);
        f.push(&[0]);
        assert_eq!(f.next_frame(), Frame::NeedMore);
    }
}
