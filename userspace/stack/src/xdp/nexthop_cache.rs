//! A per-thread cache in front of rtnetlink, and next-hop resolution that never blocks
//! the worker: active opens to the same destination do not ask the kernel each time,
//! and one whose next hop must first answer ARP waits on the worker's timers, while
//! the packet loop goes on serving every other connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::nexthop::{self, Netlink, Resolution, Route};

/// How long a resolved next hop is trusted before the kernel is asked again.
const TTL: Duration = Duration::from_secs(30);
/// How long an unknown neighbour may take to answer ARP.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Resolver {
    netlink: Option<Netlink>,
    cache: HashMap<Ipv4Addr, (Route, [u8; 6], Instant)>,
}

impl Resolver {
    fn netlink(&mut self) -> io::Result<&mut Netlink> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::open()?);
        }
        Ok(self.netlink.as_mut().expect("opened above"))
    }
}

thread_local! {
    static RESOLVER: RefCell<Resolver> = RefCell::new(Resolver::default());
}

/// The route and next-hop MAC for `dst`. A next hop the kernel does not know yet is
/// solicited, then looked up again after waits of 1, 2, 4 ... 50 ms on the calling
/// task's timer (never a sleep of the thread) for up to a second.
pub(crate) async fn resolve(dst: Ipv4Addr) -> io::Result<(Route, [u8; 6])> {
    // Each step borrows the thread's resolver only between awaits: another task's
    // resolution may run while this one waits.
    let cached = RESOLVER.with(|r| {
        let r = r.borrow();
        r.cache
            .get(&dst)
            .filter(|(_, _, at)| at.elapsed() < TTL)
            .map(|&(route, mac, _)| (route, mac))
    });
    if let Some(known) = cached {
        return Ok(known);
    }
    let first = RESOLVER.with(|r| r.borrow_mut().netlink()?.start_resolving(dst))?;
    let (route, hop) = match first {
        Resolution::Known(route, mac) => {
            remember(dst, route, mac);
            return Ok((route, mac));
        }
        Resolution::Asked { route, hop } => (route, hop),
    };
    let deadline = tokio::time::Instant::now() + RESOLVE_TIMEOUT;
    let mut pause = nexthop::FIRST_PAUSE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        pause = nexthop::next_pause(pause);
        let mac = RESOLVER.with(|r| r.borrow_mut().netlink()?.neighbour(route.ifindex, hop))?;
        if let Some(mac) = mac {
            remember(dst, route, mac);
            return Ok((route, mac));
        }
    }
    Err(nexthop::unanswered(hop))
}

fn remember(dst: Ipv4Addr, route: Route, mac: [u8; 6]) {
    RESOLVER.with(|r| {
        r.borrow_mut()
            .cache
            .insert(dst, (route, mac, Instant::now()))
    });
}
