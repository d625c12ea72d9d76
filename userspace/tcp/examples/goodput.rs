//! Goodput against loss rate: two connections of this crate over the simulated link of
//! the tests (10 ms RTT, 200 Mbit/s bottleneck with a 512 KiB queue), both directions
//! at once, in virtual time. Every byte is checked on arrival.
//!
//! `cargo run --release -p sluice-tcp --example goodput [MEGABYTES]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use support::endpoint::TcbEndpoint;
use support::link::LinkConfig;
use support::sim::{self, Scenario};
use tcp::tcb::Config;
use tcp::Instant;

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 9000);

fn main() {
    let mb: u64 = match std::env::args().nth(1) {
        None => 10,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: goodput [MEGABYTES each way, default 10]");
                std::process::exit(2);
            }
        },
    };
    let bytes = mb * 1_000_000;
    let config = Config {
        send_buffer: 512 * 1024,
        recv_buffer: 512 * 1024,
        ..Config::default()
    };
    println!("{mb} MB each way, both directions at once, 10 ms RTT, 200 Mbit/s bottleneck");
    println!(
        "{:>6} {:>14} {:>14} {:>10} {:>9} {:>9}",
        "loss", "A->B Mbit/s", "B->A Mbit/s", "time", "rexmits", "timeouts"
    );
    for loss in [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.10, 0.20] {
        let link = LinkConfig {
            loss,
            delay: Duration::from_millis(5),
            bandwidth: Some(25_000_000),
            queue_limit: 512 * 1024,
            ..LinkConfig::default()
        };
        let start = Instant::from_secs(1);
        let mut a = TcbEndpoint::connect(config.clone(), A, B, 0x1000_0000, start);
        let mut b = TcbEndpoint::listen(config.clone(), B, A, 0x9000_0000);
        let sc = Scenario {
            a_to_b: bytes,
            b_to_a: bytes,
            link_ab: link.clone(),
            link_ba: link,
            seed: 42,
            deadline: Duration::from_secs(48 * 3600),
        };
        let out = sim::run(&sc, &mut a, &mut b, A, B, start);
        let (sa, sb) = (a.tcb().unwrap().stats(), b.tcb().unwrap().stats());
        println!(
            "{:>5.1}% {:>14.2} {:>14.2} {:>9.1}s {:>9} {:>9}",
            loss * 100.0,
            out.goodput_bps(bytes, 0) / 1e6,
            out.goodput_bps(bytes, 1) / 1e6,
            out.elapsed.as_secs_f64(),
            sa.retransmits + sb.retransmits,
            sa.timeouts + sb.timeouts
        );
    }
}
