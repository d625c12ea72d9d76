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

pub(crate) mod conn;
pub(crate) mod flow;
mod frames;
mod index;
mod nexthop_cache;
pub mod ports;
pub(crate) mod table;
pub(crate) mod worker;

use std::net::Ipv4Addr;
use std::sync::Arc;

use xsk::XdpProgram;

use crate::listener::Listeners;
use crate::worker::StartError;
use crate::StackConfig;

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
    pub index: usize,
    pub workers: usize,
    pub queue: u32,
    pub iface: String,
    pub mac: [u8; 6],
    pub addrs: Vec<Ipv4Addr>,
    pub listeners: Listeners,
    pub config: Arc<StackConfig>,
    pub tcp: conn::TcbFactory,
    pub ports: ports::PortRange,
    /// The other workers, to hand them frames of their connections.
    pub peers: Arc<[worker::Peer]>,
    /// Frames the other workers hand this one.
    pub inbox: std::sync::mpsc::Receiver<Vec<u8>>,
    pub ready: std::sync::mpsc::Sender<Result<Option<(u32, std::os::fd::RawFd)>, StartError>>,
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

/// Attaches and configures the steering program; returns it with the worker setups.
pub(crate) fn prepare(
    config: &Arc<StackConfig>,
    listeners: &Listeners,
) -> Result<(XdpShared, Vec<XdpWorkerSetupTemplate>), StartError> {
    let iface = config.iface.clone().ok_or_else(|| {
        StartError::Config("the AF_XDP backend needs an interface (--iface)".into())
    })?;
    if config.addrs.is_empty() {
        return Err(StartError::Config(
            "the AF_XDP backend needs at least one address (--addr)".into(),
        ));
    }
    let queues = xsk::iface::rx_queue_count(&iface).map_err(StartError::Xdp)?;
    let mac = mac_of(&iface)?;
    let mut program = XdpProgram::attach(&iface, config.xdp_mode).map_err(StartError::Xdp)?;
    for addr in &config.addrs {
        program.own_address(*addr).map_err(StartError::Xdp)?;
        for port in listeners.ports() {
            program.add_service(*addr, port).map_err(StartError::Xdp)?;
        }
    }
    let range = config.client_ports;
    program
        .set_client_ports(range.first, range.last)
        .map_err(StartError::Xdp)?;
    let reserved_before =
        ports::reserve(range).map_err(|e| StartError::Io("reserving the client port range", e))?;
    let shared = XdpShared {
        program,
        reserved_before: Some(reserved_before),
    };
    let workers = queues as usize;
    let templates = (0..workers)
        .map(|i| XdpWorkerSetupTemplate {
            index: i,
            workers,
            queue: i as u32,
            iface: iface.clone(),
            mac,
        })
        .collect();
    Ok((shared, templates))
}

/// The per-worker part of the setup that does not depend on the listeners.
pub(crate) struct XdpWorkerSetupTemplate {
    pub index: usize,
    pub workers: usize,
    pub queue: u32,
    pub iface: String,
    pub mac: [u8; 6],
}
