//! The steering program's life cycle and the errors a user meets, end to end: it never
//! outlives the process that attached it, and every refusal names its cause.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use e2e::{require_root, wait_for, Topology, TopologyConfig};
use xsk::{AttachMode, Error, XdpProgram, XskConfig, XskSocket};

fn topology(queues: u32) -> Topology {
    Topology::create(&TopologyConfig {
        queues,
        ..Default::default()
    })
    .expect("building the veth topology")
}

/// Starts xdp-holder in the server namespace and waits for its "attached" line.
fn start_holder(topo: &Topology, then: &str) -> Child {
    let mut child = topo
        .server_cmd(e2e::holder_path!())
        .args(["--iface", &topo.server_if, "--then", then])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xdp-holder");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("xdp-holder said nothing in 20 s");
    if !line.starts_with("attached") {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "xdp-holder failed: {line:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child
}

fn assert_detached(topo: &Topology, how: &str) {
    let gone = wait_for(Duration::from_secs(5), || {
        (!topo.server_has_xdp().unwrap()).then_some(())
    });
    assert!(
        gone.is_some(),
        "an XDP program is still attached after the holder ended by {how}"
    );
}

fn end_by_signal(signal: libc::c_int, name: &str) {
    let topo = topology(1);
    let mut child = start_holder(&topo, "sleep");
    assert!(
        topo.server_has_xdp().unwrap(),
        "holder says attached but ip link shows no XDP program"
    );
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let status = child.wait().unwrap();
    assert!(!status.success(), "holder survived {name}");
    assert_detached(&topo, name);
}

#[test]
fn detached_after_sigkill() {
    require_root!();
    end_by_signal(libc::SIGKILL, "SIGKILL");
}

#[test]
fn detached_after_sigterm() {
    require_root!();
    end_by_signal(libc::SIGTERM, "SIGTERM");
}

#[test]
fn detached_after_sigint() {
    require_root!();
    end_by_signal(libc::SIGINT, "SIGINT");
}

#[test]
fn detached_after_panic_and_after_exit() {
    require_root!();
    let topo = topology(2);
    for then in ["panic", "exit"] {
        let child = start_holder(&topo, then);
        let out = child.wait_with_output().unwrap();
        if then == "panic" {
            assert_eq!(out.status.code(), Some(101), "a panic exits with 101");
        } else {
            assert!(out.status.success());
        }
        assert_detached(&topo, then);
    }
}

#[test]
fn missing_interface_is_a_clear_error() {
    // Needs no privileges: the interface is looked up before anything else.
    let err = XdpProgram::attach("sluice-none0", AttachMode::Auto).unwrap_err();
    assert!(matches!(err, Error::NoSuchInterface(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "interface \"sluice-none0\" does not exist (in this network namespace)"
    );
    let err = XskSocket::bind("sluice-none0", 0, &XskConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoSuchInterface(_)), "{err}");
}

#[test]
fn missing_privileges_are_a_clear_error() {
    require_root!();
    let topo = topology(1);
    // Root without any capability: what an unprivileged user gets, without needing one.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.server_ns,
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--",
        ])
        .arg(e2e::holder_path!())
        .args(["--iface", &topo.server_if, "--then", "exit"])
        .output()
        .expect("running setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("permission denied"), "stderr: {stderr}");
    assert!(
        stderr.contains("CAP_NET_ADMIN") && stderr.contains("CAP_BPF"),
        "stderr: {stderr}"
    );
    assert!(!topo.server_has_xdp().unwrap());
}

#[test]
fn another_program_already_attached_is_a_clear_error() {
    require_root!();
    let topo = topology(1);
    let iface = topo.server_if.clone();
    let result = topo
        .run_in(&topo.server_ns.clone(), move || {
            let first = XdpProgram::attach(&iface, AttachMode::Auto).expect("first attach");
            let second = XdpProgram::attach(&iface, AttachMode::Auto).map(|_| ());
            drop(first);
            // Once the first is gone, attaching works again.
            let third = XdpProgram::attach(&iface, AttachMode::Auto).map(|p| p.mode());
            (second, third)
        })
        .unwrap();
    match result.0 {
        Err(Error::XdpAlreadyAttached { ref iface }) => assert_eq!(iface, &topo.server_if),
        other => panic!("expected XdpAlreadyAttached, got {other:?}"),
    }
    assert!(result
        .0
        .unwrap_err()
        .to_string()
        .contains("already attached"));
    assert!(result.1.is_ok(), "{:?}", result.1);
}

#[test]
fn missing_and_busy_queues_are_clear_errors() {
    require_root!();
    let topo = topology(1);
    let iface = topo.server_if.clone();
    let (missing, busy) = topo
        .run_in(&topo.server_ns.clone(), move || {
            let missing = XskSocket::bind(&iface, 5, &XskConfig::default()).map(|_| ());
            let first = XskSocket::bind(&iface, 0, &XskConfig::default()).expect("binding queue 0");
            let busy = XskSocket::bind(&iface, 0, &XskConfig::default()).map(|_| ());
            drop(first);
            (missing, busy)
        })
        .unwrap();
    match missing {
        Err(
            ref e @ Error::NoSuchQueue {
                queue: 5,
                available: 1,
                ..
            },
        ) => {
            assert!(
                e.to_string()
                    .contains("has no queue 5 (it has 1 receive queue(s)"),
                "{e}"
            )
        }
        other => panic!("expected NoSuchQueue, got {other:?}"),
    }
    assert!(
        matches!(busy, Err(Error::QueueBusy { queue: 0, .. })),
        "{busy:?}"
    );
}

#[test]
fn modes_can_be_chosen_explicitly() {
    require_root!();
    let topo = topology(1);
    let iface = topo.server_if.clone();
    let modes = topo
        .run_in(&topo.server_ns.clone(), move || {
            let skb = XdpProgram::attach(&iface, AttachMode::Skb).map(|p| p.mode());
            let drv = XdpProgram::attach(&iface, AttachMode::Driver).map(|p| p.mode());
            (skb, drv)
        })
        .unwrap();
    assert_eq!(modes.0.unwrap(), AttachMode::Skb);
    assert_eq!(
        modes.1.unwrap(),
        AttachMode::Driver,
        "veth supports native XDP"
    );
}

#[test]
fn topology_is_removed_even_when_a_test_panics() {
    require_root!();
    let names = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = names.clone();
    let result = std::panic::catch_unwind(move || {
        let topo = topology(1);
        *seen.lock().unwrap() = Some((
            topo.server_ns.clone(),
            topo.peer_ns.clone(),
            topo.server_if.clone(),
        ));
        panic!("a failing test");
    });
    assert!(result.is_err());
    let (srv, peer, _) = names
        .lock()
        .unwrap()
        .clone()
        .expect("the topology was built");
    let list = netns::ip(&["netns", "list"]).unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains(&srv) && !list.contains(&peer),
        "namespaces left behind: {list}"
    );
}
