#!/usr/bin/env bash
# The stack against the kernel backend, same topology, same run (issue 4's benchmark):
# `sluice serve --listen 7=echo` on the AF_XDP backend and on the kernel backend, the
# server pinned to core 0, sluice-bench pinned to core 1 in the peer namespace, on kernel
# sockets (GEN=kernel) or on sluice's own TCP over AF_XDP (GEN=xdp, the default: much
# cheaper per connection, so the server rather than the generator sets the pace).
# Workloads: persistent connections with requests pipelined, and one request per
# connection. RUNS runs of SECS seconds each; the table gives medians and our ratio.
#
#   bench/stack-compare.sh            (root)   RUNS=3 SECS=5 GEN=xdp by default
#   GEN=xdp-sleep ...                 the AF_XDP generator sleeping as soon as it is idle
#                                     (GEN=xdp polls, which takes core 1 from its own NAPI
#                                     thread; which does better depends on the server)
#   PIPELINED="--connections 64 --in-flight 16" PER_CONNECTION="--connections 32" (defaults)
#
# Writes bench/results/stack-compare.md and the runs' JSON under bench/results/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-5}
GEN=${GEN:-xdp}
XDP_OPTS=${XDP_OPTS:-"--busy-poll 0"}
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

# Each side's receive work on its own core (DESIGN.md, "Measuring on a 2-core machine"):
# veth processes what it receives in NAPI when GRO (or XDP) is on and the sender has no
# TSO (veth_skb_is_eligible_for_gro); otherwise in the sender's softirq, on the sender's
# core: then the peer's kernel TCP would run on the server's core, inside its sendto,
# and the server's kernel TCP (kernel backend) on the load generator's. With GRO on,
# TSO off and threaded NAPI pinned, each side's receive work runs on its own core.
# TX checksum offload off on the server: the kernel backend's frames then carry full
# checksums, which the AF_XDP generator needs.
ip netns exec sl-srv ethtool -K slsrv0 gro on tso off tx off >/dev/null
ip netns exec sl-peer ethtool -K slpeer0 gro on tso off >/dev/null
ip netns exec sl-peer sh -c 'echo 1 > /sys/class/net/slpeer0/threaded'
# Both backends get a NAPI thread pinned to core 0. (Preferred busy polling does not
# carry over to veth: the peer's transmit schedules the NAPI, so without a thread it runs
# in the generator's softirq on core 1, and the AF_XDP server's receive work would be
# charged to the generator.) The AF_XDP worker sleeps as soon as it is idle
# (--busy-poll 0), so core 0's busy time is work, not polling.
ip netns exec sl-srv sh -c 'echo 0 > /sys/class/net/slsrv0/napi_defer_hard_irqs; echo 0 > /sys/class/net/slsrv0/gro_flush_timeout; echo 1 > /sys/class/net/slsrv0/threaded'
declare -A server_opts=([xdp]="$XDP_OPTS" [kernel]="")
gen_opts=""
[ "$GEN" = xdp ] && gen_opts="--backend xdp --iface slpeer0 --addr 198.18.0.2 --napi-busy-poll 50"
[ "$GEN" = xdp-sleep ] && gen_opts="--backend xdp --iface slpeer0 --addr 198.18.0.2 --busy-poll 0"
[ "$GEN" != kernel ] && ip netns exec sl-peer ping -c 1 -W 1 198.18.0.1 >/dev/null
pin_napi() { # IFACE CORE: pins the NAPI threads of IFACE (they may be re-created)
	local n=0
	for pid in $(pgrep "^napi/$1-" || true); do
		taskset -pc "$2" "$pid" >/dev/null && n=$((n + 1))
	done
	[ "$n" -gt 0 ] || echo "warning: no NAPI thread for $1" >&2
}
# Busy ticks of one CPU (user nice system irq softirq steal) from /proc/stat.
cpu_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

PIPELINED=${PIPELINED:-"--connections 64 --in-flight 16"}
PER_CONNECTION=${PER_CONNECTION:-"--connections 32"}
declare -A modes=([pipelined]="--mode pipelined $PIPELINED" [per-connection]="--mode per-connection $PER_CONNECTION")
for backend in xdp kernel; do
	# shellcheck disable=SC2086
	ip netns exec sl-srv "$bin/sluice" serve --backend "$backend" --iface slsrv0 --addr 198.18.0.1 \
		--listen 7=echo --cores 0 ${server_opts[$backend]} >"$out/runs/server-$backend.log" 2>&1 &
	sleep 1
	pid=$(pgrep -f "sluice serve --backend $backend" | head -1)
	pin_napi slsrv0 0
	pin_napi slpeer0 1
	for mode in pipelined per-connection; do
		for run in $(seq 1 "$RUNS"); do
			# Server CPU: CPU0's busy time over the whole run (the server, its NAPI
			# thread, its softirqs), warm-up included; divided by the requests answered
			# it compares the servers even when the load generator is the limit. CPU1's
			# says whether the generator was.
			before=$(cpu_busy 0)
			before1=$(cpu_busy 1)
			start=$(date +%s.%N)
			# shellcheck disable=SC2086
			ip netns exec sl-peer "$bin/sluice-bench" --server 198.18.0.1:7 --protocol echo ${modes[$mode]} \
				--duration "$SECS" --warmup 1 --cores 1 --quiet --label "$backend" $gen_opts \
				--json "$out/runs/$backend-$mode-$run.json" >/dev/null || true
			ip netns exec sl-peer ip link set dev slpeer0 xdp off 2>/dev/null || true
			pin_napi slpeer0 1
			after=$(cpu_busy 0)
			after1=$(cpu_busy 1)
			end=$(date +%s.%N)
			echo "$((after - before)) $(getconf CLK_TCK) $start $end $((after1 - before1))" >"$out/runs/$backend-$mode-$run.cpu"
		done
	done
	pkill -INT -f "sluice serve --backend $backend" || true
	sleep 1
done

python3 - "$out" "$RUNS" "$GEN" <<'PY'
import json, statistics, sys, os, datetime
out, runs, gen_kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
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
        cpu, gen = [], []
        for r in range(1, runs + 1):
            try:
                ticks, hz, t0, t1, ticks1 = open(f"{out}/runs/{b}-{m}-{r}.cpu").read().split()
                wall = float(t1) - float(t0)
                cpu.append(int(ticks) / int(hz) / wall)
                # The AF_XDP generator busy-polls: take off what it polled with nothing to do.
                idle = json.load(open(f"{out}/runs/{b}-{m}-{r}.json")).get("generator_idle_poll") or 0.0
                gen.append(int(ticks1) / int(hz) / wall - idle)
            except (OSError, ValueError):
                pass
        med[b] = {
            "cpu": statistics.median(cpu) if cpu else float("nan"),
            "gen": statistics.median(gen) if gen else float("nan"),
            "rate": statistics.median(r[metric] for r in rs),
            "p50": statistics.median(r["latency_us"]["50"] for r in rs),
            "p99": statistics.median(r["latency_us"]["99"] for r in rs),
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
    rows.append((m, metric, med))
lines = [f"# sluice AF_XDP stack vs kernel backend ({datetime.date.today()})", "",
         f"Echo over veth, server and its veth NAPI thread on core 0, sluice-bench ({dict(xdp='sluice TCP over AF_XDP, polling', **{'xdp-sleep': 'sluice TCP over AF_XDP, sleeping when idle'}).get(gen_kind, 'kernel sockets, tcp_tw_reuse on')}) and its NAPI thread on core 1, {runs} runs each, medians. CPU is each core's busy time over the run (the AF_XDP server sleeps when idle; the AF_XDP generator's idle polling is taken off core 1's).", "",
         "| workload | backend | rate | p50 µs | p99 µs | server core busy | server µs CPU per request | load core busy | errors |", "|---|---|---|---|---|---|---|---|---|"]
for m, metric, med in rows:
    for b in ("xdp", "kernel"):
        v = med[b]
        if v is None:
            lines.append(f"| {m} | {b} | (no data) | | | |")
            continue
        unit = "req/s" if metric == "qps" else "conn/s"
        per = v['cpu'] / v['rate'] * 1e6 if v['rate'] else float("nan")
        lines.append(f"| {m} | {b} | {v['rate']:.0f} {unit} | {v['p50']} | {v['p99']} | {v['cpu']:.2f} | {per:.2f} | {v['gen']:.2f} | {v['errors']} |")
    if med["xdp"] and med["kernel"] and med["kernel"]["rate"] > 0:
        x, k = med["xdp"], med["kernel"]
        eff = (k["cpu"] / k["rate"]) / (x["cpu"] / x["rate"]) if x["rate"] and k["rate"] else float("nan")
        lines.append(f"| {m} | **xdp / kernel** | **{x['rate'] / k['rate']:.2f}×** | | | | **{eff:.2f}× less CPU per request** | | |")
text = "\n".join(lines) + "\n"
open(f"{out}/stack-compare.md", "w").write(text)
print(text)
PY
