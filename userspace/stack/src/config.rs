//! How the stack is configured.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::xdp::ports::PortRange;

/// Where the stack's TCP runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// sluice's own TCP over AF_XDP sockets, one worker per queue of the interface.
    Xdp,
    /// Ordinary kernel sockets: the fallback and the benchmarks' baseline.
    Kernel,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "xdp" => Ok(Backend::Xdp),
            "kernel" => Ok(Backend::Kernel),
            other => Err(format!("unknown backend {other:?} (xdp or kernel)")),
        }
    }
}

/// The stack's configuration.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Which backend runs the TCP.
    pub backend: Backend,
    /// The interface whose queues the AF_XDP backend serves.
    pub iface: Option<String>,
    /// How the steering program attaches (AF_XDP backend).
    pub xdp_mode: xsk::AttachMode,
    /// Zero-copy or copy mode for the AF_XDP sockets.
    pub xdp_bind_mode: xsk::BindMode,
    /// How long an idle AF_XDP worker keeps polling before it sleeps in poll(2).
    pub busy_poll: Duration,
    /// AF_XDP preferred busy polling: each worker runs its queue's NAPI from its own
    /// loop (SO_PREFER_BUSY_POLL) for up to this many microseconds per call, instead of
    /// in a softirq or NAPI thread that the worker would context-switch with. 0 leaves
    /// it off. Needs the interface's napi_defer_hard_irqs and gro_flush_timeout set
    /// (deploy/nic-setup.sh does).
    pub napi_busy_poll_us: u32,
    /// Verify IPv4 and TCP checksums of received frames (AF_XDP backend). Leave on
    /// unless the NIC already drops bad frames.
    pub verify_checksums: bool,
    /// Half-open connections a worker holds at most; past that, SYNs are answered with
    /// SYN cookies and no state (4096 by default, Linux's `somaxconn`). A larger backlog
    /// only holds more abandoned handshakes under a flood, each with its state and its
    /// SYN-ACK retransmissions (under kxdpgun's open loop at 80 k/s, 65536 answered
    /// about 6 % fewer: within the noise of 4 runs).
    pub max_half_open: usize,
    /// Local ports of active opens (AF_XDP backend), reserved from the kernel.
    pub client_ports: PortRange,
    /// TCP settings of the AF_XDP backend. Their `keepalive` and `connect_timeout` are
    /// set per connection, from the listener or the `connect` call and from
    /// [`StackConfig::connect_timeout`].
    pub tcp: tcp::tcb::Config,
    /// Addresses to serve; empty means every local address (kernel backend only).
    pub addrs: Vec<Ipv4Addr>,
    /// Cores to pin workers to, in worker order; empty means no pinning.
    pub cores: Vec<usize>,
    /// Worker count for the kernel backend (default: one per listed core, or one).
    pub workers: Option<usize>,
    /// How long `connect` waits for the handshake before `Err(Timeout)`.
    pub connect_timeout: Duration,
    /// Listen backlog of the kernel backend's sockets.
    pub listen_backlog: i32,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            backend: Backend::Kernel,
            iface: None,
            xdp_mode: xsk::AttachMode::Auto,
            xdp_bind_mode: xsk::BindMode::Auto,
            busy_poll: Duration::from_micros(200),
            napi_busy_poll_us: 0,
            verify_checksums: true,
            max_half_open: 4096,
            client_ports: PortRange::default(),
            tcp: tcp::tcb::Config::default(),
            addrs: Vec::new(),
            cores: Vec::new(),
            workers: None,
            connect_timeout: Duration::from_secs(10),
            listen_backlog: 4096,
        }
    }
}
