//! Segments out: the window we advertise, headers and options, and what the next
//! segment carries (SYN, retransmission, new data, FIN, probes, RST).

use super::*;

impl Tcb {
    pub(super) fn our_window(&mut self) -> u16 {
        let wnd = self.rcv_wnd();
        // Never move the advertised right edge left (RFC 7323 §2.4 / RFC 9293).
        let edge = self.rcv_nxt + wnd;
        let edge = if self.state.synchronized() && edge < self.rcv_adv {
            self.rcv_adv
        } else {
            edge
        };
        self.rcv_adv = edge;
        let wnd = edge - self.rcv_nxt;
        ((wnd >> self.rcv_wscale).min(u16::MAX as usize)) as u16
    }

    pub(super) fn header(
        &mut self,
        seq: SeqNumber,
        flags: TcpFlags,
        now: Instant,
    ) -> TcpRepr<'static> {
        let syn = flags.syn();
        let window_len = if syn {
            self.rcv_wnd().min(u16::MAX as usize) as u16
        } else {
            self.our_window()
        };
        let mut sack_ranges = [None; 4];
        if self.sack_ok && !syn {
            let max = if self.ts_ok { 3 } else { 4 };
            // A D-SACK goes first (RFC 2883 §4), then the out-of-order ranges.
            let dsack = self.dsack.take();
            if let Some((l, r)) = dsack {
                sack_ranges[0] = Some((l.0, r.0));
            }
            let first = usize::from(dsack.is_some());
            if !self.ooo.is_empty() {
                let mut blocks = [None; 4];
                // A D-SACK above RCV.NXT is told from a SACK by the block after it,
                // which must hold it (RFC 2883 §4.2): the duplicate was the latest
                // segment into its range, so that range comes first here.
                self.ooo.sack_blocks(self.rcv_nxt, &mut blocks, 4);
                let n = blocks.iter().flatten().count().min(max - first);
                sack_ranges[first..first + n].copy_from_slice(&blocks[..n]);
            }
        }
        let ts_wanted = if syn {
            self.config.timestamps && (self.state == State::SynSent || self.ts_ok)
        } else {
            self.ts_ok
        };
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq_number: seq.0,
            ack_number: (self.state != State::SynSent).then_some(self.rcv_nxt.0),
            flags,
            window_len,
            urgent_pointer: 0,
            max_seg_size: syn.then_some(self.config.mss),
            window_scale: if syn && (self.state == State::SynSent || self.ws_ok) {
                self.config.window_scale
            } else {
                None
            },
            sack_permitted: syn
                && self.config.sack
                && (self.state == State::SynSent || self.sack_ok),
            sack_ranges,
            timestamp: ts_wanted.then(|| TcpTimestamp {
                tsval: ms32(now).max(1),
                tsecr: if self.state == State::SynSent {
                    0
                } else {
                    self.ts_recent
                },
            }),
            payload: &[],
        }
    }

    pub(super) fn sent_ack(&mut self) {
        self.ack_now = false;
        self.timers.stop(Timer::DelayedAck);
        self.unacked_segments = 0;
    }

    /// Whether [`Tcb::poll_transmit`] would return something now.
    pub fn wants_to_send(&self) -> bool {
        self.rst_now
            || self.syn_due
            || self.ack_now
            || self.probe_now
            || self.fast_retransmit
            || (self.fin_queued
                && !self.fin_sent
                && self.unsent() == 0
                && self.state.synchronized())
            || (self.unsent() > 0 && self.state.synchronized() && self.usable_window() > 0)
    }

    /// Payload bytes a segment can carry: the MSS less the options every segment carries
    /// (RFC 6691: MSS counts no options), so full segments still fit the path's MTU.
    pub(super) fn max_payload(&self) -> usize {
        let ts = if self.ts_ok { 12 } else { 0 };
        // The SACK blocks `header` will put on the segment: a pending D-SACK, then the
        // out-of-order ranges.
        let blocks = if self.sack_ok {
            (usize::from(self.dsack.is_some()) + self.ooo.range_count()).min(if self.ts_ok {
                3
            } else {
                4
            })
        } else {
            0
        };
        let sack = if blocks > 0 { 4 + 8 * blocks } else { 0 };
        self.snd_mss.saturating_sub(ts + sack).max(1)
    }

    /// The size of a full segment from the peer, for the every-second-segment ACK rule.
    pub(super) fn peer_full_segment(&self) -> usize {
        (self.config.mss as usize)
            .saturating_sub(if self.ts_ok { 12 } else { 0 })
            .max(1)
    }

    pub(super) fn send_space(&self) -> SendSpace {
        SendSpace {
            snd_una: self.snd_una,
            snd_nxt: self.snd_max,
            high_rxt: self.high_rxt.max(self.snd_una),
            mss: self.max_payload(),
            dupthresh: DUP_THRESH,
        }
    }

    pub(super) fn usable_window(&self) -> usize {
        let by_peer = self.snd_wnd.saturating_sub(self.snd_nxt - self.snd_una);
        let in_flight = if self.sack_recovery {
            self.scoreboard.pipe(&self.send_space())
        } else {
            self.snd_nxt - self.snd_una
        };
        by_peer.min(self.cc.cwnd().saturating_sub(in_flight))
    }

    /// The next segment to send, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.rst_now {
            self.rst_now = false;
            let mut f = TcpFlags::default();
            f.set_rst(true);
            let seq = self.rst_seq.take().unwrap_or(self.snd_nxt);
            let mut h = self.header(seq, f, now);
            h.window_len = 0;
            h.sack_ranges = [None; 4];
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if self.state == State::Closed {
            return None;
        }
        if self.syn_due {
            self.syn_due = false;
            let mut f = TcpFlags::default();
            f.set_syn(true);
            if self.snd_max == self.iss {
                self.snd_max = self.iss + 1;
                self.snd_nxt = self.iss + 1;
                self.timed = Some((self.iss + 1, now));
            }
            self.timers.set_if_unarmed(Timer::Rto, now + self.rtt.rto());
            let h = self.header(self.iss, f, now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if !self.state.synchronized() {
            if self.state == State::SynReceived && self.ack_now {
                // An unacceptable segment in SYN-RECEIVED is answered with an ACK.
                let h = self.header(self.snd_nxt, TcpFlags::default(), now);
                self.sent_ack();
                return Some(Transmit {
                    header: h,
                    offset: 0,
                    len: 0,
                });
            }
            return None;
        }
        if self.fast_retransmit {
            self.fast_retransmit = false;
            self.retransmitted = true;
            let len = self.send.len().min(self.max_payload());
            if len > 0 {
                let t = self.data_segment(self.snd_una, 0, len, now);
                return Some(t);
            }
        }
        if self.sack_recovery {
            let sp = self.send_space();
            let pipe = self.scoreboard.pipe(&sp);
            if self.cc.cwnd() >= pipe + sp.mss {
                if let Some(NextSeg::Retransmit { seq, len }) =
                    self.scoreboard.next_seg(&sp, false, false)
                {
                    let len = len
                        .min(sp.mss)
                        .min(self.send.len().saturating_sub(seq - self.snd_una));
                    if len > 0 {
                        self.high_rxt = seq + len;
                        self.retransmitted = true;
                        let offset = seq - self.snd_una;
                        return Some(self.data_segment(seq, offset, len, now));
                    }
                }
            }
        }
        // After a timeout SND.NXT is back below SND.MAX: skip what the peer SACKed. (Not
        // SND.UNA itself, which RFC 2018 §8 says MUST be resent: an ACK that leaves it
        // SACKed clears the scoreboard, see `process_ack`.)
        if self.sack_ok && self.snd_nxt < self.snd_max {
            for (left, right) in self.scoreboard.ranges() {
                if left <= self.snd_nxt && self.snd_nxt < right {
                    self.snd_nxt = right.min(self.snd_max);
                }
            }
        }
        // New data, as far as the windows and Nagle allow.
        let unsent = self.unsent();
        if unsent > 0 {
            let offset = self.sent_offset();
            let usable = self.usable_window();
            let max = self.max_payload();
            let len = unsent.min(max).min(usable);
            let full = len == max;
            let pushed = self.push_until > offset;
            let idle = self.snd_una == self.snd_nxt;
            // Nagle (RFC 1122 §4.2.3.4) and sender SWS avoidance: a short segment goes
            // when nothing is outstanding, or when it ends what was written and the
            // application asked to bypass Nagle (or Nagle is off).
            let nagle_ok = full || idle || (len == unsent && (pushed || !self.config.nagle));
            // With nothing in flight no ACK will come to open the window further, so what
            // fits goes (RFC 1122's override, without waiting for a timer).
            let sws_ok = full || len == unsent || len >= self.snd_wnd / 2 || idle;
            if len > 0 && nagle_ok && sws_ok {
                let seq = self.snd_nxt;
                return Some(self.data_segment(seq, offset, len, now));
            }
            self.arm_persist(now);
        }
        if self.fin_queued && !self.fin_sent && self.unsent() == 0 {
            self.fin_sent = true;
            let mut f = TcpFlags::default();
            f.set_fin(true);
            // The FIN's place is right after the data, whatever SND.NXT says.
            let seq = self.data_end();
            self.snd_nxt = seq + 1;
            if self.snd_max < self.snd_nxt {
                self.snd_max = self.snd_nxt;
            }
            self.state = match self.state {
                State::CloseWait => State::LastAck,
                State::Established => State::FinWait1,
                s => s,
            };
            self.timers.set_if_unarmed(Timer::Rto, now + self.rtt.rto());
            let h = self.header(seq, f, now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if self.probe_now {
            self.probe_now = false;
            if self.snd_wnd == 0 && self.unsent() > 0 {
                // A window probe: the next byte, beyond the window. It is real data (the
                // peer keeps it if its window has opened meanwhile), so it advances
                // SND.NXT; the retransmission timer takes over resending it.
                self.persist_backoff += 1;
                let offset = self.sent_offset();
                let seq = self.snd_nxt;
                return Some(self.data_segment(seq, offset, 1, now));
            }
            // A keepalive probe: an old sequence number, so the peer must answer.
            let h = self.header(before(self.snd_una, 1), TcpFlags::default(), now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        if self.ack_now {
            // At SND.MAX, not SND.NXT: after a timeout SND.NXT goes back to SND.UNA to
            // resend, and an ACK numbered below what the peer has received is
            // unacceptable to it (RFC 9293 §3.10.7.4), ACK field and all. Two ends both
            // resending after timeouts then drop each other's every ACK until they give
            // up (seen at 20 % loss on the simulated link). Linux's pure ACKs carry its
            // highest sequence sent likewise.
            let h = self.header(self.snd_max, TcpFlags::default(), now);
            self.sent_ack();
            return Some(Transmit {
                header: h,
                offset: 0,
                len: 0,
            });
        }
        None
    }

    pub(super) fn data_segment(
        &mut self,
        seq: SeqNumber,
        offset: usize,
        len: usize,
        now: Instant,
    ) -> Transmit {
        let mut f = TcpFlags::default();
        let end = seq + len;
        if offset + len == self.send.len() {
            f.set_psh(true);
        }
        if end > self.snd_nxt {
            self.snd_nxt = end;
        }
        if seq < self.snd_max {
            self.stats.retransmits += 1;
            if let Some(u) = self.undo.as_mut() {
                u.resent.get_or_insert((seq, end));
            }
        }
        if end > self.snd_max {
            self.snd_max = end;
            if self.timed.is_none() && !self.retransmitted {
                self.timed = Some((end, now));
            }
        }
        self.timers.set_if_unarmed(Timer::Rto, now + self.rtt.rto());
        let h = self.header(seq, f, now);
        self.sent_ack();
        Transmit {
            header: h,
            offset,
            len,
        }
    }

    /// Copies the payload of `t` into `dst` (which must be `t.payload_len()` long).
    pub fn write_payload(&self, t: &Transmit, dst: &mut [u8]) {
        self.send.copy_out(t.offset, &mut dst[..t.len]);
    }
}
