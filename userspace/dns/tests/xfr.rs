//! The secondary's reading of transfers: an AXFR that sluice itself serves read back
//! whole; differences (RFC 1995) applied; broken or foreign answers refused; NOTIFY
//! with and without TSIG.

use std::path::Path;
use std::sync::Arc;

use dns::catalog::IndexedZone;
use dns::xfr::{self, Exchange, Incoming, Outcome};
use dns::zone::Rr;
use dns::{load_zone, name, rtype, transfer, Catalog, Zone};

fn zone() -> Zone {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    load_zone(&dir.join("example.test.zone"), None).expect("the test zone loads")
}

fn sorted(z: &Zone) -> Vec<(Vec<u8>, u16, Vec<u8>)> {
    let mut v: Vec<_> = z
        .records
        .iter()
        .map(|r| (r.owner.to_vec(), r.rtype, r.rdata.to_vec()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The served zone's AXFR, as the messages our own server sends for `request`.
fn served_axfr(c: &Catalog, request: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    transfer(c, request, max, |m| out.push(m.to_vec()));
    out
}

#[test]
fn an_axfr_of_our_own_server_reads_back_whole() {
    let z = zone();
    let apex = z.apex.clone();
    let c = Catalog::new(vec![z.clone()]).unwrap();
    for max in [512, 16384] {
        let mut ex = Exchange::new(&apex, rtype::AXFR, None, None, 7, "test").unwrap();
        let mut incoming = Incoming::new(&apex, rtype::AXFR);
        let messages = served_axfr(&c, &ex.message, max);
        let mut complete = false;
        for m in messages {
            assert!(!complete, "a message after the end");
            complete = incoming.push(ex.answer(m).unwrap()).unwrap();
        }
        assert!(complete);
        ex.done().unwrap();
        match incoming.finish(None).unwrap() {
            Outcome::Full(got) => assert_eq!(sorted(&got), sorted(&z)),
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn a_transfer_cut_short_is_not_a_zone() {
    let z = zone();
    let apex = z.apex.clone();
    let c = Catalog::new(vec![z]).unwrap();
    let mut ex = Exchange::new(&apex, rtype::AXFR, None, None, 9, "test").unwrap();
    let messages = served_axfr(&c, &ex.message, 512);
    assert!(messages.len() >= 2);
    let mut incoming = Incoming::new(&apex, rtype::AXFR);
    for m in &messages[..messages.len() - 1] {
        assert!(!incoming.push(ex.answer(m.clone()).unwrap()).unwrap());
    }
    assert!(incoming.finish(None).is_err());
}

#[test]
fn an_answer_to_another_request_is_refused() {
    let z = zone();
    let apex = z.apex.clone();
    let c = Catalog::new(vec![z]).unwrap();
    let ex = Exchange::new(&apex, rtype::AXFR, None, None, 1, "test").unwrap();
    let mut other = Exchange::new(&apex, rtype::AXFR, None, None, 2, "test").unwrap();
    let m = served_axfr(&c, &ex.message, 16384).remove(0);
    assert!(other.answer(m).is_err());
}

fn soa(apex: &[u8], serial: u32) -> Rr {
    let mut rdata = name::from_text("ns.example.test.").unwrap().to_vec();
    rdata.extend_from_slice(&name::from_text("hostmaster.example.test.").unwrap());
    for v in [serial, 3600, 600, 86400, 300] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    rr(apex, rtype::SOA, &rdata)
}

fn rr(owner: &[u8], t: u16, rdata: &[u8]) -> Rr {
    Rr::from_wire(owner, t, 300, rdata, &Arc::new("test".into()))
}

#[test]
fn differences_apply_to_the_version_served() {
    let apex = name::from_text("example.test.").unwrap();
    let www = name::from_text("www.example.test.").unwrap();
    let new = name::from_text("new.example.test.").unwrap();
    let v1 = Zone {
        apex: apex.clone(),
        records: vec![
            soa(&apex, 1),
            rr(&www, rtype::A, &[192, 0, 2, 1]),
            rr(&www, rtype::A, &[192, 0, 2, 2]),
        ],
    };
    let ours = IndexedZone::new(v1, 0);
    assert_eq!(ours.serial(), Some(1));
    // 1 -> 2: one address removed; 2 -> 3: a name added.
    let mut incoming = Incoming::new(&apex, rtype::IXFR);
    let records = vec![
        soa(&apex, 3),
        soa(&apex, 1),
        rr(&www, rtype::A, &[192, 0, 2, 2]),
        soa(&apex, 2),
        soa(&apex, 2),
        soa(&apex, 3),
        rr(&new, rtype::A, &[192, 0, 2, 9]),
    ];
    assert!(!incoming.push(records).unwrap());
    assert!(incoming.push(vec![soa(&apex, 3)]).unwrap());
    let Outcome::Incremental(v3) = incoming.finish(Some(&ours)).unwrap() else {
        panic!("not incremental")
    };
    let v3 = IndexedZone::new(v3, 0);
    assert_eq!(v3.serial(), Some(3));
    let a = |z: &IndexedZone, n: &[u8]| -> Vec<Vec<u8>> {
        z.nodes
            .get(n)
            .and_then(|n| n.get(rtype::A))
            .map(|s| s.rdatas().map(<[u8]>::to_vec).collect())
            .unwrap_or_default()
    };
    assert_eq!(a(&v3, &www), vec![vec![192, 0, 2, 1]]);
    assert_eq!(a(&v3, &new), vec![vec![192, 0, 2, 9]]);

    // Differences from a version not served are refused, not applied.
    let mut incoming = Incoming::new(&apex, rtype::IXFR);
    let from_elsewhere = vec![soa(&apex, 3), soa(&apex, 2), soa(&apex, 3), soa(&apex, 3)];
    assert!(incoming.push(from_elsewhere).unwrap());
    assert!(incoming.finish(Some(&ours)).is_err());

    // The SOA alone: up to date.
    let mut incoming = Incoming::new(&apex, rtype::IXFR);
    assert!(incoming.push(vec![soa(&apex, 1)]).unwrap());
    assert!(matches!(
        incoming.finish(Some(&ours)).unwrap(),
        Outcome::UpToDate
    ));
    // A newer SOA alone in the first message is not "nothing newer" (a primary that
    // starts a whole zone so): an error, which the secondary follows with an AXFR.
    let mut incoming = Incoming::new(&apex, rtype::IXFR);
    assert!(incoming.push(vec![soa(&apex, 5)]).unwrap());
    assert!(incoming.finish(Some(&ours)).is_err());
}

#[test]
fn a_transfer_must_start_with_the_soa_and_stay_in_the_zone() {
    let apex = name::from_text("example.test.").unwrap();
    let mut incoming = Incoming::new(&apex, rtype::AXFR);
    let a = rr(&apex, rtype::A, &[192, 0, 2, 1]);
    assert!(incoming.push(vec![a]).is_err());
    let mut incoming = Incoming::new(&apex, rtype::AXFR);
    let other = name::from_text("example.org.").unwrap();
    let records = vec![
        soa(&apex, 1),
        rr(&other, rtype::A, &[192, 0, 2, 1]),
        soa(&apex, 1),
    ];
    assert!(incoming.push(records).unwrap());
    assert!(incoming.finish(None).is_err());
}

#[test]
fn serials_compare_in_rfc_1982_arithmetic() {
    assert!(xfr::is_newer(2, 1));
    assert!(xfr::is_newer(1, u32::MAX));
    assert!(!xfr::is_newer(1, 1));
    assert!(!xfr::is_newer(u32::MAX, 1));
}

#[test]
fn keys_read_as_kdig_takes_them_and_never_show_their_secret() {
    let k = xfr::parse_key("hmac-sha256:xfr:c2x1aWNlLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmctISE=").unwrap();
    assert_eq!(k.name().to_string(), "xfr");
    for bad in [
        "hmac-sha256:xfr",
        "hmac-md6:xfr:AAAA",
        "hmac-sha256:xfr:not base64!",
    ] {
        let e = xfr::parse_key(bad).unwrap_err();
        assert!(!e.contains("AAAA") && !e.contains("not base64!"), "{e}");
    }
}

#[test]
fn an_ixfr_with_its_soa_is_answered_with_the_whole_zone_and_read_as_such() {
    use std::net::Ipv4Addr;
    let z = zone();
    let apex = z.apex.clone();
    let c = Catalog::new(vec![z.clone()]).unwrap();
    let ours = IndexedZone::new(z.clone(), 0);
    // An IXFR as a secondary sends it: the version it has in the authority section.
    let mut ex = Exchange::new(&apex, rtype::IXFR, Some(&ours), None, 5, "test").unwrap();
    let cfg = dns::ResponderConfig {
        transfer_allowed: vec![(Ipv4Addr::LOCALHOST, 32)],
        ..Default::default()
    };
    let mut out = [0u8; 512];
    assert_eq!(
        dns::answer(&c, &cfg, Ipv4Addr::LOCALHOST, &ex.message, &mut out),
        dns::Answer::Transfer
    );
    let mut incoming = Incoming::new(&apex, rtype::IXFR);
    let mut complete = false;
    for m in served_axfr(&c, &ex.message, 16384) {
        complete = incoming.push(ex.answer(m).unwrap()).unwrap();
    }
    assert!(complete);
    match incoming.finish(Some(&ours)).unwrap() {
        Outcome::Full(got) => assert_eq!(sorted(&got), sorted(&z)),
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_zone_not_transferred_yet_answers_servfail() {
    let apex = name::from_text("example.test.").unwrap();
    let c = Catalog::from_indexed(vec![Arc::new(IndexedZone::unavailable(apex, 0))]).unwrap();
    let q = dns::decode::query(1, "www.example.test", rtype::A, false);
    let mut out = [0u8; 512];
    let dns::Answer::Message(n) = dns::answer(
        &c,
        &Default::default(),
        std::net::Ipv4Addr::LOCALHOST,
        &q,
        &mut out,
    ) else {
        panic!("no answer")
    };
    let m = dns::decode::decode(&out[..n]).unwrap();
    assert_eq!(m.rcode(), u16::from(dns::rcode::SERVFAIL));
    assert!(m.answer.is_empty() && m.authority.is_empty());
}

const KEY: &str = "hmac-sha256:xfr:c2x1aWNlLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmctISE=";
const OTHER: &str = "hmac-sha256:xfr:b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMhIQ==";

#[test]
fn a_signed_transfer_both_ways_and_a_wrong_or_missing_key_refused() {
    let z = zone();
    let apex = z.apex.clone();
    let c = Catalog::new(vec![z.clone()]).unwrap();
    let key = xfr::parse_key(KEY).unwrap();
    for max in [512, 16384] {
        let mut ex = Exchange::new(&apex, rtype::AXFR, None, Some(&key), 3, "test").unwrap();
        let mut messages = Vec::new();
        let n = dns::transfer_signed(&c, &ex.message, max, &key, |m| messages.push(m.to_vec()))
            .unwrap();
        assert_eq!(n, messages.len());
        let mut incoming = Incoming::new(&apex, rtype::AXFR);
        let mut complete = false;
        for m in messages {
            assert!(m.len() <= max, "{} bytes", m.len());
            complete = incoming.push(ex.answer(m).unwrap()).unwrap();
        }
        assert!(complete);
        ex.done().unwrap();
        match incoming.finish(None).unwrap() {
            Outcome::Full(got) => assert_eq!(sorted(&got), sorted(&z)),
            o => panic!("{o:?}"),
        }
    }
    // Unsigned: REFUSED. Signed with another key: NOTAUTH (BADKEY/BADSIG). Either way
    // one message, and no record of the zone.
    let other = xfr::parse_key(OTHER).unwrap();
    for (k, rcode) in [(None, dns::rcode::REFUSED), (Some(&other), 9)] {
        let ex = Exchange::new(&apex, rtype::AXFR, None, k, 4, "test").unwrap();
        let mut messages = Vec::new();
        let r = dns::transfer_signed(&c, &ex.message, 16384, &key, |m| messages.push(m.to_vec()));
        assert!(r.is_err());
        assert_eq!(messages.len(), 1);
        let m = dns::decode::decode(&messages[0]).unwrap();
        assert_eq!(m.rcode() & 0x0f, u16::from(rcode));
        assert!(m.answer.is_empty());
    }
    // A signed answer our side cannot verify: refused by the secondary.
    let mut ex = Exchange::new(&apex, rtype::AXFR, None, Some(&key), 6, "test").unwrap();
    let mut messages = Vec::new();
    let mut forged = ex.message.clone();
    // Re-signed by someone with the other key: the answer does not verify.
    let mut by_other = Exchange::new(&apex, rtype::AXFR, None, Some(&other), 6, "test").unwrap();
    std::mem::swap(&mut forged, &mut by_other.message);
    dns::transfer_signed(&c, &forged, 16384, &other, |m| messages.push(m.to_vec())).unwrap();
    assert!(ex.answer(messages.remove(0)).is_err());
}

#[test]
fn a_notify_signed_or_not() {
    use domain::base::iana::{Opcode, Rtype};
    use domain::base::message_builder::MessageBuilder;
    use domain::base::name::Name;
    use std::str::FromStr;
    let key = xfr::parse_key(KEY).unwrap();
    let notify = |k: Option<&xfr::TsigKey>| -> Vec<u8> {
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_opcode(Opcode::NOTIFY);
        b.header_mut().set_aa(true);
        let mut q = b.question();
        q.push((
            Name::<Vec<u8>>::from_str("example.test.").unwrap(),
            Rtype::SOA,
        ))
        .unwrap();
        let mut add = q.additional();
        if let Some(k) = k {
            domain::tsig::ClientTransaction::request(
                k.clone(),
                &mut add,
                domain::rdata::tsig::Time48::now(),
            )
            .unwrap();
        }
        add.finish()
    };
    let apex = name::from_text("example.test.").unwrap();
    assert_eq!(xfr::notify_zone(&notify(None)), Some(apex.clone()));
    let n = xfr::read_notify(&notify(None), None).unwrap();
    assert_eq!(n.apex, apex);
    assert!(xfr::read_notify(&notify(None), Some(&key)).is_err());
    assert!(xfr::read_notify(&notify(Some(&key)), Some(&key)).is_ok());
    let other = xfr::parse_key(OTHER).unwrap();
    let (_, ack) = xfr::read_notify(&notify(Some(&other)), Some(&key)).unwrap_err();
    let ack = dns::decode::decode(&ack.expect("a NOTAUTH")).unwrap();
    assert_eq!(ack.rcode() & 0x0f, 9);
}

#[test]
fn the_streaming_load_indexes_as_the_list_does_and_reports_the_same_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let file = dir.join("example.test.zone");
    let streamed = IndexedZone::load(&file, None, 3).unwrap();
    let listed = IndexedZone::new(load_zone(&file, None).unwrap(), 3);
    assert_eq!(streamed.id, 3);
    assert_eq!(streamed.apex, listed.apex);
    assert_eq!(streamed.serial(), listed.serial());
    assert_eq!(streamed.negative_ttl, listed.negative_ttl);
    let mut a: Vec<_> = streamed.nodes.keys().cloned().collect();
    let mut b: Vec<_> = listed.nodes.keys().cloned().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same names, empty non-terminals included");
    for (n, node) in &listed.nodes {
        let other = &streamed.nodes[n];
        assert_eq!(node.rrsets.len(), other.rrsets.len());
        for set in &node.rrsets {
            let o = other.get(set.rtype).unwrap();
            assert_eq!(o.ttl, set.ttl);
            assert_eq!(
                o.rdatas().collect::<Vec<_>>(),
                set.rdatas().collect::<Vec<_>>()
            );
            assert_eq!(o.targets, set.targets);
        }
    }
    // A zone that breaks the rules: the same errors, with lines, either way.
    let tmp = std::env::temp_dir().join(format!("sluice-stream-{}.zone", std::process::id()));
    for text in [
        "$ORIGIN a.test.\n@ SOA ns h 1 2 3 4 5\nwww CNAME x\nwww A 192.0.2.1\n",
        "$ORIGIN a.test.\n@ SOA ns h 1 2 3 4 5\nx.b.test. A 192.0.2.1\n",
        "$ORIGIN a.test.\nwww A 192.0.2.1\n",
        "$ORIGIN a.test.\n@ SOA ns h 1 2 3 4 5\nwww A 300.0.0.1\n",
    ] {
        std::fs::write(&tmp, text).unwrap();
        let streamed = IndexedZone::load(&tmp, None, 0).unwrap_err();
        let listed = load_zone(&tmp, None).unwrap_err();
        assert_eq!(streamed, listed, "{text}");
    }
    // The configured name must be the zone's.
    std::fs::write(&tmp, "$ORIGIN a.test.\n@ SOA ns h 1 2 3 4 5\n").unwrap();
    assert!(IndexedZone::load(&tmp, Some("b.test"), 0).is_err());
    assert!(IndexedZone::load(&tmp, Some("a.test"), 0).is_ok());
    let _ = std::fs::remove_file(&tmp);
}
