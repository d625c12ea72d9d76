#!/usr/bin/env bash
# What sluice's own stack costs per DNS-over-TCP connection and per pipelined query,
# without the kernel (issue 17): the AF_XDP worker's whole frame path (frame parse,
# 4-tuple index, TCB, the DNS service the daemon serves, frame emit, timers) on one
# core, driven through the in-memory device by a templated client on the other core.
#   one-query   CLIENTS clients, each: SYN; ACK + query; FIN after the answer; ACK of
#               the server's FIN; then again on its next port
#   pipelined   CONNECTIONS persistent connections, DEPTH queries per segment, the next
#               batch once all are answered
# Figures are server-core nanoseconds per connection and per query at saturation (the
# worker's busy time over what was done), medians of RUNS runs of SECS seconds each.
# No root, no network: it runs anywhere the workspace builds.
#
#   bench/conn-cost.sh                      RUNS=3 SECS=2 CLIENTS=512 CONNECTIONS=128 DEPTH=16
#   PERF=1 bench/conn-cost.sh               also records the server core with perf
#                                           (bench/results/runs/conn-cost/perf.data)
#
# Appends the run to bench/results/runs/conn-cost/; its last line is exactly:
#   per-connection NNN ns, per-query NNN ns, server core busy 0.NN
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-2}
CLIENTS=${CLIENTS:-512}
CONNECTIONS=${CONNECTIONS:-128}
DEPTH=${DEPTH:-16}
out=bench/results/runs/conn-cost
mkdir -p "$out"

if [[ $(nproc) -lt 2 ]]; then
    echo "conn-cost: needs two cores (server and load on their own)" >&2
    exit 1
fi
cargo build --release -q -p sluice-benches --bin conn-cost
bin=${CARGO_TARGET_DIR:-target}/release/conn-cost
args=(--runs "$RUNS" --seconds "$SECS" --clients "$CLIENTS" --connections "$CONNECTIONS"
      --depth "$DEPTH" --server-core 0 --client-core 1
      --zone userspace/dns/tests/data/example.test.zone --name www.example.test)
log="$out/$(date -u +%Y%m%dT%H%M%SZ)-$(git rev-parse --short HEAD 2>/dev/null || echo nogit).txt"
if [[ ${PERF:-0} == 1 ]]; then
    command -v perf >/dev/null || { echo "conn-cost: PERF=1 needs perf (linux-perf)" >&2; exit 1; }
    perf record -q -C 0 -g -o "$out/perf.data" -- "$bin" "${args[@]}" 2>&1 | tee "$log"
else
    "$bin" "${args[@]}" 2>&1 | tee "$log"
fi
