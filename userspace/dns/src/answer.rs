//! Answering one query: parse it, find what the zones say, encode the response into
//! the caller's buffer. Nothing is allocated: names are compared and built in stack
//! buffers, owner names that are the query name become a pointer to it, other names are
//! compressed against its suffixes.
//!
//! Covered: A, AAAA, NS, SOA, MX, TXT, CNAME (chains followed inside our zones), SRV,
//! PTR, CAA and any other type as stored; NXDOMAIN and NODATA with the SOA in the
//! authority section (RFC 2308); referrals with glue below zone cuts; wildcards
//! (RFC 4592); REFUSED outside our zones; FORMERR for malformed queries; NOTIMP for
//! other opcodes; ANY answered with one RRset (RFC 8482);
//! EDNS(0) with BADVERS and edns-tcp-keepalive (RFC 6891, RFC 7828); zone transfers
//! (AXFR, and IXFR answered with the whole zone) for allowed sources.

use std::net::Ipv4Addr;

use crate::catalog::{Catalog, IndexedZone, Node, RrSet};
use crate::name::{self, MAX_NAME};
use crate::{header, rcode, rtype};

/// What the responder is told about its setting.
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// The UDP payload size our OPT record advertises.
    pub edns_payload: u16,
    /// The idle timeout advertised in edns-tcp-keepalive, in units of 100 ms (RFC 7828),
    /// when the client asked for it.
    pub tcp_keepalive_100ms: Option<u16>,
    /// Sources allowed to transfer zones (AXFR/IXFR): (network, prefix length).
    pub transfer_allowed: Vec<(Ipv4Addr, u8)>,
    /// The TSIG key a transfer request must be signed with, if one is required (as
    /// well as an allowed source when `transfer_allowed` names any; instead of one
    /// when it names none). Its answers are signed with it: [`transfer_signed`].
    pub transfer_key: Option<crate::xfr::TsigKey>,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            edns_payload: 1232,
            tcp_keepalive_100ms: Some(100),
            transfer_allowed: Vec::new(),
            transfer_key: None,
        }
    }
}

impl ResponderConfig {
    /// Whether `src` may transfer zones (its request's key, if one is required, is
    /// checked by [`transfer_signed`]).
    pub fn may_transfer(&self, src: Ipv4Addr) -> bool {
        if self.transfer_allowed.is_empty() {
            return self.transfer_key.is_some();
        }
        self.transfer_allowed.iter().any(|&(net, len)| {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(src) & mask == u32::from(net) & mask
        })
    }
}

/// What to do with a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send the first this-many bytes of the buffer.
    Message(usize),
    /// A zone transfer of the zone the question names: call [`transfer`].
    Transfer,
    /// Say nothing (a response, or less than a header).
    Drop,
}

/// Counters by outcome, kept by the caller per worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerStats {
    /// Every query counted, answered or not: the sum of all the others.
    pub queries: u64,
    /// Answered NOERROR (NODATA included), and zone transfers started.
    pub noerror: u64,
    /// Answered NXDOMAIN.
    pub nxdomain: u64,
    /// Answered REFUSED.
    pub refused: u64,
    /// Answered FORMERR.
    pub formerr: u64,
    /// Answered NOTIMP.
    pub notimp: u64,
    /// Answered with another rcode, or a message too short to carry one.
    pub other: u64,
    /// Not answered: responses, messages shorter than a header, answers that did not
    /// fit the buffer.
    pub dropped: u64,
}

impl AnswerStats {
    /// Counts a response's rcode (from its header) or a drop.
    pub fn count(&mut self, out: &[u8], a: Answer) {
        self.queries += 1;
        match a {
            Answer::Drop => self.dropped += 1,
            Answer::Transfer => self.noerror += 1,
            Answer::Message(n) if n >= header::FLAGS.end => {
                let flags = header::get(out, header::FLAGS).expect("the message is in `out`");
                match (flags & header::RCODE_MASK) as u8 {
                    rcode::NOERROR => self.noerror += 1,
                    rcode::NXDOMAIN => self.nxdomain += 1,
                    rcode::REFUSED => self.refused += 1,
                    rcode::FORMERR => self.formerr += 1,
                    rcode::NOTIMP => self.notimp += 1,
                    _ => self.other += 1,
                }
            }
            Answer::Message(_) => self.other += 1,
        }
    }
}

/// A parsed query (the parts an answer needs).
struct Query<'q> {
    id: u16,
    flags: u16,
    /// The question as received (name with its case, type, class): echoed verbatim.
    question: &'q [u8],
    qname: [u8; MAX_NAME],
    qname_len: usize,
    qtype: u16,
    qclass: u16,
    edns: Option<Edns>,
}

#[derive(Clone, Copy)]
struct Edns {
    version: u8,
    dnssec_ok: bool,
    keepalive: bool,
}

// The query lives on the stack and is moved once: boxing it would allocate per query.
#[allow(clippy::large_enum_variant)]
enum Parsed<'q> {
    Ok(Query<'q>),
    /// Malformed: FORMERR, with the question if it could be read.
    FormErr {
        id: u16,
        flags: u16,
        question: Option<&'q [u8]>,
    },
    Drop,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Reads an uncompressed name at `i` into `lower`; returns (length, end).
fn read_name(b: &[u8], mut i: usize, lower: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let mut n = 0;
    loop {
        let len = *b.get(i)? as usize;
        if len & 0xc0 != 0 {
            return None; // a pointer (or reserved bits): not in a question
        }
        if n + len + 1 > MAX_NAME {
            return None;
        }
        let label = b.get(i..i + 1 + len)?;
        for (k, &c) in label.iter().enumerate() {
            lower[n + k] = if k == 0 { c } else { c.to_ascii_lowercase() };
        }
        n += len + 1;
        i += len + 1;
        if len == 0 {
            return Some((n, i));
        }
    }
}

/// Skips a (possibly compressed) name in a resource record.
fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *b.get(i)? as usize;
        match len & 0xc0 {
            0 if len == 0 => return Some(i + 1),
            0 => i += 1 + len,
            0xc0 => return Some(i + 2),
            _ => return None,
        }
    }
}

fn parse(q: &[u8]) -> Parsed<'_> {
    let (Some(id), Some(flags)) = (header::get(q, header::ID), header::get(q, header::FLAGS))
    else {
        return Parsed::Drop;
    };
    if q.len() < header::LEN || flags & header::QR != 0 {
        return Parsed::Drop; // short, or a response: never answer those
    }
    let qd = header::get(q, header::QDCOUNT).unwrap_or(0);
    let an = header::get(q, header::ANCOUNT).unwrap_or(0);
    let ns = header::get(q, header::NSCOUNT).unwrap_or(0);
    let ar = header::get(q, header::ARCOUNT).unwrap_or(0);
    let mut qname = [0u8; MAX_NAME];
    let question = if qd == 1 {
        match read_name(q, header::LEN, &mut qname) {
            Some((n, end)) if end + 4 <= q.len() => Some((n, end)),
            _ => None,
        }
    } else {
        None
    };
    let Some((qname_len, end)) = question else {
        return Parsed::FormErr {
            id,
            flags,
            question: None,
        };
    };
    let qbytes = &q[header::LEN..end + 4];
    let formerr = Parsed::FormErr {
        id,
        flags,
        question: Some(qbytes),
    };
    let qtype = u16_at(q, end).unwrap_or(0);
    let qclass = u16_at(q, end + 2).unwrap_or(0);
    // An IXFR carries the client's SOA in the authority section (RFC 1995 §3); it is
    // answered with the whole zone, so the SOA is skipped unread.
    let ixfr_soa = qtype == rtype::IXFR && ns == 1;
    if an != 0 || (ns != 0 && !ixfr_soa) {
        return formerr;
    }
    let mut i = end + 4;
    if ixfr_soa {
        let Some(after) = skip_name(q, i) else {
            return formerr;
        };
        let Some(rdlen) = u16_at(q, after + 8) else {
            return formerr;
        };
        i = after + 10 + usize::from(rdlen);
        if i > q.len() {
            return formerr;
        }
    }
    // The additional section: at most one OPT, and nothing malformed.
    let mut edns = None;
    for _ in 0..ar {
        let owner = i;
        let Some(after) = skip_name(q, i) else {
            return formerr;
        };
        let (Some(t), Some(class), Some(rdlen)) =
            (u16_at(q, after), u16_at(q, after + 2), u16_at(q, after + 8))
        else {
            return formerr;
        };
        let rdata = after + 10;
        let next = rdata + rdlen as usize;
        if next > q.len() {
            return formerr;
        }
        if t == rtype::OPT {
            if edns.is_some() || q[owner] != 0 {
                return formerr; // two OPTs, or one not owned by the root (RFC 6891 §6.1.1)
            }
            let _ = class; // the client's payload size: TCP answers are not limited by it
            let version = q[after + 5];
            let dnssec_ok = q[after + 6] & 0x80 != 0;
            let mut keepalive = false;
            let mut o = rdata;
            while o + 4 <= next {
                let code = u16_at(q, o).unwrap_or(0);
                let len = u16_at(q, o + 2).unwrap_or(0) as usize;
                if o + 4 + len > next {
                    return formerr;
                }
                if code == 11 {
                    keepalive = true;
                }
                o += 4 + len;
            }
            if o != next {
                return formerr;
            }
            edns = Some(Edns {
                version,
                dnssec_ok,
                keepalive,
            });
        }
        i = next;
    }
    Parsed::Ok(Query {
        id,
        flags,
        question: qbytes,
        qname,
        qname_len,
        qtype,
        qclass,
        edns,
    })
}

/// The top two bits of a compression pointer (RFC 1035 §4.1.4); the other 14 are the
/// offset in the message of the name it stands for.
const POINTER: u16 = 0xc000;

/// Writes a response into a buffer, compressing names against the question's.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// The question name, lower-case, and where its labels start.
    qname: &'a [u8],
    qlabels: [u8; 128],
    qlabel_count: usize,
    full: bool,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8], qname: &'a [u8]) -> Writer<'a> {
        let mut qlabels = [0u8; 128];
        let qlabel_count = name::label_offsets(qname, &mut qlabels).unwrap_or(0);
        Writer {
            buf,
            len: 0,
            qname,
            qlabels,
            qlabel_count,
            full: false,
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        if self.len + b.len() > self.buf.len() {
            self.full = true;
            return;
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    fn set_u16(&mut self, at: usize, v: u16) {
        if at + 2 <= self.len {
            self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Overwrites a header field (a count, the flags) once the header is written.
    fn set_header(&mut self, field: header::Field, v: u16) {
        self.set_u16(field.start, v);
    }

    /// A name, with its longest suffix shared with the question name as a pointer.
    fn name(&mut self, n: &[u8]) {
        let mut i = 0;
        while i < n.len() && n[i] != 0 {
            let suffix = &n[i..];
            if let Some(at) = self.in_qname(suffix) {
                self.bytes(&n[..i]);
                self.u16(POINTER | (header::LEN + at) as u16);
                return;
            }
            i += 1 + n[i] as usize;
        }
        self.bytes(n);
    }

    /// Where `suffix` starts in the question name, if it is one of its suffixes.
    fn in_qname(&self, suffix: &[u8]) -> Option<usize> {
        let q = self.qname;
        if suffix.len() > q.len() || suffix.len() <= 1 {
            return None;
        }
        let at = q.len() - suffix.len();
        (q[at..] == *suffix && self.qlabels[..self.qlabel_count].contains(&(at as u8)))
            .then_some(at)
    }

    /// One resource record; `owner` None means the question name.
    fn rr(&mut self, owner: Option<&[u8]>, t: u16, ttl: u32, rdata: &[u8]) {
        match owner {
            None => self.u16(POINTER | header::LEN as u16),
            Some(o) => self.name(o),
        }
        self.u16(t);
        self.u16(1);
        self.u32(ttl);
        let len_at = self.len;
        self.u16(0);
        let start = self.len;
        match t {
            rtype::NS | rtype::CNAME | rtype::PTR => self.name(rdata),
            rtype::MX if rdata.len() > 2 => {
                self.bytes(&rdata[..2]);
                self.name(&rdata[2..]);
            }
            rtype::SOA => {
                let m = skip_name(rdata, 0).unwrap_or(rdata.len());
                let r = skip_name(rdata, m).unwrap_or(rdata.len());
                self.name(&rdata[..m]);
                self.name(&rdata[m..r]);
                self.bytes(&rdata[r..]);
            }
            _ => self.bytes(rdata),
        }
        let rdlen = (self.len - start) as u16;
        self.set_u16(len_at, rdlen);
    }

    fn rrset(&mut self, owner: Option<&[u8]>, set: &RrSet) -> u16 {
        for rd in set.rdatas() {
            self.rr(owner, set.rtype, set.ttl, rd);
        }
        set.len() as u16
    }
}

/// What a name is, in a zone.
enum Lookup<'z> {
    /// A node with data: the name's own, or its closest encloser's wildcard.
    Found(&'z Node),
    /// An empty non-terminal: NODATA.
    Empty,
    /// Below a zone cut: refer to the delegation at this name.
    Delegation(&'z [u8], &'z Node),
    NxDomain,
}

fn lookup<'z>(z: &'z IndexedZone, name: &[u8], qtype: u16) -> Lookup<'z> {
    // The zone cut closest to the apex at or above the name (not at the apex).
    let mut cut: Option<(&'z [u8], &'z Node)> = None;
    let mut n = name;
    while n.len() > z.apex.len() {
        if let Some((k, node)) = z.nodes.get_key_value(n) {
            if node.get(rtype::NS).is_some() {
                cut = Some((k, node));
            }
        }
        match name::parent(n) {
            Some(p) => n = p,
            None => break,
        }
    }
    if let Some((at, node)) = cut {
        // DS lives on the parent side of the cut.
        if !(at == name && qtype == rtype::DS) {
            return Lookup::Delegation(at, node);
        }
    }
    if let Some(node) = z.nodes.get(name) {
        return if node.rrsets.is_empty() {
            Lookup::Empty
        } else {
            Lookup::Found(node)
        };
    }
    // RFC 4592: the closest encloser's wildcard, if it has one.
    let mut ce = name;
    while let Some(p) = name::parent(ce) {
        ce = p;
        if z.nodes.contains_key(ce) || ce == &z.apex[..] {
            break;
        }
    }
    let mut wild = [0u8; MAX_NAME + 2];
    if ce.len() + 2 <= MAX_NAME {
        wild[0] = 1;
        wild[1] = b'*';
        wild[2..2 + ce.len()].copy_from_slice(ce);
        if let Some(node) = z.nodes.get(&wild[..2 + ce.len()]) {
            return if node.rrsets.is_empty() {
                Lookup::Empty
            } else {
                Lookup::Found(node)
            };
        }
    }
    Lookup::NxDomain
}

const MAX_CHAIN: usize = 8;
const MAX_ADDITIONAL: usize = 16;

/// Starts a response over whatever `w` held: the query's `id`, flags built from the
/// query's `qflags`, and section counts of zero for the caller to fill in.
fn write_header(w: &mut Writer<'_>, id: u16, qflags: u16, aa: bool, rc: u8) {
    w.len = 0;
    w.u16(id);
    // QR, the query's opcode, AA, the query's RD and CD; RA, AD, TC clear.
    let flags = header::QR
        | (qflags & (header::OPCODE_MASK | header::RD | header::CD))
        | if aa { header::AA } else { 0 }
        | (u16::from(rc) & header::RCODE_MASK);
    w.u16(flags);
    // QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT: set as the sections are written.
    w.u16(0);
    w.u16(0);
    w.u16(0);
    w.u16(0);
}

fn opt(w: &mut Writer<'_>, cfg: &ResponderConfig, e: &Edns, ext_rcode: u8) {
    w.bytes(&[0]);
    w.u16(rtype::OPT);
    w.u16(cfg.edns_payload);
    w.bytes(&[ext_rcode, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
    match (e.keepalive, cfg.tcp_keepalive_100ms) {
        (true, Some(t)) => {
            w.u16(6);
            w.u16(11);
            w.u16(2);
            w.u16(t);
        }
        _ => w.u16(0),
    }
}

/// What a query asked, as [`answer_noting`] found it: for the caller's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// The question's type (None: no question could be read).
    pub qtype: Option<u16>,
    /// The zone the name fell in ([`crate::catalog::IndexedZone::id`]; None: none).
    pub zone: Option<usize>,
}

/// Answers `query` (one DNS message, without TCP's length prefix) from `catalog` into
/// `out`. `src` is the client's address (for transfer permissions).
pub fn answer(
    catalog: &Catalog,
    cfg: &ResponderConfig,
    src: Ipv4Addr,
    query: &[u8],
    out: &mut [u8],
) -> Answer {
    answer_noting(catalog, cfg, src, query, out, &mut Asked::default())
}

/// [`answer`], noting in `asked` the question's type and the zone it fell in.
pub fn answer_noting(
    catalog: &Catalog,
    cfg: &ResponderConfig,
    src: Ipv4Addr,
    query: &[u8],
    out: &mut [u8],
    asked: &mut Asked,
) -> Answer {
    *asked = Asked::default();
    let q = match parse(query) {
        Parsed::Drop => return Answer::Drop,
        Parsed::FormErr {
            id,
            flags,
            question,
        } => {
            let mut w = Writer::new(out, &[0]);
            // Opcode and RD as asked; CD is not echoed here.
            let echoed = flags & (header::OPCODE_MASK | header::RD);
            write_header(&mut w, id, echoed, false, rcode::FORMERR);
            if let Some(qb) = question {
                w.bytes(qb);
                w.set_header(header::QDCOUNT, 1);
            }
            return if w.full {
                Answer::Drop
            } else {
                Answer::Message(w.len)
            };
        }
        Parsed::Ok(q) => q,
    };
    asked.qtype = Some(q.qtype);
    let qname = &q.qname[..q.qname_len];
    let mut w = Writer::new(out, qname);
    let opcode = (q.flags & header::OPCODE_MASK) >> header::OPCODE_SHIFT;
    let reply = |w: &mut Writer<'_>, aa: bool, rc: u8| {
        write_header(w, q.id, q.flags, aa, rc);
        w.bytes(q.question);
        w.set_header(header::QDCOUNT, 1);
    };
    if let Some(e) = q.edns {
        if e.version != 0 {
            // BADVERS: extended rcode 16 = 1 in the OPT's upper bits, 0 in the header.
            reply(&mut w, false, 0);
            opt(
                &mut w,
                cfg,
                &e,
                (rcode::BADVERS >> header::RCODE_BITS) as u8,
            );
            w.set_header(header::ARCOUNT, 1);
            return if w.full {
                Answer::Drop
            } else {
                Answer::Message(w.len)
            };
        }
    }
    let finish = |w: &mut Writer<'_>, ar: u16| {
        let mut ar = ar;
        if let Some(e) = &q.edns {
            opt(w, cfg, e, 0);
            ar += 1;
        }
        w.set_header(header::ARCOUNT, ar);
        if w.full {
            Answer::Drop
        } else {
            Answer::Message(w.len)
        }
    };
    if opcode != 0 {
        reply(&mut w, false, rcode::NOTIMP);
        return finish(&mut w, 0);
    }
    if q.qclass != 1 && q.qclass != 255 {
        reply(&mut w, false, rcode::REFUSED);
        return finish(&mut w, 0);
    }
    let Some(zone) = catalog.find_zone(qname) else {
        reply(&mut w, false, rcode::REFUSED);
        return finish(&mut w, 0);
    };
    asked.zone = Some(zone.id);
    if !zone.available {
        // A secondary zone not transferred yet, or expired.
        reply(&mut w, false, rcode::SERVFAIL);
        return finish(&mut w, 0);
    }
    if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
        if qname == &zone.apex[..] && cfg.may_transfer(src) {
            return Answer::Transfer;
        }
        reply(&mut w, false, rcode::REFUSED);
        return finish(&mut w, 0);
    }

    // The answer section, following CNAMEs; then authority and additional.
    reply(&mut w, true, rcode::NOERROR);
    let mut an = 0u16;
    let mut ns = 0u16;
    let mut additional: [Option<&[u8]>; MAX_ADDITIONAL] = [None; MAX_ADDITIONAL];
    let mut n_add = 0usize;
    let mut name_buf = [0u8; MAX_NAME];
    let mut cur_len = qname.len();
    name_buf[..cur_len].copy_from_slice(qname);
    let mut cur_zone = zone;
    let mut rc = rcode::NOERROR;
    let mut aa = true;
    let mut negative_zone: Option<&IndexedZone> = None;
    let mut referral: Option<(&[u8], &Node)> = None;
    for step in 0..=MAX_CHAIN {
        let cur = &name_buf[..cur_len];
        let owner = if step == 0 { None } else { Some(cur) };
        match lookup(cur_zone, cur, q.qtype) {
            Lookup::Delegation(at, node) => {
                if step == 0 {
                    aa = false;
                    referral = Some((at, node));
                }
                break;
            }
            Lookup::Empty => {
                negative_zone = Some(cur_zone);
                break;
            }
            Lookup::NxDomain => {
                rc = rcode::NXDOMAIN;
                negative_zone = Some(cur_zone);
                break;
            }
            Lookup::Found(node) => {
                if q.qtype == rtype::ANY {
                    // RFC 8482 §4.1: one RRset of the name is enough (as Knot DNS does:
                    // the lowest type), so ANY cannot amplify.
                    if let Some(set) = node.rrsets.iter().min_by_key(|s| s.rtype) {
                        an += w.rrset(owner, set);
                    }
                    break;
                }
                if let Some(set) = node.get(q.qtype) {
                    an += w.rrset(owner, set);
                    if matches!(q.qtype, rtype::MX | rtype::SRV | rtype::NS) {
                        for t in &set.targets {
                            if n_add < MAX_ADDITIONAL {
                                additional[n_add] = Some(t);
                                n_add += 1;
                            }
                        }
                    }
                    break;
                }
                match node.get(rtype::CNAME) {
                    Some(cname) if step < MAX_CHAIN => {
                        an += w.rrset(owner, cname);
                        let Some(target) = cname.targets.first() else {
                            break;
                        };
                        // Followed only while it stays in our zones.
                        match catalog.find_zone(target) {
                            Some(z) if z.available => {
                                cur_zone = z;
                                cur_len = target.len();
                                name_buf[..cur_len].copy_from_slice(target);
                            }
                            _ => break,
                        }
                    }
                    Some(_) => break,
                    None => {
                        negative_zone = Some(cur_zone);
                        break;
                    }
                }
            }
        }
    }
    if let Some(z) = negative_zone {
        w.rr(Some(&z.apex), rtype::SOA, z.negative_ttl, &z.soa_rdata);
        ns += 1;
    }
    if let Some((at, node)) = referral {
        if let Some(set) = node.get(rtype::NS) {
            ns += w.rrset(Some(at), set);
            for t in &set.targets {
                if n_add < MAX_ADDITIONAL {
                    additional[n_add] = Some(t);
                    n_add += 1;
                }
            }
        }
    }
    // Addresses of the targets we serve (glue under a cut included).
    let mut ar = 0u16;
    for t in additional[..n_add].iter().flatten() {
        let Some(z) = catalog.find_zone(t) else {
            continue;
        };
        let Some(node) = z.nodes.get(*t) else {
            continue;
        };
        for ty in [rtype::A, rtype::AAAA] {
            if let Some(set) = node.get(ty) {
                ar += w.rrset(Some(t), set);
            }
        }
    }
    // Fix up the header: rcode, AA, counts.
    let flags = header::get(w.buf, header::FLAGS).expect("`out` holds at least a header's flags");
    let flags = (flags & !(header::AA | header::RCODE_MASK))
        | if aa { header::AA } else { 0 }
        | u16::from(rc);
    w.set_header(header::FLAGS, flags);
    w.set_header(header::ANCOUNT, an);
    w.set_header(header::NSCOUNT, ns);
    finish(&mut w, ar)
}

/// The messages of a zone transfer (RFC 5936) of the zone `query` asks for: the SOA,
/// every record, the SOA again, packed into messages of at most `max` bytes each, handed
/// to `emit` one by one. Returns how many messages.
pub fn transfer(catalog: &Catalog, query: &[u8], max: usize, mut emit: impl FnMut(&[u8])) -> usize {
    let Parsed::Ok(q) = parse(query) else {
        return 0;
    };
    let qname = &q.qname[..q.qname_len];
    let Some(z) = catalog.zone(qname) else {
        return 0;
    };
    let mut buf = vec![0u8; max.clamp(512, 65535)];
    let mut sent = 0;
    let records = z.transfer_records();
    let mut w = Writer::new(&mut buf, qname);
    let start = |w: &mut Writer<'_>| {
        write_header(w, q.id, q.flags, true, rcode::NOERROR);
        w.bytes(q.question);
        w.set_header(header::QDCOUNT, 1);
    };
    start(&mut w);
    let mut count = 0u16;
    for (owner, rtype, ttl, rdata) in records {
        let mark = w.len;
        w.rr(Some(owner), rtype, ttl, rdata);
        if w.full || w.len > max {
            // This message is full: send it without the record, start the next.
            w.full = false;
            w.len = mark;
            w.set_header(header::ANCOUNT, count);
            emit(&w.buf[..w.len]);
            sent += 1;
            start(&mut w);
            count = 0;
            w.rr(Some(owner), rtype, ttl, rdata);
        }
        count += 1;
    }
    w.set_header(header::ANCOUNT, count);
    emit(&w.buf[..w.len]);
    sent + 1
}

/// A zone transfer whose request must be signed with `key` (RFC 8945): the request's
/// TSIG is checked, and every message of the answer is signed, as [`transfer`] sends
/// them otherwise. A request unsigned (REFUSED) or badly signed (NOTAUTH, with the
/// TSIG error) gets that one message and the reason as the error.
pub fn transfer_signed(
    catalog: &Catalog,
    query: &[u8],
    max: usize,
    key: &crate::xfr::TsigKey,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, String> {
    use domain::base::iana::{Class, Rcode, Rtype};
    use domain::base::message_builder::{AnswerBuilder, MessageBuilder, StaticCompressor};
    use domain::base::name::Name as DName;
    use domain::base::rdata::UnknownRecordData;
    use domain::base::{Message, Ttl};
    use domain::rdata::tsig::Time48;
    use domain::tsig::ServerSequence;

    let mut msg =
        Message::from_octets(query.to_vec()).map_err(|_| "a short request".to_string())?;
    let now = Time48::now();
    let mut seq = match ServerSequence::request(key, &mut msg, now) {
        Ok(Some(seq)) => seq,
        Ok(None) => {
            if let Ok(b) = MessageBuilder::new_vec().start_answer(&msg, Rcode::REFUSED) {
                emit(&b.finish());
            }
            return Err("an unsigned transfer request; the key is required".into());
        }
        Err(e) => {
            let why = format!("TSIG: {e}");
            if let Ok(b) = e.build_message(&msg, MessageBuilder::new_vec()) {
                emit(&b.finish());
            }
            return Err(why);
        }
    };
    let Parsed::Ok(q) = parse(query) else {
        return Err("a malformed transfer request".into());
    };
    let Some(z) = catalog
        .zone(&q.qname[..q.qname_len])
        .filter(|z| z.available)
    else {
        return Err("a transfer of no zone served".into());
    };
    let max = max.clamp(512, 65535);
    // Room left in each message for its TSIG record.
    let reserve = usize::from(key.compose_len());
    type Builder = AnswerBuilder<StaticCompressor<Vec<u8>>>;
    let start = || -> Result<Builder, String> {
        let mut b = MessageBuilder::from_target(StaticCompressor::new(Vec::with_capacity(max)))
            .map_err(|_| "no room for a message".to_string())?;
        b.set_push_limit(max - reserve);
        let mut a = b
            .start_answer(&msg, Rcode::NOERROR)
            .map_err(|_| "no room for the question".to_string())?;
        a.header_mut().set_aa(true);
        Ok(a)
    };
    let mut send = |a: Builder, seq: &mut ServerSequence<_>| -> Result<(), String> {
        let mut add = a.additional();
        add.as_builder_mut().set_push_limit(max);
        seq.answer(&mut add, now)
            .map_err(|_| "no room for the TSIG record".to_string())?;
        emit(add.as_builder().as_slice());
        Ok(())
    };
    let mut a = start()?;
    let (mut sent, mut count) = (0usize, 0usize);
    for (owner, t, ttl, rdata) in z.transfer_records() {
        let owner = DName::from_slice(owner).map_err(|_| "a malformed owner".to_string())?;
        let data = UnknownRecordData::from_octets(Rtype::from_int(t), rdata)
            .map_err(|_| "a record too long".to_string())?;
        let rr = (owner, Class::IN, Ttl::from_secs(ttl), data);
        if a.push(&rr).is_err() {
            if count == 0 {
                return Err("a record too big for a message".into());
            }
            send(a, &mut seq)?;
            sent += 1;
            a = start()?;
            count = 0;
            a.push(&rr)
                .map_err(|_| "a record too big for a message".to_string())?;
        }
        count += 1;
    }
    send(a, &mut seq)?;
    Ok(sent + 1)
}
