//! The Internet checksum against a naive 16-bit loop, on small, MTU and jumbo sizes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for size in [64usize, 1500, 9000] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("wire", size), &data, |b, d| {
            b.iter(|| wire::checksum::checksum(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("naive", size), &data, |b, d| {
            b.iter(|| wire::checksum::checksum_naive(black_box(d)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
