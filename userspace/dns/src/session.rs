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
        let frame = frame_at(&self.buf[self.start..], self.max_query);
        if let Frame::Query(q) = frame {
            self.start += 2 + q.len();
        }
        frame
    }

    /// Hands each whole query of what is buffered followed by `data` to `query`, in
    /// order, copying only what a partial query leaves over: a query that arrives
    /// whole in one read (the usual case) is read where it lies. `query` returns
    /// whether to go on: when it says stop, what is left is buffered for the next call
    /// (which may bring no data). `Err` with the reason when a length cannot be a
    /// query's (the stream ends there; the queries before it were handed out).
    pub fn feed(
        &mut self,
        data: &[u8],
        mut query: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), &'static str> {
        let mut rest = data;
        // A query split across reads: complete it with just the bytes it lacks (the
        // length first, then the body), hand it out, and frame the rest in place.
        while self.pending() > 0 {
            let pending = &self.buf[self.start..];
            let lacking = if pending.len() < 2 {
                2 - pending.len()
            } else {
                match frame_at(pending, self.max_query) {
                    Frame::Garbage(why) => return Err(why),
                    // Whatever `push` left: several whole queries need nothing more.
                    _ => (2 + usize::from(u16::from_be_bytes([pending[0], pending[1]])))
                        .saturating_sub(pending.len()),
                }
            };
            let take = lacking.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if take < lacking {
                return Ok(());
            }
            let go_on = match self.next_frame() {
                Frame::Query(q) => query(q),
                Frame::NeedMore => continue,
                Frame::Garbage(why) => return Err(why),
            };
            if !go_on {
                self.push(rest);
                return Ok(());
            }
            if self.pending() == 0 {
                // Emptied: a large buffer is let go.
                self.buf.clear();
                self.start = 0;
                if self.buf.capacity() > KEEP_BUFFER {
                    self.buf = Vec::new();
                }
            }
        }
        loop {
            match frame_at(rest, self.max_query) {
                Frame::Query(q) => {
                    let go_on = query(q);
                    rest = &rest[2 + q.len()..];
                    if !go_on {
                        if !rest.is_empty() {
                            self.push(rest);
                        }
                        return Ok(());
                    }
                }
                Frame::NeedMore => {
                    if !rest.is_empty() {
                        self.push(rest);
                    }
                    return Ok(());
                }
                Frame::Garbage(why) => return Err(why),
            }
        }
    }

    /// Bytes received and not yet handed out.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// The largest framing buffer kept once empty.
const KEEP_BUFFER: usize = 4096;

/// The frame at the start of `pending`.
fn frame_at(pending: &[u8], max_query: usize) -> Frame<'_> {
    if pending.len() < 2 {
        return Frame::NeedMore;
    }
    let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
    if len < MIN_QUERY {
        return Frame::Garbage("a message shorter than a DNS header");
    }
    if len > max_query {
        return Frame::Garbage("a query longer than any query can be");
    }
    if pending.len() < 2 + len {
        return Frame::NeedMore;
    }
    Frame::Query(&pending[2..2 + len])
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

    /// `stream` cut into reads of the lengths `cuts` gives, cycled.
    fn reads<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < stream.len() {
            let n = (*cut.next().unwrap()).min(stream.len() - at);
            out.push(&stream[at..at + n]);
            at += n;
        }
        out
    }

    proptest! {
        /// However the stream is cut into reads, the same messages come out, in order.
        #[test]
        fn any_segmentation(sizes in proptest::collection::vec(12usize..300, 1..20), cuts in proptest::collection::vec(1usize..50, 1..200)) {
            let msgs: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n]).collect();
            let stream = framed(&msgs);
            let mut f = Framer::new(512);
            let mut got = Vec::new();
            for read in reads(&stream, &cuts) {
                f.push(read);
                while let Frame::Query(q) = f.next_frame() {
                    got.push(q.to_vec());
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(f.pending(), 0);
        }
    }

    proptest! {
        #[test]
        fn feed_frames_any_segmentation_as_next_frame_does(sizes in proptest::collection::vec(12usize..300, 1..20), cuts in proptest::collection::vec(1usize..700, 1..200)) {
            let msgs: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n]).collect();
            let stream = framed(&msgs);
            let mut f = Framer::new(512);
            let mut got = Vec::new();
            for read in reads(&stream, &cuts) {
                f.feed(read, |q| {
                    got.push(q.to_vec());
                    true
                }).unwrap();
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn feed_copies_only_what_a_split_query_lacks() {
        let msgs = vec![vec![7u8; 40], vec![8u8; 20]];
        let stream = framed(&msgs);
        let mut f = Framer::new(512);
        let mut got = Vec::new();
        // One byte of the first query, then the rest of both in one read.
        f.feed(&stream[..1], |q| {
            got.push(q.to_vec());
            true
        })
        .unwrap();
        assert_eq!(f.pending(), 1);
        f.feed(&stream[1..], |q| {
            got.push(q.to_vec());
            true
        })
        .unwrap();
        assert_eq!(got, msgs);
        assert_eq!(f.pending(), 0);
        // The second query was framed where it lay: the buffer only ever held the
        // first one.
        assert!(f.buf.capacity() < stream.len(), "{}", f.buf.capacity());
        // Whole queries pushed by hand come out first, in order.
        let mut f = Framer::new(512);
        f.push(&stream);
        let mut got = Vec::new();
        f.feed(&[], |q| {
            got.push(q.to_vec());
            true
        })
        .unwrap();
        assert_eq!(got, msgs);
    }

    #[test]
    fn feed_keeps_what_is_left_when_told_to_stop() {
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 12 + usize::from(i)]).collect();
        let stream = framed(&msgs);
        let mut f = Framer::new(512);
        let mut got = Vec::new();
        // Two at a time: the rest waits in the framer for calls with no new data.
        for _ in 0..3 {
            let mut n = 0;
            f.feed(if got.is_empty() { &stream } else { &[] }, |q| {
                got.push(q.to_vec());
                n += 1;
                n < 2
            })
            .unwrap();
        }
        assert_eq!(got, msgs);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn feed_stops_at_garbage_after_the_queries_before_it() {
        let mut f = Framer::new(512);
        let mut stream = framed(&[vec![1; 12]]);
        stream.extend_from_slice(&[0, 3, 1, 2, 3]);
        let mut got = 0;
        assert!(f
            .feed(&stream, |_| {
                got += 1;
                true
            })
            .is_err());
        assert_eq!(got, 1);
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
