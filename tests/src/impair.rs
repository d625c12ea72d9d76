//! Packet loss on the wire for the end-to-end tests: ebpf/impair.c attached as a tc
//! classifier on both directions of an interface (in the calling thread's namespace).

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{tc::TcAttachType, SchedClassifier};
use aya::Ebpf;

static OBJECT: &[u8] = aya::include_bytes_aligned!("../../ebpf/impair.o");

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Config {
    drop_ppm: u32,
    blackhole: u32,
}

// SAFETY: two u32s, no padding, every bit pattern valid.
unsafe impl aya::Pod for Config {}

/// A loss generator attached to one interface; detached when dropped.
pub struct Impairment {
    config: Array<MapData, Config>,
    counters: PerCpuArray<MapData, u64>,
    current: Config,
    _ebpf: Ebpf,
}

impl Impairment {
    /// Attaches to `iface` (ingress and egress), passing everything until told otherwise.
    /// Must run on a thread inside the interface's namespace.
    pub fn attach(iface: &str) -> Result<Impairment, Box<dyn std::error::Error + Send + Sync>> {
        let mut ebpf = Ebpf::load(OBJECT)?;
        let prog: &mut SchedClassifier = ebpf
            .program_mut("impair")
            .ok_or("impair program missing")?
            .try_into()?;
        prog.load()?;
        if let Err(e) = aya::programs::tc::qdisc_add_clsact(iface) {
            // Already there, or not needed (tcx): attaching says for sure.
            let _ = e;
        }
        prog.attach(iface, TcAttachType::Ingress)?;
        prog.attach(iface, TcAttachType::Egress)?;
        let config = Array::try_from(
            ebpf.take_map("impair_config")
                .ok_or("impair_config missing")?,
        )?;
        let counters = PerCpuArray::try_from(
            ebpf.take_map("impair_counters")
                .ok_or("impair_counters missing")?,
        )?;
        Ok(Impairment {
            config,
            counters,
            current: Config::default(),
            _ebpf: ebpf,
        })
    }

    fn apply(&mut self) {
        self.config
            .set(0, self.current, 0)
            .expect("updating the impairment map");
    }

    /// Drops each TCP packet with probability `percent` / 100.
    pub fn set_loss_percent(&mut self, percent: f64) {
        self.current.drop_ppm = (percent * 10_000.0).round().clamp(0.0, 1_000_000.0) as u32;
        self.apply();
    }

    /// Drops every TCP packet (on) or none beyond the random loss (off).
    pub fn set_blackhole(&mut self, on: bool) {
        self.current.blackhole = on as u32;
        self.apply();
    }

    /// (TCP packets seen, TCP packets dropped) so far.
    pub fn counts(&self) -> (u64, u64) {
        let sum = |i: u32| {
            self.counters
                .get(&i, 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0)
        };
        (sum(0), sum(1))
    }
}
