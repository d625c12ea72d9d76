//! ACK processing and loss recovery: RTT samples, congestion control, duplicate ACKs,
//! NewReno and SACK recovery (RFC 6582, RFC 6675), and undoing spurious recoveries
//! (RFC 3522, RFC 2883).

use super::*;

/// A fast recovery's way back (the Eifel detection algorithm, RFC 3522): the congestion
/// state before it, our timestamp at its start, and the retransmission count then. The
/// first ACK that moves SND.UNA in the recovery and echoes a timestamp older than that
/// was caused by the original of the first segment resent, which therefore arrived:
/// its retransmission was spurious, and if it was the only one, so was the recovery.
///
/// The duplicate-ACK threshold stays at 3: raising it after a spurious recovery (as
/// Linux does, which also has RACK's time-based loss detection) left real losses
/// waiting for the retransmission timer here (1 % loss on the simulated link: 11.7 ->
/// 4.8 Mbit/s).
///
/// Where millisecond timestamps cannot tell (a recovery in the millisecond of the
/// original: any sub-millisecond path), the peer's D-SACK (RFC 2883) of the segment
/// resent can, later: the record stays for that until a window after the recovery
/// ended (`expires`), the next recovery or a timeout.
pub(super) struct Undo {
    pub(super) cc: Congestion,
    pub(super) ts: u32,
    pub(super) retransmits: u32,
    /// SND.UNA when the recovery began: a D-SACK below it is about something else.
    pub(super) start: SeqNumber,
    /// The first segment the recovery resent.
    pub(super) resent: Option<(SeqNumber, SeqNumber)>,
    /// Once the recovery has ended, SND.MAX then: an ACK beyond it is a window later,
    /// and the record (whose controller is older still) is dropped.
    pub(super) expires: Option<SeqNumber>,
    /// The Eifel test was made (on the first ACK to move SND.UNA).
    pub(super) eifel_done: bool,
}

impl Tcb {
    /// Takes the ACK field of a segment. Returns false if the segment is to be dropped
    /// (RFC 9293: an ACK of something not yet sent is answered with an ACK, and the
    /// segment, data included, goes no further).
    pub(super) fn process_ack(&mut self, ack: SeqNumber, seg: &TcpRepr<'_>, now: Instant) -> bool {
        if ack > self.snd_max {
            self.ack_now = true;
            return false;
        }
        let seq = SeqNumber(seg.seq_number);
        let window = self.window_of(seg);
        let in_flight_before = self.snd_max - self.snd_una;
        let mut recover_again = false;
        let newly_sacked = if self.sack_ok {
            // Only sent data can be SACKed: a block over our FIN's sequence number
            // would make a retransmission skip it and send the FIN at a new one.
            let una = ack.max(self.snd_una);
            let sent_data_end = self.snd_max.min(self.data_end()).max(una);
            let newly = self.scoreboard.update(una, sent_data_end, &seg.sack_ranges);
            // A D-SACK (RFC 2883: a first block below the cumulative ACK) of the one
            // segment a recovery resent: both copies arrived, so the recovery was not
            // needed (Linux's DSACK undo). The ACK may come after the recovery ended.
            // The block must hold the whole segment resent (a retransmission may
            // cover more than one original, of which only one came twice) and lie
            // within the recovery's data (no block a forger made wide enough to hit).
            if let (Some((l, r)), Some(u)) = (
                seg.sack_ranges[0].map(|(l, r)| (SeqNumber(l), SeqNumber(r))),
                self.undo.as_ref(),
            ) {
                // (The first segment a recovery resends is SND.UNA's, so its duplicate
                // is always below the cumulative ACK, never out of order.)
                let covers = u
                    .resent
                    .is_some_and(|(rl, rr)| u.start <= l && l <= rl && rr <= r && r <= una);
                if covers && self.at_most_one_resent() {
                    let was_recovering = self.cc.in_recovery();
                    self.undo_recovery(una, 0);
                    // As after an undo by timestamps: a loss the SACKs show starts its
                    // recovery, at the end, once SND.UNA is settled.
                    recover_again = was_recovering;
                }
            }
            // A SACKed range at the cumulative ACK: the receiver lacks the first byte of
            // what it had SACKed, so it reneged (RFC 2018 §8: its out-of-order store was
            // full). Forget every SACK, or neither recovery nor a timeout would resend
            // what the scoreboard says it has, and the connection would wait for ever.
            if self.scoreboard.is_sacked(una) {
                self.scoreboard.clear();
                // It says it lacks SND.UNA: resend that now, not at the timeout.
                self.fast_retransmit = true;
            }
            newly
        } else {
            0
        };
        if ack > self.snd_una {
            let acked = ack - self.snd_una;
            let fin_acked = self.fin_sent && ack == self.snd_max;
            let data_acked = acked - fin_acked as usize;
            self.send.consume(data_acked);
            self.push_until = self.push_until.saturating_sub(data_acked);
            self.snd_una = ack;
            if self.snd_nxt < ack {
                self.snd_nxt = ack;
            }
            // RTT: from timestamps when both use them, else the timed segment (Karn).
            let mut sample = None;
            if let (true, Some(ts)) = (self.ts_ok, seg.timestamp) {
                if ts.tsecr != 0 {
                    sample = Some(Duration::from_millis(
                        ms32(now).wrapping_sub(ts.tsecr) as u64
                    ));
                }
            } else if let Some((end, sent)) = self.timed {
                if ack >= end && !self.retransmitted {
                    sample = Some(now.saturating_duration_since(sent));
                    self.timed = None;
                }
            }
            if let Some(s) = sample {
                self.rtt.on_sample(s);
            }
            self.rtt.reset_backoff();
            self.retries = 0;
            self.retransmitted = false;
            // The first ACK to move SND.UNA in a recovery says whether it was needed.
            // (A zero echo is no timestamp: RFC 7323 §3.2, as the RTT sample above.)
            if let Some(undo) = self.undo.as_mut().filter(|u| !u.eifel_done) {
                undo.eifel_done = true;
                let echoes_older = seg
                    .timestamp
                    .is_some_and(|ts| ts.tsecr != 0 && (undo.ts.wrapping_sub(ts.tsecr) as i32) > 0);
                // Without SACK nothing says whether the rest of the window arrived: only
                // an ACK of all of it proves that nothing else was lost.
                let all_known = self.sack_ok || ack >= self.recover;
                if echoes_older && all_known && self.cc.in_recovery() && self.at_most_one_resent() {
                    self.undo_recovery(ack, acked);
                    recover_again = true;
                }
            }
            if self
                .undo
                .as_ref()
                .and_then(|u| u.expires)
                .is_some_and(|e| ack > e)
            {
                self.undo = None;
            }
            // NewReno (RFC 6582): a partial ACK in recovery retransmits the next hole;
            // with SACK the scoreboard picks what to resend (RFC 6675).
            if self.cc.in_recovery() {
                if ack >= self.recover {
                    self.cc.on_recovery_exit(now);
                    self.sack_recovery = false;
                    self.dupacks = 0;
                    // A D-SACK may still show it spurious, within the next window.
                    let max = self.snd_max;
                    if let Some(u) = self.undo.as_mut() {
                        u.expires = Some(max);
                    }
                } else if !self.sack_recovery {
                    self.fast_retransmit = true;
                }
            } else {
                self.dupacks = 0;
                self.cc.on_ack(now, acked, in_flight_before, sample);
            }
            if self.snd_una < self.snd_max {
                self.timers.set(Timer::Rto, now + self.rtt.rto());
            } else {
                self.timers.stop(Timer::Rto);
            }
            if data_acked > 0 {
                self.emit_event(Event::Writable);
            }
            if fin_acked {
                match self.state {
                    State::FinWait1 => {
                        self.state = State::FinWait2;
                        self.arm_fin_wait_2(now);
                    }
                    State::Closing => self.enter_time_wait(now),
                    State::LastAck => {
                        self.enter_closed(CloseReason::Finished);
                        return true;
                    }
                    _ => {}
                }
            }
        } else if ack == self.snd_una
            && self.snd_una < self.snd_max
            && ((seg.payload.is_empty() && !seg.flags.fin() && window == self.snd_wnd)
                || newly_sacked > 0)
        {
            // A duplicate ACK (RFC 5681 §2), or one with new SACK information (RFC 6675
            // §2; Linux's window moves with autotuning, so window equality alone would
            // miss most of them).
            self.dupacks += 1;
            let lost = self.sack_ok
                && self
                    .scoreboard
                    .is_lost(self.snd_una, self.max_payload(), DUP_THRESH);
            // RFC 6582 §3.2 step 2: a new recovery only when the ACK is past `recover`.
            if (self.dupacks as usize >= DUP_THRESH || lost)
                && !self.cc.in_recovery()
                && (ack > self.recover || self.recover == self.iss)
            {
                self.enter_fast_recovery(now, in_flight_before);
            }
        }
        // After an undo the first hole was reordering, but one further up may be a loss
        // the SACKs already show: its recovery starts now, not at a duplicate ACK that
        // may never come (Linux does the same after an undo).
        if recover_again
            && !self.cc.in_recovery()
            && self
                .scoreboard
                .is_lost(self.snd_una, self.max_payload(), DUP_THRESH)
        {
            self.enter_fast_recovery(now, self.snd_max - self.snd_una);
        }
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule).
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            let opened = window > self.snd_wnd;
            self.snd_wnd = window;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.timers.stop(Timer::Persist);
                self.persist_backoff = 0;
            }
            if opened {
                self.emit_event(Event::Writable);
            }
        }
        true
    }

    /// `len` bytes at `seq` were dropped as old: if they lie wholly below RCV.NXT they
    /// arrived before, and the next segment reports them (a D-SACK).
    pub(super) fn note_duplicate(&mut self, seq: SeqNumber, len: usize) {
        if self.sack_ok && len > 0 && seq + len <= self.rcv_nxt {
            self.dsack = Some((seq, seq + len));
        }
    }

    /// Starts a fast recovery (RFC 5681, RFC 6582; with SACK, RFC 6675) for a loss at
    /// SND.UNA, `in_flight` bytes being outstanding.
    pub(super) fn enter_fast_recovery(&mut self, now: Instant, in_flight: usize) {
        self.recover = self.snd_max;
        self.stats.recoveries += 1;
        // The retransmission carries a timestamp no older than this; an ACK echoing an
        // older one proves the original arrived.
        self.undo = (self.ts_ok || self.sack_ok).then(|| {
            Box::new(Undo {
                cc: self.cc.clone(),
                ts: ms32(now),
                retransmits: self.stats.retransmits,
                start: self.snd_una,
                resent: None,
                expires: None,
                eifel_done: !self.ts_ok,
            })
        });
        self.cc.on_congestion_event(now, in_flight);
        if self.sack_ok {
            self.sack_recovery = true;
            self.high_rxt = self.snd_una;
        } else {
            self.fast_retransmit = true;
        }
    }

    /// The current (or last) recovery has resent one segment at most.
    pub(super) fn at_most_one_resent(&self) -> bool {
        self.undo
            .as_ref()
            .is_some_and(|u| self.stats.retransmits.wrapping_sub(u.retransmits) <= 1)
    }

    /// Undoes the fast recovery that the ACK of `ack` (`acked` new bytes) proved
    /// spurious, running or just ended: the congestion state from before it comes back,
    /// its window through slow start (never below the present one), nothing more is
    /// resent.
    pub(super) fn undo_recovery(&mut self, ack: SeqNumber, acked: usize) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        let present = self.cc.cwnd();
        let in_recovery = self.cc.in_recovery();
        self.cc = undo.cc;
        self.cc
            .resume_after_undo(self.snd_max - ack, acked, present);
        if in_recovery {
            self.sack_recovery = false;
            self.fast_retransmit = false;
            self.dupacks = 0;
            // No loss in that window after all: a loss after this ACK may start a
            // recovery (RFC 6582's rule keeps one reduction per window of real losses).
            self.recover = before(ack, 1);
        }
        self.stats.undone_recoveries += 1;
    }
}
