#!/usr/bin/env bash
# The stack against the kernel backend, same topology, same run (issue 4's benchmark):
# `sluice serve --listen 7=echo` on the AF_XDP backend and on the kernel backend, the
# server pinned to core 0, sluice-bench (kernel sockets) pinned to core 1 in the peer
# namespace. Workloads: persistent connections with requests pipelined, and one request
# per connection. RUNS runs of SECS seconds each; the table gives medians and our ratio.
#
#   bench/stack-compare.sh            (root)   RUNS=3 SECS=5 by default
#
# Writes bench/results/stack-compare.md and the runs' JSON under bench/results/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-5}
out=bench/results
mkdir -p "$out/runs"
cargo build --release -q -p sluice -p sluice-benches
bin=${CARGO_TARGET_DIR:-target}/release

cleanup() {
	pkill -f "sluice serve --backend" 2>/dev/null || true
	deploy/netns-topology.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
deploy/netns-topology.sh up >/dev/null
# The load generator opens tens of thousands of connections a second, each leaving a
# TIME-WAIT behind on its side: without reuse, connect() spends milliseconds hunting for
# a free port and the benchmark measures that instead of the server.
ip netns exec sl-peer sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

declare -A modes=([pipelined]="--mode pipelined --connections 64 --in-flight 16" [per-connection]="--mode per-connection --connections 32")
for backend in xdp kernel; do
	ip netns exec sl-srv "$bin/sluice" serve --backend "$backend" --iface slsrv0 --addr 198.18.0.1 \
		--listen 7=echo --cores 0 >"$out/runs/server-$backend.log" 2>&1 &
	sleep 1
	pid=$(pgrep -f "sluice serve --backend $backend" | head -1)
	for mode in pipelined per-connection; do
		for run in $(seq 1 "$RUNS"); do
			# Server CPU (user + system ticks of the process) over the whole run, warm-up
			# included: divided by the requests it answered, it compares the servers even
			# when the load generator is the limit.
			before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
			start=$(date +%s.%N)
			# shellcheck disable=SC2086
			ip netns exec sl-peer "$bin/sluice-bench" --server 198.18.0.1:7 --protocol echo ${modes[$mode]} \
				--duration "$SECS" --warmup 1 --cores 1 --quiet --label "$backend" \
				--json "$out/runs/$backend-$mode-$run.json" >/dev/null || true
			after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
			end=$(date +%s.%N)
			echo "$((after - before)) $(getconf CLK_TCK) $start $end" >"$out/runs/$backend-$mode-$run.cpu"
		done
	done
	pkill -INT -f "sluice serve --backend $backend" || true
	sleep 1
done

python3 - "$out" "$RUNS" <<'PY'
import json, statistics, sys, os, datetime
out, runs = sys.argv[1], int(sys.argv[2])
def load(b, m):
    rs = []
    for r in range(1, runs + 1):
        p = f"{out}/runs/{b}-{m}-{r}.json"
        if os.path.exists(p):
            rs.append(json.load(open(p)))
    return rs
rows = []
for m, metric in [("pipelined", "qps"), ("per-connection", "cps")]:
    med = {}
    for b in ("xdp", "kernel"):
        rs = load(b, m)
        if not rs:
            med[b] = None
            continue
        cpu = []
        for r in range(1, runs + 1):
            try:
                ticks, hz, t0, t1 = open(f"{out}/runs/{b}-{m}-{r}.cpu").read().split()
                j = json.load(open(f"{out}/runs/{b}-{m}-{r}.json"))
                wall = float(t1) - float(t0)
                # requests over the whole window ~ rate x wall (warm-up included)
                cpu.append(int(ticks) / int(hz) / wall)
            except (OSError, ValueError):
                pass
        med[b] = {
            "cpu": statistics.median(cpu) if cpu else float("nan"),
            "rate": statistics.median(r[metric] for r in rs),
            "p50": statistics.median(r["latency_us"]["50"] for r in rs),
            "p99": statistics.median(r["latency_us"]["99"] for r in rs),
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
    rows.append((m, metric, med))
lines = [f"# sluice AF_XDP stack vs kernel backend ({datetime.date.today()})", "",
         f"Echo over veth, server on core 0, sluice-bench (kernel sockets, tcp_tw_reuse on) on core 1, {runs} runs each, medians.", "",
         "| workload | backend | rate | p50 µs | p99 µs | server CPU (cores) | server µs CPU per request | errors |", "|---|---|---|---|---|---|---|---|"]
for m, metric, med in rows:
    for b in ("xdp", "kernel"):
        v = med[b]
        if v is None:
            lines.append(f"| {m} | {b} | (no data) | | | |")
            continue
        unit = "req/s" if metric == "qps" else "conn/s"
        per = v['cpu'] / v['rate'] * 1e6 if v['rate'] else float("nan")
        lines.append(f"| {m} | {b} | {v['rate']:.0f} {unit} | {v['p50']} | {v['p99']} | {v['cpu']:.2f} | {per:.2f} | {v['errors']} |")
    if med["xdp"] and med["kernel"] and med["kernel"]["rate"] > 0:
        lines.append(f"| {m} | **xdp / kernel** | **{med['xdp']['rate'] / med['kernel']['rate']:.2f}×** | | | | | |")
text = "\n".join(lines) + "\n"
open(f"{out}/stack-compare.md", "w").write(text)
print(text)
PY
