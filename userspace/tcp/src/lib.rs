//! The TCP state machine, sans-IO: segments and time in, segments and events out.
//!
//! Nothing here performs I/O, reads a clock or spawns a thread (docs/design.md,
//! "Sans-IO"): the caller (the `stack` crate, or a test with virtual time) owns all of
//! that.

pub mod assembler;
pub mod congestion;
#[doc(hidden)]
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
