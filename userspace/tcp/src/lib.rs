//! The TCP state machine, sans-IO: segments and time in, segments and events out.
//!
//! Nothing here performs I/O, reads a clock or spawns a thread (docs/design.md,
//! "Sans-IO"): the caller (the `stack` crate, or a test with virtual time) owns all of
//! that.

#![warn(missing_docs)]

pub mod assembler;
pub mod congestion;
/// Fuzz target bodies, for cargo-fuzz and for the hostile-input tests that replay
/// them; only with the `fuzzing` feature, so they are not part of the API.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod isn;
pub mod rtt;
pub mod scoreboard;
pub mod seq;
pub mod syncookie;
pub mod tcb;
pub mod time;

pub use seq::SeqNumber;
pub use time::Instant;
