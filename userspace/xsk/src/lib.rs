//! AF_XDP for sluice: the XDP steering program and the per-queue sockets that receive
//! what it steers.
//!
//! - [`XdpProgram`] loads ebpf/sluice_xdp.c's object, attaches it to an interface (driver
//!   mode, SKB mode as fallback) and fills its maps: the (address, port) services to
//!   steer and the socket of each queue.
//! - [`XskSocket`] is one AF_XDP socket with its own UMEM, bound to one queue: batched RX
//!   and TX, completion reclaim, fill-ring refill, need-wakeup handling and counters.
//!
//! The crate knows nothing of TCP (docs/design.md): frames in, frames out. The ring code
//! is our own, over `libc`'s AF_XDP definitions, which keeps the crate under the
//! project's licences.

#![warn(missing_docs)]

mod error;
pub mod iface;
mod program;
mod ring;
mod socket;
mod umem;

pub use error::{Error, Result};
pub use program::{
    AdmissionControl, AttachMode, RingLevel, SteeringCounters, SynBudget, XdpProgram,
};
pub use socket::{BindMode, KernelStats, RxAction, XskConfig, XskSocket, XskStats};
