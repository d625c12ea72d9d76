//! `sluice demo`: what sluice is for, in one command. The DNS demo (the default) serves
//! an example zone over AF_XDP on a veth pair, shows answers fetched by real clients,
//! then loads it and the kernel-socket servers side by side (`dns`); `--echo` shows the
//! TCP stack alone with an echo service (`echo`).

use std::path::PathBuf;

use clap::Args;
use xsk::AttachMode;

mod dns;
mod echo;

/// Options of `sluice demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The TCP stack alone instead: an echo service on AF_XDP loaded by many kernel
    /// connections, an active open to a kernel server, ping and kernel TCP beside it.
    #[arg(long)]
    echo: bool,
    /// Queues of the veth pair (one AF_XDP worker per queue; the DNS demo pins them all
    /// to core 0, the load's being core 1).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Echo demo: XDP attach mode, auto, driver or skb (the DNS demo's `sluice serve`
    /// chooses its own).
    #[arg(long, default_value = "auto")]
    mode: AttachMode,
    /// DNS demo: seconds each load runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// DNS demo: where the example zone, the servers' logs, each load's figures (JSON)
    /// and the latency plot go: a new or empty directory, or a previous demo's output
    /// (which is emptied first).
    #[arg(long, default_value = "/tmp/sluice-demo")]
    out: PathBuf,
    /// Echo demo: kernel TCP connections the peer opens to the echo port at once.
    #[arg(long, default_value_t = 200)]
    connections: usize,
    /// Echo demo: bytes each of them sends and expects back.
    #[arg(long, default_value_t = 64 * 1024)]
    bytes: usize,
    /// Echo demo: the echo port.
    #[arg(long, default_value_t = 7)]
    port: u16,
}

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The demo's two-namespace veth pair with `queues` queues, said on the terminal.
fn topology(queues: u32) -> Result<netns::Topology, DemoError> {
    let topo = netns::Topology::create(&netns::TopologyConfig {
        purpose: "demo",
        queues,
        ..Default::default()
    })?;
    println!(
        "topology: netns {} [{} {}] <== veth, {} queue(s) ==> netns {} [{} {}]",
        topo.server_ns,
        topo.server_if,
        topo.server_ip,
        topo.queues,
        topo.peer_ns,
        topo.peer_if,
        topo.peer_ip
    );
    Ok(topo)
}

/// `sluice demo`.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    if !netns::have_privileges() {
        return Err(
            "the demo needs root: it creates network namespaces and attaches XDP programs".into(),
        );
    }
    if args.echo {
        echo::run(args)
    } else {
        dns::run(args)
    }
}
