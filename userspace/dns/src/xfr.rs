//! The secondary's side of zone transfers, without I/O: the requests it sends (SOA
//! query, AXFR per RFC 5936, IXFR per RFC 1995), each optionally signed with TSIG
//! (RFC 8945), and what it makes of the answers: the zone's new version, whole or
//! as differences applied to the version served.
//!
//! Messages and TSIG come from NLnet Labs' `domain` (the zone file parser's crate):
//! signing and verifying is security code best left to a library that is kept for it.
//! The daemon moves the bytes (see sluice's `dns_service::secondary`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::message_builder::MessageBuilder;
use domain::base::name::{Name as DName, ParsedName};
use domain::base::rdata::ComposeRecordData;
use domain::base::rdata::UnknownRecordData;
use domain::base::{Message, Ttl};
use domain::rdata::tsig::Time48;
use domain::rdata::ZoneRecordData;
use domain::tsig::{self, Algorithm, ClientSequence, Key, ServerTransaction};
use domain::utils::base64;

use crate::catalog::IndexedZone;
use crate::name::{self, Name};
use crate::rtype;
use crate::zone::{Rr, Zone};

use domain::base::Serial;

/// A TSIG key, shared by the requests signed with it.
pub type TsigKey = Arc<Key>;

/// Something wrong with a transfer or its messages; the zone served stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XfrError(pub String);

fn fail<T>(what: impl Into<String>) -> Result<T, XfrError> {
    Err(XfrError(what.into()))
}

/// Reads a TSIG key in `dig -y`/`kdig -y` form, `ALGORITHM:NAME:SECRET` (the secret
/// in base64; ALGORITHM is e.g. hmac-sha256). The secret never appears in an error.
pub fn parse_key(text: &str) -> Result<TsigKey, String> {
    let mut parts = text.trim().splitn(3, ':');
    let (Some(alg), Some(name), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a TSIG key is ALGORITHM:NAME:SECRET (as `kdig -y` takes it)".into());
    };
    let algorithm: Algorithm = alg
        .parse()
        .map_err(|_| format!("unknown TSIG algorithm {alg:?} (hmac-sha256, hmac-sha512, ...)"))?;
    let name: tsig::KeyName = name
        .trim_end_matches('.')
        .parse::<DName<Vec<u8>>>()
        .ok()
        .and_then(|n| tsig::KeyName::from_octets(n.as_octets()[..].try_into().ok()?).ok())
        .ok_or_else(|| format!("bad TSIG key name {name:?}"))?;
    let secret: Vec<u8> =
        base64::decode(secret.trim()).map_err(|_| "the TSIG secret is not base64".to_string())?;
    Key::new(algorithm, &secret, name, None, None)
        .map(Arc::new)
        .map_err(|e| format!("bad TSIG key: {e}"))
}

/// One request to a primary and the checks its answer must pass: the same ID, and
/// with a key, a valid TSIG on the answer's messages (RFC 8945 §5.3.1: at least every
/// hundredth, and the last).
pub struct Exchange {
    id: u16,
    /// The request, ready to send (TCP adds the length).
    pub message: Vec<u8>,
    tsig: Option<ClientSequence<TsigKey>>,
    from: Arc<PathBuf>,
}

impl Exchange {
    /// A request for `qtype` (SOA, AXFR or IXFR) of the zone `apex`; an IXFR carries
    /// the version served, `ours`, in its authority section (RFC 1995 §3). `from`
    /// names the primary in messages about its records.
    pub fn new(
        apex: &[u8],
        qtype: u16,
        ours: Option<&IndexedZone>,
        key: Option<&TsigKey>,
        id: u16,
        from: &str,
    ) -> Result<Exchange, XfrError> {
        let qname = DName::from_octets(apex.to_vec())
            .map_err(|_| XfrError(format!("bad zone name {}", name::to_text(apex))))?;
        let too_long = |_| XfrError("the request does not fit in a message".into());
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_id(id);
        let mut q = b.question();
        q.push((&qname, Rtype::from_int(qtype))).map_err(too_long)?;
        let mut auth = q.authority();
        if qtype == rtype::IXFR {
            let Some(z) = ours.filter(|z| z.available) else {
                return fail("an IXFR needs the version served");
            };
            let soa = UnknownRecordData::from_octets(Rtype::SOA, z.soa_rdata.to_vec())
                .map_err(|_| XfrError("the served SOA is too long".into()))?;
            auth.push((&qname, Class::IN, Ttl::from_secs(z.soa_ttl), soa))
                .map_err(too_long)?;
        }
        let mut add = auth.additional();
        let tsig = match key {
            Some(k) => Some(
                ClientSequence::request(k.clone(), &mut add, Time48::now()).map_err(too_long)?,
            ),
            None => None,
        };
        Ok(Exchange {
            id,
            message: add.finish(),
            tsig,
            from: Arc::new(PathBuf::from(format!("(transfer from {from})"))),
        })
    }

    /// Checks one message of the answer and returns the records of its answer section.
    pub fn answer(&mut self, bytes: Vec<u8>) -> Result<Vec<Rr>, XfrError> {
        let mut msg = Message::from_octets(bytes)
            .map_err(|_| XfrError("a message shorter than its header".into()))?;
        let h = msg.header();
        if h.id() != self.id || !h.qr() {
            return fail("an answer that is not to our request");
        }
        if let Some(seq) = &mut self.tsig {
            seq.answer(&mut msg, Time48::now())
                .map_err(|e| XfrError(format!("TSIG: {e}")))?;
        }
        let rc = msg.header().rcode();
        if rc != Rcode::NOERROR {
            return fail(format!("the primary answered {rc}"));
        }
        let mut out = Vec::new();
        let answers = msg
            .answer()
            .map_err(|e| XfrError(format!("a malformed message: {e}")))?;
        for r in answers.limit_to_in::<ZoneRecordData<_, ParsedName<_>>>() {
            let r = r.map_err(|e| XfrError(format!("a malformed record: {e}")))?;
            let mut rdata = Vec::new();
            r.data()
                .compose_rdata(&mut rdata)
                .map_err(|_| XfrError("a record too long".into()))?;
            out.push(Rr::from_wire(
                &crate::zone::wire_name(r.owner()),
                r.rtype().to_int(),
                r.ttl().as_secs(),
                &rdata,
                &self.from,
            ));
        }
        Ok(out)
    }

    /// Checks the end of the answer: with a key, its last message was signed.
    pub fn done(self) -> Result<(), XfrError> {
        match self.tsig {
            Some(seq) => seq.done().map_err(|e| XfrError(format!("TSIG: {e}"))),
            None => Ok(()),
        }
    }
}

/// The serial of an SOA record's RDATA.
pub fn soa_serial(rdata: &[u8]) -> Option<u32> {
    let i = rdata.len().checked_sub(20)?;
    Some(u32::from_be_bytes(rdata[i..i + 4].try_into().ok()?))
}

/// The SOA's refresh, retry and expire intervals, seconds (RFC 1035 §3.3.13).
pub fn soa_timers(rdata: &[u8]) -> Option<(u32, u32, u32)> {
    let i = rdata.len().checked_sub(16)?;
    let at = |j: usize| u32::from_be_bytes(rdata[i + j..i + j + 4].try_into().unwrap());
    Some((at(0), at(4), at(8)))
}

/// Whether serial `a` is newer than `b` (RFC 1982 arithmetic, as RFC 1035 asks).
pub fn is_newer(a: u32, b: u32) -> bool {
    Serial(a) > Serial(b)
}

/// What a transfer brought.
#[derive(Debug)]
pub enum Outcome {
    /// The version served is the primary's (an IXFR answered with its SOA alone).
    UpToDate,
    /// The whole zone (an AXFR, or an IXFR answered in AXFR form).
    Full(Zone),
    /// Differences (RFC 1995 §4), applied to the version served.
    Incremental(Zone),
}

/// Where the reading of a transfer's records is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first record: the new version's SOA.
    Start,
    /// After it: an SOA next starts differences, anything else a whole zone.
    First,
    /// A whole zone, until its SOA comes again.
    Whole,
    /// A difference's deletions, until the SOA of the version it makes.
    Deleting,
    /// A difference's additions (it makes version `u32`), until the next SOA.
    Adding(u32),
    /// Complete.
    Done,
}

/// Takes a transfer's records as they arrive and tells when it is complete.
pub struct Incoming {
    apex: Name,
    asked: u16,
    state: State,
    /// The new version's serial.
    serial: u32,
    /// A whole zone's records.
    whole: Vec<Rr>,
    /// The differences: (deleted, added), each with the SOA it starts from and the SOA
    /// of the version it makes.
    diffs: Vec<(Vec<Rr>, Vec<Rr>)>,
    /// An IXFR answered by a message holding the SOA alone.
    soa_only: bool,
}

fn is_soa(r: &Rr, apex: &[u8]) -> bool {
    r.rtype == rtype::SOA && &r.owner[..] == apex
}

impl Incoming {
    /// Reads the answer to a transfer (`asked` is AXFR or IXFR) of `apex`.
    pub fn new(apex: &[u8], asked: u16) -> Incoming {
        Incoming {
            apex: apex.into(),
            asked,
            state: State::Start,
            serial: 0,
            whole: Vec::new(),
            diffs: Vec::new(),
            soa_only: false,
        }
    }

    /// Takes one message's records; true once the transfer is complete. A record
    /// after the end, or a first record that is not the zone's SOA, is an error.
    pub fn push(&mut self, records: Vec<Rr>) -> Result<bool, XfrError> {
        let apex = self.apex.clone();
        let n = records.len();
        for (i, r) in records.into_iter().enumerate() {
            let soa = is_soa(&r, &apex);
            self.state = match self.state {
                State::Start => {
                    if !soa {
                        return fail("the transfer does not start with the zone's SOA");
                    }
                    self.serial =
                        soa_serial(&r.rdata).ok_or_else(|| XfrError("a malformed SOA".into()))?;
                    self.whole.push(r);
                    State::First
                }
                State::First if soa => {
                    let s = soa_serial(&r.rdata).unwrap_or(self.serial);
                    if s == self.serial {
                        // A zone of one record: its SOA, twice.
                        State::Done
                    } else {
                        self.diffs.push((vec![r], Vec::new()));
                        State::Deleting
                    }
                }
                State::First | State::Whole if soa => State::Done,
                State::First | State::Whole => {
                    self.whole.push(r);
                    State::Whole
                }
                State::Deleting => {
                    let d = self.diffs.last_mut().expect("a difference was started");
                    if soa {
                        let to = soa_serial(&r.rdata).unwrap_or(0);
                        d.1.push(r);
                        State::Adding(to)
                    } else {
                        d.0.push(r);
                        State::Deleting
                    }
                }
                State::Adding(to) => {
                    if soa && to == self.serial {
                        State::Done
                    } else if soa {
                        self.diffs.push((vec![r], Vec::new()));
                        State::Deleting
                    } else {
                        self.diffs
                            .last_mut()
                            .expect("a difference was started")
                            .1
                            .push(r);
                        State::Adding(to)
                    }
                }
                State::Done => return fail("records after the transfer's last SOA"),
            };
            if self.state == State::Done && i + 1 != n {
                return fail("records after the transfer's last SOA");
            }
        }
        // An IXFR answered by the SOA alone, in one message: nothing newer, if that
        // SOA is not newer than ours ([`Incoming::finish`] checks; a primary that sends
        // a whole zone's SOA alone in its first message is then asked for an AXFR).
        if self.state == State::First && self.asked == rtype::IXFR && n == 1 {
            self.state = State::Done;
            self.soa_only = true;
        }
        Ok(self.state == State::Done)
    }

    /// The new version, once complete: whole, or the differences applied to
    /// `ours` (the version served, which the first difference must start from).
    pub fn finish(self, ours: Option<&IndexedZone>) -> Result<Outcome, XfrError> {
        if self.state != State::Done {
            return fail("the transfer ended before the zone's last SOA");
        }
        if self.soa_only {
            let ours = ours.filter(|z| z.available).and_then(|z| z.serial());
            return match ours {
                Some(s) if !is_newer(self.serial, s) => Ok(Outcome::UpToDate),
                _ => fail(format!(
                    "the primary's answer held its SOA alone (serial {}), newer than ours ({ours:?})",
                    self.serial
                )),
            };
        }
        if self.diffs.is_empty() {
            return checked(self.apex, self.whole).map(Outcome::Full);
        }
        let Some(ours) = ours.filter(|z| z.available) else {
            return fail("differences without a version to apply them to");
        };
        let from = self.diffs[0].0.first().and_then(|r| soa_serial(&r.rdata));
        if from != ours.serial() {
            return fail(format!(
                "differences from serial {from:?}, but serial {:?} is served",
                ours.serial()
            ));
        }
        let mut zone = ours.to_zone();
        for (deleted, added) in self.diffs {
            let key = |r: &Rr| (r.owner.clone(), r.rtype, r.rdata.clone());
            let gone: HashSet<_> = deleted.iter().map(key).collect();
            zone.records.retain(|r| !gone.contains(&key(r)));
            zone.records.extend(added);
        }
        checked(zone.apex, zone.records).map(Outcome::Incremental)
    }
}

/// A zone as transferred, checked as a zone file is: one SOA, at the apex; every
/// record within the zone.
fn checked(apex: Name, records: Vec<Rr>) -> Result<Zone, XfrError> {
    let soas = records.iter().filter(|r| r.rtype == rtype::SOA).count();
    if soas != 1 || !records.iter().any(|r| is_soa(r, &apex)) {
        return fail(format!("{soas} SOA records; a zone has one, at its apex"));
    }
    if let Some(r) = records.iter().find(|r| !name::is_within(&r.owner, &apex)) {
        return fail(format!(
            "out-of-zone data: {} is not in {}",
            name::to_text(&r.owner),
            name::to_text(&apex)
        ));
    }
    Ok(Zone { apex, records })
}

/// A NOTIFY (RFC 1996) read: the zone it names and the acknowledgement to send back.
#[derive(Debug)]
pub struct Notify {
    /// The zone's apex (wire form, lower-case).
    pub apex: Name,
    /// The response to send.
    pub ack: Vec<u8>,
}

/// The zone a NOTIFY names, if `request` is one: to find the key it must be signed
/// with before [`read_notify`].
pub fn notify_zone(request: &[u8]) -> Option<Name> {
    let msg = Message::from_octets(request).ok()?;
    let h = msg.header();
    if h.qr() || h.opcode() != Opcode::NOTIFY {
        return None;
    }
    let q = msg.sole_question().ok()?;
    Some(crate::zone::wire_name(q.qname()))
}

/// Reads a NOTIFY; with `key`, it must be signed with it, and the acknowledgement is.
/// Anything else is an error, with the response to send back if there is one (a
/// TSIG error's NOTAUTH).
pub fn read_notify(
    request: &[u8],
    key: Option<&TsigKey>,
) -> Result<Notify, (XfrError, Option<Vec<u8>>)> {
    let no = |what: &str| (XfrError(what.into()), None);
    let mut msg = Message::from_octets(request.to_vec()).map_err(|_| no("a short message"))?;
    let h = msg.header();
    if h.qr() || h.opcode() != Opcode::NOTIFY {
        return Err(no("not a NOTIFY"));
    }
    let q = msg
        .sole_question()
        .map_err(|_| no("a NOTIFY without exactly one question"))?;
    if q.qtype() != Rtype::SOA {
        return Err(no("a NOTIFY for a type other than SOA"));
    }
    let apex = crate::zone::wire_name(q.qname());
    let tx = match key {
        Some(k) => match ServerTransaction::request(k, &mut msg, Time48::now()) {
            Ok(Some(tx)) => Some(tx),
            Ok(None) => return Err(no("an unsigned NOTIFY, and a key is required")),
            Err(e) => {
                let why = XfrError(format!("TSIG: {e}"));
                let ack = e
                    .build_message(&msg, MessageBuilder::new_vec())
                    .ok()
                    .map(|b| b.finish());
                return Err((why, ack));
            }
        },
        None => None,
    };
    let reply = MessageBuilder::new_vec()
        .start_answer(&msg, Rcode::NOERROR)
        .map_err(|_| no("the acknowledgement does not fit"))?;
    let mut reply = reply.additional();
    reply.header_mut().set_aa(true);
    if let Some(tx) = tx {
        tx.answer(&mut reply, Time48::now())
            .map_err(|_| no("the acknowledgement does not fit"))?;
    }
    Ok(Notify {
        apex,
        ack: reply.finish(),
    })
}
