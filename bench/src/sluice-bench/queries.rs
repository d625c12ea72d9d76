//! The queries a run sends: dnsperf's input format (one `NAME TYPE` per line, `#`
//! comments), turned into ready-to-send DNS messages once, before the run.

use std::fmt;

/// A query, encoded once: the DNS message without the 2-byte TCP length prefix, with ID 0
/// (each send patches its own ID in).
#[derive(Clone, Debug)]
pub struct Query {
    pub wire: Vec<u8>,
}

#[derive(Debug)]
pub struct QueryError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The record types dnsperf files use most, by name.
pub fn qtype_code(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "DS" => 43,
        "DNSKEY" => 48,
        "CAA" => 257,
        "ANY" => 255,
        other => return other.strip_prefix("TYPE").and_then(|n| n.parse().ok()),
    })
}

/// Encodes a standard query for `name`/`qtype` (RD clear: we ask authoritative servers).
pub fn encode(name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let trimmed = name.trim_end_matches('.');
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("bad label in {name:?}"));
            }
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
    }
    m.push(0);
    if m.len() - 12 > 255 {
        return Err(format!("{name:?} is longer than 255 bytes"));
    }
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(m)
}

/// Parses a dnsperf query file.
pub fn parse(text: &str) -> Result<Vec<Query>, QueryError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| QueryError {
            line: i + 1,
            message,
        };
        let mut parts = line.split_whitespace();
        let name = parts.next().ok_or_else(|| err("missing name".into()))?;
        let ty = parts
            .next()
            .ok_or_else(|| err(format!("missing type after {name:?}")))?;
        let qtype = qtype_code(ty).ok_or_else(|| err(format!("unknown type {ty:?}")))?;
        let wire = encode(name, qtype).map_err(err)?;
        out.push(Query { wire });
    }
    if out.is_empty() {
        return Err(QueryError {
            line: 0,
            message: "no queries in the file".into(),
        });
    }
    Ok(out)
}

/// What an answer says, as far as the load generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub id: u16,
    pub rcode: u8,
}

/// Checks that `msg` is a response (QR set, sane header) and returns its ID and rcode.
pub fn answer(msg: &[u8]) -> Option<Answer> {
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return None;
    }
    Some(Answer {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        rcode: msg[3] & 0x0f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsperf_files_parse() {
        let q = parse(
            "# comment\nexample.test A\n\nwww.example.test. aaaa # trailing\nx.test TYPE65\n",
        )
        .unwrap();
        assert_eq!(q.len(), 3);
        let qtype =
            |q: &Query| u16::from_be_bytes([q.wire[q.wire.len() - 4], q.wire[q.wire.len() - 3]]);
        assert_eq!(qtype(&q[0]), 1);
        assert_eq!(qtype(&q[1]), 28);
        assert_eq!(qtype(&q[2]), 65);
        assert_eq!(&q[0].wire[12..], b"\x07example\x04test\x00\x00\x01\x00\x01");
        let e = parse("example.test\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(parse("a.test BOGUS")
            .unwrap_err()
            .to_string()
            .contains("unknown type"));
        assert!(parse("").is_err());
    }

    #[test]
    fn answers_are_recognised() {
        let mut m = encode("example.test", 1).unwrap();
        assert_eq!(answer(&m), None, "a query is not an answer");
        m[0] = 0x12;
        m[1] = 0x34;
        m[2] |= 0x80;
        m[3] = 3;
        assert_eq!(
            answer(&m),
            Some(Answer {
                id: 0x1234,
                rcode: 3
            })
        );
        assert_eq!(answer(&m[..5]), None);
    }
}
