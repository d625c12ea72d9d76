//! Provides the XDP object to the crate: rebuilt from ebpf/sluice_xdp.c when clang is
//! installed, the committed ebpf/sluice_xdp.o otherwise, so a plain `cargo build` needs
//! no system packages. CI checks that the two agree (ebpf/build.sh --check).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ebpf");
    let source = root.join("sluice_xdp.c");
    let committed = root.join("sluice_xdp.o");
    let script = root.join("build.sh");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("sluice_xdp.o");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed={}", committed.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=SLUICE_USE_COMMITTED_BPF");

    let have_clang = Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let forced = std::env::var_os("SLUICE_USE_COMMITTED_BPF").is_some();
    if have_clang && !forced {
        let status = Command::new("bash")
            .arg(&script)
            .arg("--out")
            .arg("sluice_xdp")
            .arg(&out)
            .status();
        match status {
            Ok(s) if s.success() => return,
            Ok(s) => panic!("ebpf/build.sh failed ({s}); set SLUICE_USE_COMMITTED_BPF=1 to use the committed object"),
            Err(e) => panic!("could not run ebpf/build.sh: {e}"),
        }
    }
    std::fs::copy(&committed, &out).unwrap_or_else(|e| panic!("copy {}: {e}", committed.display()));
}
