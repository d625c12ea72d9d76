//! Loading a zone from an RFC 1035 master file with `domain`'s scanner, checking it, and
//! keeping each record in wire form with the line it came from.
//!
//! The scanner reports syntax errors with their line; it does not say which line a
//! record came from, which the zone checks need ("out-of-zone data, line 12"). So the
//! file is also split here into its logical entries (parentheses and quoted strings
//! may continue an entry over several lines), and the n-th record the scanner yields is
//! matched with the n-th entry that is not a `$` directive.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bytes::Bytes;
use domain::base::iana::Class;
use domain::base::name::{Name as DName, ToName};
use domain::base::rdata::ComposeRecordData;
use domain::zonefile::inplace::{Entry, Zonefile};

use crate::name::{self, Name};
use crate::rtype;

/// One resource record of a zone, wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// The name the record belongs to (wire form, lower-case, absolute).
    pub owner: Name,
    /// The record type (see [`crate::rtype`]).
    pub rtype: u16,
    /// Time to live, in seconds: how long resolvers may cache the record.
    pub ttl: u32,
    /// RDATA as on the wire, names uncompressed.
    pub rdata: Box<[u8]>,
    /// The name inside the RDATA that answers may follow or add addresses for: the
    /// target of CNAME, NS, MX, SRV.
    pub target: Option<Name>,
    /// The file it came from: the zone file, or one it includes (`$INCLUDE`).
    pub file: std::sync::Arc<PathBuf>,
    /// The line of that file where the record's entry starts, counting from 1 (0 if
    /// it could not be matched to one), for error messages about it.
    pub line: usize,
}

impl Rr {
    /// A record from its wire form (RDATA with names uncompressed), as a transfer
    /// brings it; `from` says where, for messages about it.
    pub fn from_wire(
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
        from: &std::sync::Arc<PathBuf>,
    ) -> Rr {
        Rr::with_owner(
            owner.to_ascii_lowercase().into_boxed_slice(),
            rtype,
            ttl,
            rdata,
            from,
        )
    }

    /// As [`Rr::from_wire`], with an owner already in wire form, lower-case.
    fn with_owner(
        owner: Name,
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
        from: &std::sync::Arc<PathBuf>,
    ) -> Rr {
        // Where the name that answers follow starts in the RDATA.
        let at = match rtype {
            rtype::CNAME | rtype::NS => Some(0),
            rtype::MX => Some(2),
            rtype::SRV => Some(6),
            _ => None,
        };
        let target = at.and_then(|i| {
            let n = rdata.get(i..)?;
            let len = name::wire_len(n)?;
            Some(n[..len].to_ascii_lowercase().into_boxed_slice())
        });
        Rr {
            owner,
            rtype,
            ttl,
            rdata: rdata.into(),
            target,
            file: from.clone(),
            line: 0,
        }
    }
}

/// A zone as loaded: its apex and records, in file order.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The zone's top name (wire form, lower-case): the origin, where its SOA is.
    pub apex: Name,
    /// Every record, included files' in place, as the files list them.
    pub records: Vec<Rr>,
}

/// Something wrong with a zone file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ZoneError {
    /// The file the message is about: the zone file, or a file it includes.
    pub file: PathBuf,
    /// The line of the problem, counting from 1; `None` when it is the file or the
    /// zone as a whole (unreadable, no SOA, not the zone the configuration names).
    pub line: Option<usize>,
    /// What is wrong, for a person to read.
    pub message: String,
}

fn err(file: &Path, line: Option<usize>, message: impl Into<String>) -> ZoneError {
    ZoneError {
        file: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// The first line of every logical entry that holds anything, and whether it is a `$`
/// directive.
fn entry_lines(text: &str) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    let (mut line, mut depth, mut quoted, mut comment, mut escaped) =
        (1usize, 0u32, false, false, false);
    let mut current: Option<(usize, bool)> = None;
    for &c in text.as_bytes() {
        if c == b'\n' {
            line += 1;
            comment = false;
            if depth == 0 && !quoted {
                if let Some(e) = current.take() {
                    out.push(e);
                }
            }
            continue;
        }
        if comment {
            continue;
        }
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' => escaped = true,
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                comment = true;
                continue;
            }
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !c.is_ascii_whitespace() && current.is_none() && c != b'(' && c != b')' {
            current = Some((line, c == b'$'));
        }
    }
    if let Some(e) = current {
        out.push(e);
    }
    out
}

/// Splits a line into tokens (quoted strings kept whole, quotes included), stopping at
/// a comment. Returns each token's text.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => break,
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push(&line[start..i]);
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b';') {
                    i += 1;
                }
                out.push(&line[start..i]);
            }
        }
    }
    out
}

/// CAA (RFC 8659) in presentation form, as RFC 3597's generic form, which the scanner
/// reads (it has no CAA parser of its own). Only single-line CAA records are rewritten.
fn rewrite_caa(line: &str) -> Option<Result<String, String>> {
    let t = tokens(line);
    // [owner] [ttl] [class] TYPE: the owner is there unless the line starts blank;
    // TTL and class may come in either order.
    let mut at = usize::from(!line.starts_with([' ', '\t']));
    while let Some(x) = t.get(at) {
        let ttl = x.chars().next().is_some_and(|c| c.is_ascii_digit());
        let class = ["IN", "CH", "HS", "CS"]
            .iter()
            .any(|c| x.eq_ignore_ascii_case(c));
        if !(ttl || class) || at > 3 {
            break;
        }
        at += 1;
    }
    if !t.get(at)?.eq_ignore_ascii_case("CAA") || t.first()?.starts_with('$') {
        return None;
    }
    let rest = &t[at + 1..];
    let (Some(flags), Some(tag), Some(value)) = (rest.first(), rest.get(1), rest.get(2)) else {
        return Some(Err("CAA needs flags, a tag and a value".into()));
    };
    if rest.len() > 3 {
        return Some(Err("CAA has too many fields (quote the value)".into()));
    }
    let Ok(flags) = flags.parse::<u8>() else {
        return Some(Err(format!("CAA flags {flags:?} are not a number 0-255")));
    };
    if tag.is_empty() || tag.len() > 255 || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Some(Err(format!("CAA tag {tag:?} must be letters and digits")));
    }
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let mut wire = vec![flags, tag.len() as u8];
    wire.extend_from_slice(tag.as_bytes());
    let vb = value.as_bytes();
    let mut i = 0;
    while i < vb.len() {
        if vb[i] == b'\\' && i + 1 < vb.len() {
            if i + 3 < vb.len() && vb[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
                let n: u16 = value[i + 1..i + 4].parse().unwrap_or(256);
                if n > 255 {
                    return Some(Err("bad \\DDD escape in a CAA value".into()));
                }
                wire.push(n as u8);
                i += 4;
            } else {
                wire.push(vb[i + 1]);
                i += 2;
            }
        } else {
            wire.push(vb[i]);
            i += 1;
        }
    }
    let hex: String = wire.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = t[..at].join(" ");
    let lead = if line.starts_with([' ', '\t']) {
        " "
    } else {
        ""
    };
    Some(Ok(format!(
        "{lead}{prefix} TYPE257 \\# {} {hex}",
        wire.len()
    )))
}

pub(crate) fn wire_name(n: &impl ToName) -> Name {
    // One allocation, the size of the name: a big zone has a million of them.
    let mut v = Vec::with_capacity(usize::from(n.compose_len()));
    for label in n.iter_labels() {
        v.push(label.len() as u8);
        v.extend(label.as_slice().iter().map(u8::to_ascii_lowercase));
    }
    v.into_boxed_slice()
}

/// Where a zone file's records go as they are read: a vector (`load_zone`), or the
/// index being built beside the parse (`IndexedZone::load`).
pub(crate) trait RecordSink {
    /// About this many records are coming (a file's entries): room to make.
    fn expect(&mut self, n: usize);
    /// The next record, in file order.
    fn push(&mut self, r: Rr);
}

impl RecordSink for Vec<Rr> {
    fn expect(&mut self, n: usize) {
        self.reserve(n);
    }
    fn push(&mut self, r: Rr) {
        Vec::push(self, r);
    }
}

/// The origin the daemon configured, as the scanner takes it.
fn origin_name(path: &Path, origin: Option<&str>) -> Result<Option<DName<Bytes>>, ZoneError> {
    match origin {
        Some(o) => match DName::<Bytes>::from_str(&absolute(o)) {
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(err(path, None, format!("bad zone name {o:?}: {e}"))),
        },
        None => Ok(None),
    }
}

/// Reads every record of the file at `path` (and the files it includes) into `sink`;
/// every problem found, with its line.
pub(crate) fn scan(path: &Path, origin: Option<&str>, sink: &mut dyn RecordSink) -> Vec<ZoneError> {
    let mut errors = Vec::new();
    match origin_name(path, origin) {
        Ok(o) => scan_file(path, o, sink, &mut errors, 0),
        Err(e) => errors.push(e),
    }
    errors
}

/// Loads the zone in `path`. `origin` is the zone's name when the file does not set
/// `$ORIGIN` itself (the daemon passes the file's configured zone name, if any). Every
/// problem found is returned, with its line where there is one.
pub fn load_zone(path: &Path, origin: Option<&str>) -> Result<Zone, Vec<ZoneError>> {
    let mut records = Vec::new();
    let mut errors = scan(path, origin, &mut records);
    if !errors.is_empty() {
        return Err(errors);
    }
    // The apex: the owner of the SOA (which must be there, and once).
    let soas: Vec<&Rr> = records.iter().filter(|r| r.rtype == rtype::SOA).collect();
    let apex = match soas.as_slice() {
        [] => {
            return Err(vec![err(
                path,
                None,
                "no SOA record: a zone needs exactly one",
            )]);
        }
        [soa] => soa.owner.clone(),
        [_, more @ ..] => {
            return Err(more
                .iter()
                .map(|r| err(&r.file, Some(r.line), "a second SOA record"))
                .collect());
        }
    };
    if let Some(o) = origin {
        if let Some(want) = name::from_text(o) {
            if want != apex {
                errors.push(err(
                    path,
                    None,
                    format!(
                        "the SOA is for {}, but the zone is configured as {}",
                        name::to_text(&apex),
                        name::to_text(&want)
                    ),
                ));
            }
        }
    }
    for r in &records {
        if !name::is_within(&r.owner, &apex) {
            errors.push(err(
                &r.file,
                Some(r.line),
                format!(
                    "out-of-zone data: {} is not in {}",
                    name::to_text(&r.owner),
                    name::to_text(&apex)
                ),
            ));
        }
    }
    // CNAME and other data at one name (RFC 1034 §3.6.2): the names with a CNAME, if
    // any, checked against every record.
    let cnames: std::collections::HashSet<&[u8], ahash::RandomState> = records
        .iter()
        .filter(|r| r.rtype == rtype::CNAME)
        .map(|r| &r.owner[..])
        .collect();
    let mut by_owner: std::collections::HashMap<&[u8], (bool, bool, usize), ahash::RandomState> =
        Default::default();
    for r in records
        .iter()
        .filter(|r| !cnames.is_empty() && cnames.contains(&r.owner[..]))
    {
        let e = by_owner.entry(&r.owner).or_insert((false, false, r.line));
        if r.rtype == rtype::CNAME {
            e.0 = true;
            e.2 = r.line;
        } else {
            e.1 = true;
        }
    }
    for (owner, (cname, other, line)) in by_owner {
        if cname && other {
            errors.push(err(
                path,
                Some(line),
                format!("{} has a CNAME and other data", name::to_text(owner)),
            ));
        }
    }
    if errors.is_empty() {
        Ok(Zone { apex, records })
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Whether "CAA", in any case, is in `text`: the lines worth rewriting.
fn mentions_caa(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"caa"))
}

/// `text` with its CAA lines in RFC 3597 generic form; a line that cannot be is an
/// error (and left out).
fn rewrite_caa_lines(text: &str, path: &Path, errors: &mut Vec<ZoneError>) -> String {
    let mut text_fixed = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match mentions_caa(body).then(|| rewrite_caa(body)).flatten() {
            Some(Ok(r)) => {
                text_fixed.push_str(&r);
                text_fixed.push_str(nl);
            }
            Some(Err(e)) => {
                errors.push(err(path, Some(i + 1), e));
                text_fixed.push_str(nl);
            }
            None => text_fixed.push_str(line),
        }
    }
    text_fixed
}

/// Scans one file (and what it includes) into `records`.
fn scan_file(
    path: &Path,
    origin: Option<DName<Bytes>>,
    records: &mut dyn RecordSink,
    errors: &mut Vec<ZoneError>,
    depth: usize,
) {
    if depth > 8 {
        errors.push(err(path, None, "$INCLUDE nested more than 8 deep"));
        return;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(err(path, None, format!("cannot read: {e}")));
            return;
        }
    };
    // CAA lines become RFC 3597 generic records, line for line; most files have none,
    // and are not copied.
    let text = if mentions_caa(&text) {
        rewrite_caa_lines(&text, path, errors)
    } else {
        text
    };
    let lines = entry_lines(&text);
    records.expect(lines.len());
    let mut entries = lines.iter().filter(|(_, directive)| !directive);
    let mut includes = lines.iter().filter(|(_, directive)| *directive);
    let file = std::sync::Arc::new(path.to_path_buf());
    // The scanner works on its own copy, made once at its size; ours goes at once, so
    // a big file is held twice only for that copy.
    let mut zf = Zonefile::with_capacity(text.len());
    zf.extend_from_slice(text.as_bytes());
    drop(text);
    if let Some(o) = origin {
        zf.set_origin(o);
    }
    zf.set_default_class(Class::IN);
    // Each record's RDATA is composed here, then copied out at its size.
    let mut rdata = Vec::with_capacity(512);
    loop {
        match zf.next_entry() {
            Ok(None) => break,
            Err(e) => {
                // "LINE:COL: what": the scanner's own position.
                let s = e.to_string();
                let (line, message) = match s.split_once(':') {
                    Some((l, rest)) if l.parse::<usize>().is_ok() => (
                        l.parse().ok(),
                        rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ':')
                            .trim()
                            .to_string(),
                    ),
                    _ => (None, s),
                };
                // The scanner counts the line it stopped on, often the one after the
                // entry at fault: the entry it was reading is the next one ours.
                let line = match (line, entries.next()) {
                    (Some(l), Some(&(start, _))) if start <= l => Some(start),
                    (l, _) => l,
                };
                errors.push(err(path, line, message));
                return;
            }
            Ok(Some(Entry::Include { path: inc, origin })) => {
                let _ = includes.next();
                let inc = String::from_utf8_lossy(inc.as_slice()).into_owned();
                let inc_path = match path.parent() {
                    Some(dir) => dir.join(&inc),
                    None => PathBuf::from(&inc),
                };
                let o = origin.or_else(|| zf.origin().ok());
                scan_file(&inc_path, o, records, errors, depth + 1);
            }
            Ok(Some(Entry::Record(r))) => {
                let line = entries.next().map(|(l, _)| *l).unwrap_or(0);
                if r.class() != Class::IN {
                    errors.push(err(
                        path,
                        Some(line),
                        format!("class {} is not served (IN only)", r.class()),
                    ));
                    continue;
                }
                rdata.clear();
                if let Err(e) = r.data().compose_rdata(&mut rdata) {
                    errors.push(err(
                        path,
                        Some(line),
                        format!("record data too long: {e:?}"),
                    ));
                    continue;
                }
                let mut rr = Rr::with_owner(
                    wire_name(r.owner()),
                    r.rtype().to_int(),
                    r.ttl().as_secs(),
                    &rdata,
                    &file,
                );
                rr.line = line;
                records.push(rr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caa_becomes_generic() {
        assert_eq!(
            rewrite_caa("caa 300 IN CAA 0 issue \"ca.example.net\" ; c")
                .unwrap()
                .unwrap(),
            "caa 300 IN TYPE257 \\# 21 0005697373756563612e6578616d706c652e6e6574"
        );
        assert_eq!(rewrite_caa("www A 192.0.2.1"), None);
        assert!(rewrite_caa("x CAA 300 issue \"a\"").unwrap().is_err());
    }

    #[test]
    fn entries_span_parentheses_and_skip_comments() {
        let t = "$ORIGIN example.\n; a comment\n@ IN SOA ns hostmaster (\n 1 ; serial\n 2 3 4 5 )\n\nwww A 192.0.2.1\n  TXT \"a ( b\n c\"\n";
        assert_eq!(
            entry_lines(t),
            vec![(1, true), (3, false), (7, false), (8, false)]
        );
    }
}
