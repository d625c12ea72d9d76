//! Every answer case, against tests/data/example.test.zone: responses are decoded here
//! (a small reader, independent of the encoder) and checked section by section.

use std::net::Ipv4Addr;
use std::path::Path;

use dns::{answer, load_zone, rcode, rtype, transfer, Answer, Catalog, ResponderConfig};

fn catalog() -> Catalog {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let z = load_zone(&dir.join("example.test.zone"), None).expect("the test zone loads");
    Catalog::new(vec![z]).unwrap()
}

fn name_wire(text: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in text.trim_end_matches('.').split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// A query: ID 0x1234, RD, one question, optionally an OPT (version, keepalive).
fn query(name: &str, qtype: u16, edns: Option<(u8, bool)>) -> Vec<u8> {
    let mut q = vec![
        0x12,
        0x34,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        edns.is_some() as u8,
    ];
    q.extend(name_wire(name));
    q.extend(qtype.to_be_bytes());
    q.extend(1u16.to_be_bytes());
    if let Some((version, keepalive)) = edns {
        q.extend([0, 0, 41, 0x10, 0x00, 0, version, 0x80, 0]);
        if keepalive {
            q.extend([0, 4, 0, 11, 0, 0]);
        } else {
            q.extend([0, 0]);
        }
    }
    q
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    owner: String,
    rtype: u16,
    ttl: u32,
    /// RDATA with names decompressed to text where the type has them.
    data: String,
}

#[derive(Debug)]
struct Resp {
    id: u16,
    aa: bool,
    rd: bool,
    rcode: u16,
    question: Vec<u8>,
    answer: Vec<Rec>,
    authority: Vec<Rec>,
    additional: Vec<Rec>,
    len: usize,
}

fn read_name(m: &[u8], mut i: usize) -> (String, usize) {
    let mut s = String::new();
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = m[i] as usize;
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(i + 2);
            i = ((len & 0x3f) << 8) | m[i + 1] as usize;
            hops += 1;
            assert!(hops < 50, "pointer loop");
            continue;
        }
        if len == 0 {
            end.get_or_insert(i + 1);
            break;
        }
        s.push_str(&String::from_utf8_lossy(&m[i + 1..i + 1 + len]));
        s.push('.');
        i += 1 + len;
    }
    (if s.is_empty() { ".".into() } else { s }, end.unwrap())
}

fn u16_at(m: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([m[i], m[i + 1]])
}

fn read_rr(m: &[u8], i: usize) -> (Rec, usize) {
    let (owner, i) = read_name(m, i);
    let t = u16_at(m, i);
    let ttl = u32::from_be_bytes(m[i + 4..i + 8].try_into().unwrap());
    let rdlen = u16_at(m, i + 8) as usize;
    let rd = i + 10;
    let data = match t {
        rtype::A => format!(
            "{}",
            Ipv4Addr::from(<[u8; 4]>::try_from(&m[rd..rd + 4]).unwrap())
        ),
        rtype::NS | rtype::CNAME | rtype::PTR => read_name(m, rd).0,
        rtype::MX => format!("{} {}", u16_at(m, rd), read_name(m, rd + 2).0),
        rtype::SOA => {
            let (mname, j) = read_name(m, rd);
            let (rname, j) = read_name(m, j);
            format!(
                "{mname} {rname} {}",
                u32::from_be_bytes(m[j..j + 4].try_into().unwrap())
            )
        }
        rtype::OPT => format!(
            "payload {} ext {} opts {:?}",
            u16_at(m, i + 2),
            m[i + 4],
            &m[rd..rd + rdlen]
        ),
        _ => format!("{:?}", &m[rd..rd + rdlen]),
    };
    (
        Rec {
            owner: owner.to_lowercase(),
            rtype: t,
            ttl,
            data: data.to_lowercase(),
        },
        rd + rdlen,
    )
}

fn ask(c: &Catalog, q: &[u8]) -> Resp {
    let mut out = vec![0u8; 65535];
    let n = match answer(
        c,
        &ResponderConfig::default(),
        Ipv4Addr::LOCALHOST,
        q,
        &mut out,
    ) {
        Answer::Message(n) => n,
        other => panic!("expected a message, got {other:?}"),
    };
    let m = &out[..n];
    let counts = [u16_at(m, 4), u16_at(m, 6), u16_at(m, 8), u16_at(m, 10)];
    let mut i = 12;
    let qstart = i;
    for _ in 0..counts[0] {
        i = read_name(m, i).1 + 4;
    }
    let question = m[qstart..i].to_vec();
    let mut sections = [vec![], vec![], vec![]];
    for (s, &count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..count {
            let (r, next) = read_rr(m, i);
            s.push(r);
            i = next;
        }
    }
    assert_eq!(i, n, "the counts match the records");
    let [answer, authority, additional] = sections;
    Resp {
        id: u16_at(m, 0),
        aa: m[2] & 0x04 != 0,
        rd: m[2] & 0x01 != 0,
        rcode: u16::from(m[3] & 0x0f),
        question,
        answer,
        authority,
        additional,
        len: n,
    }
}

fn rec(owner: &str, t: u16, ttl: u32, data: &str) -> Rec {
    Rec {
        owner: owner.into(),
        rtype: t,
        ttl,
        data: data.into(),
    }
}

const SOA_NEG: &str = "ns1.example.test. hostmaster.example.test. 2024010101";

#[test]
fn positive_answers_of_each_type() {
    let c = catalog();
    let r = ask(&c, &query("www.example.test", rtype::A, None));
    assert_eq!((r.id, r.aa, r.rd, r.rcode), (0x1234, true, true, 0));
    assert_eq!(
        r.answer,
        vec![rec("www.example.test.", rtype::A, 3600, "192.0.2.80")]
    );
    assert!(r.authority.is_empty() && r.additional.is_empty());

    let r = ask(&c, &query("www.example.test", rtype::AAAA, None));
    assert_eq!(r.answer.len(), 1);
    assert_eq!(r.answer[0].rtype, rtype::AAAA);

    let r = ask(&c, &query("example.test", rtype::SOA, None));
    assert_eq!(
        r.answer,
        vec![rec("example.test.", rtype::SOA, 3600, SOA_NEG)]
    );

    let r = ask(&c, &query("txt.example.test", rtype::TXT, None));
    assert_eq!(
        r.answer[0].data,
        format!("{:?}", b"\x0bhello world\x0dsecond string")
    );

    let r = ask(&c, &query("ptr.example.test", rtype::PTR, None));
    assert_eq!(
        r.answer,
        vec![rec(
            "ptr.example.test.",
            rtype::PTR,
            3600,
            "www.example.test."
        )]
    );

    let r = ask(&c, &query("caa.example.test", rtype::CAA, None));
    assert_eq!(r.answer.len(), 1);
    assert_eq!(r.answer[0].rtype, rtype::CAA);

    let r = ask(&c, &query("inc.example.test", rtype::A, None));
    assert_eq!(
        r.answer,
        vec![rec("inc.example.test.", rtype::A, 3600, "192.0.2.200")],
        "$INCLUDE"
    );
}

#[test]
fn mx_srv_and_ns_bring_their_addresses() {
    let c = catalog();
    let r = ask(&c, &query("example.test", rtype::MX, None));
    assert_eq!(
        r.answer,
        vec![rec(
            "example.test.",
            rtype::MX,
            3600,
            "10 mail.example.test."
        )]
    );
    assert_eq!(
        r.additional.len(),
        2,
        "mail's A and AAAA: {:?}",
        r.additional
    );
    assert!(r.additional.iter().all(|a| a.owner == "mail.example.test."));

    let r = ask(&c, &query("_sip._tcp.example.test", rtype::SRV, None));
    assert_eq!(r.answer.len(), 1);
    assert_eq!(
        r.additional,
        vec![rec("sip.example.test.", rtype::A, 3600, "192.0.2.60")]
    );

    let r = ask(&c, &query("example.test", rtype::NS, None));
    assert_eq!(r.answer.len(), 2);
    assert_eq!(
        r.additional,
        vec![rec("ns1.example.test.", rtype::A, 3600, "192.0.2.53")],
        "only what we serve"
    );
}

#[test]
fn cname_chains_are_followed_inside_our_zones() {
    let c = catalog();
    let r = ask(&c, &query("chain1.example.test", rtype::A, None));
    assert_eq!(
        r.answer,
        vec![
            rec(
                "chain1.example.test.",
                rtype::CNAME,
                3600,
                "chain2.example.test."
            ),
            rec(
                "chain2.example.test.",
                rtype::CNAME,
                3600,
                "www.example.test."
            ),
            rec("www.example.test.", rtype::A, 3600, "192.0.2.80"),
        ]
    );
    assert!(r.aa);
    // Asking for the CNAME itself does not follow it.
    let r = ask(&c, &query("alias.example.test", rtype::CNAME, None));
    assert_eq!(r.answer.len(), 1);
    // Out of our zones: the CNAME alone.
    let r = ask(&c, &query("outside.example.test", rtype::A, None));
    assert_eq!(
        r.answer,
        vec![rec(
            "outside.example.test.",
            rtype::CNAME,
            3600,
            "www.example.net."
        )]
    );
    assert_eq!(r.rcode, 0);
    // A chain to a name that does not exist ends in NXDOMAIN (RFC 6604).
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let c = catalog();
    let r = ask(&c, &query("nope.example.test", rtype::A, None));
    assert_eq!(r.rcode, u16::from(rcode::NXDOMAIN));
    assert!(r.aa && r.answer.is_empty());
    assert_eq!(
        r.authority,
        vec![rec("example.test.", rtype::SOA, 300, SOA_NEG)],
        "TTL: min(SOA TTL, MINIMUM)"
    );

    let r = ask(&c, &query("www.example.test", rtype::TXT, None));
    assert_eq!(r.rcode, 0);
    assert!(r.answer.is_empty());
    assert_eq!(r.authority.len(), 1, "NODATA: the SOA");

    // Empty non-terminals exist: NODATA, not NXDOMAIN.
    for ent in ["sub.example.test", "ent.sub.example.test"] {
        let r = ask(&c, &query(ent, rtype::A, None));
        assert_eq!(
            (r.rcode, r.answer.len(), r.authority.len()),
            (0, 0, 1),
            "{ent}"
        );
    }
}

#[test]
fn wildcards_synthesize_for_names_that_do_not_exist() {
    let c = catalog();
    let r = ask(&c, &query("anything.wild.example.test", rtype::A, None));
    assert_eq!(
        r.answer,
        vec![rec(
            "anything.wild.example.test.",
            rtype::A,
            3600,
            "192.0.2.99"
        )]
    );
    let r = ask(&c, &query("a.b.wild.example.test", rtype::TXT, None));
    assert_eq!(r.answer.len(), 1, "any depth below the closest encloser");
    let r = ask(&c, &query("x.wild.example.test", rtype::MX, None));
    assert_eq!(
        (r.rcode, r.answer.len(), r.authority.len()),
        (0, 0, 1),
        "wildcard NODATA"
    );
    // The wildcard does not cover names that exist (RFC 4592 §2.2.1).
    let r = ask(&c, &query("x.www.example.test", rtype::A, None));
    assert_eq!(r.rcode, u16::from(rcode::NXDOMAIN));
}

#[test]
fn referrals_below_a_zone_cut_with_glue() {
    let c = catalog();
    for q in ["host.child.example.test", "child.example.test"] {
        let r = ask(&c, &query(q, rtype::A, None));
        assert_eq!(r.rcode, 0);
        assert!(!r.aa, "a referral is not authoritative");
        assert!(r.answer.is_empty());
        assert_eq!(
            r.authority,
            vec![rec(
                "child.example.test.",
                rtype::NS,
                3600,
                "ns.child.example.test."
            )]
        );
        assert_eq!(
            r.additional,
            vec![rec("ns.child.example.test.", rtype::A, 3600, "192.0.2.100")]
        );
    }
}

#[test]
fn refused_formerr_notimp() {
    let c = catalog();
    let r = ask(&c, &query("www.example.net", rtype::A, None));
    assert_eq!(r.rcode, u16::from(rcode::REFUSED));
    assert!(!r.aa);

    // Two questions.
    let mut q = query("www.example.test", rtype::A, None);
    q[5] = 2;
    let r = ask(&c, &q);
    assert_eq!(r.rcode, u16::from(rcode::FORMERR));
    // A truncated name.
    let r = ask(&c, &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w']);
    assert_eq!(r.rcode, u16::from(rcode::FORMERR));
    assert!(r.question.is_empty());
    // Opcode STATUS (2).
    let mut q = query("www.example.test", rtype::A, None);
    q[2] |= 2 << 3;
    let r = ask(&c, &q);
    assert_eq!(r.rcode, u16::from(rcode::NOTIMP));

    // A response, or less than a header: no answer at all.
    let mut out = [0u8; 512];
    let mut q = query("www.example.test", rtype::A, None);
    q[2] |= 0x80;
    assert_eq!(
        answer(
            &c,
            &ResponderConfig::default(),
            Ipv4Addr::LOCALHOST,
            &q,
            &mut out
        ),
        Answer::Drop
    );
    assert_eq!(
        answer(
            &c,
            &ResponderConfig::default(),
            Ipv4Addr::LOCALHOST,
            &[1, 2, 3],
            &mut out
        ),
        Answer::Drop
    );
}

#[test]
fn the_question_keeps_its_case_and_names_are_compressed() {
    let c = catalog();
    let q = query("WwW.ExAmPlE.TeSt", rtype::A, None);
    let r = ask(&c, &q);
    assert_eq!(&r.question[..], &q[12..]);
    assert_eq!(r.answer.len(), 1);
    // Header 12 + question 22 + one A record with a pointer owner (2+10+4) = 50.
    assert_eq!(r.len, 12 + 22 + 16);
    let r = ask(&c, &query("example.test", rtype::MX, None));
    // mail.example.test in the MX RDATA compresses to "mail" + pointer (7 bytes).
    assert!(r.len < 12 + 18 + 2 + 10 + 2 + 19 + 2 * (19 + 10) + 16 + 20);
}

#[test]
fn edns_opt_badvers_and_keepalive() {
    let c = catalog();
    let r = ask(&c, &query("www.example.test", rtype::A, Some((0, false))));
    assert_eq!(r.additional.len(), 1);
    assert_eq!(r.additional[0].rtype, rtype::OPT);
    assert_eq!(r.additional[0].data, "payload 1232 ext 0 opts []");
    let r = ask(&c, &query("www.example.test", rtype::A, Some((0, true))));
    assert_eq!(
        r.additional[0].data, "payload 1232 ext 0 opts [0, 11, 0, 2, 0, 100]",
        "edns-tcp-keepalive, 10 s"
    );
    let r = ask(&c, &query("www.example.test", rtype::A, Some((1, false))));
    assert_eq!(r.rcode, 0);
    assert!(r.answer.is_empty());
    assert_eq!(
        r.additional[0].data, "payload 1232 ext 1 opts []",
        "BADVERS = 16: 1 in the OPT's upper bits"
    );
}

#[test]
fn any_returns_one_rrset_of_the_name() {
    let c = catalog();
    let r = ask(&c, &query("www.example.test", rtype::ANY, None));
    let types: Vec<u16> = r.answer.iter().map(|a| a.rtype).collect();
    assert_eq!(
        types,
        vec![rtype::A],
        "RFC 8482: one RRset, the lowest type"
    );
}

#[test]
fn zone_transfer_only_for_allowed_sources() {
    let c = catalog();
    let q = query("example.test", rtype::AXFR, None);
    let r = ask(&c, &q);
    assert_eq!(r.rcode, u16::from(rcode::REFUSED));
    let cfg = ResponderConfig {
        transfer_allowed: vec![(Ipv4Addr::new(198, 18, 0, 0), 16)],
        ..Default::default()
    };
    let mut out = [0u8; 512];
    assert_eq!(
        answer(&c, &cfg, Ipv4Addr::new(198, 19, 0, 2), &q, &mut out),
        Answer::Message(out.len().min(answer_len(&c, &cfg, &q)))
    );
    assert_eq!(
        answer(&c, &cfg, Ipv4Addr::new(198, 18, 0, 2), &q, &mut out),
        Answer::Transfer
    );
    // A small message size forces several messages; SOA first and last.
    let mut messages = Vec::new();
    let n = transfer(&c, &q, 600, |m| messages.push(m.to_vec()));
    assert!(n > 1, "{n} messages");
    let mut records = 0;
    for m in &messages {
        records += u16_at(m, 6) as usize;
    }
    let z = load_zone(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/example.test.zone"),
        None,
    )
    .unwrap();
    assert_eq!(
        records,
        z.records.len() + 1,
        "every record, and the SOA twice"
    );
    let first = read_rr(&messages[0], 12 + name_wire("example.test").len() + 4).0;
    assert_eq!(first.rtype, rtype::SOA);
}

fn answer_len(c: &Catalog, cfg: &ResponderConfig, q: &[u8]) -> usize {
    let mut out = [0u8; 512];
    match answer(c, cfg, Ipv4Addr::new(198, 19, 0, 2), q, &mut out) {
        Answer::Message(n) => n,
        _ => 0,
    }
}

#[test]
fn several_zones_at_once_and_chains_across_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let c = Catalog::new(vec![
        load_zone(&dir.join("example.test.zone"), None).unwrap(),
        load_zone(&dir.join("second.test.zone"), None).unwrap(),
    ])
    .unwrap();
    assert_eq!(c.len(), 2);
    let r = ask(&c, &query("www.second.test", rtype::A, None));
    assert_eq!(
        r.answer,
        vec![rec("www.second.test.", rtype::A, 600, "198.51.100.80")]
    );
    let r = ask(&c, &query("nope.second.test", rtype::A, None));
    assert_eq!(r.authority[0].owner, "second.test.", "each zone's own SOA");
    assert_eq!(r.authority[0].ttl, 60);
    let r = ask(&c, &query("to-first.second.test", rtype::A, None));
    assert_eq!(
        r.answer.len(),
        2,
        "the chain continues in our other zone: {:?}",
        r.answer
    );
    assert_eq!(
        r.answer[1],
        rec("www.example.test.", rtype::A, 3600, "192.0.2.80")
    );
    // Loading a zone twice is refused.
    let twice = Catalog::new(vec![
        load_zone(&dir.join("second.test.zone"), None).unwrap(),
        load_zone(&dir.join("second.test.zone"), None).unwrap(),
    ]);
    assert!(twice.unwrap_err().contains("twice"));
}

#[test]
fn the_question_type_and_zone_are_noted_for_metrics() {
    use dns::{answer_noting, Asked};
    let c = catalog();
    let ids = c.apexes_by_id();
    let zone = |text: &str| ids.iter().position(|a| a[..] == name_wire(text)[..]);
    let mut out = vec![0u8; 4096];
    let mut asked = Asked::default();
    let cfg = ResponderConfig::default();
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let q = query("www.example.test.", rtype::AAAA, None);
    answer_noting(&c, &cfg, src, &q, &mut out, &mut asked);
    assert_eq!(asked.qtype, Some(rtype::AAAA));
    assert_eq!(asked.zone, zone("example.test."));
    assert!(asked.zone.is_some());
    // Outside every zone: REFUSED, and no zone noted.
    let q = query("www.example.org.", rtype::A, None);
    answer_noting(&c, &cfg, src, &q, &mut out, &mut asked);
    assert_eq!((asked.qtype, asked.zone), (Some(rtype::A), None));
    // Not a question at all: nothing noted.
    answer_noting(&c, &cfg, src, &[0u8; 5], &mut out, &mut asked);
    assert_eq!(asked, Asked::default());
}
