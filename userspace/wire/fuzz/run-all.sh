#!/usr/bin/env bash
# Runs every wire fuzz target for SECONDS each (default 30). Needs cargo-fuzz
# (cargo install cargo-fuzz --locked) and the nightly toolchain. Fails if any target
# finds a crash; the input is left in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
for target in ethernet arp ipv4 tcp tcp_ipv4_frame; do
	echo "== $target for ${seconds}s"
	cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | grep -E "^(#[0-9]+ +DONE|Done|==[0-9]+==ERROR|SUMMARY)" || true
	if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
		echo "crash found by $target: see fuzz/artifacts/$target" >&2
		exit 1
	fi
done
echo "all targets ran ${seconds}s without a crash"
