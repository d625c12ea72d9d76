#!/usr/bin/env bash
# The stack against the kernel backend, same topology, same run (issue 4's benchmark):
# `sluice serve --listen 7=echo` on the AF_XDP backend and on the kernel backend, the
# server pinned to core 0, sluice-bench pinned to core 1 in the peer namespace.
# Workloads: persistent connections with one request at a time on each (request/
# response), with requests pipelined, and one request per connection, each at several
# load levels and from each generator in GENS; RUNS runs of SECS seconds per
# combination, the backends taking turns run by run (each run with a fresh server).
# Each backend is judged at its best combination (median rate), and by its least server
# CPU per request: one level or one generator for both would favour one of them (which
# suits a backend varies between runs here). The table also gives the ratios of the runs
# taken side by side, which this machine's drift affects least.
#
#   bench/stack-compare.sh            (root)   RUNS=3 SECS=5 by default
#   GENS="xdp xdp-sleep"              the generators (default both): sluice's TCP over
#                                     AF_XDP polling (xdp) or sleeping as soon as it is
#                                     idle (xdp-sleep: polling takes core 1 from its own
#                                     NAPI thread); kernel: kernel sockets
#   SERIAL_LEVELS="64 256"            connections with one request at a time (defaults)
#   PIPELINED_LEVELS="64:16 256:32"   connections:in-flight, one level each (defaults)
#   PER_CONNECTION_LEVELS="32 128"    concurrent connections, one level each (defaults)
#   REPORT_ONLY=1                     rebuild the table from the runs on disk
#
# Writes bench/results/stack-compare.md and the runs under bench/results/runs/sc/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-5}
GENS=${GENS:-"xdp xdp-sleep"}
SERIAL_LEVELS=${SERIAL_LEVELS:-"64 256"}
PIPELINED_LEVELS=${PIPELINED_LEVELS:-"64:16 256:32"}
PER_CONNECTION_LEVELS=${PER_CONNECTION_LEVELS:-"32 128"}
XDP_OPTS=${XDP_OPTS:-"--busy-poll 0"}
out=bench/results
runs=$out/runs/sc

report() {
	python3 - "$out" "$runs" <<'PY'
import json, statistics, sys, os, datetime, glob, re
out, runs = sys.argv[1], sys.argv[2]
GEN = {"xdp": "AF_XDP, polling", "xdp-sleep": "AF_XDP, sleeping", "kernel": "kernel sockets"}
# One file per run: BACKEND_MODE_GEN_LEVEL_RUN.json, its core-time sample beside it.
groups = {}
# The same runs by (backend, mode, generator, level, run number), for the run-by-run ratios.
by_run = {}
for p in glob.glob(f"{runs}/*.json"):
    m = re.fullmatch(r"(xdp|kernel)_(serial|pipelined|per-connection)_([a-z-]+)_([0-9:]+)_([0-9]+)\.json", os.path.basename(p))
    if not m:
        continue
    backend, mode, gen, level, run = m.groups()
    try:
        j = json.load(open(p))
        ticks, hz, t0, t1, ticks1 = open(p[:-5] + ".cpu").read().split()
    except (OSError, ValueError):
        continue
    wall = float(t1) - float(t0)
    # The polling generator's idle polling is taken off core 1's busy time.
    j["cpu"] = int(ticks) / int(hz) / wall
    j["gen"] = int(ticks1) / int(hz) / wall - (j.get("generator_idle_poll") or 0.0)
    groups.setdefault((mode, backend, gen, level), []).append(j)
    by_run[(backend, mode, gen, level, run)] = j
def summary(rs, metric):
    med = lambda f: statistics.median(f(r) for r in rs)
    rate = med(lambda r: r[metric])
    cpu = med(lambda r: r["cpu"])
    # CPU per request: the median of each run's own ratio.
    per = med(lambda r: r["cpu"] / r[metric] * 1e6 if r[metric] else float("inf"))
    return {"rate": rate, "cpu": cpu, "per": per,
            "p50": med(lambda r: r["latency_us"]["50"]), "p99": med(lambda r: r["latency_us"]["99"]),
            "gen": med(lambda r: r["gen"]), "errors": sum(sum(r["errors"].values()) for r in rs), "n": len(rs)}
def level_text(mode, level):
    conns, _, depth = level.partition(":")
    return f"{conns} conns × {depth}" if mode == "pipelined" else f"{conns} conns"
lines = [f"# sluice AF_XDP stack vs kernel backend ({datetime.date.today()})", "",
         "Echo over veth; each server and its veth NAPI thread on core 0, sluice-bench and its NAPI thread on core 1. "
         "Medians of each combination's runs; each backend at its best combination, and by its least CPU per request. "
         "CPU is core 0's busy time over the run divided by the requests answered (the AF_XDP server sleeps when idle).", "",
         "| workload | backend | best rate | at | p50 µs | p99 µs | server core busy | load core busy | least server µs CPU per request |",
         "|---|---|---|---|---|---|---|---|---|"]
detail = ["", "Every combination:", "",
          "| workload | backend | generator | level | runs | rate | p50 µs | p99 µs | server core busy | server µs CPU per request | load core busy | errors |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
WORKLOAD = {"serial": "request/response", "pipelined": "pipelined", "per-connection": "one request per connection"}
for mode, metric, unit in [("serial", "qps", "req/s"), ("pipelined", "qps", "req/s"), ("per-connection", "cps", "conn/s")]:
    best = {}
    for backend in ("xdp", "kernel"):
        combos = {k: summary(v, metric) for k, v in sorted(groups.items()) if k[0] == mode and k[1] == backend}
        for (_, _, gen, level), s in combos.items():
            detail.append(f"| {WORKLOAD[mode]} | {backend} | {GEN.get(gen, gen)} | {level_text(mode, level)} | {s['n']} | {s['rate']:.0f} {unit} | {s['p50']} | {s['p99']} | {s['cpu']:.2f} | {s['per']:.2f} | {s['gen']:.2f} | {s['errors']} |")
        if not combos:
            lines.append(f"| {WORKLOAD[mode]} | {backend} | (no data) | | | | | | |")
            continue
        # Only combinations with every run and no errors compete (unless none has).
        full = max(c["n"] for c in combos.values())
        clean = {k: c for k, c in combos.items() if c["n"] == full and c["errors"] == 0} or combos
        (_, _, gen, level), s = max(clean.items(), key=lambda kv: kv[1]["rate"])
        least = min(c["per"] for c in clean.values())
        best[backend] = (s, least)
        lines.append(f"| {WORKLOAD[mode]} | {backend} | {s['rate']:.0f} {unit} | {GEN.get(gen, gen)}, {level_text(mode, level)} | {s['p50']} | {s['p99']} | {s['cpu']:.2f} | {s['gen']:.2f} | {least:.2f} |")
    if len(best) == 2 and best["kernel"][0]["rate"] > 0:
        (x, xl), (k, kl) = best["xdp"], best["kernel"]
        lines.append(f"| {WORKLOAD[mode]} | **xdp / kernel** | **{x['rate'] / k['rate']:.2f}×** | | | | | | **{kl / xl:.2f}× less** |")
# The runs of the two backends taken side by side (same combination, same run number):
# the machine's drift cancels in their ratios.
paired = ["", "Run by run: each AF_XDP run against the kernel run beside it (same workload, level, generator and run number; pairs with a failed request left out); median and range of the ratios:", "",
          "| workload | generator | level | pairs | rate xdp / kernel | server CPU per request, kernel / xdp |",
          "|---|---|---|---|---|---|"]
for mode, metric in [("serial", "qps"), ("pipelined", "qps"), ("per-connection", "cps")]:
    combos = sorted({(g, l) for (b, m, g, l, r) in by_run if m == mode},
                    key=lambda gl: (gl[0], [int(n) for n in gl[1].split(":")]))
    for gen, level in combos:
        rr, cr = [], []
        for (b, m, g, l, r), x in by_run.items():
            if b != "xdp" or m != mode or g != gen or l != level:
                continue
            y = by_run.get(("kernel", m, g, l, r))
            if not y or not x[metric] or not y[metric]:
                continue
            if sum(x["errors"].values()) or sum(y["errors"].values()):
                continue
            rr.append(x[metric] / y[metric])
            cr.append((y["cpu"] / y[metric]) / (x["cpu"] / x[metric]))
        if rr:
            paired.append(f"| {WORKLOAD[mode]} | {GEN.get(gen, gen)} | {level_text(mode, level)} | {len(rr)} | {statistics.median(rr):.2f}× ({min(rr):.2f}-{max(rr):.2f}) | {statistics.median(cr):.2f}× ({min(cr):.2f}-{max(cr):.2f}) |")
text = "\n".join(lines + paired + detail) + "\n"
open(f"{out}/stack-compare.md", "w").write(text)
print(text)
PY
}
if [ -n "${REPORT_ONLY:-}" ]; then
	report
	exit 0
fi

cargo build --release -q -p sluice -p sluice-benches
bin=${CARGO_TARGET_DIR:-target}/release
# An earlier invocation's runs would otherwise mix into this one's table.
rm -rf "$runs"
mkdir -p "$runs"

srv=""
stop_server() { # lets the running server drain and exit
	if [ -n "$srv" ]; then
		kill -INT "$srv" 2>/dev/null || true
		wait "$srv" 2>/dev/null || true
		srv=""
	fi
}
cleanup() {
	stop_server
	deploy/netns-topology.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
deploy/netns-topology.sh up >/dev/null
# The load generator opens tens of thousands of connections a second, each leaving a
# TIME-WAIT behind on its side: without reuse, connect() spends milliseconds hunting for
# a free port and the benchmark measures that instead of the server.
ip netns exec sl-peer sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"

# Each side's receive work on its own core (docs/design.md, "Measuring on a 2-core machine"):
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
declare -A gen_opts=(
	[xdp]="--backend xdp --iface slpeer0 --addr 198.18.0.2 --napi-busy-poll 50"
	[xdp-sleep]="--backend xdp --iface slpeer0 --addr 198.18.0.2 --busy-poll 0"
	[kernel]=""
)
for gen in $GENS; do
	[ -n "${gen_opts[$gen]+x}" ] || {
		echo "GENS: unknown generator $gen (xdp, xdp-sleep, kernel)" >&2
		exit 2
	}
done
for level in $PIPELINED_LEVELS; do
	[[ $level =~ ^[0-9]+:[0-9]+$ ]] || {
		echo "PIPELINED_LEVELS: $level is not CONNECTIONS:IN_FLIGHT" >&2
		exit 2
	}
done
for level in $SERIAL_LEVELS $PER_CONNECTION_LEVELS; do
	[[ $level =~ ^[0-9]+$ ]] || {
		echo "SERIAL_LEVELS, PER_CONNECTION_LEVELS: $level is not a number of connections" >&2
		exit 2
	}
done
# The AF_XDP generator answers no ARP: the server must know its MAC first.
[ "$GENS" = kernel ] || ip netns exec sl-peer ping -c 1 -W 1 198.18.0.1 >/dev/null
pin_napi() { # IFACE CORE: pins the NAPI threads of IFACE (they may be re-created)
	local n=0
	for pid in $(pgrep "^napi/$1-" || true); do
		taskset -pc "$2" "$pid" >/dev/null && n=$((n + 1))
	done
	[ "$n" -gt 0 ] || echo "warning: no NAPI thread for $1" >&2
}
# Busy ticks of one CPU (user nice system irq softirq steal) from /proc/stat.
cpu_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

start_server() { # BACKEND
	# shellcheck disable=SC2086
	ip netns exec sl-srv "$bin/sluice" serve --backend "$1" --iface slsrv0 --addr 198.18.0.1 \
		--listen 7=echo --cores 0 ${server_opts[$1]} >>"$runs/server-$1.log" 2>&1 &
	srv=$!
	# Ready once it answers (the AF_XDP one has attached its program by then).
	local up=""
	for _ in $(seq 50); do
		ip netns exec sl-peer bash -c 'exec 3<>/dev/tcp/198.18.0.1/7' 2>/dev/null && up=1 && break
		sleep 0.1
	done
	[ -n "$up" ] || echo "warning: the $1 server did not answer within 5 s" >&2
	pin_napi slsrv0 0
	pin_napi slpeer0 1
}

# The backends take turns run by run, in the order ABBA (xdp, kernel, kernel, xdp, ...
# across the whole invocation):
# this machine's speed drifts by tens of percent within minutes, and runs of the two
# backends taken side by side see the same machine, where all of one backend's runs
# followed by all of the other's did not. Each run gets a fresh server.
turn=0
for mode in serial pipelined per-connection; do
	case $mode in
	serial) levels=$SERIAL_LEVELS ;;
	pipelined) levels=$PIPELINED_LEVELS ;;
	per-connection) levels=$PER_CONNECTION_LEVELS ;;
	esac
	for level in $levels; do
		load="--mode $mode --connections ${level%%:*}"
		[ "$mode" = pipelined ] && load="$load --in-flight ${level#*:}"
		for gen in $GENS; do
			for run in $(seq 1 "$RUNS"); do
				order="xdp kernel"
				[ $((turn % 2)) -eq 1 ] && order="kernel xdp"
				turn=$((turn + 1))
				for backend in $order; do
					start_server "$backend"
					kill -0 "$srv" 2>/dev/null || {
						echo "the $backend server died: $runs/server-$backend.log" >&2
						exit 1
					}
					name="$runs/${backend}_${mode}_${gen}_${level}_$run"
					# Server CPU: core 0's busy time over the whole run (the server, its
					# NAPI thread, its softirqs), warm-up included; divided by the
					# requests answered it compares the servers even when the load
					# generator is the limit. Core 1's says whether the generator was.
					before=$(cpu_busy 0)
					before1=$(cpu_busy 1)
					start=$(date +%s.%N)
					# shellcheck disable=SC2086
					ip netns exec sl-peer "$bin/sluice-bench" --server 198.18.0.1:7 --protocol echo $load \
						--duration "$SECS" --warmup 1 --cores 1 --quiet --label "$backend" ${gen_opts[$gen]} \
						--json "$name.json" >/dev/null || true
					ip netns exec sl-peer ip link set dev slpeer0 xdp off 2>/dev/null || true
					after=$(cpu_busy 0)
					after1=$(cpu_busy 1)
					end=$(date +%s.%N)
					echo "$((after - before)) $(getconf CLK_TCK) $start $end $((after1 - before1))" >"$name.cpu"
					stop_server
				done
			done
		done
	done
done
report
