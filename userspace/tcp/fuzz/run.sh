#!/usr/bin/env bash
# Runs the tcp connection fuzz target for SECONDS (default 30). Needs cargo-fuzz and the
# nightly toolchain. Fails if it finds a crash; the input is left in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
echo "== connection for ${seconds}s"
cargo +nightly fuzz run connection -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | grep -E "^(#[0-9]+ +DONE|Done|==[0-9]+==ERROR|SUMMARY|thread .* panicked)" || true
if [ -n "$(ls -A artifacts/connection 2>/dev/null)" ]; then
	echo "crash found: see userspace/tcp/fuzz/artifacts/connection" >&2
	exit 1
fi
echo "the connection target ran ${seconds}s without a crash"
