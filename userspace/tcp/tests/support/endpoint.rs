//! [`Endpoint`] for the crate's own connection, [`tcp::tcb::Tcb`]: the side that
//! connects, or the side that accepts the first SYN it is given.

use std::net::SocketAddrV4;

use tcp::tcb::{Config, Event, Tcb};
use tcp::{Instant, SeqNumber};

use super::frames::{self, Parsed};
use super::sim::Endpoint;

/// One side of a simulated connection.
pub struct TcbEndpoint {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    config: Config,
    isn: u32,
    tcb: Option<Tcb>,
    failed: Option<String>,
    payload: Vec<u8>,
}

impl TcbEndpoint {
    /// The active side: its SYN goes out at the first transmit.
    pub fn connect(
        config: Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        isn: u32,
        now: Instant,
    ) -> TcbEndpoint {
        let tcb = Tcb::connect(config.clone(), local, remote, SeqNumber(isn), now);
        TcbEndpoint {
            local,
            remote,
            config,
            isn,
            tcb: Some(tcb),
            failed: None,
            payload: vec![0; 65536],
        }
    }

    /// The passive side: accepts the first SYN that arrives.
    pub fn listen(config: Config, local: SocketAddrV4, remote: SocketAddrV4, isn: u32) -> Self {
        TcbEndpoint {
            local,
            remote,
            config,
            isn,
            tcb: None,
            failed: None,
            payload: vec![0; 65536],
        }
    }

    /// The connection, once there is one.
    pub fn tcb(&self) -> Option<&Tcb> {
        self.tcb.as_ref()
    }

    fn drain_events(&mut self) {
        let Some(t) = self.tcb.as_mut() else { return };
        while let Some(e) = t.poll_event() {
            match e {
                Event::Closed(reason) if reason.is_failure() => {
                    self.failed.get_or_insert_with(|| format!("{reason:?}"));
                }
                _ => {}
            }
        }
    }
}

impl Endpoint for TcbEndpoint {
    fn on_segment(&mut self, now: Instant, seg: &Parsed<'_>) {
        match self.tcb.as_mut() {
            Some(t) => t.on_segment(&seg.tcp, now),
            None if seg.tcp.flags.syn() && seg.tcp.ack_number.is_none() => {
                self.tcb = Some(Tcb::accept(
                    self.config.clone(),
                    self.local,
                    self.remote,
                    &seg.tcp,
                    SeqNumber(self.isn),
                    now,
                ));
            }
            None => {}
        }
        self.drain_events();
    }

    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(Vec<u8>)) {
        let Some(t) = self.tcb.as_mut() else { return };
        while let Some(x) = t.poll_transmit(now) {
            let len = x.payload_len();
            t.write_payload(&x, &mut self.payload[..len]);
            let repr = wire::TcpRepr {
                payload: &self.payload[..len],
                ..x.header()
            };
            out(frames::emit(self.local, self.remote, &repr));
        }
        self.drain_events();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.tcb.as_ref().and_then(|t| t.poll_timeout())
    }

    fn on_timeout(&mut self, now: Instant) {
        if let Some(t) = self.tcb.as_mut() {
            t.on_timeout(now);
        }
        self.drain_events();
    }

    fn send(&mut self, data: &[u8]) -> usize {
        self.tcb.as_mut().map_or(0, |t| t.send(data))
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.tcb.as_mut().map_or(0, |t| t.recv(buf))
    }

    fn close(&mut self) {
        if let Some(t) = self.tcb.as_mut() {
            t.close();
        }
    }

    fn failed(&self) -> Option<String> {
        self.failed.clone()
    }

    fn describe(&self) -> String {
        format!("{:?}", self.tcb)
    }
}
