//! Test support shared by the simulation tests: a deterministic PRNG and a simulated link.
#![allow(dead_code)] // each test binary uses its own subset

pub mod link;
pub mod rng;
