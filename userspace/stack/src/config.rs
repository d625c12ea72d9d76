//! How the stack is configured: what every backend shares, and each backend's own
//! settings in its own variant, so that "the AF_XDP backend needs an interface" is a
//! type, not a check at start-up.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::xdp::ports::PortRange;

/// Which backend runs the TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// sluice's own TCP over AF_XDP sockets, one worker per queue of the interface.
    Xdp,
    /// Ordinary kernel sockets: the fallback and the benchmarks' baseline.
    Kernel,
    /// sluice's own TCP, as on AF_XDP, over in-memory devices that the caller drives
    /// (benchmarks and tests; see [`crate::MemoryLink`]).
    Memory,
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
///
/// ```
/// use stack::{StackConfig, XdpConfig};
/// let mut config = StackConfig::xdp(XdpConfig::new("eth0"));
/// config.addrs = vec!["192.0.2.53".parse().unwrap()];
/// if let Some(x) = config.xdp_mut() {
///     x.max_half_open = 1024;
/// }
/// assert_eq!(config.backend.kind(), stack::Backend::Xdp);
/// ```
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Which backend runs the TCP, with its own settings.
    pub backend: BackendConfig,
    /// Addresses to serve; empty means every local address (kernel backend only: the
    /// AF_XDP backend needs at least one).
    pub addrs: Vec<Ipv4Addr>,
    /// Cores to pin workers to, in worker order; empty means no pinning.
    pub cores: Vec<usize>,
    /// How long `connect` waits for the handshake before `Err(Timeout)`.
    pub connect_timeout: Duration,
}

impl StackConfig {
    /// The kernel backend with its defaults.
    pub fn kernel() -> StackConfig {
        StackConfig::with(BackendConfig::Kernel(KernelConfig::default()))
    }

    /// The AF_XDP backend with `xdp`'s settings.
    pub fn xdp(xdp: XdpConfig) -> StackConfig {
        StackConfig::with(BackendConfig::Xdp(xdp))
    }

    /// The in-memory backend with `memory`'s settings.
    pub fn memory(memory: MemoryConfig) -> StackConfig {
        StackConfig::with(BackendConfig::Memory(memory))
    }

    fn with(backend: BackendConfig) -> StackConfig {
        StackConfig {
            backend,
            addrs: Vec::new(),
            cores: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The AF_XDP backend's settings, when that is the backend.
    pub fn xdp_mut(&mut self) -> Option<&mut XdpConfig> {
        match &mut self.backend {
            BackendConfig::Xdp(x) => Some(x),
            BackendConfig::Kernel(_) | BackendConfig::Memory(_) => None,
        }
    }

    /// The kernel backend's settings, when that is the backend.
    pub fn kernel_mut(&mut self) -> Option<&mut KernelConfig> {
        match &mut self.backend {
            BackendConfig::Kernel(k) => Some(k),
            BackendConfig::Xdp(_) | BackendConfig::Memory(_) => None,
        }
    }
}

impl Default for StackConfig {
    /// The kernel backend: it runs anywhere.
    fn default() -> Self {
        StackConfig::kernel()
    }
}

/// A backend and its own settings.
// Built once at start-up: a box would only make it harder to write.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum BackendConfig {
    /// Ordinary kernel sockets.
    Kernel(KernelConfig),
    /// sluice's own TCP over AF_XDP.
    Xdp(XdpConfig),
    /// sluice's own TCP over in-memory devices.
    Memory(MemoryConfig),
}

impl BackendConfig {
    /// Which backend this is.
    pub fn kind(&self) -> Backend {
        match self {
            BackendConfig::Kernel(_) => Backend::Kernel,
            BackendConfig::Xdp(_) => Backend::Xdp,
            BackendConfig::Memory(_) => Backend::Memory,
        }
    }
}

/// The in-memory backend's settings: the AF_XDP worker's own (a worker per device),
/// without an interface. The caller takes each worker's [`crate::MemoryLink`] from
/// [`crate::Stack::take_memory_links`] and plays the network on it.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// Workers, one device each.
    pub queues: usize,
    /// The stack's MAC address, as frames to it carry.
    pub mac: [u8; 6],
    /// Each device's frames and rings, and whether it loses frames as a NIC does.
    pub device: crate::MemoryDeviceConfig,
    /// How new connections are admitted: a lossy device applies the budget each worker
    /// sets, as the steering program does (default off: a cost measurement wants
    /// every SYN).
    pub admission: crate::Admission,
    /// How long an idle worker keeps polling before it sleeps.
    pub busy_poll: Duration,
    /// Verify IPv4 and TCP checksums of received frames.
    pub verify_checksums: bool,
    /// Half-open connections a worker holds at most (then SYN cookies).
    pub max_half_open: usize,
    /// Local ports of active opens.
    pub client_ports: PortRange,
    /// TCP settings, as [`XdpConfig::tcp`].
    pub tcp: tcp::tcb::Config,
}

impl Default for MemoryConfig {
    /// One worker, with the AF_XDP backend's defaults.
    fn default() -> Self {
        let x = XdpConfig::new("");
        MemoryConfig {
            queues: 1,
            mac: [0x02, 0, 0, 0, 0, 0x01],
            device: crate::MemoryDeviceConfig::default(),
            admission: crate::Admission::Off,
            busy_poll: x.busy_poll,
            verify_checksums: x.verify_checksums,
            max_half_open: x.max_half_open,
            client_ports: x.client_ports,
            tcp: x.tcp,
        }
    }
}

/// The kernel backend's settings.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// How many workers (default: one per listed core, or one).
    pub workers: Option<usize>,
    /// Listen backlog of each worker's sockets.
    pub listen_backlog: i32,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            workers: None,
            listen_backlog: 4096,
        }
    }
}

/// The AF_XDP backend's settings.
#[derive(Clone, Debug)]
pub struct XdpConfig {
    /// The interface whose queues the workers serve, one worker per queue.
    pub iface: String,
    /// How the steering program attaches.
    pub attach_mode: xsk::AttachMode,
    /// Zero-copy or copy mode for the AF_XDP sockets.
    pub bind_mode: xsk::BindMode,
    /// How long an idle worker keeps polling before it sleeps in poll(2).
    pub busy_poll: Duration,
    /// AF_XDP preferred busy polling: each worker runs its queue's NAPI from its own
    /// loop (SO_PREFER_BUSY_POLL) for up to this many microseconds per call, instead of
    /// in a softirq or NAPI thread that the worker would context-switch with. 0 leaves
    /// it off. Needs the interface's napi_defer_hard_irqs and gro_flush_timeout set
    /// (deploy/nic-setup.sh does).
    pub napi_busy_poll_us: u32,
    /// Verify IPv4 and TCP checksums of received frames. Leave on unless the NIC
    /// already drops bad frames. On veth, a TCP checksum holding only the pseudo-header
    /// sum (a local sender's CHECKSUM_PARTIAL frame) passes too (docs/design.md,
    /// "Decisions").
    pub verify_checksums: bool,
    /// Half-open connections a worker holds at most; past that, SYNs are answered with
    /// SYN cookies and no state (4096 by default, Linux's `somaxconn`). A larger backlog
    /// only holds more abandoned handshakes under a flood, each with its state and its
    /// SYN-ACK retransmissions (under kxdpgun's open loop at 80 k/s, 65536 answered
    /// about 6 % fewer: within the noise of 4 runs).
    pub max_half_open: usize,
    /// Local ports of active opens, reserved from the kernel.
    pub client_ports: PortRange,
    /// How the steering program admits new connections on each queue (adaptive by
    /// default: see [`crate::Admission`]).
    pub admission: crate::Admission,
    /// TCP settings. Their `keepalive` and `connect_timeout` are set per connection,
    /// from the listener or the `connect` call and from
    /// [`StackConfig::connect_timeout`].
    pub tcp: tcp::tcb::Config,
}

impl XdpConfig {
    /// The defaults, on `iface`.
    pub fn new(iface: impl Into<String>) -> XdpConfig {
        XdpConfig {
            iface: iface.into(),
            attach_mode: xsk::AttachMode::Auto,
            bind_mode: xsk::BindMode::Auto,
            busy_poll: Duration::from_micros(200),
            napi_busy_poll_us: 0,
            verify_checksums: true,
            max_half_open: 4096,
            client_ports: PortRange::default(),
            admission: crate::Admission::default(),
            tcp: tcp::tcb::Config::default(),
        }
    }
}
