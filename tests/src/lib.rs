//! Support for sluice's end-to-end tests: privilege gating and small helpers shared by
//! the tests in `tests/tests/`. The topology itself comes from the `netns` crate.
//!
//! Tests that need root call [`privileged`] first. Under `CI=true` a missing privilege is
//! a failure (CI runs as root on a kernel with XDP, so a skip there would hide a broken
//! test); elsewhere the test prints why it skips and passes.

use std::time::{Duration, Instant};

pub use netns::{Topology, TopologyConfig};

/// Whether the test may run; see the crate docs.
pub fn privileged(test: &str) -> bool {
    if netns::have_privileges() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN) and CI=true: refusing to skip");
    }
    eprintln!("skipping {test}: needs root (network namespaces, XDP, AF_XDP)");
    false
}

/// Skips (returns from) the calling test when it lacks privileges; see [`privileged`].
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::privileged(module_path!()) {
            return;
        }
    };
}

/// Retries `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of the `xdp-holder` helper built with this package (only integration tests
/// know it, so this expands in the test).
#[macro_export]
macro_rules! holder_path {
    () => {
        env!("CARGO_BIN_EXE_xdp-holder")
    };
}
