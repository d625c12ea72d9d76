//! The stack's errors: the flow API's, after the seed's `error` and `write_error`, and
//! why the stack could not start.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Why a connection could not be made or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer answered the SYN with a RST: nothing listens there.
    #[error("connection refused")]
    Refused,
    /// No answer in time: the SYNs, or the keepalive probes, went unanswered.
    #[error("connection timed out")]
    Timeout,
    /// The peer reset the connection.
    #[error("connection reset by peer")]
    Reset,
    /// No route or neighbour for the destination.
    #[error("destination unreachable: {0}")]
    Unreachable(String),
    /// The stack is shutting down or the worker is gone.
    #[error("the stack is shutting down")]
    ShuttingDown,
    /// An operating-system error on the kernel backend.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The connection is closed (by us, by the peer, or lost): the data was not written.
    #[error("connection closed")]
    Closed,
    /// Any other failure.
    #[error(transparent)]
    Other(Error),
}

impl Error {
    /// Maps a kernel socket error to the flow API's terms.
    pub(crate) fn from_io(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Error::Refused,
            io::ErrorKind::TimedOut => Error::Timeout,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Error::Reset,
            _ => match e.raw_os_error() {
                Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => {
                    Error::Unreachable(e.to_string())
                }
                _ => Error::Io(e),
            },
        }
    }
}

impl WriteError {
    pub(crate) fn from_io(e: io::Error) -> WriteError {
        match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::TimedOut => WriteError::Closed,
            _ => WriteError::Other(Error::from_io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_map_to_flow_errors() {
        assert!(matches!(
            Error::from_io(io::ErrorKind::ConnectionRefused.into()),
            Error::Refused
        ));
        assert!(matches!(
            Error::from_io(io::ErrorKind::TimedOut.into()),
            Error::Timeout
        ));
        assert!(matches!(
            Error::from_io(io::Error::from_raw_os_error(libc::EHOSTUNREACH)),
            Error::Unreachable(_)
        ));
        assert!(matches!(
            WriteError::from_io(io::ErrorKind::BrokenPipe.into()),
            WriteError::Closed
        ));
        assert_eq!(WriteError::Closed.to_string(), "connection closed");
        assert_eq!(Error::Refused.to_string(), "connection refused");
    }
}

/// Why the stack could not start. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another program already serves this address and port.
    #[error("{0} is already in use by another program")]
    PortInUse(SocketAddrV4),
    /// The address is not assigned to this host (in this network namespace).
    #[error("{0} is not an address of this host (add it to an interface first)")]
    AddressNotLocal(Ipv4Addr),
    /// A core in the core list does not exist.
    #[error("core {0} does not exist (this machine has cores 0..{1})")]
    NoSuchCore(usize, usize),
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The AF_XDP layer refused (no interface, no privileges, a program already
    /// attached, a busy queue...).
    #[error("AF_XDP: {0}")]
    Xdp(#[from] xsk::Error),
    /// A system call failed.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] io::Error),
}
