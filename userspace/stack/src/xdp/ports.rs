//! The stack's ephemeral ports: a range reserved from the kernel, so that its own
//! sockets never pick them, and steered to our sockets by the XDP program.

use std::io;

/// The range of local ports active opens use, [first, last].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        // Below Linux's default ephemeral range (32768-60999), so the reservation does
        // not shrink what the kernel's own clients can use.
        PortRange {
            first: 20000,
            last: 29999,
        }
    }
}

impl PortRange {
    /// Whether the range is empty (first > last).
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        (self.last - self.first) as usize + 1
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// Adds `range` to net.ipv4.ip_local_reserved_ports of the calling thread's network
/// namespace, keeping what is already reserved. Returns what was there before, for
/// [`unreserve`].
pub fn reserve(range: PortRange) -> io::Result<String> {
    let path = "/proc/sys/net/ipv4/ip_local_reserved_ports";
    let before = std::fs::read_to_string(path)?.trim().to_string();
    let ours = format!("{}-{}", range.first, range.last);
    let new = if before.is_empty() {
        ours
    } else {
        format!("{before},{ours}")
    };
    std::fs::write(path, new).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "reserving ports {}-{} in {path}: {e}",
                range.first, range.last
            ),
        )
    })?;
    Ok(before)
}

/// Restores the reservation [`reserve`] found.
pub fn unreserve(before: &str) {
    let _ = std::fs::write(
        "/proc/sys/net/ipv4/ip_local_reserved_ports",
        if before.is_empty() { "\n" } else { before },
    );
}
