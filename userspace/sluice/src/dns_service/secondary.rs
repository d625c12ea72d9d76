//! Secondary zones: transferred from a primary and kept in step with it, on a thread
//! of their own (transfers never run on a worker).
//!
//! Each zone is checked when its SOA's refresh interval is up, at once when its
//! primary sends a NOTIFY (RFC 1996), and at the retry interval after a failure: an
//! IXFR (RFC 1995) carrying the serial served, whose differences are applied to the
//! version served; an AXFR (RFC 5936) when there is none yet or the IXFR fails for any
//! reason but an unreachable primary. The new version is indexed whole and published
//! in one swap, so a query sees the old version or the new one. A zone that has not
//! been refreshed for its SOA's expire interval is dropped and answered SERVFAIL, as
//! before its first transfer: never stale data past expire.
//!
//! Transfers go out over kernel TCP sockets: a transfer is one connection now and then,
//! the kernel's ephemeral ports are outside the stack's (the steering program leaves
//! their packets to the kernel), and the workers keep their cores for queries.
//!
//! NOTIFYs arrive on a port of their own (`--notify-listen`), over UDP (as BIND and
//! NSD send them) and TCP (as Knot DNS 3 does), on kernel sockets: the steering program
//! passes all UDP, and TCP to ports the stack does not serve, to the kernel; UDP port
//! 53 may belong to a kernel-socket server beside sluice (deploy/fleet/udp.md); and a NOTIFY is
//! a message now and then, not worth a worker's attention. A NOTIFY is taken only from
//! the zone's primary, signed with its key when it has one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dns::catalog::IndexedZone;
use dns::name::Name;
use dns::rtype;
use dns::xfr::{self, Exchange, Incoming, Outcome, TsigKey};

use super::DnsService;

/// A zone to transfer from a primary and follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondaryZone {
    /// The zone's name.
    pub name: String,
    /// Its primary's address and port.
    pub primary: SocketAddr,
    /// A file holding the TSIG key transfers and NOTIFYs are signed with
    /// (`ALGORITHM:NAME:SECRET`, as `kdig -y` takes it), if they are.
    pub key: Option<PathBuf>,
}

/// How long the primary has to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long it may leave a transfer silent.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a transfer may take in all: a primary that trickles forever is cut off.
const TRANSFER_LIMIT: Duration = Duration::from_secs(600);
/// The retry interval before the first transfer, when no SOA says one.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The shortest interval an SOA may set: a zero in the SOA must not spin the thread.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long the thread waits at most before it looks at its stop flag again.
const TICK: Duration = Duration::from_millis(200);
/// The least time between two checks of a zone a NOTIFY starts: NOTIFYs beyond that
/// (a flood, spoofed from the primary's address) wait for it rather than each start a
/// transfer.
const NOTIFY_GAP: Duration = Duration::from_secs(1);
/// NOTIFYs read from each socket before the thread looks at its timers again.
const NOTIFY_BATCH: usize = 64;

/// What `sluice stats` shows of a secondary zone.
#[derive(Debug)]
pub struct Status {
    /// The zone's name.
    pub name: String,
    /// Its primary.
    pub primary: SocketAddr,
    /// The serial served (u64::MAX: nothing served).
    pub serial: AtomicU64,
    /// Whole zones applied (an AXFR, or an IXFR answered with the whole zone).
    pub axfr: AtomicU64,
    /// Differences applied (an IXFR answered incrementally).
    pub ixfr: AtomicU64,
    /// Checks that found nothing newer.
    pub up_to_date: AtomicU64,
    /// Checks that failed (unreachable primary, refused, bad TSIG, broken transfer).
    pub failed: AtomicU64,
    /// NOTIFYs taken.
    pub notifies: AtomicU64,
    /// NOTIFYs refused: from another address than the primary, unsigned or badly
    /// signed when a key is required.
    pub notifies_refused: AtomicU64,
    /// Times the zone expired.
    pub expired: AtomicU64,
    /// The last failure, for a person to read.
    pub last_error: Mutex<Option<String>>,
}

impl Status {
    /// A zone not transferred yet.
    pub fn new(z: &SecondaryZone) -> Status {
        Status {
            name: z.name.clone(),
            primary: z.primary,
            serial: AtomicU64::new(u64::MAX),
            axfr: AtomicU64::new(0),
            ixfr: AtomicU64::new(0),
            up_to_date: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            notifies: AtomicU64::new(0),
            notifies_refused: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The serial served, if any.
    pub fn serial(&self) -> Option<u32> {
        u32::try_from(self.serial.load(Ordering::Relaxed)).ok()
    }

    fn note_error(&self, e: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
}

/// Why a transfer failed: an unreachable or silent primary (tried again at the retry
/// interval), or anything else (which an AXFR may get past, after a failed IXFR).
enum Failure {
    Io(String),
    Protocol(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Io(s) | Failure::Protocol(s) => s,
        }
    }
}

impl From<xfr::XfrError> for Failure {
    fn from(e: xfr::XfrError) -> Failure {
        Failure::Protocol(e.0)
    }
}

/// One zone followed: where it is in its timers.
struct Follow {
    id: usize,
    index: usize,
    apex: Name,
    primary: SocketAddr,
    key: Option<TsigKey>,
    /// When to check next.
    next: Instant,
    /// When the version served expires (none served: None).
    expires: Option<Instant>,
    /// The retry interval, from the last SOA seen.
    retry: Duration,
    /// When the last check started.
    last_check: Option<Instant>,
}

/// The thread that follows the secondary zones; stopped on drop.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Follower {
    /// Stops the thread: at once between checks; a transfer in progress is left to
    /// the process's exit rather than waited for (it may take minutes).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(t) = self.thread.take() else { return };
        let until = Instant::now() + Duration::from_secs(1);
        while !t.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

/// Reads a TSIG key file. The secret never reaches a message.
pub fn read_key(path: &std::path::Path) -> Result<TsigKey, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("TSIG key {}: {e}", path.display()))?;
    xfr::parse_key(&text).map_err(|e| format!("TSIG key {}: {e}", path.display()))
}

/// Starts following `zones` (the service's secondary zones, in its order), NOTIFYs
/// taken on `notify` if given. Errors: a key file that cannot be read, a NOTIFY
/// address that cannot be bound.
pub fn start(
    svc: Arc<DnsService>,
    zones: &[SecondaryZone],
    notify: Option<SocketAddr>,
) -> Result<Follower, String> {
    let first = svc.sources.len();
    let now = Instant::now();
    let mut follows = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        let apex = dns::name::from_text(&z.name)
            .ok_or_else(|| format!("bad secondary zone name {:?}", z.name))?;
        follows.push(Follow {
            id: first + i,
            index: i,
            apex,
            primary: z.primary,
            key: z.key.as_deref().map(read_key).transpose()?,
            next: now,
            expires: None,
            retry: FIRST_RETRY,
            last_check: None,
        });
    }
    let sockets = match notify {
        Some(a) => {
            let e = |e: std::io::Error| format!("--notify-listen {a}: {e}");
            let udp = UdpSocket::bind(a).map_err(e)?;
            let tcp = TcpListener::bind(a).map_err(e)?;
            udp.set_nonblocking(true).map_err(e)?;
            tcp.set_nonblocking(true).map_err(e)?;
            Some(NotifySockets { udp, tcp })
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("sluice-secondary".into())
        .spawn(move || run(&svc, follows, sockets, &stopping))
        .map_err(|e| format!("cannot start the secondary zones' thread: {e}"))?;
    Ok(Follower {
        stop,
        thread: Some(thread),
    })
}

/// Where NOTIFYs come in.
struct NotifySockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl NotifySockets {
    /// Waits up to `wait` for a NOTIFY on either socket.
    fn wait(&self, wait: Duration) {
        let mut fds = [
            libc::pollfd {
                fd: self.udp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.tcp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = wait.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: `fds` is a valid array of two pollfds for the call's duration.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    }
}

fn run(
    svc: &DnsService,
    mut follows: Vec<Follow>,
    sockets: Option<NotifySockets>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65535];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        for f in follows.iter_mut() {
            if f.expires.is_some_and(|e| e <= now) {
                expire(svc, f);
            }
            if f.next <= now && !stop.load(Ordering::Relaxed) {
                check(svc, f);
            }
        }
        let now = Instant::now();
        let wake = follows
            .iter()
            .flat_map(|f| [Some(f.next), f.expires])
            .flatten()
            .min()
            .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
        let Some(s) = &sockets else {
            std::thread::sleep(wake);
            continue;
        };
        s.wait(wake);
        for _ in 0..NOTIFY_BATCH {
            let Ok((n, from)) = s.udp.recv_from(&mut buf) else {
                break;
            };
            if let Some(ack) = take_notify(svc, &mut follows, &buf[..n], from) {
                let _ = s.udp.send_to(&ack, from);
            }
        }
        for _ in 0..NOTIFY_BATCH {
            let Ok((conn, from)) = s.tcp.accept() else {
                break;
            };
            notify_over_tcp(svc, &mut follows, conn, from);
        }
    }
}

/// A NOTIFY over TCP: one message, its acknowledgement, done. Only the primaries'
/// addresses are read from, each for a short while: this thread also transfers.
fn notify_over_tcp(
    svc: &DnsService,
    follows: &mut [Follow],
    mut conn: TcpStream,
    from: SocketAddr,
) {
    if !follows.iter().any(|f| f.primary.ip() == from.ip()) {
        tracing::debug!(%from, "a NOTIFY connection from no primary of ours: closed");
        return;
    }
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut len = [0u8; 2];
    if conn.read_exact(&mut len).is_err() {
        return;
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if conn.read_exact(&mut msg).is_err() {
        return;
    }
    if let Some(ack) = take_notify(svc, follows, &msg, from) {
        let mut out = (ack.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&ack);
        let _ = conn.write_all(&out);
    }
}

/// A NOTIFY: checked against the zone's primary and key, and the zone checked at
/// once. Returns the acknowledgement to send, if any.
fn take_notify(
    svc: &DnsService,
    follows: &mut [Follow],
    msg: &[u8],
    from: SocketAddr,
) -> Option<Vec<u8>> {
    let apex = xfr::notify_zone(msg);
    let Some(f) = follows.iter_mut().find(|f| Some(&f.apex) == apex.as_ref()) else {
        tracing::debug!(%from, "a NOTIFY for no secondary zone of ours: ignored");
        return None;
    };
    let status = &svc.secondaries[f.index];
    if from.ip() != f.primary.ip() {
        status.notifies_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(zone = %status.name, %from, "a NOTIFY from another address than the primary: refused");
        return None;
    }
    match xfr::read_notify(msg, f.key.as_ref()) {
        Ok(n) => {
            status.notifies.fetch_add(1, Ordering::Relaxed);
            // At once, or a second after the last check began.
            let now = Instant::now();
            let soonest = f.last_check.map_or(now, |t| (t + NOTIFY_GAP).max(now));
            f.next = f.next.min(soonest);
            tracing::info!(zone = %status.name, %from, "NOTIFY: checking the primary");
            Some(n.ack)
        }
        Err((e, ack)) => {
            status.notifies_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(zone = %status.name, %from, error = %e, "a NOTIFY refused");
            ack
        }
    }
}

/// Drops an expired zone: SERVFAIL from now on, until a transfer succeeds.
fn expire(svc: &DnsService, f: &mut Follow) {
    let status = &svc.secondaries[f.index];
    f.expires = None;
    if let Err(e) = svc.replace_zone(IndexedZone::unavailable(f.apex.clone(), f.id)) {
        tracing::error!(zone = %status.name, error = %e, "cannot drop the expired zone");
        return;
    }
    status.serial.store(u64::MAX, Ordering::Relaxed);
    status.expired.fetch_add(1, Ordering::Relaxed);
    super::give_back_freed_memory();
    tracing::error!(
        zone = %status.name,
        primary = %f.primary,
        "zone expired: no refresh from the primary within the SOA's expire interval; answering SERVFAIL"
    );
}

/// Asks the primary for what is newer than the version served, and serves it.
fn check(svc: &DnsService, f: &mut Follow) {
    let status = &svc.secondaries[f.index];
    let ours = svc.zone(f.id).filter(|z| z.available);
    let started = Instant::now();
    f.last_check = Some(started);
    let result = match &ours {
        Some(z) => match transfer(f, rtype::IXFR, Some(z)) {
            Err(Failure::Protocol(e)) => {
                tracing::info!(zone = %status.name, error = %e, "IXFR failed; trying AXFR");
                transfer(f, rtype::AXFR, None).map(|o| (o, "AXFR"))
            }
            r => r.map(|o| (o, "IXFR")),
        },
        None => transfer(f, rtype::AXFR, None).map(|o| (o, "AXFR")),
    };
    let now = Instant::now();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            status.note_error(e.text());
            f.next = now + f.retry;
            tracing::warn!(
                zone = %status.name,
                primary = %f.primary,
                error = e.text(),
                retry_s = f.retry.as_secs_f64(),
                "zone transfer failed; the version served stays"
            );
            return;
        }
    };
    let (new, how) = outcome;
    let (zone, counter, form) = match new {
        Outcome::UpToDate => (None, &status.up_to_date, "nothing newer"),
        Outcome::Incremental(z) => (Some(z), &status.ixfr, "differences"),
        Outcome::Full(z) => (Some(z), &status.axfr, "whole zone"),
    };
    let served = match zone {
        None => ours,
        Some(zone) => {
            let records = zone.records.len();
            let z = IndexedZone::new(zone, f.id);
            let serial = z.serial();
            if let Err(e) = svc.replace_zone(z) {
                status.note_error(&e);
                f.next = now + f.retry;
                tracing::error!(zone = %status.name, error = %e, "cannot serve the transferred zone");
                return;
            }
            super::give_back_freed_memory();
            status
                .serial
                .store(serial.map_or(u64::MAX, u64::from), Ordering::Relaxed);
            tracing::info!(
                zone = %status.name,
                primary = %f.primary,
                serial,
                records,
                ms = started.elapsed().as_millis() as u64,
                "{how} ({form}): zone transferred and served"
            );
            svc.zone(f.id)
        }
    };
    counter.fetch_add(1, Ordering::Relaxed);
    // The timers of the version now served.
    let (refresh, retry, expire) = served
        .as_deref()
        .and_then(|z| xfr::soa_timers(&z.soa_rdata))
        .unwrap_or((3600, 600, 604_800));
    let secs = |s: u32| Duration::from_secs(u64::from(s)).max(MIN_INTERVAL);
    f.retry = secs(retry);
    f.next = now + secs(refresh);
    f.expires = Some(now + secs(expire));
}

/// One transfer (AXFR or IXFR) from the zone's primary, over a kernel TCP socket.
fn transfer(f: &Follow, qtype: u16, ours: Option<&IndexedZone>) -> Result<Outcome, Failure> {
    let id = request_id();
    let mut ex = Exchange::new(
        &f.apex,
        qtype,
        ours,
        f.key.as_ref(),
        id,
        &f.primary.to_string(),
    )?;
    let io = |what: &str, e: std::io::Error| Failure::Io(format!("{what} {}: {e}", f.primary));
    let mut sock = TcpStream::connect_timeout(&f.primary, CONNECT_TIMEOUT)
        .map_err(|e| io("cannot connect to", e))?;
    let _ = sock.set_read_timeout(Some(READ_TIMEOUT));
    let _ = sock.set_write_timeout(Some(READ_TIMEOUT));
    let _ = sock.set_nodelay(true);
    let mut request = (ex.message.len() as u16).to_be_bytes().to_vec();
    request.extend_from_slice(&ex.message);
    sock.write_all(&request)
        .map_err(|e| io("cannot send to", e))?;
    let mut incoming = Incoming::new(&f.apex, qtype);
    let deadline = Instant::now() + TRANSFER_LIMIT;
    loop {
        if Instant::now() > deadline {
            return Err(Failure::Io(format!(
                "{}: the transfer took too long",
                f.primary
            )));
        }
        // Each read waits no longer than the transfer has left: a primary that
        // trickles a byte at a time is cut off at the limit, not a read's timeout later.
        let mut read = |buf: &mut [u8]| -> Result<(), Failure> {
            let mut got = 0;
            while got < buf.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failure::Io(format!(
                        "{}: the transfer took too long",
                        f.primary
                    )));
                }
                let _ = sock.set_read_timeout(Some(left.min(READ_TIMEOUT)));
                match sock.read(&mut buf[got..]) {
                    Ok(0) => {
                        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                        return Err(io("the transfer broke off from", eof));
                    }
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io("the transfer broke off from", e)),
                }
            }
            Ok(())
        };
        let mut len = [0u8; 2];
        read(&mut len)?;
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read(&mut m)?;
        if incoming.push(ex.answer(m)?)? {
            break;
        }
    }
    ex.done()?;
    Ok(incoming.finish(ours)?)
}

/// A request ID no one on the path can guess (RFC 5452's concern, for transfers too).
fn request_id() -> u16 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    ahash::RandomState::new().hash_one(n) as u16
}

#[cfg(test)]
mod tests {
    //! The follower against a primary played here over loopback (kernel sockets, no
    //! privileges): serials followed, a broken transfer leaves the version served, an
    //! unreachable primary expires the zone into SERVFAIL. Interop with a real primary
    //! (Knot DNS: NOTIFY, IXFR, TSIG) is tests/tests/dns.rs's
    //! `a_secondary_follows_knot_by_notify_and_ixfr_with_tsig`.

    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::dns_service::Limits;

    /// How the played primary answers.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Mode {
        /// Every transfer, whole.
        Serve,
        /// The first message of a transfer, then it closes.
        Break,
        /// It does not answer: the connection is closed at once.
        Down,
    }

    /// A primary for `example.test` whose serial and mode the test sets.
    struct Primary {
        addr: SocketAddr,
        serial: Arc<AtomicUsize>,
        mode: Arc<Mutex<Mode>>,
        served: Arc<AtomicUsize>,
    }

    fn zone_text(serial: usize) -> String {
        // Short timers: refresh 1 s, retry 1 s, expire 3 s. Enough names that a
        // transfer takes several 512-byte messages.
        let mut t = format!(
            "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 1 1 3 300\n@ NS ns\nns A 192.0.2.53\n"
        );
        for i in 0..40 {
            t.push_str(&format!("h{i} A 192.0.2.{}\n", i + 1));
        }
        t.push_str(&format!("v{serial} TXT \"version {serial}\"\n"));
        t
    }

    fn catalog(serial: usize, dir: &std::path::Path) -> dns::Catalog {
        let file = dir.join(format!("v{serial}.zone"));
        std::fs::write(&file, zone_text(serial)).unwrap();
        dns::Catalog::new(vec![dns::load_zone(&file, None).unwrap()]).unwrap()
    }

    fn primary(dir: &std::path::Path) -> Primary {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let serial = Arc::new(AtomicUsize::new(1));
        let mode = Arc::new(Mutex::new(Mode::Serve));
        let served = Arc::new(AtomicUsize::new(0));
        let (s, m, n, dir) = (
            serial.clone(),
            mode.clone(),
            served.clone(),
            dir.to_path_buf(),
        );
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mode = *m.lock().unwrap();
                if mode == Mode::Down {
                    continue;
                }
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut q).is_err() {
                    continue;
                }
                // IXFR answered with the whole zone, as RFC 1995 §4 allows.
                let c = catalog(s.load(Ordering::Relaxed), &dir);
                let mut messages = Vec::new();
                dns::transfer(&c, &q, 512, |m| messages.push(m.to_vec()));
                if mode == Mode::Break {
                    messages.truncate(1);
                }
                for m in messages {
                    let _ = conn.write_all(&(m.len() as u16).to_be_bytes());
                    let _ = conn.write_all(&m);
                }
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        Primary {
            addr,
            serial,
            mode,
            served,
        }
    }

    fn answer_rcode(svc: &DnsService, name: &str) -> u8 {
        let q = dns::decode::query(1, name, rtype::TXT, false);
        let mut out = vec![0u8; 4096];
        let cfg = dns::ResponderConfig::default();
        dns::answer(&svc.catalog.load(), &cfg, Ipv4Addr::LOCALHOST, &q, &mut out);
        out[3] & 0x0f
    }

    fn wait(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(secs);
        while !done() {
            assert!(Instant::now() < until, "waited {secs} s for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn follows_the_primary_keeps_a_version_through_a_broken_transfer_and_expires() {
        let dir = std::env::temp_dir().join(format!("sluice-secondary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = primary(&dir);
        let zone = SecondaryZone {
            name: "example.test".into(),
            primary: p.addr,
            key: None,
        };
        let svc = DnsService::with_secondaries(
            Vec::new(),
            std::slice::from_ref(&zone),
            Default::default(),
            Limits::default(),
            1,
        )
        .unwrap();
        // Before the first transfer: SERVFAIL.
        assert_eq!(answer_rcode(&svc, "v1.example.test"), dns::rcode::SERVFAIL);
        let _follower = start(svc.clone(), &[zone], None).unwrap();
        let status = &svc.secondaries[0];
        wait("the first transfer", 5, || status.serial() == Some(1));
        assert_eq!(answer_rcode(&svc, "v1.example.test"), dns::rcode::NOERROR);

        // A new serial is taken at the refresh interval (1 s).
        p.serial.store(2, Ordering::Relaxed);
        wait("serial 2", 5, || status.serial() == Some(2));
        assert_eq!(answer_rcode(&svc, "v2.example.test"), dns::rcode::NOERROR);
        assert_eq!(answer_rcode(&svc, "v1.example.test"), dns::rcode::NXDOMAIN);

        // A transfer that breaks halfway: version 2 stays.
        *p.mode.lock().unwrap() = Mode::Break;
        p.serial.store(3, Ordering::Relaxed);
        let failed = status.failed.load(Ordering::Relaxed);
        wait("a failed transfer", 5, || {
            status.failed.load(Ordering::Relaxed) > failed
        });
        assert_eq!(status.serial(), Some(2));
        assert_eq!(answer_rcode(&svc, "v2.example.test"), dns::rcode::NOERROR);

        // The primary gone: retried at the retry interval, SERVFAIL after expire (3 s).
        *p.mode.lock().unwrap() = Mode::Down;
        let started = Instant::now();
        wait("the zone's expiry", 8, || {
            status.expired.load(Ordering::Relaxed) == 1
        });
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(status.serial(), None, "{status:?}");
        assert_eq!(answer_rcode(&svc, "v2.example.test"), dns::rcode::SERVFAIL);
        assert!(status.failed.load(Ordering::Relaxed) >= failed + 2);

        // Back: transferred again.
        *p.mode.lock().unwrap() = Mode::Serve;
        wait("serial 3", 5, || status.serial() == Some(3));
        assert_eq!(answer_rcode(&svc, "v3.example.test"), dns::rcode::NOERROR);
        assert!(p.served.load(Ordering::Relaxed) >= 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
