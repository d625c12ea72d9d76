//! How the stack is configured.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Where the stack's TCP runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Ordinary kernel sockets: the fallback and the benchmarks' baseline.
    Kernel,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kernel" => Ok(Backend::Kernel),
            other => Err(format!("unknown backend {other:?} (kernel)")),
        }
    }
}

/// The stack's configuration.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Which backend runs the TCP.
    pub backend: Backend,
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
            addrs: Vec::new(),
            cores: Vec::new(),
            workers: None,
            connect_timeout: Duration::from_secs(10),
            listen_backlog: 4096,
        }
    }
}
