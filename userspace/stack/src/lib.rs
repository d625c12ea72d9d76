//! sluice's running stack: per-core workers, the flow API (the Rust form of MirageOS's
//! TCP module, see docs/design.md), the listener registry, and the backends.
//!
//! ```no_run
//! use stack::{Flow, Listener, Listeners, Stack, StackConfig};
//!
//! let mut listeners = Listeners::new();
//! listeners.listen(7, Listener::new(|mut flow: Flow| async move {
//!     while let Ok(Some(data)) = flow.read().await {
//!         if flow.write(data).await.is_err() {
//!             break;
//!         }
//!     }
//!     flow.close().await;
//! }));
//! let mut stack = Stack::start(StackConfig::default(), listeners)?;
//! // ... serve until told to stop ...
//! stack.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), stack::StartError>(())
//! ```
#![warn(missing_docs)]

mod config;
mod context;
mod error;
mod flow;
mod kernel;
mod listener;
mod runtime;
pub mod session;
mod stack;
mod stats;
mod workers;
mod xdp;

pub use bytes::Bytes;
pub use config::{Backend, BackendConfig, KernelConfig, MemoryConfig, StackConfig, XdpConfig};
pub use context::WorkerContext;
pub use error::{Error, StartError, WriteError};
pub use flow::Flow;
pub use listener::{Handler, Keepalive, Listener, Listeners, LocalFuture};
pub use session::{Next, Session, SessionFactory, Wake};
pub use stack::Stack;
pub use stats::{ConnStates, RxDrops, SocketDrops, WorkerStats};
pub use xdp::admission::Admission;
pub use xdp::memory::{MemoryDeviceConfig, MemoryLink, FRAME_SIZE};
pub use xdp::nexthop;
pub use xdp::ports::PortRange;
pub use xsk::{SteeringCounters, SynBudget};
