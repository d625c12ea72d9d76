//! The responder alone, no network: queries answered per second on one core (the DNS
//! issue's benchmark; the aim is above 5 million). Each iteration answers one query
//! into a reused buffer.
//!
//! `cargo bench -p sluice-dns --bench responder`

use std::net::Ipv4Addr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dns::{answer, load_zone, rtype, Answer, Catalog, ResponderConfig};

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend(1u16.to_be_bytes());
    q
}

fn responder(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let catalog = Catalog::new(vec![
        load_zone(&dir.join("example.test.zone"), None).unwrap()
    ])
    .unwrap();
    let cfg = ResponderConfig::default();
    let mut out = vec![0u8; 65535];
    let mut g = c.benchmark_group("answer");
    g.throughput(Throughput::Elements(1));
    for (label, name, t) in [
        ("A", "www.example.test", rtype::A),
        ("MX with additional", "example.test", rtype::MX),
        ("CNAME chain", "chain1.example.test", rtype::A),
        ("NXDOMAIN", "nope.example.test", rtype::A),
        ("wildcard", "x.wild.example.test", rtype::A),
        ("REFUSED", "www.example.net", rtype::A),
    ] {
        let q = query(name, t);
        g.bench_function(label, |b| {
            b.iter(|| {
                let a = answer(&catalog, &cfg, Ipv4Addr::LOCALHOST, &q, &mut out);
                assert!(matches!(a, Answer::Message(_)));
                a
            })
        });
    }
    g.finish();
}

criterion_group!(benches, responder);
criterion_main!(benches);
