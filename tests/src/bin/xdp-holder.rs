//! Test helper: attaches the steering program to an interface, binds an AF_XDP socket on
//! every queue, prints `attached mode=M queues=N`, then does what `--then` says. The
//! end-to-end tests use it to prove that no XDP program outlives the process, however
//! the process ends, and that errors reach the user as clear messages.

use std::io::Write;
use std::process::ExitCode;

use xsk::{AttachMode, XdpProgram, XskConfig, XskSocket};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut iface = None;
    let mut mode = AttachMode::Auto;
    let mut then = "sleep".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iface" => iface = it.next().cloned(),
            "--mode" => {
                mode = it
                    .next()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(AttachMode::Auto)
            }
            "--then" => then = it.next().cloned().unwrap_or_default(),
            other => {
                eprintln!("usage: xdp-holder --iface IF [--mode auto|driver|skb] [--then sleep|panic|exit] (got {other:?})");
                return ExitCode::from(2);
            }
        }
    }
    let Some(iface) = iface else {
        eprintln!(
            "usage: xdp-holder --iface IF [--mode auto|driver|skb] [--then sleep|panic|exit]"
        );
        return ExitCode::from(2);
    };
    let mut program = match XdpProgram::attach(&iface, mode) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let queues = match xsk::iface::rx_queue_count(&iface) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let config = XskConfig {
        frame_count: 1024,
        ring_size: 256,
        ..XskConfig::default()
    };
    let mut sockets = Vec::new();
    for q in 0..queues {
        match XskSocket::bind(&iface, q, &config)
            .and_then(|s| program.register_socket(&s).map(|_| s))
        {
            Ok(s) => sockets.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!("attached mode={} queues={queues}", program.mode());
    let _ = std::io::stdout().flush();
    match then.as_str() {
        "panic" => panic!("xdp-holder: panicking on purpose with the program attached"),
        "exit" => ExitCode::SUCCESS,
        _ => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}
