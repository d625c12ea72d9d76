//! The two byte rings of a connection. Both are allocated on first use, so a connection
//! that is idle (or has not yet sent or received data) holds no buffer memory.

/// Bytes written by the application and not yet acknowledged. Offset 0 is SND.UNA.
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
}

impl SendBuffer {
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            buf: Vec::new(),
            capacity: capacity.max(1),
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn free(&self) -> usize {
        self.capacity - self.len
    }

    /// Appends what fits of `data`; returns how much.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.capacity];
        }
        let tail = (self.head + self.len) % self.capacity;
        let first = n.min(self.capacity - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    /// Drops `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.capacity;
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Copies `dst.len()` bytes starting `offset` bytes after SND.UNA into `dst`.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        let n = dst.len().min(self.len.saturating_sub(offset));
        if n == 0 {
            return;
        }
        let start = (self.head + offset) % self.capacity;
        let first = n.min(self.capacity - start);
        dst[..first].copy_from_slice(&self.buf[start..start + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
    }

    /// Bytes held in memory (0 until first used).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

/// Received bytes not yet read by the application, in order, plus out-of-order bytes
/// placed where they belong (the assembler says which).
#[derive(Debug, Default)]
pub(crate) struct RecvBuffer {
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    /// In-order bytes ready for the application.
    len: usize,
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            buf: Vec::new(),
            capacity: capacity.max(1),
            head: 0,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Room after the in-order bytes: the receive window.
    pub fn window(&self) -> usize {
        self.capacity - self.len
    }

    /// Writes `data` at `offset` bytes after the in-order end (0 = in order). The caller
    /// has clipped it to the window.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) {
        debug_assert!(offset + data.len() <= self.window());
        if data.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.capacity];
        }
        let start = (self.head + self.len + offset) % self.capacity;
        let first = data.len().min(self.capacity - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Makes `n` more bytes (already written) readable.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.window());
    }

    /// Copies readable bytes into `dst`; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        if n == 0 {
            return 0;
        }
        let first = n.min(self.capacity - self.head);
        dst[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
        // The head only ever moves forward: out-of-order bytes already placed beyond the
        // in-order end are positioned relative to it.
        self.head = (self.head + n) % self.capacity;
        self.len -= n;
        n
    }

    /// Bytes held in memory (0 until first used).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_ring_wraps() {
        let mut s = SendBuffer::new(8);
        assert_eq!(s.allocated(), 0, "nothing allocated before use");
        assert_eq!(s.push(b"abcdef"), 6);
        s.consume(4);
        assert_eq!(s.push(b"ghijklmn"), 6, "only the free room is taken");
        let mut out = [0u8; 8];
        s.copy_out(0, &mut out);
        assert_eq!(&out, b"efghijkl");
        let mut mid = [0u8; 3];
        s.copy_out(2, &mut mid);
        assert_eq!(&mid, b"ghi");
    }

    #[test]
    fn recv_ring_places_out_of_order_bytes() {
        let mut r = RecvBuffer::new(8);
        r.write_at(3, b"de");
        r.write_at(0, b"abc");
        r.commit(5);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        r.write_at(0, b"fghijk");
        r.commit(6);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out), 7);
        assert_eq!(&out[..7], b"efghijk");
    }

    #[test]
    fn draining_keeps_out_of_order_bytes_in_place() {
        let mut r = RecvBuffer::new(8);
        r.write_at(0, b"ab");
        r.commit(2);
        r.write_at(2, b"ef"); // bytes 4..6 arrive early
        let mut out = [0u8; 2];
        assert_eq!(r.read(&mut out), 2); // the reader empties the in-order part
        r.write_at(0, b"cd");
        r.commit(4);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"cdef");
    }
}
