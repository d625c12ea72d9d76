#!/usr/bin/env bash
# The test command named in the README: every test of the workspace, including the
# end-to-end ones that build network namespaces and attach XDP programs (as root; they
# skip with a message otherwise, and fail instead under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
ebpf/build.sh --check
# The DNS end-to-end tests run the `sluice` binary itself: cargo test builds a package's
# binaries only for that package's own integration tests, so build them first.
cargo build --workspace --bins
cargo test --workspace --all-targets "$@"
