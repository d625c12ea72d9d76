//! `sluice demo --echo`: the TCP stack alone, in one command.
//!
//! Builds a two-namespace veth topology, starts the stack on its AF_XDP backend on the
//! server side with an echo listener, and drives it from the peer side through the
//! kernel's own TCP: many concurrent connections echoing a checked byte stream, then an
//! active open from our stack to a kernel server in the peer namespace. It also checks
//! that ping and a kernel TCP server on another port of the same address keep working
//! while sluice owns its port, prints what happened, and tears everything down.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stack::{Bytes, Flow, Listener, Listeners, Stack, StackConfig, XdpConfig};

use super::{DemoArgs, DemoError};

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(7)) as u8)
        .collect()
}

pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    println!("== sluice demo --echo: sluice's TCP on AF_XDP, an echo service ==");
    let topo = super::topology(args.queues)?;

    // The stack, on the server side: an echo listener on the AF_XDP backend.
    let (iface, server_ip, port, mode) =
        (topo.server_if.clone(), topo.server_ip, args.port, args.mode);
    let mut stack = topo.run_in(&topo.server_ns.clone(), move || {
        let mut listeners = Listeners::new();
        listeners.listen(
            port,
            Listener::new(|mut flow: Flow| async move {
                while let Ok(Some(data)) = flow.read().await {
                    if flow.write(data).await.is_err() {
                        return;
                    }
                }
                flow.close().await;
            }),
        );
        let mut config = StackConfig::xdp(XdpConfig {
            attach_mode: mode,
            ..XdpConfig::new(iface)
        });
        config.addrs = vec![server_ip];
        Stack::start(config, listeners)
    })??;
    println!(
        "sluice: {} AF_XDP worker(s) serving echo on {}:{}",
        stack.workers(),
        topo.server_ip,
        args.port
    );

    // A kernel server on another port of the same address: not ours, so the kernel's.
    let kernel_port = 9000;
    let stop_kernel = topo.spawn_in_server(move || kernel_echo(server_ip, kernel_port))?;

    // 1. Kernel clients against our listener, all at once.
    let (n, bytes) = (args.connections, args.bytes);
    let target = SocketAddr::from((topo.server_ip, args.port));
    let started = Instant::now();
    let results = topo.run_in(&topo.peer_ns.clone(), move || {
        let workers: Vec<_> = (0..n)
            .map(|i| {
                std::thread::spawn(move || -> Result<Duration, String> {
                    let t = Instant::now();
                    let mut c = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                        .map_err(|e| format!("connect: {e}"))?;
                    c.set_read_timeout(Some(Duration::from_secs(10)))
                        .map_err(|e| e.to_string())?;
                    let data = pattern(i, bytes);
                    let mut w = c.try_clone().map_err(|e| e.to_string())?;
                    let sent = data.clone();
                    let writer = std::thread::spawn(move || {
                        let r = w.write_all(&sent);
                        let _ = w.shutdown(Shutdown::Write);
                        r
                    });
                    let mut back = Vec::with_capacity(bytes);
                    c.read_to_end(&mut back).map_err(|e| format!("read: {e}"))?;
                    writer
                        .join()
                        .map_err(|_| "writer panicked".to_string())?
                        .map_err(|e| format!("write: {e}"))?;
                    if back != data {
                        return Err(format!(
                            "echo differs ({} of {} bytes)",
                            back.len(),
                            data.len()
                        ));
                    }
                    Ok(t.elapsed())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect::<Vec<_>>()
    })?;
    let elapsed = started.elapsed();
    let mut times: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    times.sort();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let pct = |p: f64| {
        times
            .get(((times.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "kernel clients -> sluice: {} of {} connections echoed {} KiB each, byte for byte, in {:.2?} ({:.1} MB/s; per connection p50 {:.2?}, p99 {:.2?})",
        times.len(),
        n,
        bytes / 1024,
        elapsed,
        (2 * times.len() * bytes) as f64 / elapsed.as_secs_f64() / 1e6,
        pct(0.5),
        pct(0.99)
    );
    for f in failures.iter().take(3) {
        println!("  failure: {f}");
    }

    // 2. Our connect against a kernel server in the peer namespace.
    let peer_ip = topo.peer_ip;
    let (ready_tx, ready_rx) = mpsc::channel();
    topo.spawn_in_peer(move || {
        let Ok(l) = TcpListener::bind((peer_ip, 9100)) else {
            return;
        };
        let _ = ready_tx.send(());
        if let Ok((mut c, _)) = l.accept() {
            let mut buf = Vec::new();
            let _ = c.read_to_end(&mut buf);
            let _ = c.write_all(format!("kernel got {} bytes", buf.len()).as_bytes());
        }
    })?;
    ready_rx.recv_timeout(Duration::from_secs(5))?;
    let (tx, rx) = mpsc::channel();
    stack.spawn(0, move |ctx| async move {
        let outcome = async {
            let mut flow = ctx
                .connect(SocketAddrV4::new(peer_ip, 9100), None)
                .await
                .map_err(|e| e.to_string())?;
            flow.write(Bytes::from(vec![b'x'; 100_000]))
                .await
                .map_err(|e| e.to_string())?;
            flow.close().await;
            let mut reply = Vec::new();
            while let Some(d) = flow.read().await.map_err(|e| e.to_string())? {
                reply.extend_from_slice(&d);
            }
            Ok::<_, String>(String::from_utf8_lossy(&reply).to_string())
        }
        .await;
        let _ = tx.send(outcome);
    })?;
    let active = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "our connect did not finish in 10 s")?;
    match &active {
        Ok(reply) => {
            println!("sluice -> kernel server: sent 100000 bytes, half-closed, read back {reply:?}")
        }
        Err(e) => println!("sluice -> kernel server: FAILED: {e}"),
    }

    // 3. What we do not own still reaches the kernel.
    let ping = topo
        .peer_cmd("ping")
        .args([
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            &topo.server_ip.to_string(),
        ])
        .output();
    let ping_ok = ping.as_ref().is_ok_and(|o| o.status.success());
    let kernel_tcp = topo.run_in(&topo.peer_ns.clone(), move || -> std::io::Result<bool> {
        let mut c = TcpStream::connect_timeout(
            &SocketAddr::from((server_ip, kernel_port)),
            Duration::from_secs(3),
        )?;
        c.set_read_timeout(Some(Duration::from_secs(3)))?;
        c.write_all(b"sluice")?;
        let mut buf = [0u8; 6];
        c.read_exact(&mut buf)?;
        Ok(&buf == b"sluice")
    })?;
    println!(
        "while sluice owns port {}: ping {}, kernel TCP on port {kernel_port} {}",
        args.port,
        ok(ping_ok),
        ok(matches!(kernel_tcp, Ok(true)))
    );

    stack.shutdown(Duration::from_secs(1));
    drop(stack);
    drop(stop_kernel);
    drop(topo);
    println!("stack stopped, XDP program detached, topology removed");
    if !failures.is_empty() || active.is_err() || !ping_ok || !matches!(kernel_tcp, Ok(true)) {
        return Err("the demo saw failures (see above)".into());
    }
    Ok(())
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "FAILED"
    }
}

/// A kernel TCP echo server for one connection at a time, until its namespace goes away.
fn kernel_echo(addr: Ipv4Addr, port: u16) {
    let Ok(listener) = TcpListener::bind((addr, port)) else {
        return;
    };
    for mut c in listener.incoming().flatten() {
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 64];
        if let Ok(n) = c.read(&mut buf) {
            let _ = c.write_all(&buf[..n]);
        }
    }
}
