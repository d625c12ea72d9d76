//! Errors of the AF_XDP layer, each one saying what to do about it.

use std::io;

/// Everything that can go wrong while loading the program, binding sockets or moving frames.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named interface does not exist in this network namespace.
    #[error("interface {0:?} does not exist (in this network namespace)")]
    NoSuchInterface(String),

    /// The process lacks a capability the operation needs.
    #[error("permission denied while {op}: AF_XDP needs CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW (run as root, or grant them, e.g. with systemd AmbientCapabilities)")]
    PermissionDenied {
        /// What was being attempted.
        op: &'static str,
    },

    /// Another XDP program is attached to the interface; we never replace someone else's.
    #[error("another XDP program is already attached to {iface}; detach it first (ip link set dev {iface} xdp off)")]
    XdpAlreadyAttached {
        /// The interface.
        iface: String,
    },

    /// The driver cannot run XDP in the requested mode.
    #[error("{iface} does not support XDP in {mode} mode: {source}")]
    ModeUnsupported {
        /// The interface.
        iface: String,
        /// The mode that was refused.
        mode: &'static str,
        /// What the kernel said.
        source: io::Error,
    },

    /// The requested queue is not one of the interface's receive queues.
    #[error("{iface} has no queue {queue} (it has {available} receive queue(s), numbered from 0)")]
    NoSuchQueue {
        /// The interface.
        iface: String,
        /// The queue asked for.
        queue: u32,
        /// How many queues the interface has.
        available: u32,
    },

    /// An AF_XDP socket is already bound on this queue (by us or by another program).
    #[error("queue {queue} of {iface} is already in use by another AF_XDP socket")]
    QueueBusy {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },

    /// The configuration is impossible (ring sizes, frame sizes).
    #[error("invalid AF_XDP configuration: {0}")]
    InvalidConfig(String),

    /// Loading or attaching the BPF object failed for a reason not listed above.
    #[error("BPF: {op}: {detail}")]
    Bpf {
        /// What was being attempted.
        op: &'static str,
        /// The loader's own message (with the verifier log when there is one).
        detail: String,
    },

    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// The call, in words.
        op: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps `errno` from a system call, turning EPERM/EACCES into [`Error::PermissionDenied`].
    pub(crate) fn os(op: &'static str, source: io::Error) -> Error {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied { op },
            _ => Error::Io { op, source },
        }
    }

    /// The last OS error of a failed libc call.
    pub(crate) fn last_os(op: &'static str) -> Error {
        Error::os(op, io::Error::last_os_error())
    }
}

/// The first `io::Error` errno in an error's source chain: aya wraps the kernel's answer
/// a few levels deep, and that answer is what decides which error we report.
pub(crate) fn errno_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
        }
        cur = e.source();
    }
    None
}
