//! sluice's authoritative DNS: zones loaded from RFC 1035 master files (`zone`), indexed
//! for lookup (`catalog`), answered without allocating (`answer`), over RFC 7766 TCP
//! sessions whose framing and limits live in `session`. No I/O here: the daemon feeds
//! bytes in and writes what comes out.

#![warn(missing_docs)]

pub mod answer;
pub mod catalog;
pub mod decode;
pub mod header;
pub mod name;
pub mod session;
pub mod xfr;
pub mod zone;

pub use answer::{
    answer, answer_noting, transfer, transfer_signed, Answer, AnswerStats, Asked, ResponderConfig,
};
pub use catalog::Catalog;
pub use zone::{load_zone, Zone, ZoneError};

/// Record types this crate names.
pub mod rtype {
    /// An IPv4 address.
    pub const A: u16 = 1;
    /// An authoritative server of the zone; below the apex, a delegation to a child zone.
    pub const NS: u16 = 2;
    /// An alias: the name's data is at the target name, which answers follow.
    pub const CNAME: u16 = 5;
    /// Start of authority: the zone's apex record, sent with negative answers (its
    /// MINIMUM bounds their TTL) and first and last in zone transfers.
    pub const SOA: u16 = 6;
    /// A name pointing at another name, as reverse lookups use.
    pub const PTR: u16 = 12;
    /// Host CPU and OS, two character strings (RFC 1035).
    pub const HINFO: u16 = 13;
    /// A mail exchanger: preference and host, whose addresses go in the additional section.
    pub const MX: u16 = 15;
    /// Character strings, free-form.
    pub const TXT: u16 = 16;
    /// An IPv6 address (RFC 3596).
    pub const AAAA: u16 = 28;
    /// Where a service runs: priority, weight, port and host (RFC 2782).
    pub const SRV: u16 = 33;
    /// EDNS(0)'s pseudo-record in the additional section: payload size, extended rcode
    /// and options (RFC 6891). Never stored in a zone.
    pub const OPT: u16 = 41;
    /// Delegation signer (RFC 4034): held by the parent at a zone cut, not by the child.
    pub const DS: u16 = 43;
    /// Which certificate authorities may issue for the name (RFC 8659).
    pub const CAA: u16 = 257;
    /// Query type: incremental zone transfer (RFC 1995), answered with the whole zone.
    pub const IXFR: u16 = 251;
    /// Query type: whole zone transfer (RFC 5936).
    pub const AXFR: u16 = 252;
    /// Query type: any type; answered with one RRset (RFC 8482), not all of them.
    pub const ANY: u16 = 255;
}

/// Response codes.
pub mod rcode {
    /// Success, including NODATA (the name exists, without the type asked for).
    pub const NOERROR: u8 = 0;
    /// The query could not be understood: malformed, or not exactly one question.
    pub const FORMERR: u8 = 1;
    /// The server failed to answer a query it understood.
    pub const SERVFAIL: u8 = 2;
    /// The name does not exist in the zone (RFC 1035's "name error").
    pub const NXDOMAIN: u8 = 3;
    /// An opcode other than a standard query.
    pub const NOTIMP: u8 = 4;
    /// Not answered by policy: a name outside our zones, a class other than IN or
    /// ANY, or a zone transfer from a source not allowed one.
    pub const REFUSED: u8 = 5;
    /// Extended (EDNS) code 16: the upper 8 bits go in the OPT record.
    pub const BADVERS: u16 = 16;
}
