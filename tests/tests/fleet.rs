//! The fleet (deploy/fleet/demo.sh, shortened): two sluice hosts announcing the
//! service address over BGP with BIRD to a router that spreads it by ECMP; load from a
//! client through a rolling restart (nothing may be lost) and a host that dies (only
//! what BFD has not yet noticed may be).

use std::path::Path;
use std::process::Command;

use e2e::require_root;

#[test]
fn the_fleet_spreads_restarts_and_survives_a_dead_host() {
    require_root!();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !ci && Command::new("bird").arg("--version").output().is_err() {
        eprintln!("skipping: bird (bird2) is not installed; scripts/deps.sh installs it");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap();
    for b in ["sluice", "fleet-load"] {
        assert!(
            bin.join(b).is_file(),
            "{} is not built: run `cargo build --workspace --bins` first (scripts/test.sh does)",
            bin.join(b).display()
        );
    }
    let out = Command::new(root.join("deploy/fleet/demo.sh"))
        .env("SECS", "2")
        .env("LAMEDUCK", "1")
        .env("SLUICE_BIN", bin.join("sluice"))
        .env("FLEET_LOAD_BIN", bin.join("fleet-load"))
        .output()
        .expect("running deploy/fleet/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stderr}{stdout}");
    // fleet: N queries, F failed; rolling restart lost L; kill lost K (within T ms)
    let last = stdout.lines().last().unwrap_or_default();
    let numbers: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(last.starts_with("fleet: ") && numbers.len() == 5, "{last}");
    let (n, f, lost, killed, within) = (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4]);
    assert!(n > 1000, "{last}");
    assert_eq!(lost, 0, "a rolling restart loses nothing: {last}");
    assert_eq!(f, lost + killed, "{last}");
    // At most one query per client (8) waits out its timeout on the dead host, sent
    // before BFD (300 ms) took it out of the route.
    assert!(killed <= 8, "{last}");
    assert!(within < 1000, "{last}");
}
