//! Reading a DNS message back into comparable parts: for tests, for comparing our answers
//! with another server's, and for tools. Names are decompressed and lower-cased, and the
//! names inside the RDATA of the types this crate compresses are too, so two encodings
//! of one answer compare equal. Not on any fast path.

use crate::{header, rtype};

/// One resource record, normalized.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    /// The owner name as text, lower-case, ending with the root's dot.
    pub owner: String,
    /// The record type (see [`crate::rtype`]).
    pub rtype: u16,
    /// The class (1 = IN); in an OPT record, the sender's UDP payload size.
    pub class: u16,
    /// Time to live in seconds; in an OPT record, the extended rcode, version and flags.
    pub ttl: u32,
    /// RDATA, with embedded names (NS, CNAME, PTR, MX, SOA, SRV) decompressed,
    /// lower-cased, in wire form; the OPT's options as they are.
    pub rdata: Vec<u8>,
}

/// A whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The ID that pairs a response with its query.
    pub id: u16,
    /// The flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE; see
    /// [`crate::header`]).
    pub flags: u16,
    /// The questions: name (text, lower-case), type and class.
    pub question: Vec<(String, u16, u16)>,
    /// The records that answer the question, with the CNAMEs leading to them.
    pub answer: Vec<Record>,
    /// The authority section: the NS records of a referral, or the zone's SOA with a
    /// negative answer.
    pub authority: Vec<Record>,
    /// Addresses of names in the other sections (glue among them), and the OPT record.
    pub additional: Vec<Record>,
}

impl Message {
    /// The response code, EDNS extended bits included when there is an OPT.
    pub fn rcode(&self) -> u16 {
        let ext = self
            .additional
            .iter()
            .find(|r| r.rtype == rtype::OPT)
            .map_or(0, |o| u16::from((o.ttl >> 24) as u8));
        (ext << header::RCODE_BITS) | (self.flags & header::RCODE_MASK)
    }

    /// Whether the responder claims authority for the answer (the AA bit): false in
    /// referrals and refusals.
    pub fn aa(&self) -> bool {
        self.flags & header::AA != 0
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DNS message: {0}")]
pub struct DecodeError(&'static str);

fn u16_at(m: &[u8], i: usize) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes([
        *m.get(i).ok_or(DecodeError("truncated"))?,
        *m.get(i + 1).ok_or(DecodeError("truncated"))?,
    ]))
}

/// A name at `i`: (lower-case wire form, end of it in the message).
fn name(m: &[u8], mut i: usize) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut out = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *m.get(i).ok_or(DecodeError("truncated name"))? as usize;
        match len & 0xc0 {
            0xc0 => {
                end.get_or_insert(i + 2);
                i = ((len & 0x3f) << 8)
                    | *m.get(i + 1).ok_or(DecodeError("truncated pointer"))? as usize;
            }
            0 if len == 0 => {
                out.push(0);
                return Ok((out, end.unwrap_or(i + 1)));
            }
            0 => {
                let label = m
                    .get(i..i + 1 + len)
                    .ok_or(DecodeError("truncated label"))?;
                out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
                i += 1 + len;
            }
            _ => return Err(DecodeError("reserved label type")),
        }
    }
    Err(DecodeError("a compression loop"))
}

fn record(m: &[u8], i: usize) -> Result<(Record, usize), DecodeError> {
    let (owner, i) = name(m, i)?;
    let t = u16_at(m, i)?;
    let class = u16_at(m, i + 2)?;
    let ttl = (u32::from(u16_at(m, i + 4)?) << 16) | u32::from(u16_at(m, i + 6)?);
    let len = u16_at(m, i + 8)? as usize;
    let start = i + 10;
    let end = start + len;
    let raw = m.get(start..end).ok_or(DecodeError("truncated RDATA"))?;
    let rdata = match t {
        rtype::NS | rtype::CNAME | rtype::PTR => name(m, start)?.0,
        rtype::MX => {
            let mut v = raw.get(..2).ok_or(DecodeError("short MX"))?.to_vec();
            v.extend(name(m, start + 2)?.0);
            v
        }
        rtype::SRV => {
            let mut v = raw.get(..6).ok_or(DecodeError("short SRV"))?.to_vec();
            v.extend(name(m, start + 6)?.0);
            v
        }
        rtype::SOA => {
            let (mname, j) = name(m, start)?;
            let (rname, j) = name(m, j)?;
            let mut v = mname;
            v.extend(rname);
            v.extend(m.get(j..end).ok_or(DecodeError("short SOA"))?);
            v
        }
        _ => raw.to_vec(),
    };
    Ok((
        Record {
            owner: crate::name::to_text(&owner),
            rtype: t,
            class,
            ttl,
            rdata,
        },
        end,
    ))
}

/// Reads a message.
pub fn decode(m: &[u8]) -> Result<Message, DecodeError> {
    let field = |f| header::get(m, f).ok_or(DecodeError("truncated"));
    let counts = [
        field(header::QDCOUNT)?,
        field(header::ANCOUNT)?,
        field(header::NSCOUNT)?,
        field(header::ARCOUNT)?,
    ];
    let mut i = header::LEN;
    let mut question = Vec::new();
    for _ in 0..counts[0] {
        let (n, end) = name(m, i)?;
        question.push((
            crate::name::to_text(&n),
            u16_at(m, end)?,
            u16_at(m, end + 2)?,
        ));
        i = end + 4;
    }
    let mut sections = [Vec::new(), Vec::new(), Vec::new()];
    for (s, &count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..count {
            let (r, next) = record(m, i)?;
            s.push(r);
            i = next;
        }
    }
    if i != m.len() {
        return Err(DecodeError("bytes after the last record"));
    }
    let [answer, authority, additional] = sections;
    Ok(Message {
        id: field(header::ID)?,
        flags: field(header::FLAGS)?,
        question,
        answer,
        authority,
        additional,
    })
}

/// A query for `name` (text) and `qtype`, with an OPT if `edns`, as bytes.
pub fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    // Flags all clear: a standard query, no recursion asked for.
    let mut q = vec![0; header::LEN];
    q[header::ID].copy_from_slice(&id.to_be_bytes());
    q[header::QDCOUNT].copy_from_slice(&1u16.to_be_bytes());
    q[header::ARCOUNT].copy_from_slice(&u16::from(edns).to_be_bytes());
    for l in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend(1u16.to_be_bytes());
    if edns {
        q.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_responder_writes() {
        let q = query(7, "www.example.test", rtype::A, true);
        let m = decode(&q).unwrap();
        assert_eq!(m.id, 7);
        assert_eq!(m.question, vec![("www.example.test.".into(), rtype::A, 1)]);
        assert_eq!(m.additional.len(), 1);
        assert!(decode(&q[..q.len() - 1]).is_err());
        assert!(
            decode(&[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]).is_err(),
            "a loop"
        );
    }
}
