#!/usr/bin/env bash
# The standing comparison (issue 6): DNS over TCP, same zone, same topology, same run,
# against four servers:
#   sluice-xdp     sluice's TCP on AF_XDP (sleeps when idle; SLUICE_XDP_OPTS adds options)
#   sluice-kernel  sluice's DNS on kernel sockets
#   knot-kernel    Knot DNS 3.2, kernel sockets
#   knot-xdp       Knot DNS 3.2, XDP mode with xdp.tcp on (left out, with kxdpgun, on a
#                  kernel that refuses bpf_xdp_adjust_meta to XDP programs: the table
#                  says so)
# Each server and its veth receive work on core 0; the load and its receive work on
# core 1 (GRO on, TSO off, threaded NAPI pinned: docs/design.md's method). Workloads:
#   pipelined       sluice-bench, kernel sockets, 64 connections x 16 queries in flight
#   per-connection  sluice-bench, kernel sockets, one query per connection, 32 at a time
#   per-connection-rate
#                   the same, open loop at CONN_RATE connections/s (10000): issue 17's
#                   "server core per answered connection at a moderate rate"
#   pipelined-moderated, per-connection-rate-moderated
#                   the same two with receive interrupt moderation on the server's veth,
#                   for every server alike: napi_defer_hard_irqs 2 and gro_flush_timeout
#                   MODERATION_US (100), the kernel's software form of a NIC's rx-usecs
#                   coalescing (veth has none of its own, and a NIC rarely runs without
#                   it). sluice-xdp adds what its deploy guide pairs with it: preferred
#                   busy polling (--napi-busy-poll 50), so that its worker, not a NAPI
#                   thread, receives while it is awake
#   xdp-pipelined, xdp-per-connection
#                   the same from sluice-bench on sluice's own TCP over AF_XDP (64
#                   connections): a generator much cheaper per connection than kernel
#                   sockets, for when those saturate core 1 first. Its workers poll
#                   (preferred busy polling 50 us, 200 us of polling before sleeping)
#   xdp-pipelined-sleep, xdp-per-connection-sleep
#                   the same with a generator that sleeps as soon as it is idle, which
#                   leaves core 1 to its NAPI thread. Which of the two generators does
#                   better depends on the server (one-query connections: the sleeping
#                   one, for every server; pipelined: polling for sluice, sleeping for
#                   Knot), so the AF_XDP table takes, for each server, the better one
#   kxdpgun         kxdpgun -T: one query per connection, open loop at KX_RATE conn/s,
#                   its own TCP on AF_XDP (the independent generator)
#   half-load       xdp-pipelined, open loop at half sluice-xdp's peak (the median of its
#                   xdp-pipelined runs in this invocation, or HALF_RATE), latencies
#                   corrected for coordinated omission (queries unanswered at the end
#                   count at their age): issue 6's "p99 at half our peak load"
# Each workload starts on a fresh server. RUNS runs of SECS seconds each; medians; CPU is
# each core's busy time over the run (for the open-loop per-connection-rate workloads,
# exactly what the OS counts, with nothing taken off for a sluice worker's idle polling).
#
#   bench/compare.sh                 (root)   RUNS=3 SECS=5 KX_RATE=40000
#   SERVERS="sluice-xdp knot-xdp" WORKLOADS=xdp-per-connection bench/compare.sh   (a subset)
#   PERF=1 ...                       also records both cores with perf (perf report --sort cpu,comm)
#   PERF_STAT=1 ...                  also counts core 0's context switches, syscalls and
#                                    softirqs with perf stat (<run>.perfstat)
#   WARMUP=S ...                     seconds of load before measuring (1)
#   SLUICE_BIN=PATH ...              serve with another build of sluice (an A/B)
#   REPORT_ONLY=1 ...                rewrite the table from the last invocation's raw runs
#   NAPI_FIFO=1 ...                  NAPI threads real-time (preempting the server, as a
#                                    NIC's softirq would); off by default
#
# Writes bench/results/compare.md (the table) and the raw runs (output, JSON, a latency-
# percentile SVG per sluice-bench run, CPU) under bench/results/runs/compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-5}
KX_RATE=${KX_RATE:-40000}
CONN_RATE=${CONN_RATE:-10000}
MODERATION_US=${MODERATION_US:-100}
SERVERS=${SERVERS:-"sluice-xdp sluice-kernel knot-kernel knot-xdp"}
SLUICE_XDP_OPTS=${SLUICE_XDP_OPTS:-"--busy-poll 0"}
# Every generator is one address, and Knot limits no source: sluice's per-source limit
# (1,000 concurrent by default, against a hostile client) would refuse the load once
# an overloaded run (kxdpgun's open loop) leaves thousands of connections open.
SLUICE_LIMITS="--max-per-source 1000000 --max-connections 1000000"
WORKLOADS=${WORKLOADS:-"pipelined per-connection per-connection-rate pipelined-moderated per-connection-rate-moderated xdp-pipelined xdp-per-connection xdp-pipelined-sleep xdp-per-connection-sleep kxdpgun half-load"}
out=bench/results
runs="$out/runs/compare"
# REPORT_ONLY=1: only the table, from the raw runs of the last invocation.
if [ -z "${REPORT_ONLY:-}" ]; then
# Only this invocation's runs: a subset must not pick up an earlier one's files.
rm -rf "$runs"
mkdir -p "$runs"
[ "$(id -u)" -eq 0 ] || { echo "bench/compare.sh needs root" >&2; exit 1; }
# Knot's XDP program and kxdpgun's call bpf_xdp_adjust_meta, which some kernels refuse
# to XDP programs (6.18 here: "program of this type cannot use helper
# bpf_xdp_adjust_meta#54"). Ask the verifier with the smallest program that calls it;
# on that refusal, go on without knot-xdp and kxdpgun and say so in the table.
adjust_meta_refused() {
	python3 - <<'PROBE'
import ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
# r2 = -4; call bpf_xdp_adjust_meta (54); r0 = XDP_PASS; exit
insns = struct.pack("<BBhi", 0xb7, 2, 0, -4) + struct.pack("<BBhi", 0x85, 0, 0, 54) \
    + struct.pack("<BBhi", 0xb7, 0, 0, 2) + struct.pack("<BBhi", 0x95, 0, 0, 0)
code, lic, log = ctypes.create_string_buffer(insns), ctypes.create_string_buffer(b"GPL"), ctypes.create_string_buffer(65536)
# union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
# log_size, log_buf, kern_version, prog_flags, the rest zero.
attr = struct.pack("<IIQQIIQII", 6, 4, ctypes.addressof(code), ctypes.addressof(lic), 1,
                   len(log), ctypes.addressof(log), 0, 0) + bytes(80)
attr_buf = ctypes.create_string_buffer(attr, len(attr))
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_long]
fd = libc.syscall(321, 5, attr_buf, len(attr))  # SYS_bpf on x86_64, BPF_PROG_LOAD
if fd >= 0:
    libc.close(fd)
    sys.exit(1)
line = [l for l in log.value.decode(errors="replace").splitlines() if "cannot use helper bpf_xdp_adjust_meta" in l]
if not line:
    sys.exit(1)
print(line[0].strip())
PROBE
}
XDP_NOTE=""
if refusal=$(adjust_meta_refused); then
	XDP_NOTE="Knot DNS's XDP mode and kxdpgun were not run: this kernel ($(uname -r)) refuses the helper their XDP programs call (\"$refusal\")."
	echo "bench/compare.sh: $XDP_NOTE Going on without them." >&2
	SERVERS=$(echo "$SERVERS" | tr ' ' '\n' | { grep -vx knot-xdp || true; } | tr '\n' ' ')
	WORKLOADS=$(echo "$WORKLOADS" | tr ' ' '\n' | { grep -vx kxdpgun || true; } | tr '\n' ' ')
	[ -n "${SERVERS// /}" ] && [ -n "${WORKLOADS// /}" ] || { echo "bench/compare.sh: nothing left to run" >&2; exit 1; }
fi
echo "$XDP_NOTE" >"$runs/xdp-note"
tools="knotd ethtool taskset"
case " $WORKLOADS " in *" kxdpgun "*) tools="$tools kxdpgun" ;; esac
for t in $tools; do
	command -v "$t" >/dev/null || { echo "$t is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
cargo build --release -q -p sluice -p sluice-benches
bin=${CARGO_TARGET_DIR:-target}/release
sluice=${SLUICE_BIN:-$bin/sluice} # SLUICE_BIN: another build of the server, for an A/B
zone=$PWD/userspace/dns/tests/data/example.test.zone
work=$(mktemp -d /tmp/sluice-compare.XXXXXX)
cp "$zone" userspace/dns/tests/data/included.zone "$work/"
SRV="ip netns exec sl-srv"
PEER="ip netns exec sl-peer"

server_pid=""
stop_server() {
	if [ -n "$server_pid" ]; then
		kill -INT "$server_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$server_pid" 2>/dev/null || true
		server_pid=""
	fi
	$SRV ip link set dev slsrv0 xdp off 2>/dev/null || true
}
cleanup() {
	stop_server
	$PEER ip link set dev slpeer0 xdp off 2>/dev/null || true
	deploy/netns-topology.sh down >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
deploy/netns-topology.sh down >/dev/null 2>&1 || true
deploy/netns-topology.sh up >/dev/null
$PEER sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
# TX checksum offload off on the server side: the kernel servers' frames then carry full
# checksums, which an AF_XDP client (sluice-bench --backend xdp, kxdpgun) needs.
$SRV ethtool -K slsrv0 gro on tso off tx off >/dev/null
$PEER ethtool -K slpeer0 gro on tso off >/dev/null
$PEER sh -c 'echo 1 > /sys/class/net/slpeer0/threaded'
$PEER ping -c 1 -W 1 198.18.0.1 >/dev/null # kxdpgun needs the neighbour entry

pin_napi() { # IFACE CORE
	for pid in $(pgrep "^napi/$1-" || true); do
		taskset -pc "$2" "$pid" >/dev/null
		# NAPI_FIFO=1: the NAPI thread preempts whatever runs on its core, as a NIC's
		# softirq does, instead of waiting for its CFS turn behind a busy server.
		[ -z "${NAPI_FIFO:-}" ] || chrt -f -p 50 "$pid" >/dev/null
	done
}
cpu_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

knot_conf() { # MODE
	cat <<CONF
server:
    rundir: "$work"
    listen: 198.18.0.1@53
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
CONF
	if [ "$1" = xdp ]; then
		cat <<CONF
xdp:
    listen: slsrv0@53
    udp: on
    tcp: on
    route-check: off
CONF
	fi
	cat <<CONF
database:
    storage: "$work/db"
log:
  - target: "$work/knotd.log"
    any: info
zone:
  - domain: example.test
    file: "$work/example.test.zone"
    journal-content: none
    zonefile-sync: -1
CONF
}

start_server() { # NAME WORKLOAD
	stop_server
	local defer=0 flush=0 extra=""
	case $2 in *-moderated)
		defer=2 flush=$((MODERATION_US * 1000))
		[ "$1" != sluice-xdp ] || extra="--napi-busy-poll 50"
		;;
	esac
	case $1 in
	sluice-xdp)
		# Like every server here, its veth NAPI is a thread pinned to core 0: the peer's
		# transmit schedules the NAPI, so without a thread it would run in the
		# generator's softirq on core 1, charging the server's receive work to the
		# generator. Preferred busy polling takes it over only under moderation (while
		# the deferral lasts, the peer's transmit does not schedule it).
		$SRV sh -c "echo $defer > /sys/class/net/slsrv0/napi_defer_hard_irqs; echo $flush > /sys/class/net/slsrv0/gro_flush_timeout; echo 1 > /sys/class/net/slsrv0/threaded"
		# shellcheck disable=SC2086
		$SRV "$sluice" serve --backend xdp --iface slsrv0 --addr 198.18.0.1 --listen 53=dns \
			--zone "$work/example.test.zone" --cores 0 $SLUICE_XDP_OPTS $extra $SLUICE_LIMITS --control "$work/control.sock" \
			>"$runs/server-$1.log" 2>&1 &
		;;
	sluice-kernel)
		$SRV sh -c "echo $defer > /sys/class/net/slsrv0/napi_defer_hard_irqs; echo $flush > /sys/class/net/slsrv0/gro_flush_timeout; echo 1 > /sys/class/net/slsrv0/threaded"
		# shellcheck disable=SC2086
		$SRV "$sluice" serve --backend kernel --addr 198.18.0.1 --listen 53=dns \
			--zone "$work/example.test.zone" --cores 0 $SLUICE_LIMITS --control "$work/control.sock" \
			>"$runs/server-$1.log" 2>&1 &
		;;
	knot-kernel | knot-xdp)
		$SRV sh -c "echo $defer > /sys/class/net/slsrv0/napi_defer_hard_irqs; echo $flush > /sys/class/net/slsrv0/gro_flush_timeout; echo 1 > /sys/class/net/slsrv0/threaded"
		knot_conf "${1#knot-}" >"$work/knot.conf"
		: >"$work/knotd.log"
		$SRV taskset -c 0 knotd -c "$work/knot.conf" >"$runs/server-$1.log" 2>&1 &
		;;
	esac
	server_pid=$!
	for _ in $(seq 100); do
		if $PEER kdig +tcp +timeout=1 +retry=0 @198.18.0.1 www.example.test A 2>/dev/null | grep -q NOERROR; then
			break
		fi
		sleep 0.1
	done
	pin_napi slsrv0 0
	pin_napi slpeer0 1
}

printf 'www.example.test A\nexample.test MX\nmail.example.test AAAA\nnope.example.test A\nanything.wild.example.test A\nchain1.example.test A\n' >"$work/queries.txt"

measure() { # SERVER WORKLOAD RUN
	local s=$1 w=$2 r=$3 b0 b1 t0 t1 a0 a1
	local wl=${w%-moderated} # the load is the same with moderation
	local base="$runs/$s-$w-$r"
	local perf_pid=""
	if [ -n "${PERF:-}" ]; then
		perf record -q -a -g -o "$base.perf.data" -- sleep "$((SECS + 1))" >/dev/null 2>&1 &
		perf_pid=$!
	elif [ -n "${PERF_STAT:-}" ]; then
		# After the generator's warm-up, over its measured phase.
		(sleep "${WARMUP:-1}"; perf stat -x, -C 0 -e context-switches,raw_syscalls:sys_enter,irq:softirq_entry,sched:sched_wakeup \
			-o "$base.perfstat" -- sleep "$SECS") >/dev/null 2>&1 &
		perf_pid=$!
	fi
	# sluice-xdp busy-polls, so core 0 looks fully busy whatever its load: its workers'
	# own busy time (sluice stats) says what they really did.
	case $s in sluice-*) "$sluice" stats --control "$work/control.sock" >"$base.stats0" 2>&1 || true ;; esac
	b0=$(cpu_busy 0); b1=$(cpu_busy 1); t0=$(date +%s.%N)
	case $wl in
	pipelined | per-connection | per-connection-rate | xdp-pipelined* | xdp-per-connection* | half-load)
		local opts="--mode pipelined --connections 64 --in-flight 16"
		[ "$wl" = half-load ] && opts="$opts --rate $(half_rate) --backend xdp --iface slpeer0 --addr 198.18.0.2 --napi-busy-poll 50"
		[ "$wl" = per-connection ] && opts="--mode per-connection --connections 32"
		[ "$wl" = per-connection-rate ] && opts="--mode per-connection --connections 64 --rate $CONN_RATE"
		[ "$wl" = xdp-pipelined ] && opts="$opts --backend xdp --iface slpeer0 --addr 198.18.0.2 --napi-busy-poll 50"
		[ "$wl" = xdp-per-connection ] && opts="--mode per-connection --connections 64 --backend xdp --iface slpeer0 --addr 198.18.0.2 --napi-busy-poll 50"
		[ "$wl" = xdp-pipelined-sleep ] && opts="$opts --backend xdp --iface slpeer0 --addr 198.18.0.2 --busy-poll 0"
		[ "$wl" = xdp-per-connection-sleep ] && opts="--mode per-connection --connections 64 --backend xdp --iface slpeer0 --addr 198.18.0.2 --busy-poll 0"
		# shellcheck disable=SC2086
		$PEER "$bin/sluice-bench" --server 198.18.0.1:53 $opts --queries "$work/queries.txt" \
			--duration "$SECS" --warmup "${WARMUP:-1}" --cores 1 --quiet --label "$s" --json "$base.json" --plot "$base.svg" >"$base.out" 2>&1 || true
		$PEER ip link set dev slpeer0 xdp off 2>/dev/null || true
		;;
	kxdpgun)
		$PEER taskset -c 1 kxdpgun -t "$SECS" -Q "$KX_RATE" -T -F 1 -I slpeer0 -i "$work/kx-queries.txt" 198.18.0.1 >"$base.out" 2>&1 || true
		$PEER ip link set dev slpeer0 xdp off 2>/dev/null || true
		pin_napi slpeer0 1
		;;
	esac
	t1=$(date +%s.%N); a0=$(cpu_busy 0); a1=$(cpu_busy 1)
	case $s in sluice-*) "$sluice" stats --control "$work/control.sock" >"$base.stats1" 2>&1 || true ;; esac
	[ -z "$perf_pid" ] || wait "$perf_pid" || true
	echo "$((a0 - b0)) $((a1 - b1)) $(getconf CLK_TCK) $t0 $t1" >"$base.cpu"
}
awk '{print $1, $2}' "$work/queries.txt" >"$work/kx-queries.txt"

half_rate() { # half of sluice-xdp's median pipelined QPS in this invocation, or HALF_RATE
	python3 - "$runs" "$RUNS" "${HALF_RATE:-}" <<'PY'
import json, statistics, sys
runs, n, fixed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if fixed:
    print(fixed)
    sys.exit()
q = []
for r in range(1, n + 1):
    try:
        q.append(json.load(open(f"{runs}/sluice-xdp-xdp-pipelined-{r}.json"))["qps"])
    except (OSError, ValueError, KeyError):
        pass
print(int(statistics.median(q) / 2) if q else 400000)
PY
}

for s in $SERVERS; do
	echo "== $s" >&2
	for w in $WORKLOADS; do
		# A fresh server for each workload: an overload (kxdpgun's open loop, a kernel
		# client's connection churn) can leave a server degraded for the next one (Knot
		# XDP-TCP answered nothing at half load right after kxdpgun; Knot on kernel
		# sockets fell from ~24 k to under 1 k conn/s after the kernel-client runs).
		start_server "$s" "$w"
		for r in $(seq 1 "$RUNS"); do
			measure "$s" "$w" "$r"
		done
	done
	stop_server
done

fi

python3 - "$runs" "$RUNS" "$SECS" "$KX_RATE" "$SERVERS" "$CONN_RATE" "$MODERATION_US" >"$out/compare.md" <<'PY'
import json, os, re, statistics, sys, datetime, subprocess
runs, n, secs, kx_rate, servers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split()
conn_rate, moderation = int(sys.argv[6]), int(sys.argv[7])
# A server that was not run (knot-xdp on a kernel that refuses its program) has no row.
servers = [s for s in servers if any(f.startswith(s + "-") for f in os.listdir(runs))]
def cpu(s, w, r):
    try:
        c0, c1, hz, t0, t1 = open(f"{runs}/{s}-{w}-{r}.cpu").read().split()
        wall = float(t1) - float(t0)
        return int(c0) / int(hz) / wall, int(c1) / int(hz) / wall
    except (OSError, ValueError):
        return float("nan"), float("nan")
def bench(s, w, r):
    try:
        j = json.load(open(f"{runs}/{s}-{w}-{r}.json"))
    except (OSError, ValueError):
        return None
    rate = j["qps"] if "pipelined" in w or w == "half-load" else j["cps"]
    return rate, j["latency_us"].get("50"), j["latency_us"].get("99"), sum(j["errors"].values())
def kx(s, r):
    try:
        t = open(f"{runs}/{s}-kxdpgun-{r}.out").read()
    except OSError:
        return None
    m = re.search(r"total replies:\s*(\d+)", t)
    q = re.search(r"total SYNs:\s*(\d+)", t)
    if not m:
        return None
    return int(m.group(1)) / secs, (int(m.group(1)) / int(q.group(1)) * 100 if q and int(q.group(1)) else float("nan"))
def idle_poll(s, w, r):
    """The share of the run a sluice server's workers spent polling with nothing to do."""
    def read(k):
        t = open(f"{runs}/{s}-{w}-{r}.stats{k}").read()
        pairs = [(int(i), int(e)) for i, e in re.findall(r"idle-poll (\d+) of (\d+) us", t)]
        return sum(i for i, _ in pairs), sum(e for _, e in pairs)
    try:
        (i0, e0), (i1, e1) = read(0), read(1)
    except (OSError, ValueError):
        return 0.0
    return (i1 - i0) / (e1 - e0) if e1 > e0 else 0.0
def gen_idle_poll(s, w, r):
    try:
        return json.load(open(f"{runs}/{s}-{w}-{r}.json")).get("generator_idle_poll") or 0.0
    except (OSError, ValueError):
        return 0.0
med = lambda v: statistics.median(v) if v else float("nan")
rows = {}
for s in servers:
    for w in ("pipelined", "per-connection", "per-connection-rate", "pipelined-moderated",
              "per-connection-rate-moderated", "xdp-pipelined", "xdp-per-connection",
              "xdp-pipelined-sleep", "xdp-per-connection-sleep", "half-load"):
        b = [x for x in (bench(s, w, r) for r in range(1, n + 1)) if x]
        c = [cpu(s, w, r) for r in range(1, n + 1)]
        # Each core's load: the OS's busy time less what a sluice worker spent polling
        # with nothing to do (its own account), so busy polling is not counted as work;
        # for the open-loop per-connection-rate runs, the OS's busy time as it is.
        raw = w.startswith("per-connection-rate")
        rows[(s, w)] = dict(rate=med([x[0] for x in b]), p50=med([x[1] for x in b if x[1] is not None]),
                            p99=med([x[2] for x in b if x[2] is not None]), errors=sum(x[3] for x in b),
                            cpu0=med([c[r - 1][0] - (0 if raw else idle_poll(s, w, r)) for r in range(1, n + 1)]),
                            cpu1=med([c[r - 1][1] - gen_idle_poll(s, w, r) for r in range(1, n + 1)]))
    k = [x for x in (kx(s, r) for r in range(1, n + 1)) if x]
    c = [cpu(s, "kxdpgun", r) for r in range(1, n + 1)]
    rows[(s, "kxdpgun")] = dict(rate=med([x[0] for x in k]), answered=med([x[1] for x in k]),
                                cpu0=med([c[r - 1][0] - idle_poll(s, "kxdpgun", r) for r in range(1, n + 1)]),
                                cpu1=med([x[1] for x in c]))
# The AF_XDP generator that did better for each server (see the header): its rows
# stand for "xdp-pipelined" and "xdp-per-connection" from here on, marked (s) if it
# was the sleeping one.
def better(a, b):
    if b["rate"] == b["rate"] and not (b["rate"] <= a["rate"]):
        return dict(b, gen="s")
    return dict(a, gen="")
for s in servers:
    for w in ("xdp-pipelined", "xdp-per-connection"):
        rows[(s, w + "-poll")] = rows[(s, w)]
        rows[(s, w)] = better(rows[(s, w)], rows[(s, w + "-sleep")])
ver = subprocess.run(["knotd", "-V"], capture_output=True, text=True).stdout.strip()
print(f"# DNS over TCP: sluice against Knot DNS and the kernel ({datetime.date.today()})\n")
print(f"Same zone, veth topology, server and its receive work on core 0, load on core 1; {n} runs of {secs:g} s each, medians. {ver}.")
note = open(f"{runs}/xdp-note").read().strip() if os.path.exists(f"{runs}/xdp-note") else ""
if note:
    print(note + " Their earlier figures are in bench/RESULTS.md, dated.\n")
print("Server µs CPU per answer = core 0's busy time / answers. `server busy` and `load busy` are cores 0 and 1's busy shares, less the time a sluice worker (server, or the AF_XDP generator) polled with nothing to do by its own account (`sluice stats`, sluice-bench's JSON).\n")
print("Load from sluice-bench on kernel sockets (core 1 is usually its limit: see `load busy`):\n")
print("| server | pipelined QPS | p50/p99 µs | µs CPU/answer | load busy | per-connection conn/s | p50/p99 µs | µs CPU/conn | load busy |")
print("|---|---|---|---|---|---|---|---|---|")
per = lambda r: r["cpu0"] / r["rate"] * 1e6 if r["rate"] and r["rate"] == r["rate"] else float("nan")
for s in servers:
    p, c = rows[(s, "pipelined")], rows[(s, "per-connection")]
    print(f"| {s} | {p['rate']:.0f} | {p['p50']}/{p['p99']} | {per(p):.2f} | {p['cpu1']:.2f} | {c['rate']:.0f} | {c['p50']}/{c['p99']} | {per(c):.1f} | {c['cpu1']:.2f} |")
print(f"\nOne query per connection from kernel clients, open loop at {conn_rate} connections/s, and pipelined again, without and with receive interrupt moderation on the server's veth (napi_defer_hard_irqs 2, gro_flush_timeout {moderation} µs, every server alike; sluice-xdp with --napi-busy-poll 50 under moderation). µs CPU/conn and server busy here are core 0's busy time as the OS counts it, nothing taken off; µs CPU/answer of the pipelined runs is counted as in the first table:\n")
print("| server | moderation | answered conn/s | errors | p50/p99 µs | µs CPU/conn | server busy | pipelined QPS | µs CPU/answer |")
print("|---|---|---|---|---|---|---|---|---|")
for s in servers:
    for m, suffix in (("off", ""), ("on", "-moderated")):
        c, p = rows[(s, "per-connection-rate" + suffix)], rows[(s, "pipelined" + suffix)]
        print(f"| {s} | {m} | {c['rate']:.0f} | {c['errors']} | {c['p50']}/{c['p99']} | {per(c):.1f} | {c['cpu0']:.2f} | {p['rate']:.0f} | {per(p):.2f} |")
print("\nLoad from sluice-bench on sluice's TCP over AF_XDP, for each server with the generator that did better for it ((s): the one that sleeps when idle; otherwise the polling one), and from kxdpgun -T (open loop at %d conn/s):\n" % kx_rate)
print("| server | pipelined QPS | p50/p99 µs | server busy | load busy | per-connection conn/s | p50/p99 µs | µs CPU/conn | server busy | load busy | kxdpgun conn/s answered | server busy |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in servers:
    p, c, k = rows[(s, "xdp-pipelined")], rows[(s, "xdp-per-connection")], rows[(s, "kxdpgun")]
    print(f"| {s} | {p['rate']:.0f}{' (s)' if p['gen'] else ''} | {p['p50']}/{p['p99']} | {p['cpu0']:.2f} | {p['cpu1']:.2f} | {c['rate']:.0f}{' (s)' if c['gen'] else ''} | {c['p50']}/{c['p99']} | {per(c):.1f} | {c['cpu0']:.2f} | {c['cpu1']:.2f} | {k['rate']:.0f} ({k.get('answered', float('nan')):.1f} %) | {k['cpu0']:.2f} |")
print("\nBoth AF_XDP generators, each server (rate, and server µs CPU per answer or connection):\n")
print("| server | pipelined, polling gen | pipelined, sleeping gen | per-connection, polling gen | per-connection, sleeping gen |")
print("|---|---|---|---|---|")
for s in servers:
    cell = lambda w: f"{rows[(s, w)]['rate']:.0f}, {per(rows[(s, w)]):.2f} µs"
    print(f"| {s} | {cell('xdp-pipelined-poll')} | {cell('xdp-pipelined-sleep')} | {cell('xdp-per-connection-poll')} | {cell('xdp-per-connection-sleep')} |")
print()
print("\nAt half sluice-xdp's peak pipelined QPS (AF_XDP load, open loop, latencies corrected for coordinated omission):\n")
print("| server | offered QPS | answered QPS | p50 µs | p99 µs | errors |")
print("|---|---|---|---|---|---|")
for s in servers:
    h = rows[(s, "half-load")]
    try:
        offered = json.load(open(f"{runs}/{s}-half-load-1.json"))["rate"]
    except (OSError, ValueError, KeyError):
        offered = float("nan")
    print(f"| {s} | {offered:.0f} | {h['rate']:.0f} | {h['p50']} | {h['p99']} | {h['errors']} |")
print()
base = "sluice-xdp"
if base in servers:
    print("| ratio of sluice-xdp to | pipelined QPS | per-connection conn/s | pipelined QPS (AF_XDP load) | per-connection conn/s (AF_XDP load) | kxdpgun conn/s |")
    print("|---|---|---|---|---|---|")
    for s in servers:
        if s == base:
            continue
        r = lambda w: rows[(base, w)]["rate"] / rows[(s, w)]["rate"] if rows[(s, w)]["rate"] else float("nan")
        print(f"| {s} | {r('pipelined'):.2f}x | {r('per-connection'):.2f}x | {r('xdp-pipelined'):.2f}x | {r('xdp-per-connection'):.2f}x | {r('kxdpgun'):.2f}x |")
    print(f"\nServer core per answered connection at {conn_rate} conn/s (kernel clients), the other server's over sluice-xdp's (above 1: sluice spends less):\n")
    print("| server | without moderation | with moderation |")
    print("|---|---|---|")
    def ratio(s, w):
        a, b = per(rows[(base, w)]), per(rows[(s, w)])
        return b / a if a == a and a else float("nan")
    for s in servers:
        if s == base:
            continue
        print(f"| {s} | {ratio(s, 'per-connection-rate'):.2f}x | {ratio(s, 'per-connection-rate-moderated'):.2f}x |")
PY
cat "$out/compare.md"
