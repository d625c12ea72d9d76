//! sluice's authoritative DNS: zones loaded from RFC 1035 master files (`zone`), indexed
//! for lookup (`catalog`), answered without allocating (`answer`), over RFC 7766 TCP
//! sessions whose framing and limits live in `session`. No I/O here: the daemon feeds
//! bytes in and writes what comes out.

pub mod answer;
pub mod catalog;
pub mod decode;
pub mod header;
pub mod name;
pub mod session;
pub mod zone;

pub use answer::{answer, transfer, Answer, AnswerStats, ResponderConfig};
pub use catalog::Catalog;
pub use zone::{load_zone, Zone, ZoneError};

/// Record types this crate names.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const CAA: u16 = 257;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Response codes.
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended (EDNS) code 16: the upper 8 bits go in the OPT record.
    pub const BADVERS: u16 = 16;
}
