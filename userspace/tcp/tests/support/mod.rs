//! Test support shared by the simulation tests: a deterministic PRNG, a simulated link,
//! and frame emit/parse through the `wire` crate.
#![allow(dead_code)] // each test binary uses its own subset

pub mod endpoint;
pub mod frames;
pub mod link;
pub mod rng;
pub mod sim;
pub mod steady;
