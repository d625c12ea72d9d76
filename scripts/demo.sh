#!/usr/bin/env bash
# The demo command named in the README: builds a two-namespace veth topology, starts
# sluice on one side and drives traffic from the other, prints what happened, and tears
# everything down. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p sluice -p sluice-benches
exec target/release/sluice demo "$@"
