//! The AF_XDP backend: sluice's own TCP (the `tcp` crate) over AF_XDP sockets, one
//! worker per queue of the interface.
//!
//! Start-up (on the caller's thread, in the interface's namespace): attach the steering
//! program, steer each (address, listening port) and the ephemeral range, reserve that
//! range from the kernel. Each worker then binds its queue's socket and reports its
//! descriptor, which the start-up thread registers in the program's socket map.
//!
//! A passive open belongs to the worker whose queue its SYN arrived on. An active open
//! belongs to the worker that `FourTuple::owner` names: a worker picks local ports so
//! that the owner is itself. Which queue the replies arrive on is the peer's choice
//! (its RSS or transmit hash), so a worker that receives a segment for a port of the
//! client range that another worker owns hands the frame to that worker.

pub(crate) mod admission;
mod backlog;
pub(crate) mod conn;
mod connect;
mod demux;
mod device;
pub(crate) mod driver;
pub(crate) mod flow;
mod frames;
mod handover;
mod index;
pub(crate) mod memory;
pub mod nexthop;
mod nexthop_cache;
pub mod ports;
mod record;
mod sessions;
pub(crate) mod shard;
pub(crate) mod table;
mod timer;

use handover::peers;

use std::sync::Arc;

use xsk::XdpProgram;

use crate::config::{MemoryConfig, StackConfig, XdpConfig};
use crate::error::StartError;
use crate::listener::Listeners;
use crate::workers::Workers;

/// What the start-up thread keeps while the stack runs: the program (detached when
/// dropped) and the port reservation to undo.
pub(crate) struct XdpShared {
    pub program: XdpProgram,
    reserved_before: Option<String>,
}

impl Drop for XdpShared {
    fn drop(&mut self) {
        if let Some(before) = &self.reserved_before {
            ports::unreserve(before);
        }
    }
}

/// Everything one AF_XDP worker starts from.
pub(crate) struct XdpWorkerSetup {
    /// The queue its socket binds to, on `iface`.
    pub queue: u32,
    pub iface: String,
    pub shard: shard::ShardSetup,
    pub xdp: Arc<XdpConfig>,
    /// How long an active open waits for its handshake.
    pub connect_timeout: std::time::Duration,
    /// Its handle on the steering program's admission budgets.
    pub admission: xsk::AdmissionControl,
    /// Its queue's entry in the steering program's ring levels.
    pub ring_level: xsk::RingLevel,
}

/// The interface's MAC address, from rtnetlink's view of the link (via sysfs-free ioctl).
fn mac_of(iface: &str) -> Result<[u8; 6], StartError> {
    #[repr(C)]
    struct IfreqHw {
        name: [libc::c_char; libc::IFNAMSIZ],
        family: libc::sa_family_t,
        data: [u8; 14],
        _pad: [u8; 8],
    }
    // SAFETY: plain socket(2), closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(StartError::Io(
            "socket for SIOCGIFHWADDR",
            std::io::Error::last_os_error(),
        ));
    }
    let mut req = IfreqHw {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 14],
        _pad: [0; 8],
    };
    for (d, s) in req
        .name
        .iter_mut()
        .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: req is a properly sized ifreq for SIOCGIFHWADDR.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(StartError::Io("reading the interface's MAC address", err));
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req.data[..6]);
    Ok(mac)
}

/// Starts the AF_XDP backend: attaches and configures the steering program, then a
/// worker per queue of the interface, each entered in the program's socket map once
/// its socket is bound. Returns what must live as long as the workers.
pub(crate) fn start(
    config: &StackConfig,
    xdp: &XdpConfig,
    listeners: &Listeners,
    workers: &mut Workers,
) -> Result<XdpShared, StartError> {
    let (mut shared, link) = prepare(config, xdp, listeners)?;
    match start_workers(config, xdp, listeners, workers, &mut shared, link) {
        Ok(()) => Ok(shared),
        Err(e) => {
            // The program stays attached (and the ports reserved) until the workers
            // that did start have stopped.
            workers.shutdown(std::time::Duration::ZERO);
            Err(e)
        }
    }
}

/// How the workers check received checksums on `xdp.iface`. On veth, a frame from the
/// local kernel's TCP on the other end comes CHECKSUM_PARTIAL: Linux leaves the TCP
/// checksum to the device (TX checksum offload, on by default), and veth, which never
/// puts the frame on a wire, never completes it; the field holds only the pseudo-header
/// sum. Those pass (`ChecksumMode::VerifyOrPartial`) there, so that a veth pair (a
/// container's) works as it comes, with no `ethtool -K tx off` on the peer. A frame
/// from a NIC crossed a wire, where a partial sum is as wrong as any other, so every
/// other driver gets full verification.
fn checksum_mode(xdp: &XdpConfig) -> wire::ChecksumMode {
    if !xdp.verify_checksums {
        return wire::ChecksumMode::Ignore;
    }
    match xsk::iface::driver(&xdp.iface) {
        Ok(d) if d == "veth" => wire::ChecksumMode::VerifyOrPartial,
        _ => wire::ChecksumMode::Verify,
    }
}

/// Starts a worker per queue (worker i on queue i) and enters each socket in the
/// program's map.
fn start_workers(
    config: &StackConfig,
    xdp: &XdpConfig,
    listeners: &Listeners,
    workers: &mut Workers,
    shared: &mut XdpShared,
    link: Link,
) -> Result<(), StartError> {
    let settings = Arc::new(xdp.clone());
    let checksums = checksum_mode(xdp);
    let count = link.queues as usize;
    let (peers, inboxes) = peers(count);
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let setup = XdpWorkerSetup {
            queue: index as u32,
            iface: xdp.iface.clone(),
            shard: shard::ShardSetup {
                index,
                workers: count,
                mac: link.mac,
                addrs: config.addrs.clone(),
                listeners: listeners.clone(),
                tcp: conn::TcbFactory::new(&xdp.tcp),
                ports: xdp.client_ports,
                checksums,
                max_half_open: xdp.max_half_open,
                peers: peers.clone(),
                inbox,
            },
            xdp: settings.clone(),
            connect_timeout: config.connect_timeout,
            admission: shared
                .program
                .admission_control()
                .map_err(StartError::Xdp)?,
            ring_level: shared
                .program
                .ring_level(index as u32)
                .map_err(StartError::Xdp)?,
        };
        let ready = workers.launch(index, &config.cores, move |commands, ready| {
            driver::run_worker(setup, ready, commands)
        })?;
        if let Some((queue, fd)) = ready? {
            shared
                .program
                .register_fd(queue, fd)
                .map_err(StartError::Xdp)?;
        }
    }
    Ok(())
}

/// Starts the in-memory backend: a worker per device, each running the AF_XDP
/// worker's loop. Returns each worker's link, in worker order.
pub(crate) fn start_memory(
    config: &StackConfig,
    memory: &MemoryConfig,
    listeners: &Listeners,
    workers: &mut Workers,
) -> Result<Vec<memory::MemoryLink>, StartError> {
    if config.addrs.is_empty() {
        return Err(StartError::Config(
            "the in-memory backend needs at least one address".into(),
        ));
    }
    let count = memory.queues.max(1);
    let (peers, inboxes) = peers(count);
    let mut links = Vec::with_capacity(count);
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let (device, link) = memory::pair(memory.device)
            .map_err(|e| StartError::Io("creating the in-memory device's eventfd", e))?;
        let shard = shard::ShardSetup {
            index,
            workers: count,
            mac: memory.mac,
            addrs: config.addrs.clone(),
            listeners: listeners.clone(),
            tcp: conn::TcbFactory::new(&memory.tcp),
            ports: memory.client_ports,
            checksums: if memory.verify_checksums {
                wire::ChecksumMode::Verify
            } else {
                wire::ChecksumMode::Ignore
            },
            max_half_open: memory.max_half_open,
            peers: peers.clone(),
            inbox,
        };
        let busy_poll = memory.busy_poll;
        let connect_timeout = config.connect_timeout;
        device
            .steering()
            .set_ring_limit(admission::ring_limit(memory.device.ring, memory.admission));
        let admission =
            (memory.admission != admission::Admission::Off).then(|| driver::WorkerAdmission {
                queue: index as u32,
                control: driver::BudgetSink::Memory(device.steering()),
                mode: memory.admission,
            });
        let ready = workers.launch(index, &config.cores, move |commands, ready| {
            driver::run_on(
                device,
                shard,
                busy_poll,
                connect_timeout,
                ready,
                None,
                admission,
                commands,
            )
        })?;
        ready?;
        links.push(link);
    }
    Ok(links)
}

/// What start-up learnt of the interface.
struct Link {
    /// Its RX queues: a worker each.
    queues: u32,
    mac: [u8; 6],
}

/// Attaches and configures the steering program; returns it with the interface's
/// queue count and MAC.
fn prepare(
    config: &StackConfig,
    xdp: &XdpConfig,
    listeners: &Listeners,
) -> Result<(XdpShared, Link), StartError> {
    let iface = &xdp.iface;
    if config.addrs.is_empty() {
        return Err(StartError::Config(
            "the AF_XDP backend needs at least one address (--addr)".into(),
        ));
    }
    let queues = xsk::iface::rx_queue_count(iface).map_err(StartError::Xdp)?;
    let mac = mac_of(iface)?;
    let mut program = XdpProgram::attach(iface, xdp.attach_mode).map_err(StartError::Xdp)?;
    for addr in &config.addrs {
        program.own_address(*addr).map_err(StartError::Xdp)?;
        for port in listeners.ports() {
            program.add_service(*addr, port).map_err(StartError::Xdp)?;
        }
    }
    let range = xdp.client_ports;
    program
        .set_client_ports(range.first, range.last)
        .map_err(StartError::Xdp)?;
    let reserved_before =
        ports::reserve(range).map_err(|e| StartError::Io("reserving the client port range", e))?;
    let shared = XdpShared {
        program,
        reserved_before: Some(reserved_before),
    };
    Ok((shared, Link { queues, mac }))
}
