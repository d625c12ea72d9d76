//! A per-thread cache in front of rtnetlink: active opens to the same destination do
//! not ask the kernel each time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::nexthop::{Netlink, Route};

/// How long a resolved next hop is trusted before the kernel is asked again.
const TTL: Duration = Duration::from_secs(30);
/// How long an unknown neighbour may take to answer ARP.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Resolver {
    netlink: Option<Netlink>,
    cache: HashMap<Ipv4Addr, (Route, [u8; 6], Instant)>,
}

thread_local! {
    static RESOLVER: RefCell<Resolver> = RefCell::new(Resolver { netlink: None, cache: HashMap::new() });
}

/// The calling thread's resolver.
pub(crate) struct Current;

impl Resolver {
    pub(crate) fn current() -> Current {
        Current
    }
}

impl Current {
    /// The route and next-hop MAC for `dst`.
    pub(crate) fn resolve(&mut self, dst: Ipv4Addr) -> io::Result<(Route, [u8; 6])> {
        RESOLVER.with(|r| {
            let mut r = r.borrow_mut();
            if let Some((route, mac, at)) = r.cache.get(&dst) {
                if at.elapsed() < TTL {
                    return Ok((*route, *mac));
                }
            }
            if r.netlink.is_none() {
                r.netlink = Some(Netlink::open()?);
            }
            let (route, mac) = r
                .netlink
                .as_mut()
                .expect("opened above")
                .resolve(dst, RESOLVE_TIMEOUT)?;
            r.cache.insert(dst, (route, mac, Instant::now()));
            Ok((route, mac))
        })
    }
}
