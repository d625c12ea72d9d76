//! Where to send a frame for an IPv4 destination, asked of the kernel over rtnetlink:
//! the route (output interface, gateway, preferred source) and the neighbour entry (the
//! next hop's MAC). When the entry is missing, the kernel is asked to resolve it
//! (RTM_NEWNEIGH with NTF_USE makes it send the ARP request itself), and the lookup is
//! retried until it answers or a deadline passes.
//!
//! This runs on active opens only, never per packet.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NTF_USE: u8 = 0x01;
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;

/// The route to a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The output interface.
    pub ifindex: u32,
    /// The gateway, or None when the destination is on-link.
    pub gateway: Option<Ipv4Addr>,
    /// The source address the kernel would use.
    pub source: Option<Ipv4Addr>,
}

impl Route {
    /// The address whose MAC the frame goes to.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Ipv4Addr {
        self.gateway.unwrap_or(dst)
    }
}

/// An rtnetlink socket in the calling thread's network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Walks the rtattrs in `data`, stopping at the first malformed one.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some((kind, value))
    })
}

impl Netlink {
    /// Opens the socket.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2), owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: a valid timeval for SO_RCVTIMEO, so a lost answer cannot hang us.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(Netlink { fd, seq: 1 })
    }

    /// Sends one request (`body` after the 16-byte header) and returns the payload of the
    /// answer of type `want` (or Ok(None) for a bare ACK).
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
        want: u16,
    ) -> io::Result<Option<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: msg is a valid buffer of the given length; the kernel is the peer.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: buf is a valid, writable buffer.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut data = &buf[..n as usize];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes([data[4], data[5]]);
                let seq = u32::from_ne_bytes(data[8..12].try_into().unwrap());
                if len < 16 || len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed netlink answer",
                    ));
                }
                let payload = &data[16..len];
                if seq == self.seq {
                    if ty == NLMSG_ERROR {
                        let code = payload
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                            .unwrap_or(0);
                        return if code == 0 {
                            Ok(None)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    if ty == want {
                        return Ok(Some(payload.to_vec()));
                    }
                }
                data = &data[((len + 3) & !3).min(data.len())..];
            }
        }
    }

    /// The kernel's route to `dst` (as `ip route get` shows it).
    pub fn route(&mut self, dst: Ipv4Addr) -> io::Result<Route> {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
        let mut body = vec![libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        push_attr(&mut body, RTA_DST, &dst.octets());
        let answer = self
            .request(RTM_GETROUTE, 0, &body, RTM_NEWROUTE)?
            .ok_or_else(|| io::Error::other("no route answer"))?;
        if answer.len() < 12 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short route answer",
            ));
        }
        let mut route = Route {
            ifindex: 0,
            gateway: None,
            source: None,
        };
        let ip = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
        for (kind, value) in attrs(&answer[12..]) {
            match kind {
                RTA_OIF if value.len() == 4 => {
                    route.ifindex = u32::from_ne_bytes(value.try_into().unwrap())
                }
                RTA_GATEWAY => route.gateway = ip(value),
                RTA_PREFSRC => route.source = ip(value),
                _ => {}
            }
        }
        if route.ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no route to {dst}"),
            ));
        }
        Ok(route)
    }

    fn ndmsg(ifindex: u32, flags: u8) -> Vec<u8> {
        // struct ndmsg: family, pad1, pad2(u16), ifindex(i32), state(u16), flags, type
        let mut b = vec![libc::AF_INET as u8, 0, 0, 0];
        b.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.push(flags);
        b.push(0);
        b
    }

    /// The MAC of `addr` on `ifindex` from the neighbour table, if resolved.
    pub fn neighbour(&mut self, ifindex: u32, addr: Ipv4Addr) -> io::Result<Option<[u8; 6]>> {
        let mut body = Self::ndmsg(ifindex, 0);
        push_attr(&mut body, NDA_DST, &addr.octets());
        let answer = match self.request(RTM_GETNEIGH, 0, &body, RTM_NEWNEIGH) {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        if answer.len() < 12 {
            return Ok(None);
        }
        let state = u16::from_ne_bytes([answer[8], answer[9]]);
        if state & (NUD_INCOMPLETE | NUD_FAILED) != 0 {
            return Ok(None);
        }
        let mac = attrs(&answer[12..])
            .find(|(k, v)| *k == NDA_LLADDR && v.len() == 6)
            .map(|(_, v)| <[u8; 6]>::try_from(v).unwrap());
        Ok(mac)
    }

    /// Asks the kernel to resolve `addr` on `ifindex` (it sends the ARP request).
    pub fn solicit(&mut self, ifindex: u32, addr: Ipv4Addr) -> io::Result<()> {
        let mut body = Self::ndmsg(ifindex, NTF_USE);
        push_attr(&mut body, NDA_DST, &addr.octets());
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_ACK, &body, NLMSG_ERROR)
            .map(|_| ())
    }

    /// The route and the next hop's MAC for `dst`, soliciting the neighbour and waiting
    /// up to `timeout` when the kernel does not know it yet. This sleeps: a worker uses
    /// [`Netlink::start_resolving`] and waits on its own timers instead.
    pub fn resolve(&mut self, dst: Ipv4Addr, timeout: Duration) -> io::Result<(Route, [u8; 6])> {
        let (route, hop) = match self.start_resolving(dst)? {
            Resolution::Known(route, mac) => return Ok((route, mac)),
            Resolution::Asked { route, hop } => (route, hop),
        };
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_PAUSE;
        while Instant::now() < deadline {
            std::thread::sleep(pause);
            pause = next_pause(pause);
            if let Some(mac) = self.neighbour(route.ifindex, hop)? {
                return Ok((route, mac));
            }
        }
        Err(unanswered(hop))
    }

    /// The first step of resolving `dst`, without waiting: the route, and the next
    /// hop's MAC if the kernel knows it; otherwise the kernel is asked to resolve it
    /// and the caller polls [`Netlink::neighbour`] for the answer.
    pub fn start_resolving(&mut self, dst: Ipv4Addr) -> io::Result<Resolution> {
        let route = self.route(dst)?;
        let hop = route.next_hop(dst);
        if let Some(mac) = self.neighbour(route.ifindex, hop)? {
            return Ok(Resolution::Known(route, mac));
        }
        self.solicit(route.ifindex, hop)?;
        Ok(Resolution::Asked { route, hop })
    }
}

/// Where [`Netlink::start_resolving`] left a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The route and the next hop's MAC.
    Known(Route, [u8; 6]),
    /// The kernel is resolving `hop` (an ARP request is out).
    Asked {
        /// The route to the destination.
        route: Route,
        /// The address whose MAC is awaited.
        hop: Ipv4Addr,
    },
}

/// The first wait for an ARP answer; each next one doubles, up to [`LAST_PAUSE`].
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest wait between two looks at the neighbour table.
pub(crate) const LAST_PAUSE: Duration = Duration::from_millis(50);

/// The wait after `pause` between two looks at the neighbour table.
pub(crate) fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(LAST_PAUSE)
}

/// The error of a next hop that did not answer ARP in time.
pub(crate) fn unanswered(hop: Ipv4Addr) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{hop} did not answer ARP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_and_stop_at_garbage() {
        let mut b = Vec::new();
        push_attr(&mut b, RTA_OIF, &7u32.to_ne_bytes());
        push_attr(&mut b, RTA_GATEWAY, &[10, 0, 0, 1]);
        b.extend_from_slice(&[200, 0, 1, 0]); // claims 200 bytes: must stop, not overrun
        let got: Vec<_> = attrs(&b).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], (RTA_GATEWAY, &[10u8, 0, 0, 1][..]));
    }

    #[test]
    fn loopback_routes_through_lo() {
        // Works unprivileged: route lookups need no capability.
        let mut nl = Netlink::open().unwrap();
        let route = nl.route(Ipv4Addr::LOCALHOST).unwrap();
        assert_eq!(route.ifindex, 1, "{route:?}");
        assert_eq!(route.next_hop(Ipv4Addr::LOCALHOST), Ipv4Addr::LOCALHOST);
    }
}
