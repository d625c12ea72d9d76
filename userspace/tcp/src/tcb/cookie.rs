//! The stateless half of a passive open under a SYN flood: a SYN-ACK whose ISN is a
//! SYN cookie (`crate::syncookie`), and the connection built from the ACK that returns
//! it. Nothing is kept between the two.

use core::net::SocketAddrV4;

use wire::{TcpFlags, TcpRepr, TcpTimestamp};

use super::{ms32, Config, CongestionControl, Event, State, Tcb};
use crate::seq::SeqNumber;
use crate::syncookie::{CookieOptions, SynCookies};
use crate::time::Instant;

impl Tcb {
    /// The SYN-ACK for `syn` with a cookie for its ISN, keeping no state. `None` if
    /// `syn` is not a plain SYN.
    pub fn cookie_syn_ack(
        config: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr<'_>,
        cookies: &SynCookies,
        now: Instant,
    ) -> Option<TcpRepr<'static>> {
        if !syn.flags.syn() || syn.ack_number.is_some() || syn.flags.rst() || syn.flags.fin() {
            return None;
        }
        let opts = CookieOptions {
            window_scale: syn.window_scale.filter(|_| config.window_scale.is_some()),
            sack_permitted: syn.sack_permitted && config.sack,
            timestamps: syn.timestamp.is_some() && config.timestamps,
        };
        let mss = syn.max_seg_size.unwrap_or(536).min(config.mss);
        let ts_now = ms32(now).max(1);
        let (isn, tsval) = cookies.encode(local, remote, syn.seq_number, mss, opts, ts_now, now);
        let mut flags = TcpFlags::default();
        flags.set_syn(true);
        flags.set_ack(true);
        Some(TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq_number: isn,
            ack_number: Some(syn.seq_number.wrapping_add(1)),
            flags,
            window_len: config.recv_buffer.min(u16::MAX as usize) as u16,
            urgent_pointer: 0,
            max_seg_size: Some(config.mss),
            // Without timestamps the cookie cannot remember window scaling or SACK, so
            // neither is offered (Linux does the same).
            window_scale: if opts.timestamps && opts.window_scale.is_some() {
                config.window_scale
            } else {
                None
            },
            sack_permitted: opts.timestamps && opts.sack_permitted,
            sack_ranges: [None; 4],
            timestamp: tsval
                .zip(syn.timestamp)
                .map(|(tsval, theirs)| TcpTimestamp {
                    tsval,
                    tsecr: theirs.tsval,
                }),
            payload: &[],
        })
    }

    /// The connection for `ack`, the ACK that completes a cookie handshake, if its cookie
    /// is valid; `ack` itself (and any data it carries) is processed. `None` for anything
    /// else: a forged or stale cookie, or a segment that is not such an ACK.
    pub fn accept_cookie(
        config: Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ack: &TcpRepr<'_>,
        cookies: &SynCookies,
        now: Instant,
    ) -> Option<Tcb> {
        let f = ack.flags;
        // (An ACK is a segment with an acknowledgment number: `wire` keeps the flag there.)
        if f.syn() || f.rst() {
            return None;
        }
        let d = cookies.decode(
            local,
            remote,
            ack.seq_number,
            ack.ack_number?,
            ack.timestamp.map(|t| t.tsecr),
            now,
        )?;
        let iss = SeqNumber(d.iss);
        let mut t = Tcb::new(config, local, remote, iss);
        t.snd_mss = usize::from(d.mss).clamp(64, usize::from(t.config.mss));
        t.cc.set_mss(t.snd_mss);
        match (d.opts.window_scale, t.config.window_scale) {
            (Some(theirs), Some(ours)) => {
                t.snd_wscale = theirs.min(14);
                t.rcv_wscale = ours.min(14);
                t.ws_ok = true;
            }
            _ => t.ws_ok = false,
        }
        t.sack_ok = d.opts.sack_permitted && t.config.sack;
        t.ts_ok = d.opts.timestamps && t.config.timestamps;
        if let Some(ts) = ack.timestamp {
            t.ts_recent = ts.tsval;
        }
        t.irs = SeqNumber(d.irs);
        t.rcv_nxt = t.irs + 1;
        // The SYN-ACK advertised this much, unscaled.
        t.rcv_adv = t.rcv_nxt + t.rcv_wnd().min(u16::MAX as usize);
        t.snd_una = iss + 1;
        t.snd_nxt = iss + 1;
        t.snd_max = iss + 1;
        t.recover = iss + 1;
        t.high_rxt = iss + 1;
        t.snd_wnd = t.window_of(ack);
        t.snd_wl1 = SeqNumber(ack.seq_number);
        t.snd_wl2 = iss + 1;
        t.state = State::Established;
        t.emit_event(Event::Connected);
        t.arm_keepalive(now);
        // The ACK may carry data (or a FIN): process it as any segment.
        t.on_segment(ack, now);
        Some(t)
    }
}
