//! The daemon's library half: the DNS-over-TCP service, which puts the `dns` crate's
//! responder on the stack's flows. The `sluice` binary serves it; the benchmarks
//! (bench/) drive the same service on the in-memory device.

#![warn(missing_docs)]

pub mod dns_service;
pub mod plot;
