//! Segments in (RFC 9293 §3.10.7): the SYN-SENT and synchronized paths, RST and SYN
//! checks, and received data.

use super::*;

impl Tcb {
    pub(super) fn window_of(&self, seg: &TcpRepr<'_>) -> usize {
        (seg.window_len as usize) << self.snd_wscale
    }

    pub(super) fn rcv_wnd(&self) -> usize {
        self.recv.window()
    }

    /// Processes an arriving segment (RFC 9293 §3.10.7).
    pub fn on_segment(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        match self.state {
            State::Closed => {}
            State::SynSent => self.on_segment_syn_sent(seg, now),
            _ => self.on_segment_synchronized(seg, now),
        }
    }

    pub(super) fn on_segment_syn_sent(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        let ack_ok = seg.ack_number.map(|a| {
            let a = SeqNumber(a);
            a > self.iss && a <= self.snd_max
        });
        if ack_ok == Some(false) {
            // An unacceptable ACK: RST it (unless it is one).
            if !seg.flags.rst() {
                self.rst_for(seg);
                // Most likely the challenge ACK of a server still holding this 4-tuple
                // in TIME-WAIT, which our RST clears: resend the SYN soon, not after a
                // whole RTO (Linux does the same). Only before the first retransmission,
                // so a stream of bogus ACKs cannot make us send SYNs faster, and never
                // later than already due, so it cannot hold the SYN back either.
                if self.retries == 0 {
                    let soon = now + SYN_RESEND_AFTER_RESET;
                    self.timers.set_at_most(Timer::Rto, soon);
                }
            }
            return;
        }
        if seg.flags.rst() {
            if ack_ok == Some(true) {
                self.enter_closed(CloseReason::Refused);
            }
            return;
        }
        if !seg.flags.syn() {
            return;
        }
        self.take_syn_options(seg);
        self.irs = SeqNumber(seg.seq_number);
        self.rcv_nxt = self.irs + 1;
        self.rcv_adv = self.rcv_nxt + self.rcv_wnd().min(u16::MAX as usize);
        self.snd_wnd = seg.window_len as usize; // a SYN's window is never scaled
        self.snd_wl1 = SeqNumber(seg.seq_number);
        if let Some(ack) = seg.ack_number {
            self.snd_wl2 = SeqNumber(ack);
            self.ack_our_syn(SeqNumber(ack), seg, now);
            self.state = State::Established;
            self.emit_event(Event::Connected);
            self.ack_now = true;
            self.arm_keepalive(now);
        } else {
            // Simultaneous open: our SYN crossed theirs.
            self.state = State::SynReceived;
            self.syn_due = true;
        }
    }

    pub(super) fn ack_our_syn(&mut self, ack: SeqNumber, seg: &TcpRepr<'_>, now: Instant) {
        self.timers.stop(Timer::Connect);
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        self.timers.stop(Timer::Rto);
        self.retries = 0;
        if !self.retransmitted {
            if let Some((_, sent)) = self.timed.take() {
                self.rtt.on_sample(now.saturating_duration_since(sent));
            }
        } else {
            self.rtt.on_handshake_retransmitted();
        }
        if let (true, Some(ts)) = (self.ts_ok, seg.timestamp) {
            if ts.tsecr != 0 {
                self.rtt.on_sample(Duration::from_millis(
                    ms32(now).wrapping_sub(ts.tsecr) as u64
                ));
            }
        }
        self.timed = None;
        self.retransmitted = false;
    }

    pub(super) fn on_segment_synchronized(&mut self, seg: &TcpRepr<'_>, now: Instant) {
        let seq = SeqNumber(seg.seq_number);
        let seg_len = seg.segment_len();
        // PAWS (RFC 7323 §5.3): a timestamp older than TS.Recent marks an old duplicate.
        if self.ts_ok && !seg.flags.rst() {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.ack_now = true;
                    self.note_duplicate(seq, seg.payload.len());
                    return;
                }
            }
        }
        // Acceptability (RFC 9293 §3.10.7.4, first check).
        let wnd = self.rcv_wnd();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd),
            // RFC 9293: with a zero window no data is acceptable, "but special allowance
            // should be made to accept valid ACKs": a segment that starts at RCV.NXT has
            // its ACK processed and its data dropped (as Linux does). Rejecting it
            // whole would deadlock a peer whose ACKs ride on window-probe data.
            (_, 0) => seq == self.rcv_nxt,
            (n, _) => {
                seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd)
                    || (seq + (n - 1)).in_range(self.rcv_nxt, self.rcv_nxt + wnd)
            }
        };
        if self.state == State::SynReceived
            && seg.flags.syn()
            && !seg.flags.rst()
            && seg.ack_number.is_none()
            && seq == self.irs
        {
            // The peer resent its SYN: our SYN-ACK was lost. Resend it.
            self.syn_due = true;
            return;
        }
        if self.state == State::TimeWait && seg.flags.fin() && !seg.flags.rst() {
            // A retransmitted FIN: the peer lost our ACK. ACK again, restart 2·MSL.
            self.ack_now = true;
            self.timers
                .set(Timer::TimeWait, now + self.config.time_wait);
            return;
        }
        if !acceptable {
            if !seg.flags.rst() {
                self.ack_now = true;
                self.note_duplicate(seq, seg.payload.len());
            }
            return;
        }
        if seg.flags.rst() {
            // RFC 5961 §3.2: only an exact match resets; the rest of the window gets a
            // challenge ACK (a blind attacker must guess RCV.NXT exactly).
            if seq == self.rcv_nxt {
                match self.state {
                    // RFC 9293 §3.10.7.4: back to LISTEN for a passive open, "connection
                    // refused" for one that came from SYN-SENT.
                    State::SynReceived if self.active_open => {
                        self.enter_closed(CloseReason::Refused)
                    }
                    State::TimeWait => self.enter_closed(CloseReason::Finished),
                    _ => self.enter_closed(CloseReason::Reset),
                }
            } else {
                self.ack_now = true;
            }
            return;
        }
        if seg.flags.syn() {
            // RFC 5961 §4.2: a SYN in a synchronized state gets a challenge ACK.
            if self.state == State::SynReceived && seq == self.irs {
                // Our SYN-ACK was lost and the peer resent its SYN: resend it.
                self.syn_due = true;
                return;
            }
            self.ack_now = true;
            return;
        }
        let Some(ack) = seg.ack_number.map(SeqNumber) else {
            return;
        };
        if self.orphaned
            && (self.fin_queued || matches!(self.state, State::FinWait1 | State::FinWait2))
            && !seg.payload.is_empty()
            && seq + seg.payload.len() > self.rcv_nxt
        {
            // New data after we closed, and nobody left to read it: RFC 1122 §4.2.2.13
            // says reset (Linux does, and so frees the connection at once).
            self.abort();
            return;
        }
        if self.ts_ok {
            if let Some(ts) = seg.timestamp {
                // RFC 7323 §4.3: remember the latest in-window timestamp.
                if seq <= self.rcv_nxt {
                    self.ts_recent = ts.tsval;
                }
            }
        }
        self.keepalive_sent = 0;
        if self.state == State::SynReceived {
            if ack > self.snd_una && ack <= self.snd_max {
                self.ack_our_syn(ack, seg, now);
                self.snd_wnd = self.window_of(seg);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.state = State::Established;
                self.emit_event(Event::Connected);
                self.arm_keepalive(now);
            } else {
                self.rst_for(seg);
                return;
            }
        }
        if !self.process_ack(ack, seg, now) || self.state == State::Closed {
            return;
        }
        self.process_data(seq, seg, now);
        self.arm_keepalive(now);
        self.arm_persist(now);
    }

    pub(super) fn process_data(&mut self, seq: SeqNumber, seg: &TcpRepr<'_>, now: Instant) {
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        let mut payload = seg.payload;
        let mut start = seq;
        if !payload.is_empty() && receiving {
            // Trim what we already have, then what is beyond the window.
            if start < self.rcv_nxt {
                let skip = (self.rcv_nxt - start).min(payload.len());
                payload = &payload[skip..];
                start = self.rcv_nxt;
            }
            let offset = start - self.rcv_nxt;
            let room = self.rcv_wnd().saturating_sub(offset);
            payload = &payload[..payload.len().min(room)];
            // Out-of-order data we hold already: a duplicate, reported as a D-SACK
            // followed by the range holding it (RFC 2883 §4.2).
            let already_held = self.sack_ok
                && offset > 0
                && self
                    .ooo
                    .ranges()
                    .any(|(l, r)| l <= offset && offset + payload.len() <= r);
            if !payload.is_empty() {
                if offset == 0 {
                    self.recv.write_at(0, payload);
                    let mut advance = payload.len();
                    let filled_hole = !self.ooo.is_empty();
                    if filled_hole {
                        // Out-of-order bytes that are now contiguous join the in-order run.
                        let _ = self.ooo.add(0, advance);
                        advance = self.ooo.remove_front();
                    }
                    self.recv.commit(advance);
                    self.rcv_nxt += advance;
                    self.emit_event(Event::Readable);
                    if filled_hole {
                        self.ack_now = true;
                    } else if payload.len() >= self.peer_full_segment() {
                        self.unacked_segments += 1;
                        if self.unacked_segments >= 2 {
                            self.ack_now = true;
                        }
                    }
                    if !self.ack_now && !self.timers.is_armed(Timer::DelayedAck) {
                        self.timers
                            .set(Timer::DelayedAck, now + self.config.delayed_ack);
                    }
                } else if self.ooo.add(offset, payload.len()).is_ok() {
                    if already_held {
                        self.dsack = Some((start, start + payload.len()));
                    }
                    self.recv.write_at(offset, payload);
                    // Out of order: ACK at once so the sender sees the hole (RFC 5681 §4.2).
                    self.ack_now = true;
                } else {
                    self.ack_now = true;
                }
            } else {
                self.ack_now = true;
            }
        }
        if seg.flags.fin() && !self.fin_received {
            self.fin_at = Some(seq + seg.payload.len());
        }
        if let Some(fin) = self.fin_at {
            if fin == self.rcv_nxt && !self.fin_received {
                self.fin_received = true;
                self.rcv_nxt += 1;
                self.ack_now = true;
                self.emit_event(Event::PeerClosed);
                match self.state {
                    State::Established => self.state = State::CloseWait,
                    State::FinWait1 => {
                        if self.fin_sent && self.snd_una == self.snd_max {
                            self.enter_time_wait(now);
                        } else {
                            self.state = State::Closing;
                        }
                    }
                    State::FinWait2 => self.enter_time_wait(now),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn rst_for(&mut self, seg: &TcpRepr<'_>) {
        // An unacceptable ACK during the handshake: RST with SEG.ACK as sequence number,
        // leaving the connection as it is (RFC 9293 §3.10.7.3, §3.10.7.4).
        self.rst_now = true;
        self.rst_seq = seg.ack_number.map(SeqNumber);
    }
}
