//! Support for sluice's end-to-end tests: privilege gating and small helpers shared by
//! the tests in `tests/tests/`. The topology itself comes from the `netns` crate.
//!
//! Tests that need root call [`privileged`] first. Under `CI=true` a missing privilege is
//! a failure (CI runs as root on a kernel with XDP, so a skip there would hide a broken
//! test); elsewhere the test prints why it skips and passes.

use std::time::{Duration, Instant};

mod impair;
mod kernel_probe;
mod packet;
pub use impair::Impairment;
pub use kernel_probe::kernel_refuses_xdp_adjust_meta;
pub use packet::PacketSocket;

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

/// Whether `tool` is on the PATH.
pub fn installed(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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

/// A reproducible byte stream (xorshift64*), so that a receiver can check every byte it
/// gets without the sender's copy.
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed` (any value; 0 is mapped to a non-zero state).
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }

    /// Checks that `buf` is the next part of the stream; returns the offset of the first
    /// wrong byte within `buf`.
    pub fn verify(&mut self, buf: &[u8]) -> Result<(), usize> {
        let mut expected = [0u8; 4096];
        let mut at = 0;
        while at < buf.len() {
            let n = (buf.len() - at).min(expected.len());
            self.fill(&mut expected[..n]);
            if let Some(i) = buf[at..at + n]
                .iter()
                .zip(&expected[..n])
                .position(|(a, b)| a != b)
            {
                return Err(at + i);
            }
            at += n;
        }
        Ok(())
    }
}
