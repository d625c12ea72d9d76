//! Throwaway network topologies for the demo, the end-to-end tests and the benchmarks:
//! two network namespaces joined by a veth pair, with unique names so that tests can run
//! in parallel, removed on drop even when a test fails or panics.
//!
//! ```text
//!   netns <prefix>-srv                      netns <prefix>-peer
//!   [server_if] 198.18.0.1/24  <== veth ==>  [peer_if] 198.18.0.2/24
//! ```
//!
//! 198.18.0.0/15 is the range RFC 2544 sets aside for benchmarking; it only ever exists
//! inside these namespaces.
//!
//! Code runs inside a namespace either as a process (`ip netns exec`, see
//! [`Topology::server_cmd`]) or as a thread switched into it with setns(2) (see
//! [`Topology::spawn_in_server`]); the network namespace is per thread, so the rest of the
//! process is not affected.

#![warn(missing_docs)]

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

/// How to build a topology.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// A short word naming the user ("t" for tests, "demo", "bench"), part of every name.
    pub purpose: &'static str,
    /// Receive and transmit queues of each veth end.
    pub queues: u32,
    /// The server's address.
    pub server_ip: Ipv4Addr,
    /// The peer's address.
    pub peer_ip: Ipv4Addr,
    /// Turn off TX checksum offload on the peer, so the frames its kernel sends carry
    /// complete checksums (veth otherwise sends CHECKSUM_PARTIAL frames that only the
    /// kernel understands).
    pub peer_full_checksums: bool,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            purpose: "t",
            queues: 1,
            server_ip: Ipv4Addr::new(198, 18, 0, 1),
            peer_ip: Ipv4Addr::new(198, 18, 0, 2),
            peer_full_checksums: true,
        }
    }
}

/// A live two-namespace veth topology. Dropping it deletes both namespaces (and with
/// them the veth pair and anything attached to it).
#[derive(Debug)]
pub struct Topology {
    /// The server's namespace.
    pub server_ns: String,
    /// The peer's namespace.
    pub peer_ns: String,
    /// The server's veth end.
    pub server_if: String,
    /// The peer's veth end.
    pub peer_if: String,
    /// The server's address.
    pub server_ip: Ipv4Addr,
    /// The peer's address.
    pub peer_ip: Ipv4Addr,
    /// The server's MAC address.
    pub server_mac: [u8; 6],
    /// The peer's MAC address.
    pub peer_mac: [u8; 6],
    /// Queues of each end.
    pub queues: u32,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
const NS_PREFIX: &str = "sluice-";

/// Runs `ip` with `args`, failing with its stderr when it fails.
pub fn ip(args: &[&str]) -> io::Result<Output> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running ip (iproute2): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// Puts a pfifo in front of each TX queue of `dev`, as a NIC has its TX ring: with one,
/// veth stops a queue when its peer's ring is full and the sender waits (an AF_XDP kick
/// sends nothing, the kernel's TCP queues); without (veth's default, noqueue) it drops
/// the frame, and a burst of a few hundred costs retransmission timeouts no real link
/// would cause. veth does this on Linux 6.16 and later, and only towards a peer that
/// receives in NAPI (a native XDP program attached, or GRO on with TSO off at the
/// sender: `veth_skb_is_eligible_for_gro`); elsewhere it drops as before.
/// Several queues get one pfifo each under `mq`, so a stopped queue holds up only its own.
fn set_pfifo(ns: &str, dev: &str, queues: u32) -> io::Result<()> {
    let tc = |args: &[&str]| {
        let mut all = vec!["netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev];
        all.extend_from_slice(args);
        ip(&all).map(drop)
    };
    if queues <= 1 {
        return tc(&["root", "pfifo", "limit", "1000"]);
    }
    tc(&["root", "handle", "1:", "mq"])?;
    for q in 1..=queues {
        tc(&["parent", &format!("1:{q:x}"), "pfifo", "limit", "1000"])?;
    }
    Ok(())
}

/// Deletes namespaces left by earlier runs whose process is gone (a SIGKILLed test
/// cannot clean up after itself). Names carry the creating pid, so live runs are spared.
pub fn remove_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let mut parts = rest.split('-');
        let _purpose = parts.next();
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

impl Topology {
    /// Builds the topology, or fails with what went wrong (after removing what it made).
    pub fn create(config: &TopologyConfig) -> io::Result<Topology> {
        remove_stale();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("{NS_PREFIX}{}-{pid}-{n}", config.purpose);
        // Interface names are limited to 15 bytes: pid and counter in hex keep them short.
        let tag = format!("sl{pid:x}x{n:x}");
        let mut topo = Topology {
            server_ns: format!("{base}-srv"),
            peer_ns: format!("{base}-peer"),
            server_if: format!("{tag}s"),
            peer_if: format!("{tag}p"),
            server_ip: config.server_ip,
            peer_ip: config.peer_ip,
            server_mac: [0; 6],
            peer_mac: [0; 6],
            queues: config.queues,
        };
        // From here on, Drop cleans up whatever part was made.
        topo.build(config)?;
        Ok(topo)
    }

    fn build(&mut self, config: &TopologyConfig) -> io::Result<()> {
        let q = config.queues.to_string();
        ip(&["netns", "add", &self.server_ns])?;
        ip(&["netns", "add", &self.peer_ns])?;
        ip(&[
            "link",
            "add",
            &self.server_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &self.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            &self.peer_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &self.peer_ns,
        ])?;
        let prefix = 24;
        for (ns, dev, addr) in [
            (&self.server_ns, &self.server_if, self.server_ip),
            (&self.peer_ns, &self.peer_if, self.peer_ip),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/{prefix}"),
                "dev",
                dev,
            ])?;
            set_pfifo(ns, dev, config.queues)?;
            ip(&["-n", ns, "link", "set", "dev", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
        }
        self.server_mac = mac_of(&self.server_ns, &self.server_if)?;
        self.peer_mac = mac_of(&self.peer_ns, &self.peer_if)?;
        if config.peer_full_checksums {
            let dev = self.peer_if.clone();
            self.run_in(&self.peer_ns.clone(), move || {
                set_tx_checksum_offload(&dev, false)
            })??;
        }
        Ok(())
    }

    /// A command that runs in the server's namespace.
    pub fn server_cmd(&self, program: &str) -> Command {
        ns_cmd(&self.server_ns, program)
    }

    /// A command that runs in the peer's namespace.
    pub fn peer_cmd(&self, program: &str) -> Command {
        ns_cmd(&self.peer_ns, program)
    }

    /// Runs `f` on a new thread inside the server's namespace.
    pub fn spawn_in_server<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<JoinHandle<T>> {
        spawn_in(&self.server_ns, f)
    }

    /// Runs `f` on a new thread inside the peer's namespace.
    pub fn spawn_in_peer<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<JoinHandle<T>> {
        spawn_in(&self.peer_ns, f)
    }

    /// Runs `f` inside namespace `ns` on a helper thread and returns its result; a
    /// panic in `f` is resumed on the caller's thread.
    pub fn run_in<T: Send + 'static>(
        &self,
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        let handle = spawn_in(ns, f)?;
        match handle.join() {
            Ok(v) => Ok(v),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether an XDP program is attached to the server's interface, from `ip link`.
    pub fn server_has_xdp(&self) -> io::Result<bool> {
        let out = ip(&[
            "-n",
            &self.server_ns,
            "-d",
            "link",
            "show",
            "dev",
            &self.server_if,
        ])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.contains("prog/xdp") || text.contains("xdpgeneric") || text.contains("xdpdrv"))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, which deletes the pair.
        let _ = ip(&["netns", "del", &self.server_ns]);
        let _ = ip(&["netns", "del", &self.peer_ns]);
    }
}

fn ns_cmd(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Moves the calling thread into network namespace `ns` (as made by `ip netns add`).
pub fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/var/run/netns/{ns}"))
        .map_err(|e| io::Error::new(e.kind(), format!("opening network namespace {ns}: {e}")))?;
    // SAFETY: a valid namespace descriptor; CLONE_NEWNET affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("entering network namespace {ns}: {e}"),
        ));
    }
    Ok(())
}

/// Runs `f` on a new thread that first enters network namespace `ns`.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    let ns = ns.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(format!("in-{ns}"))
        .spawn(move || {
            let entered = enter(&ns);
            let ok = entered.is_ok();
            let _ = tx.send(entered);
            if !ok {
                // The caller got the error through the channel and drops this handle; unwind
                // without running the panic hook, so nothing is printed twice.
                std::panic::resume_unwind(Box::new(()));
            }
            f()
        })?;
    rx.recv()
        .map_err(|_| io::Error::other("namespace thread died"))??;
    Ok(handle)
}

fn mac_of(ns: &str, dev: &str) -> io::Result<[u8; 6]> {
    let out = ip(&["-n", ns, "link", "show", "dev", dev])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| io::Error::other(format!("no MAC address for {dev}")))?;
    parse_mac(mac).ok_or_else(|| io::Error::other(format!("bad MAC address {mac:?}")))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in mac.iter_mut() {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Turns TX checksum offload of `dev` (in the calling thread's namespace) on or off,
/// as `ethtool -K dev tx off` does, without needing the ethtool program.
pub fn set_tx_checksum_offload(dev: &str, on: bool) -> io::Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: on as u32,
    };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut value as *mut EthtoolValue).cast(),
        _pad: [0; 16],
    };
    for (d, s) in req
        .name
        .iter_mut()
        .zip(dev.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: req and value are live and correctly laid out for SIOCETHTOOL.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(io::Error::new(
            err.kind(),
            format!(
                "turning TX checksum offload of {dev} {}: {err}",
                if on { "on" } else { "off" }
            ),
        ));
    }
    Ok(())
}

/// Whether this process may build topologies (root, or CAP_NET_ADMIN + CAP_SYS_ADMIN).
pub fn have_privileges() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:07"), None);
        assert_eq!(parse_mac("zz:00:0a:ff:00:01"), None);
    }
}
