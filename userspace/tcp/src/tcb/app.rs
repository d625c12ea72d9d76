//! The application's side: writing, reading, closing, letting go.

use super::*;

impl Tcb {
    /// Queues what fits of `data` for sending; returns how much (0 when full or closing).
    pub fn send(&mut self, data: &[u8]) -> usize {
        if !self.can_send() {
            return 0;
        }
        self.send.push(data)
    }

    /// Like [`Tcb::send`], but the data leaves without waiting for Nagle.
    pub fn send_nodelay(&mut self, data: &[u8]) -> usize {
        let n = self.send(data);
        self.push_until = self.send.len();
        n
    }

    /// Whether the application may still write.
    pub fn can_send(&self) -> bool {
        matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        ) && !self.fin_queued
    }

    /// Room in the send buffer.
    pub fn send_capacity(&self) -> usize {
        self.send.free()
    }

    /// Written bytes not yet transmitted even once.
    pub fn unsent(&self) -> usize {
        self.send.len() - self.sent_offset()
    }

    pub(super) fn sent_offset(&self) -> usize {
        (self.snd_nxt - self.snd_una)
            .saturating_sub(self.syn_in_flight() as usize)
            .min(self.send.len())
    }

    /// One past the last byte written: where the FIN goes.
    pub(super) fn data_end(&self) -> SeqNumber {
        self.snd_una + self.syn_in_flight() as usize + self.send.len()
    }

    pub(super) fn syn_in_flight(&self) -> bool {
        // Before the SYN is acknowledged it occupies ISS.
        self.snd_una == self.iss && matches!(self.state, State::SynSent | State::SynReceived)
    }

    /// Readable bytes.
    pub fn recv_available(&self) -> usize {
        self.recv.len()
    }

    /// Reads into `dst`; returns how many bytes. Reading may open the window, in which
    /// case an update is sent at the next poll if it is worth it (SWS avoidance).
    pub fn recv(&mut self, dst: &mut [u8]) -> usize {
        let n = self.recv.read(dst);
        if self.ooo.is_empty() {
            // All read and nothing out of order: the ring's memory goes back.
            self.recv.release_if_empty();
        }
        if n > 0 && self.state.synchronized() {
            // RFC 1122 §4.2.3.3: announce only a window increase of at least
            // min(buffer / 2, MSS).
            let edge = self.rcv_nxt + self.recv.window();
            if edge.distance(self.rcv_adv) as usize >= (self.recv.capacity() / 2).min(self.snd_mss)
            {
                self.ack_now = true;
            }
        }
        n
    }

    /// The peer closed and everything it sent has been read.
    pub fn at_eof(&self) -> bool {
        self.fin_received && self.recv.len() == 0
    }

    /// Sends FIN after what is queued; reading goes on (half-close).
    pub fn close(&mut self) {
        match self.state {
            State::SynSent => self.enter_closed(CloseReason::Finished),
            State::SynReceived | State::Established | State::CloseWait => self.fin_queued = true,
            _ => {}
        }
    }

    /// Resets the connection at once.
    pub fn abort(&mut self) {
        self.reset(CloseReason::Aborted);
    }

    /// Closes at once, telling the peer with a RST if it knows of the connection.
    pub(super) fn reset(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            if self.state.synchronized() || self.state == State::SynReceived {
                self.rst_now = true;
            }
            self.enter_closed(reason);
        }
    }

    /// The application has let go of the connection: it closed it (or is about to) and
    /// will neither read nor write again. From here on the connection only finishes
    /// closing, within bounds, as Linux's orphaned sockets do: FIN-WAIT-2 lasts at most
    /// `fin_wait_2_timeout` (then a RST), what is unacknowledged is retransmitted at most
    /// `orphan_retries` times, and data that arrives after our FIN (nobody will read
    /// it) resets the connection (RFC 1122 §4.2.2.13, RFC 2525 §2.17).
    pub fn orphan(&mut self, now: Instant) {
        self.orphaned = true;
        self.arm_fin_wait_2(now);
    }

    /// The application lets go of the connection (drops its flow) and will neither read
    /// nor write again: closes what is still open and bounds the rest ([`Tcb::orphan`]).
    /// When received data will never be read (in our buffer, or `unread_by_app`: bytes
    /// the application took from it but did not consume), it resets instead, so that the
    /// peer learns its data was lost rather than reading a clean end (RFC 1122
    /// §4.2.2.13, RFC 2525 §2.17; Linux's close() does the same). Not in TIME-WAIT: both
    /// sides have closed, a RST would tell the peer nothing, and TIME-WAIT still guards
    /// the 4-tuple (Linux's socket has left it to a separate TIME-WAIT entry by then).
    /// Returns whether it reset.
    pub fn release(&mut self, now: Instant, unread_by_app: bool) -> bool {
        let unread = unread_by_app || self.recv.len() > 0;
        if unread && !matches!(self.state, State::TimeWait | State::Closed) {
            self.abort();
            return true;
        }
        if !self.is_closed() {
            self.close();
        }
        self.orphan(now);
        false
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && !self.rst_now
    }

    /// Whether `syn` may open a new incarnation of this connection while it waits in
    /// TIME-WAIT (RFC 6191, which refines RFC 1122 §4.2.2.13): its timestamp is newer
    /// than the last one seen, or its sequence number is above everything the old
    /// incarnation received and its timestamp, if both use them, is not older. If so,
    /// the answer is the lowest initial sequence number the new incarnation may use:
    /// past everything the old one sent plus a whole unscaled window, so that none of
    /// its delayed segments lands in the new connection's window (Linux picks the same
    /// floor).
    /// The caller retires this connection and accepts `syn` as a new one; otherwise
    /// `syn` goes to [`Tcb::on_segment`], which answers it with a challenge ACK.
    pub fn reopening_isn(&self, syn: &TcpRepr<'_>) -> Option<SeqNumber> {
        if self.state != State::TimeWait
            || !syn.flags.syn()
            || syn.flags.rst()
            || syn.ack_number.is_some()
        {
            return None;
        }
        let new_timestamp = syn.timestamp.filter(|_| self.config.timestamps);
        let newer_seq = SeqNumber(syn.seq_number) > self.rcv_nxt;
        let reopens = match (self.ts_ok, new_timestamp) {
            // As Linux: a newer sequence number also does when the timestamp is equal
            // (a client reconnecting within its timestamp clock's tick), never when it
            // is older (PAWS).
            (true, Some(ts)) => match ts.tsval.wrapping_sub(self.ts_recent) as i32 {
                d if d > 0 => true,
                0 => newer_seq,
                _ => false,
            },
            // Without timestamps on the old incarnation, only the sequence number can
            // tell its duplicates from the new connection's segments.
            (false, Some(_)) | (_, None) => newer_seq,
        };
        reopens.then(|| self.snd_max + (u16::MAX as usize + 2))
    }

    /// Retransmission counters.
    pub fn stats(&self) -> TcbStats {
        self.stats
    }

    /// Heap bytes held by the buffers right now.
    pub fn buffer_bytes(&self) -> usize {
        self.send.allocated() + self.recv.allocated()
    }
}
