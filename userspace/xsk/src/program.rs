//! The XDP steering program (ebpf/sluice_xdp.c): loading, attaching, and the maps through
//! which userspace tells it what to steer.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

use crate::error::{errno_in_chain, Error, Result};
use crate::iface;

/// The object, rebuilt by build.rs or copied from the committed ebpf/sluice_xdp.o.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sluice_xdp.o"));

/// Where the program runs. Driver mode is the fast one; SKB (generic) mode works on any
/// interface at the cost of an skb allocation per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Driver mode if the driver supports it, SKB mode otherwise.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Driver,
    /// Generic (SKB) mode only.
    Skb,
}

impl AttachMode {
    fn name(self) -> &'static str {
        match self {
            AttachMode::Auto => "auto",
            AttachMode::Driver => "driver",
            AttachMode::Skb => "skb",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "driver" | "drv" | "native" => Ok(AttachMode::Driver),
            "skb" | "generic" => Ok(AttachMode::Skb),
            other => Err(format!("unknown XDP mode {other:?} (auto, driver or skb)")),
        }
    }
}

/// The program's per-CPU counters, summed over CPUs. Every packet the program sees is in
/// exactly one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteeringCounters {
    /// Steered into an AF_XDP socket.
    pub redirected: u64,
    /// Not ours: handed to the kernel.
    pub passed: u64,
    /// Did not parse (truncated or inconsistent headers): handed to the kernel, which drops it.
    pub malformed: u64,
    /// Ours, but no socket was bound on the receiving queue: handed to the kernel.
    pub no_socket: u64,
    /// A SYN to a service past its queue's admission budget: dropped.
    pub shed: u64,
    /// A SYN to a service while its queue's socket ring was filling past its limit
    /// (see [`RingLevel`]): dropped.
    pub shed_ring: u64,
}

/// Queues the program's per-queue maps hold: must match MAX_QUEUES in ebpf/sluice_xdp.c.
const MAX_QUEUES: u32 = 256;

// Must match `enum counter` in ebpf/sluice_xdp.c.
const COUNTER_REDIRECTED: u32 = 0;
const COUNTER_PASSED: u32 = 1;
const COUNTER_MALFORMED: u32 = 2;
const COUNTER_NO_SOCKET: u32 = 3;
const COUNTER_SHED: u32 = 4;
const COUNTER_SHED_RING: u32 = 5;

/// Must match `struct admission_budget` in ebpf/sluice_xdp.c.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct AdmissionBudget {
    interval_ns: u64,
    tolerance_ns: u64,
}

// SAFETY: two u64s, no padding, every bit pattern valid.
unsafe impl aya::Pod for AdmissionBudget {}

/// How many new connections a queue admits: the steering program lets SYNs to the
/// services through at `per_second` on average, with bursts of up to `burst` more,
/// and drops the rest before they are copied to the socket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynBudget {
    /// SYNs per second, on average (at least 1).
    pub per_second: f64,
    /// SYNs let through at once above the rate.
    pub burst: u32,
}

impl SynBudget {
    fn encode(budget: Option<SynBudget>) -> AdmissionBudget {
        let (interval_ns, tolerance_ns) = SynBudget::gcra(budget);
        AdmissionBudget {
            interval_ns,
            tolerance_ns,
        }
    }

    /// The budget as the steering program keeps it, a generic cell rate algorithm's
    /// emission interval and tolerance in nanoseconds: a SYN is admitted when the
    /// queue's theoretical arrival time is at most `tolerance` ahead of now, and moves
    /// it `interval` on. (0, 0) admits every SYN. For a model of the program (the
    /// in-memory device) to decide as it does.
    pub fn gcra(budget: Option<SynBudget>) -> (u64, u64) {
        match budget {
            None => (0, 0),
            Some(b) => {
                let interval = (1e9 / b.per_second.max(1.0)).max(1.0) as u64;
                (interval, interval.saturating_mul(u64::from(b.burst)))
            }
        }
    }

    /// The time the budget lets `burst` SYNs through in: for a display.
    pub fn burst_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.burst) / self.per_second.max(1.0))
    }
}

/// Writes the admission budgets of the steering program (see [`SynBudget`]) through a
/// descriptor of its own, so that each worker can hold one for its queue.
pub struct AdmissionControl {
    budgets: Array<MapData, AdmissionBudget>,
}

impl fmt::Debug for AdmissionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdmissionControl")
    }
}

impl AdmissionControl {
    /// Sets `queue`'s budget; None admits every SYN (the default).
    pub fn set(&mut self, queue: u32, budget: Option<SynBudget>) -> Result<()> {
        self.budgets
            .set(queue, SynBudget::encode(budget), 0)
            .map_err(|e| bpf_error("setting an admission budget", e))
    }
}

/// Must match `struct ring_level` in ebpf/sluice_xdp.c; `MAX_QUEUES` of them, one per
/// queue, in the map's memory.
#[repr(C)]
struct RingLevelSlot {
    steered: std::sync::atomic::AtomicU64,
    base: std::sync::atomic::AtomicU64,
    limit: std::sync::atomic::AtomicU64,
}

/// The `ring_levels` map, mapped into our memory: read and written without a system
/// call (the map is `BPF_F_MMAPABLE`).
struct RingLevelMap {
    ptr: *mut RingLevelSlot,
    len: usize,
}

// SAFETY: the mapping is shared memory of atomics; it lives until the last handle drops.
unsafe impl Send for RingLevelMap {}
unsafe impl Sync for RingLevelMap {}

impl Drop for RingLevelMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `RingLevelMap::new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

impl RingLevelMap {
    fn new(fd: &OwnedFd) -> Result<RingLevelMap> {
        let page = 4096;
        let len =
            (MAX_QUEUES as usize * std::mem::size_of::<RingLevelSlot>()).div_ceil(page) * page;
        // SAFETY: a shared mapping of the map's own memory, as the kernel offers it for
        // a BPF_F_MMAPABLE array; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::Bpf {
                op: "mapping the ring_levels map",
                detail: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(RingLevelMap {
            ptr: ptr.cast(),
            len,
        })
    }
}

/// One queue's entry in the steering program's `ring_levels`: the program counts the
/// frames it steers to the queue's socket, the worker says at each poll how many were
/// still in its ring, and the program drops SYNs while the difference (the ring's fill
/// as far as it can tell) is past the limit. A worker stalled or overloaded keeps its
/// ring's room for the connections it has, which then finish.
#[derive(Clone)]
pub struct RingLevel {
    map: std::sync::Arc<RingLevelMap>,
    queue: u32,
}

impl fmt::Debug for RingLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RingLevel(queue {})", self.queue)
    }
}

impl RingLevel {
    fn slot(&self) -> &RingLevelSlot {
        // SAFETY: `queue` < MAX_QUEUES (checked at creation), inside the mapping, which
        // lives as long as `map`.
        unsafe { &*self.map.ptr.add(self.queue as usize) }
    }

    /// Records that `left` frames were still in the ring when the worker last looked,
    /// then: called at each poll.
    #[inline]
    pub fn publish(&self, steered: u64, left: u64) {
        self.slot().base.store(
            steered.wrapping_sub(left),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Frames the program has steered to the queue's socket so far.
    #[inline]
    pub fn steered(&self) -> u64 {
        self.slot()
            .steered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the fill (frames) past which SYNs are dropped; 0 never drops them.
    pub fn set_limit(&self, frames: u64) {
        self.slot()
            .limit
            .store(frames, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Must match `struct service_key` in ebpf/sluice_xdp.c: network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ServiceKey {
    addr: [u8; 4],
    port: [u8; 2],
    pad: u16,
}

// SAFETY: plain old data with explicit padding, no invalid bit patterns.
unsafe impl aya::Pod for ServiceKey {}

/// Must match `struct port_range` in ebpf/sluice_xdp.c: host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PortRange {
    first: u16,
    last: u16,
}

// SAFETY: two u16s, no padding, every bit pattern valid.
unsafe impl aya::Pod for PortRange {}

impl ServiceKey {
    fn new(addr: Ipv4Addr, port: u16) -> Self {
        ServiceKey {
            addr: addr.octets(),
            port: port.to_be_bytes(),
            pad: 0,
        }
    }
}

/// The steering program attached to one interface.
///
/// It is attached through a BPF link owned by this process, so the kernel detaches it
/// when the last descriptor closes: on drop, on exit, on a fatal signal, even on SIGKILL.
pub struct XdpProgram {
    iface: String,
    mode: AttachMode,
    services: HashMap<MapData, ServiceKey, u32>,
    client_ports: Array<MapData, PortRange>,
    sockets: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    /// The admission map's descriptor, which each [`AdmissionControl`] duplicates.
    admission: OwnedFd,
    /// The `ring_levels` map, mapped.
    ring_levels: std::sync::Arc<RingLevelMap>,
    // Declared last: dropped last, after the maps, which keeps them valid while it lives.
    _ebpf: Ebpf,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .finish()
    }
}

fn bpf_error(op: &'static str, err: impl std::error::Error + 'static) -> Error {
    if matches!(errno_in_chain(&err), Some(libc::EPERM) | Some(libc::EACCES)) {
        return Error::PermissionDenied { op };
    }
    // The loader's Display often hides the kernel's words in its source chain.
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    Error::Bpf { op, detail }
}

impl XdpProgram {
    /// Loads the steering program and attaches it to `iface` in `mode`.
    ///
    /// Fails with a specific error when the interface is missing, the process lacks
    /// privileges, another XDP program is already attached, or the mode is unsupported.
    pub fn attach(iface: &str, mode: AttachMode) -> Result<XdpProgram> {
        let ifindex = iface::ifindex(iface)?;
        iface::check_privileges()?;
        raise_memlock_limit();

        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| bpf_error("loading ebpf/sluice_xdp.o", e))?;
        let program: &mut Xdp = ebpf
            .program_mut("sluice_steer")
            .ok_or_else(|| Error::Bpf {
                op: "finding the program",
                detail: "sluice_steer is missing from the object".into(),
            })?
            .try_into()
            .map_err(|e| bpf_error("loading the program", e))?;
        program
            .load()
            .map_err(|e| bpf_error("verifying the program", e))?;

        let attached = match mode {
            AttachMode::Driver => attach_in(program, iface, ifindex, AttachMode::Driver)?,
            AttachMode::Skb => attach_in(program, iface, ifindex, AttachMode::Skb)?,
            AttachMode::Auto => match attach_in(program, iface, ifindex, AttachMode::Driver) {
                Ok(m) => m,
                Err(Error::ModeUnsupported { .. }) => {
                    attach_in(program, iface, ifindex, AttachMode::Skb)?
                }
                Err(e) => return Err(e),
            },
        };

        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or_else(|| Error::Bpf {
                op: "finding a map",
                detail: format!(
                    "map {name} is missing from the object (it has {:?})",
                    ebpf.maps().map(|(n, _)| n.to_string()).collect::<Vec<_>>()
                ),
            })
        };
        let services = HashMap::try_from(take(&mut ebpf, "services")?)
            .map_err(|e| bpf_error("opening map services", e))?;
        let sockets = XskMap::try_from(take(&mut ebpf, "xsks")?)
            .map_err(|e| bpf_error("opening map xsks", e))?;
        let client_ports = Array::try_from(take(&mut ebpf, "client_ports")?)
            .map_err(|e| bpf_error("opening map client_ports", e))?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, "counters")?)
            .map_err(|e| bpf_error("opening map counters", e))?;
        // The two maps shared with the workers by descriptor: arrays, duplicated.
        let array_fd = |ebpf: &mut Ebpf, name: &'static str| match take(ebpf, name)? {
            Map::Array(data) => data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| bpf_error("duplicating a shared map's descriptor", e)),
            _ => Err(Error::Bpf {
                op: "opening a map",
                detail: format!("{name} is not an array"),
            }),
        };
        let admission = array_fd(&mut ebpf, "admission")?;
        let ring_levels =
            std::sync::Arc::new(RingLevelMap::new(&array_fd(&mut ebpf, "ring_levels")?)?);
        Ok(XdpProgram {
            ring_levels,
            iface: iface.to_string(),
            mode: attached,
            services,
            client_ports,
            sockets,
            counters,
            admission,
            _ebpf: ebpf,
        })
    }

    /// The interface it is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The mode it actually runs in (never `Auto`).
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Steers TCP packets for `addr:port` to the AF_XDP sockets from now on.
    pub fn add_service(&mut self, addr: Ipv4Addr, port: u16) -> Result<()> {
        self.services
            .insert(ServiceKey::new(addr, port), 1, 0)
            .map_err(|e| bpf_error("adding a service to the steering map", e))
    }

    /// Stops steering `addr:port`; its packets go to the kernel again.
    pub fn remove_service(&mut self, addr: Ipv4Addr, port: u16) -> Result<()> {
        self.services
            .remove(&ServiceKey::new(addr, port))
            .map_err(|e| bpf_error("removing a service from the steering map", e))
    }

    /// Makes `socket` the destination of steered packets arriving on its queue.
    pub fn register_socket(&mut self, socket: &crate::XskSocket) -> Result<()> {
        self.register_fd(socket.queue(), socket.as_raw_fd())
    }

    /// Like [`XdpProgram::register_socket`], for a socket owned by another thread: the
    /// descriptor must stay open while registered (the kernel drops the entry when the
    /// socket closes).
    pub fn register_fd(&mut self, queue: u32, fd: std::os::fd::RawFd) -> Result<()> {
        self.sockets
            .set(queue, fd, 0)
            .map_err(|e| bpf_error("registering an AF_XDP socket", e))
    }

    /// Steers TCP packets for local ports `first..=last` of every address that has
    /// [`XdpProgram::own_address`]: the stack's ephemeral range for active opens.
    pub fn set_client_ports(&mut self, first: u16, last: u16) -> Result<()> {
        self.client_ports
            .set(0, PortRange { first, last }, 0)
            .map_err(|e| bpf_error("setting the client port range", e))
    }

    /// Declares `addr` the stack's own, so that its client port range is steered.
    pub fn own_address(&mut self, addr: Ipv4Addr) -> Result<()> {
        self.add_service(addr, 0)
    }

    /// Removes the socket of `queue`; its steered packets then go to the kernel.
    pub fn unregister_queue(&mut self, queue: u32) -> Result<()> {
        self.sockets
            .unset(queue)
            .map_err(|e| bpf_error("unregistering an AF_XDP socket", e))
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<SteeringCounters> {
        let sum = |index: u32| -> Result<u64> {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(|e| bpf_error("reading the counters", e))?;
            Ok(values.iter().sum())
        };
        Ok(SteeringCounters {
            redirected: sum(COUNTER_REDIRECTED)?,
            passed: sum(COUNTER_PASSED)?,
            malformed: sum(COUNTER_MALFORMED)?,
            no_socket: sum(COUNTER_NO_SOCKET)?,
            shed: sum(COUNTER_SHED)?,
            shed_ring: sum(COUNTER_SHED_RING)?,
        })
    }

    /// `queue`'s entry in the program's ring levels (for its worker and its socket).
    pub fn ring_level(&self, queue: u32) -> Result<RingLevel> {
        if queue >= MAX_QUEUES {
            return Err(Error::Bpf {
                op: "opening a ring level",
                detail: format!("queue {queue} is past the program's {MAX_QUEUES}"),
            });
        }
        Ok(RingLevel {
            map: self.ring_levels.clone(),
            queue,
        })
    }

    /// A handle on the admission budgets with a descriptor of its own (for a worker).
    pub fn admission_control(&self) -> Result<AdmissionControl> {
        let fd = self
            .admission
            .try_clone()
            .map_err(|e| bpf_error("duplicating the admission map's descriptor", e))?;
        let data = MapData::from_fd(fd).map_err(|e| bpf_error("opening the admission map", e))?;
        let budgets = Array::try_from(Map::Array(data))
            .map_err(|e| bpf_error("opening the admission map", e))?;
        Ok(AdmissionControl { budgets })
    }
}

fn attach_in(program: &mut Xdp, iface: &str, ifindex: u32, mode: AttachMode) -> Result<AttachMode> {
    let xdp_mode = match mode {
        AttachMode::Skb => XdpMode::Skb,
        _ => XdpMode::Driver,
    };
    match program.attach_to_if_index(ifindex, xdp_mode) {
        Ok(_) => Ok(mode),
        Err(e) => match errno_in_chain(&e) {
            // bpf_link_create answers EBUSY when a program (ours or another's) is there;
            // the netlink fallback answers EEXIST.
            Some(libc::EBUSY) | Some(libc::EEXIST) => Err(Error::XdpAlreadyAttached {
                iface: iface.to_string(),
            }),
            Some(libc::EPERM) | Some(libc::EACCES) => Err(Error::PermissionDenied {
                op: "attaching the XDP program",
            }),
            Some(code @ (libc::EOPNOTSUPP | libc::EINVAL)) => Err(Error::ModeUnsupported {
                iface: iface.to_string(),
                mode: mode.name(),
                source: std::io::Error::from_raw_os_error(code),
            }),
            Some(libc::ENODEV) => Err(Error::NoSuchInterface(iface.to_string())),
            _ => Err(bpf_error("attaching the XDP program", e)),
        },
    }
}

/// UMEM registration pins memory against RLIMIT_MEMLOCK unless the process has
/// CAP_IPC_LOCK; raising the soft limit to the hard one avoids a confusing ENOMEM.
pub(crate) fn raise_memlock_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0
        && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: lim is a valid in-pointer; failure is harmless (we keep the old limit).
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_layout_matches_the_c_struct() {
        assert_eq!(std::mem::size_of::<ServiceKey>(), 8);
        let key = ServiceKey::new(Ipv4Addr::new(198, 18, 0, 1), 53);
        // SAFETY: ServiceKey is 8 bytes of POD.
        let bytes: [u8; 8] = unsafe { std::mem::transmute(key) };
        assert_eq!(bytes, [198, 18, 0, 1, 0, 53, 0, 0]);
    }

    #[test]
    fn object_is_an_ebpf_elf() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        assert_eq!(OBJECT[18], 247, "e_machine must be EM_BPF");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("skb".parse::<AttachMode>().unwrap(), AttachMode::Skb);
        assert_eq!("driver".parse::<AttachMode>().unwrap(), AttachMode::Driver);
        assert!("turbo".parse::<AttachMode>().is_err());
    }
}
