//! CPU cost per segment on the steady path (the TCP issue's benchmark): an in-order
//! full-sized data segment received, read by the application and ACKed (every second
//! one), and a full-sized segment written, emitted into a frame and ACKed.
//!
//! `cargo bench -p sluice-tcp --bench segment`

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use support::steady::{Receiver, Sender, SEGMENT};

fn steady(c: &mut Criterion) {
    let mut g = c.benchmark_group("steady");
    g.throughput(Throughput::Bytes(SEGMENT as u64));
    let mut r = Receiver::new();
    g.bench_function("receive in-order segment, read, ACK", |bench| {
        bench.iter(|| r.segment())
    });
    let mut s = Sender::new();
    g.bench_function("send segment, emit, take its ACK", |bench| {
        bench.iter(|| s.segment())
    });
    g.finish();
}

criterion_group!(benches, steady);
criterion_main!(benches);
