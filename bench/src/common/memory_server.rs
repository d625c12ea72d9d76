//! The server of the in-memory benchmarks (conn-cost, overload --device memory): the
//! real thing (the AF_XDP worker's loop, sluice's TCP, the DNS service the daemon
//! serves) on one pinned core, on an in-memory device whose link the caller drives.

use std::path::Path;
use std::time::Duration;

use sluice::dns_service::{DnsService, Limits, ZoneSource};
use stack::{
    Admission, Listeners, MemoryConfig, MemoryDeviceConfig, MemoryLink, Stack, StackConfig,
};

/// The server's address and DNS port, as the templated clients address it.
pub use crate::client::{SERVER_IP, SERVER_PORT};

/// A running server and the far side of its worker's device.
pub struct MemoryServer {
    pub stack: Stack,
    pub link: MemoryLink,
    /// The server's MAC, as frames to it carry.
    pub mac: [u8; 6],
}

/// How the server is set up.
pub struct ServerSetup<'a> {
    pub zone: &'a Path,
    pub core: usize,
    pub device: MemoryDeviceConfig,
    pub admission: Admission,
    pub limits: Limits,
    /// How long the idle worker polls before it sleeps.
    pub busy_poll: Duration,
}

impl MemoryServer {
    /// Loads the zone and starts one worker on `setup.core`, serving DNS on port 53.
    pub fn start(setup: ServerSetup) -> Result<MemoryServer, String> {
        let zone = ZoneSource {
            file: setup.zone.to_path_buf(),
            name: None,
        };
        let svc = DnsService::new(vec![zone], dns::ResponderConfig::default(), setup.limits, 1)
            .map_err(|e| format!("loading {}: {}", setup.zone.display(), e.join("; ")))?;
        let mut listeners = Listeners::new();
        listeners.listen(SERVER_PORT, svc.listener());
        let memory = MemoryConfig {
            busy_poll: setup.busy_poll,
            device: setup.device,
            admission: setup.admission,
            ..MemoryConfig::default()
        };
        let mac = memory.mac;
        let mut config = StackConfig::memory(memory);
        config.addrs = vec![SERVER_IP];
        config.cores = vec![setup.core];
        let mut stack = Stack::start(config, listeners).map_err(|e| e.to_string())?;
        let link = stack
            .take_memory_links()
            .pop()
            .ok_or("the in-memory backend gave no link")?;
        Ok(MemoryServer { stack, link, mac })
    }
}

/// Pins the calling thread to `core` until dropped, then gives it back the cores it
/// had (the stack checks the cores it is given against the caller's own).
pub struct Pinned(libc::cpu_set_t);

impl Pinned {
    pub fn to(core: usize) -> Pinned {
        // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
        let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is this thread; the size is the set's.
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut before) };
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
        Pinned(before)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: restores the set read in `to` for this thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
    }
}
