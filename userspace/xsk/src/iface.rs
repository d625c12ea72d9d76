//! Facts about a network interface that AF_XDP needs: its index, how many receive queues
//! it has, and whether this process may attach XDP programs to it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// The interface index of `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface(name.to_string()))?;
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(Error::NoSuchInterface(name.to_string()));
    }
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(Error::NoSuchInterface(name.to_string()));
    }
    Ok(index)
}

#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// The number of receive queues of `name`: the queues an AF_XDP socket can bind to.
///
/// Asks the driver through ethtool (rx + combined channels); drivers without channel
/// support have one queue. sysfs is not used because it shows the namespace that mounted
/// it, not the caller's.
pub fn rx_queue_count(name: &str) -> Result<u32> {
    ifindex(name)?;
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    match ethtool(name, (&mut channels as *mut EthtoolChannels).cast()) {
        Ok(()) => Ok((channels.rx_count + channels.combined_count).max(1)),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(1),
        Err(e) => Err(Error::os("ethtool ETHTOOL_GCHANNELS", e)),
    }
}

/// Runs the ethtool command whose struct (its `cmd` field first) `data` points at, on
/// interface `name` (which the caller has checked exists), as `ethtool` does. The struct must stay alive and
/// be laid out as the kernel's for that command.
fn ethtool(name: &str, data: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a properly laid out ifreq whose data the caller vouches for.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 0x03;

/// The name of `name`'s driver ("veth", "mlx5_core", "ice"...), as `ethtool -i` says it.
pub fn driver(name: &str) -> Result<String> {
    ifindex(name)?;
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    ethtool(name, (&mut info as *mut EthtoolDrvinfo).cast())
        .map_err(|e| Error::os("ethtool ETHTOOL_GDRVINFO", e))?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Capabilities this process holds, from /proc/self/status (CapEff).
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Fails early, with a message that says what is missing, when the process cannot load
/// and attach XDP programs or open AF_XDP sockets. Checking up front beats decoding an
/// EPERM from deep inside the loader.
pub fn check_privileges() -> Result<()> {
    let Some(caps) = effective_capabilities() else {
        // Not Linux procfs as we know it: let the system calls speak for themselves.
        return Ok(());
    };
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    let bpf = has(CAP_BPF) || has(CAP_SYS_ADMIN);
    if !(has(CAP_NET_ADMIN) && has(CAP_NET_RAW) && bpf) {
        return Err(Error::PermissionDenied {
            op: "checking capabilities",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let err = ifindex("sluice-nope0").unwrap_err();
        assert!(
            matches!(err, Error::NoSuchInterface(ref n) if n == "sluice-nope0"),
            "{err}"
        );
        assert!(err.to_string().contains("sluice-nope0"));
        assert!(matches!(
            rx_queue_count("sluice-nope0"),
            Err(Error::NoSuchInterface(_))
        ));
    }

    #[test]
    fn overlong_names_are_rejected_not_truncated() {
        assert!(matches!(
            ifindex("a-name-longer-than-ifnamsiz"),
            Err(Error::NoSuchInterface(_))
        ));
        assert!(matches!(
            ifindex("nul\0inside"),
            Err(Error::NoSuchInterface(_))
        ));
    }

    #[test]
    fn loopback_has_a_queue() {
        assert!(rx_queue_count("lo").unwrap() >= 1);
    }
}
