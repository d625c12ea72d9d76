//! Next-hop resolution against a real neighbour: the kernel is asked to ARP for it.

use std::time::Duration;

use netns::{Topology, TopologyConfig};
use stack::nexthop::Netlink;

#[test]
fn resolves_an_unknown_neighbour_by_asking_the_kernel() {
    if !netns::have_privileges() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root under CI=true"
        );
        eprintln!("skipping: needs root");
        return;
    }
    let topo = Topology::create(&TopologyConfig::default()).unwrap();
    let (peer, peer_mac) = (topo.peer_ip, topo.peer_mac);
    let (route, mac) = topo
        .run_in(&topo.server_ns.clone(), move || {
            let mut nl = Netlink::open().unwrap();
            let before = nl.route(peer).unwrap();
            assert_eq!(
                nl.neighbour(before.ifindex, peer).unwrap(),
                None,
                "a fresh namespace knows no neighbour"
            );
            nl.resolve(peer, Duration::from_secs(3)).unwrap()
        })
        .unwrap();
    assert_eq!(mac, peer_mac);
    assert_eq!(route.gateway, None);
    assert_eq!(route.source, Some(topo.server_ip));
}
