# The recipes a person uses. `just` is optional: every recipe is a plain command
# (cargo install just --locked, if you want it).

# Build the topology, run sluice, load it, tear down (root)
demo *ARGS:
    scripts/demo.sh {{ARGS}}

# Every test, end-to-end ones included (root; they skip without it, fail under CI=true)
test *ARGS:
    scripts/test.sh {{ARGS}}

# fmt, clippy, licences
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo deny check licenses

# Rebuild the XDP object from ebpf/sluice_xdp.c (commit the result)
ebpf:
    ebpf/build.sh

# Check that the committed XDP object is what the source builds to
ebpf-check:
    ebpf/build.sh --check

# Datapath packets per second through AF_XDP on veth (root)
bench-pps *ARGS:
    cargo run --release -p sluice-benches --bin xdp-pps -- {{ARGS}}

# Checksum speed against a naive byte loop
bench-checksum:
    cargo bench -p sluice-wire --bench checksum

# Run every fuzz target (wire's parsers, tcp's connection) for SECONDS each (needs
# cargo-fuzz and the nightly toolchain)
fuzz SECONDS="30":
    userspace/wire/fuzz/run-all.sh {{SECONDS}}
    userspace/tcp/fuzz/run.sh {{SECONDS}}

# CPU cost per segment on the TCP steady path
bench-segment:
    cargo bench -p sluice-tcp --bench segment

# Goodput of the TCP implementation against loss rate, on the simulated link
goodput MEGABYTES="10":
    cargo run --release -p sluice-tcp --example goodput {{MEGABYTES}}

# DNS over TCP: sluice (AF_XDP and kernel) against Knot DNS (kernel and XDP), same run
bench-compare:
    bench/compare.sh
