//! The README's first command, `sluice demo`, run as a newcomer would (short loads):
//! every step reports success, real clients get the zone's answers, the table has a
//! row for each server and load with figures measured in the run, and the latency
//! plot is written. Needs root; under CI=true kdig, Unbound and Knot DNS must be there
//! (the demo says so and leaves their rows out elsewhere).

use std::path::PathBuf;
use std::process::Command;

use e2e::{installed as have, require_root};

fn sluice_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("sluice")
}

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

#[test]
fn the_demo_shows_dns_answers_and_a_table_against_the_kernel() {
    require_root!();
    let peers = ["kdig", "unbound", "knotd"].iter().all(|t| have(t));
    assert!(
        peers || !ci(),
        "kdig, unbound and knotd are installed in CI (scripts/deps.sh)"
    );
    let out = std::env::temp_dir().join(format!("sluice-demo-test-{}", std::process::id()));
    let run = Command::new(sluice_bin())
        .args(["demo", "--seconds", "1", "--out"])
        .arg(&out)
        .output()
        .expect("running sluice demo");
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "the demo failed:\n{text}\n{err}");
    assert!(!text.contains("FAILED"), "{text}");
    assert!(text.contains("every step ok"), "{text}");
    if peers {
        assert!(
            text.contains("kdig +tcp www.example.test A") && text.contains("A 192.0.2.80"),
            "{text}"
        );
        assert!(text.contains("NXDOMAIN"), "{text}");
        assert!(text.contains("Unbound"), "{text}");
    }
    // A row per server and load, each with a positive rate.
    let servers: &[&str] = if have("knotd") {
        &[
            "sluice, AF_XDP",
            "sluice, kernel sockets",
            "Knot DNS, kernel sockets",
        ]
    } else {
        &["sluice, AF_XDP", "sluice, kernel sockets"]
    };
    for server in servers {
        for load in ["one query per connection", "pipelined"] {
            let row = text
                .lines()
                .find(|l| l.starts_with(&format!("| {server} | {load} |")))
                .unwrap_or_else(|| panic!("no row for {server}, {load}:\n{text}"));
            let qps: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
            assert!(qps > 0.0, "{row}");
        }
    }
    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("the latency plot");
    assert_eq!(svg.matches("<polyline").count(), 2 * servers.len(), "{svg}");
    assert!(text.contains(&format!(
        "latency plot: {}",
        out.join("latency.svg").display()
    )));
    let _ = std::fs::remove_dir_all(&out);
}
