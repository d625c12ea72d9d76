//! The DNS demo: an example zone served over AF_XDP on a veth pair, answers fetched by
//! real clients (kdig over TCP; Unbound, a resolver, with TCP upstream), then the same
//! short loads (one query per connection; pipelined queries) with `sluice-bench`
//! against sluice on AF_XDP, sluice's kernel-socket backend and Knot DNS on kernel
//! sockets, each server alone on core 0 and the load on core 1. It ends in one table
//! (queries/s, the server core's time per query, p50/p99 latency, the ratio against
//! the kernel backend) and a latency plot (SVG). Every figure is measured in the run;
//! a peer that is not installed is said to be missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netns::Topology;

use super::{DemoArgs, DemoError};

/// The example zone: the answer cases a newcomer knows.
const ZONE: &str = "$ORIGIN example.test.
$TTL 300
@        SOA   ns1 hostmaster 2026120701 3600 600 86400 300
@        NS    ns1
@        MX    10 mail
ns1      A     198.18.0.1
www      A     192.0.2.80
www      AAAA  2001:db8::80
mail     A     192.0.2.25
alias    CNAME www
txt      TXT   \"v=spf1 mx -all\"
*.users  A     192.0.2.99
";

/// What the demo asks, and how a newcomer would: (name, type).
const ASKED: [(&str, &str); 5] = [
    ("www.example.test", "A"),
    ("example.test", "MX"),
    ("alias.example.test", "A"),
    ("anyone.users.example.test", "A"),
    ("nope.example.test", "A"),
];

/// A server process stopped (SIGINT, then SIGKILL) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log says `ready`; the log's tail if it dies or takes too long.
    fn wait_for(&mut self, ready: &str, what: &str) -> Result<(), DemoError> {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if self.log().contains(ready) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{what} exited ({status}):\n{}", tail(&self.log())).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{what} did not start in 20 s:\n{}", tail(&self.log())).into())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Whether `tool` is on the PATH.
fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A server under load.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    SluiceXdp,
    SluiceKernel,
    Knot,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::SluiceXdp => "sluice, AF_XDP",
            Server::SluiceKernel => "sluice, kernel sockets",
            Server::Knot => "Knot DNS, kernel sockets",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Server::SluiceXdp => "sluice-xdp",
            Server::SluiceKernel => "sluice-kernel",
            Server::Knot => "knot",
        }
    }
}

/// A load `sluice-bench` puts on a server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Load {
    /// A new connection for every query, 16 at a time: DNS over TCP as resolvers use it.
    PerConnection,
    /// 4 connections, 16 queries in flight on each (RFC 7766 pipelining).
    Pipelined,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::PerConnection => "one query per connection",
            Load::Pipelined => "pipelined",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Load::PerConnection => &["--mode", "per-connection", "--connections", "16"],
            Load::Pipelined => &[
                "--mode",
                "pipelined",
                "--connections",
                "4",
                "--in-flight",
                "16",
            ],
        }
    }

    fn file(self) -> &'static str {
        match self {
            Load::PerConnection => "per-connection",
            Load::Pipelined => "pipelined",
        }
    }
}

/// One load's figures.
struct Run {
    server: Server,
    load: Load,
    qps: f64,
    answers: u64,
    errors: u64,
    /// The server core's busy time per answer, µs (its workers' idle polling left out).
    cpu_us: f64,
    p50_us: f64,
    p99_us: f64,
    curve: Vec<(f64, f64)>,
}

/// Everything the demo sets up, and where it writes.
struct Demo {
    topo: Topology,
    out: PathBuf,
    zone: PathBuf,
    exe: PathBuf,
    bench: PathBuf,
    seconds: f64,
    /// Steps that failed, for the exit status.
    failed: Vec<String>,
}

pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let bench = exe.with_file_name("sluice-bench");
    if !bench.exists() {
        return Err(format!(
            "{} is missing: the demo loads the servers with it (cargo build --release -p sluice-benches; scripts/demo.sh builds it)",
            bench.display()
        )
        .into());
    }
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        return Err("--seconds must be between 0 and 600".into());
    }
    prepare_out(&args.out)?;
    let zone = args.out.join("example.test.zone");
    std::fs::write(&zone, ZONE)?;
    println!("== sluice demo: DNS over TCP on AF_XDP, side by side with the kernel ==");
    let topo = super::topology(args.queues)?;
    // Thousands of short connections a second from one client address: its TIME-WAIT
    // ports must be reusable, as on any busy resolver (in our namespace only).
    let tuned = topo
        .peer_cmd("sysctl")
        .args([
            "-qw",
            "net.ipv4.tcp_tw_reuse=1",
            "net.ipv4.ip_local_port_range=1024 65000",
        ])
        .status();
    if !tuned.is_ok_and(|s| s.success()) {
        return Err("cannot set tcp_tw_reuse in the peer namespace".into());
    }
    let mut demo = Demo {
        topo,
        out: args.out.clone(),
        zone,
        exe,
        bench,
        seconds: args.seconds,
        failed: Vec::new(),
    };
    let mut runs = Vec::new();

    // 1. sluice on AF_XDP, and what real clients get from it.
    println!(
        "\n[1] sluice serves example.test over AF_XDP ({}, core 0)",
        demo.topo.server_if
    );
    let t = Instant::now();
    let sluice = demo.start(Server::SluiceXdp)?;
    println!(
        "    serving after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        demo.zone.display()
    );
    println!("\n[2] answers over TCP, from the peer namespace");
    demo.answers();
    demo.through_unbound();
    println!(
        "\n[3] load: {} ({} s each)",
        Server::SluiceXdp.name(),
        demo.seconds
    );
    demo.loads(Server::SluiceXdp, &mut runs);
    drop(sluice);

    // 2. The same zone on kernel sockets: sluice's own kernel backend, and Knot DNS.
    println!(
        "\n[4] load: {} (the same zone, the same core)",
        Server::SluiceKernel.name()
    );
    match demo.start(Server::SluiceKernel) {
        Ok(d) => {
            demo.loads(Server::SluiceKernel, &mut runs);
            drop(d);
        }
        Err(e) => demo.fail(format!("sluice on kernel sockets did not start: {e}")),
    }
    println!("\n[5] load: {}", Server::Knot.name());
    if have("knotd") {
        match demo.start(Server::Knot) {
            Ok(d) => {
                demo.loads(Server::Knot, &mut runs);
                drop(d);
            }
            Err(e) => demo.fail(format!("Knot DNS did not start: {e}")),
        }
    } else {
        println!("    knotd is not installed (Debian: knot): no Knot DNS rows");
    }

    println!(
        "\nresults: each server alone on core 0, sluice-bench on kernel sockets on core 1, over the veth pair; CPU is core 0's busy time per answer (an AF_XDP worker's idle polling left out)\n"
    );
    print!("{}", table(&runs, have("knotd")));
    let plot = demo.out.join("latency.svg");
    let lines: Vec<sluice::plot::Line> = runs
        .iter()
        .map(|r| sluice::plot::Line {
            label: format!("{}, {}", r.server.name(), r.load.name()),
            qps: r.qps,
            points: r.curve.clone(),
        })
        .collect();
    std::fs::write(&plot, sluice::plot::svg(&lines))?;
    println!("\nlatency plot: {}", plot.display());
    println!(
        "each load's figures (JSON) and the servers' logs: {}",
        demo.out.display()
    );
    let Demo { topo, failed, .. } = demo;
    drop(topo);
    println!(
        "topology removed; {} in {:.0} s",
        if failed.is_empty() {
            "every step ok".to_string()
        } else {
            format!("{} step(s) FAILED", failed.len())
        },
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("the demo saw failures:\n  {}", failed.join("\n  ")).into())
    }
}

/// The file that marks a directory as a demo's output, which the next demo may empty.
const MARK: &str = ".sluice-demo";

/// Makes `out` an empty directory for this run: new, empty, or a previous demo's
/// output (which has its mark). Anything else is left alone: the demo runs as root,
/// and `--out ~` must not empty a home.
fn prepare_out(out: &std::path::Path) -> Result<(), DemoError> {
    let name = out.display();
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if out.join(MARK).exists() {
                std::fs::remove_dir_all(out).map_err(|e| format!("{name}: {e}"))?;
            } else if entries.next().is_some() {
                return Err(format!(
                    "{name} is not empty and not a sluice demo's output: give --out a new or empty directory"
                )
                .into());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{name}: {e}").into()),
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{name}: {e}"))?;
    std::fs::write(
        out.join(MARK),
        "written by `sluice demo`; the next demo empties this directory\n",
    )
    .map_err(|e| format!("{name}: {e}"))?;
    Ok(())
}

impl Demo {
    fn fail(&mut self, what: String) {
        println!("    FAILED: {what}");
        self.failed.push(what);
    }

    /// Starts `server` on the server side, on core 0, serving the example zone.
    fn start(&self, server: Server) -> Result<Daemon, DemoError> {
        let log = self.out.join(format!("{}.log", server.file()));
        let ip = self.topo.server_ip.to_string();
        let mut cmd = match server {
            Server::SluiceXdp | Server::SluiceKernel => {
                let mut c = self
                    .topo
                    .server_cmd(self.exe.to_str().ok_or("a non-UTF-8 path")?);
                c.arg("serve")
                    .args(["--listen", "53=dns", "--addr", &ip, "--cores", "0"]);
                c.arg("--zone").arg(&self.zone);
                c.arg("--control").arg(self.control(server));
                c.args(["--drain", "0.5"]);
                if server == Server::SluiceXdp {
                    c.args(["--backend", "xdp", "--iface", &self.topo.server_if]);
                } else {
                    c.args(["--backend", "kernel", "--workers", "1"]);
                }
                c
            }
            Server::Knot => {
                let dir = self.out.join("knot");
                std::fs::create_dir_all(&dir)?;
                let conf = dir.join("knot.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "server:\n    rundir: \"{d}\"\n    listen: {ip}@53\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
                         database:\n    storage: \"{d}/db\"\nlog:\n  - target: \"{log}\"\n    any: info\n\
                         zone:\n  - domain: example.test\n    file: \"{z}\"\n    journal-content: none\n    zonefile-sync: -1\n",
                        d = dir.display(),
                        log = log.display(),
                        z = self.zone.display()
                    ),
                )?;
                let mut c = self.topo.server_cmd("taskset");
                c.args(["-c", "0", "knotd", "-c"]).arg(&conf);
                c
            }
        };
        let stderr = std::fs::File::create(&log)?;
        let (ready, what) = match server {
            Server::Knot => ("loaded, serial", "knotd"),
            _ => ("serving", "sluice serve"),
        };
        if server == Server::Knot {
            cmd.stderr(Stdio::null());
        } else {
            cmd.stderr(stderr);
        }
        let child = cmd.stdout(Stdio::null()).spawn()?;
        let mut d = Daemon { child, log };
        d.wait_for(ready, what)?;
        Ok(d)
    }

    fn control(&self, server: Server) -> PathBuf {
        self.out.join(format!("{}.sock", server.file()))
    }

    /// A few names asked with kdig over TCP (or, without it, sluice's own decoder).
    fn answers(&mut self) {
        let kdig = have("kdig");
        if !kdig {
            println!("    kdig is not installed (Debian: knot-dnsutils): asking with sluice's own client");
        }
        for (name, qtype) in ASKED {
            let got = if kdig {
                self.kdig(&format!("@{}", self.topo.server_ip), &["+tcp"], name, qtype)
            } else {
                self.ask_ourselves(name, qtype)
            };
            match got {
                Ok(text) => println!(
                    "    {} {name} {qtype:<5} {text}",
                    if kdig { "kdig +tcp" } else { "query" }
                ),
                Err(e) => self.fail(format!("{name} {qtype}: {e}")),
            }
        }
    }

    /// What kdig in the peer namespace answers: the answer's records (short form), or
    /// the status when there are none.
    fn kdig(&self, server: &str, opts: &[&str], name: &str, qtype: &str) -> Result<String, String> {
        let out = self
            .topo
            .peer_cmd("kdig")
            .args(opts)
            .args(["+timeout=2", "+retry=1", server, name, qtype])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .and_then(|s| s.split(';').next())
            .map(|s| s.trim().to_string());
        let Some(status) = status else {
            return Err(format!("no answer: {}", text.trim()));
        };
        // The answer section's data, as `+short` would print it.
        let mut records = Vec::new();
        let mut in_answer = false;
        for l in text.lines() {
            if l.starts_with(";; ANSWER SECTION") {
                in_answer = true;
                continue;
            }
            if in_answer {
                if l.trim().is_empty() || l.starts_with(";;") {
                    break;
                }
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() >= 5 {
                    records.push(format!("{} {}", f[3], f[4..].join(" ")));
                }
            }
        }
        Ok(if records.is_empty() || status != "NOERROR" {
            status
        } else {
            records.join(", ")
        })
    }

    /// The same question over our own TCP client, without kdig.
    fn ask_ourselves(&self, name: &str, qtype: &str) -> Result<String, String> {
        let t = match qtype {
            "A" => dns::rtype::A,
            "MX" => dns::rtype::MX,
            _ => dns::rtype::A,
        };
        let (server, q) = (
            SocketAddr::from((self.topo.server_ip, 53)),
            dns::decode::query(7, name, t, false),
        );
        let m = self
            .topo
            .run_in(
                &self.topo.peer_ns.clone(),
                move || -> std::io::Result<Vec<u8>> {
                    let mut c = TcpStream::connect_timeout(&server, Duration::from_secs(3))?;
                    c.set_read_timeout(Some(Duration::from_secs(3)))?;
                    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
                    framed.extend(&q);
                    c.write_all(&framed)?;
                    let mut len = [0u8; 2];
                    c.read_exact(&mut len)?;
                    let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    c.read_exact(&mut m)?;
                    Ok(m)
                },
            )
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let m = dns::decode::decode(&m).map_err(|e| format!("{e:?}"))?;
        Ok(match m.rcode() {
            0 if !m.answer.is_empty() => m
                .answer
                .iter()
                .map(|r| format!("{} {:?}", r.rtype, r.rdata))
                .collect::<Vec<_>>()
                .join(", "),
            0 => "NOERROR".into(),
            3 => "NXDOMAIN".into(),
            rc => format!("rcode {rc}"),
        })
    }

    /// www.example.test resolved by Unbound in the peer namespace, which asks sluice
    /// over TCP (`tcp-upstream`), if Unbound is installed.
    fn through_unbound(&mut self) {
        if !(have("unbound") && have("kdig")) {
            println!("    unbound or kdig is not installed (Debian: unbound, knot-dnsutils): no resolver step");
            return;
        }
        let dir = self.out.join("unbound");
        let conf = dir.join("unbound.conf");
        let written = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::write(
                &conf,
                format!(
                    "server:\n  interface: 127.0.0.1\n  port: 5399\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n\
                     \x20 directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n\
                     \x20 do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n\
                     \x20 qname-minimisation: no\n  tcp-upstream: yes\n  local-zone: \"test.\" nodefault\n\
                     stub-zone:\n  name: \"example.test\"\n  stub-addr: {ip}\n",
                    d = dir.display(),
                    ip = self.topo.server_ip
                ),
            )
        });
        if let Err(e) = written {
            return self.fail(format!("unbound's config: {e}"));
        }
        let child = self
            .topo
            .peer_cmd("unbound")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return self.fail("unbound did not start".into());
        };
        let _unbound = Daemon {
            child,
            log: dir.join("unbound.log"),
        };
        let until = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < until {
            match self.kdig(
                "@127.0.0.1",
                &["-p", "5399", "+tcp"],
                "www.example.test",
                "A",
            ) {
                Ok(text) if text.starts_with("A ") => {
                    println!("    Unbound (a resolver; to sluice over TCP) www.example.test A     {text}");
                    return;
                }
                Ok(text) | Err(text) => last = text,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.fail(format!("Unbound did not resolve www.example.test: {last}"));
    }

    /// Both loads on `server`, each a row of the table.
    fn loads(&mut self, server: Server, runs: &mut Vec<Run>) {
        for load in [Load::PerConnection, Load::Pipelined] {
            match self.load(server, load) {
                Ok(r) => {
                    if r.errors > 0 || r.answers == 0 {
                        self.fail(format!(
                            "{}, {}: {} answers, {} errors",
                            server.name(),
                            load.name(),
                            r.answers,
                            r.errors
                        ));
                    }
                    runs.push(r);
                }
                Err(e) => self.fail(format!("{}, {}: {e}", server.name(), load.name())),
            }
        }
    }

    /// One load: sluice-bench in the peer namespace on core 1 for `seconds`, a ticker
    /// line while it runs; the server core's busy time read around it.
    fn load(&self, server: Server, load: Load) -> Result<Run, DemoError> {
        let json = self
            .out
            .join(format!("{}-{}.json", server.file(), load.file()));
        let log = self
            .out
            .join(format!("{}-{}.txt", server.file(), load.file()));
        let target = format!("{}:53", self.topo.server_ip);
        let mut cmd = self
            .topo
            .peer_cmd(self.bench.to_str().ok_or("a non-UTF-8 path")?);
        cmd.args(["--server", &target, "--cores", "1", "--warmup", "0"])
            .args(["--duration", &self.seconds.to_string()])
            .args(load.args())
            .arg("--json")
            .arg(&json)
            .args(["--label", server.name()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let idle_before = self.idle_poll_us(server);
        let busy_before = core_busy(0)?;
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("no output from sluice-bench")?;
        let mut transcript = String::new();
        let label = format!("    {:<26}", load.name());
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            transcript.push_str(&line);
            transcript.push('\n');
            // Its progress lines ("  1.0s  12345 answers/s ..."), one ticker line here.
            if is_progress(&line) {
                print!("\r{label}{}", ticker(&line));
                let _ = std::io::stdout().flush();
            }
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = child.wait()?;
        let busy = core_busy(0)? - busy_before;
        let idle = self
            .idle_poll_us(server)
            .zip(idle_before)
            .map_or(0.0, |(a, b)| (a - b) / 1e6);
        std::fs::write(&log, format!("{transcript}{err}"))?;
        let doc: serde_json::Value = std::fs::read_to_string(&json)
            .map_err(|e| {
                format!(
                    "sluice-bench wrote no figures ({status}): {e}\n{}",
                    tail(&err)
                )
            })
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| format!("{}: {e}", json.display()))
            })?;
        let f = |k: &str| doc[k].as_f64().unwrap_or(0.0);
        let answers = doc["answers"].as_u64().unwrap_or(0);
        let errors: u64 = doc["errors"]
            .as_object()
            .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        let pct = |p: &str| doc["latency_us"][p].as_f64().unwrap_or(f64::NAN);
        let curve = doc["curve_us"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let run = Run {
            server,
            load,
            qps: f("qps"),
            answers,
            errors,
            cpu_us: if answers > 0 {
                (busy - idle).max(0.0) * 1e6 / answers as f64
            } else {
                f64::NAN
            },
            p50_us: pct("50"),
            p99_us: pct("99"),
            curve,
        };
        println!(
            "\r{label}{:>9.0} queries/s, p50 {:.0} µs, p99 {:.0} µs, {:.1} µs of server core per query{}",
            run.qps,
            run.p50_us,
            run.p99_us,
            run.cpu_us,
            " ".repeat(20)
        );
        Ok(run)
    }

    /// Microseconds sluice's workers spent polling with nothing to do, so far (None
    /// for Knot, or when the control socket does not answer).
    fn idle_poll_us(&self, server: Server) -> Option<f64> {
        if server == Server::Knot {
            return None;
        }
        let text = crate::serve::ask(&self.control(server), b"json\n").ok()?;
        let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(
            doc["workers"]
                .as_array()?
                .iter()
                .filter_map(|w| w["idle_poll_us"].as_f64())
                .sum(),
        )
    }
}

/// Whether `line` is one of sluice-bench's progress lines: it starts with the seconds
/// elapsed, "1.0s".
fn is_progress(line: &str) -> bool {
    line.split_whitespace()
        .next()
        .and_then(|w| w.strip_suffix('s'))
        .is_some_and(|n| n.parse::<f64>().is_ok())
}

/// A progress line, shortened for the ticker.
fn ticker(line: &str) -> String {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        [t, n, "answers/s", ..] => format!("{t}: {n} answers/s ..."),
        _ => line.trim().to_string(),
    }
}

/// Seconds core `cpu` has been busy (user, nice, system, irq, softirq, steal).
fn core_busy(cpu: usize) -> Result<f64, DemoError> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&name))
        .ok_or_else(|| format!("/proc/stat has no {name}"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(busy / hz)
}

/// The results as a Markdown table: a row per server and load, with the ratio against
/// sluice's kernel backend for the same load.
fn table(runs: &[Run], have_knot: bool) -> String {
    let mut s = String::from(
        "| server | load | queries/s | server CPU µs/query | p50 µs | p99 µs | vs kernel backend |\n|---|---|---:|---:|---:|---:|---|\n",
    );
    for r in runs {
        let kernel = runs
            .iter()
            .find(|k| k.server == Server::SluiceKernel && k.load == r.load);
        let ratio = match kernel {
            Some(k) if k.server != r.server && k.qps > 0.0 => format!(
                "{:.2}x the queries/s, {:.2}x the CPU per query",
                r.qps / k.qps,
                r.cpu_us / k.cpu_us
            ),
            Some(_) => "(the baseline)".into(),
            None => "(no kernel backend row)".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.0} | {:.0} | {} |\n",
            r.server.name(),
            r.load.name(),
            r.qps,
            r.cpu_us,
            r.p50_us,
            r.p99_us,
            ratio
        ));
    }
    if !have_knot {
        s.push_str("| Knot DNS | - | not installed | | | | |\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: Server, load: Load, qps: f64, cpu_us: f64) -> Run {
        Run {
            server,
            load,
            qps,
            answers: 1,
            errors: 0,
            cpu_us,
            p50_us: 100.0,
            p99_us: 900.0,
            curve: Vec::new(),
        }
    }

    #[test]
    fn the_table_compares_each_load_with_the_kernel_backend() {
        let t = table(
            &[
                run(Server::SluiceXdp, Load::PerConnection, 20000.0, 20.0),
                run(Server::SluiceKernel, Load::PerConnection, 10000.0, 40.0),
                run(Server::SluiceXdp, Load::Pipelined, 90000.0, 3.0),
            ],
            false,
        );
        assert!(t.contains("| sluice, AF_XDP | one query per connection | 20000 | 20.0 | 100 | 900 | 2.00x the queries/s, 0.50x the CPU per query |"), "{t}");
        assert!(t.contains("(the baseline)"));
        assert!(t.contains("(no kernel backend row)"));
        assert!(t.contains("| Knot DNS | - | not installed"));
    }

    #[test]
    fn the_output_directory_is_emptied_only_if_a_demo_made_it() {
        let dir = std::env::temp_dir().join(format!("sluice-demo-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        prepare_out(&dir).unwrap();
        std::fs::write(dir.join("old.json"), "{}").unwrap();
        prepare_out(&dir).unwrap();
        assert!(
            !dir.join("old.json").exists(),
            "a demo's own output is emptied"
        );
        std::fs::remove_file(dir.join(MARK)).unwrap();
        std::fs::write(dir.join("precious"), "x").unwrap();
        assert!(prepare_out(&dir).is_err());
        assert!(dir.join("precious").exists(), "anything else is left alone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_example_zone_loads() {
        let dir = std::env::temp_dir().join(format!("sluice-demo-zone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("example.test.zone");
        std::fs::write(&file, ZONE).unwrap();
        let z = dns::load_zone(&file, None).unwrap();
        assert_eq!(dns::name::to_text(&z.apex), "example.test.");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_progress_line_becomes_a_ticker() {
        assert!(is_progress("  1.0s   12 answers/s"));
        assert!(!is_progress("  answers   811   270 /s"));
        assert_eq!(
            ticker("  2.0s      12345 answers/s      800 conn/s  max latency     900 us  total      24000 answers  errors 0"),
            "2.0s: 12345 answers/s ..."
        );
    }
}
