# Sourced by bench/overload.sh and bench/million.sh: one run of sluice on AF_XDP (one
# worker, core 0, its veth's NAPI thread beside it, SCHED_FIFO as a NIC's softirq)
# against bench/src/overload's templated generator on its own AF_XDP socket in the
# peer namespace (core 1, its NAPI thread likewise), the generator's sources
# (198.18.64.0/22) routed behind the peer. Ends with the generator's last line.
#
# The caller sets: name (the script, for messages and bench/results/runs/NAME/), tag
# (a word in the run's file names), server_args (an array of `sluice serve` options),
# gen_args (an array of the generator's options; this file adds the interface, the
# server's MAC and process, the core, and --json). Honoured from the environment:
# SERVER_OPTS, SLUICE_BIN, RUST_LOG, CARGO_TARGET_DIR.
SERVER_OPTS=${SERVER_OPTS:-}
if [[ $(id -u) -ne 0 ]]; then
	echo "$name: needs root (network namespaces, XDP, AF_XDP)" >&2
	exit 1
fi
command -v ethtool >/dev/null || { echo "$name: ethtool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
if [[ $(nproc) -lt 2 ]]; then
	echo "$name: needs two cores (server and load on their own)" >&2
	exit 1
fi
cargo build --release -q -p sluice -p sluice-benches
bin=${CARGO_TARGET_DIR:-target}/release
sluice=${SLUICE_BIN:-$bin/sluice}
out=bench/results/runs/${name#bench/}
out=${out%.sh}
mkdir -p "$out"
stamp="$(date -u +%Y%m%dT%H%M%SZ)-$(git rev-parse --short HEAD 2>/dev/null || echo nogit)-$tag"
SRV="ip netns exec sl-srv"
PEER="ip netns exec sl-peer"

work=$(mktemp -d /tmp/sluice-generator.XXXXXX)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -INT "$server_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	deploy/netns-topology.sh down >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
cp userspace/dns/tests/data/example.test.zone userspace/dns/tests/data/included.zone "$work/"
deploy/netns-topology.sh down >/dev/null 2>&1 || true
deploy/netns-topology.sh up >/dev/null
# The generator's sources (198.18.64.0/22) are behind the peer's address.
$SRV ip route add 198.18.64.0/22 via 198.18.0.2 dev slsrv0
# Each side's veth receive work in a NAPI thread pinned beside it (compare.sh's method;
# veth has a NAPI once GRO is on).
$SRV ethtool -K slsrv0 gro on >/dev/null
$PEER ethtool -K slpeer0 gro on >/dev/null
$SRV sh -c 'echo 1 > /sys/class/net/slsrv0/threaded'
$PEER sh -c 'echo 1 > /sys/class/net/slpeer0/threaded'
pin_napi() { # IFACE CORE [fifo]
	for pid in $(pgrep "^napi/$1-" || true); do
		taskset -pc "$2" "$pid" >/dev/null
		[ -z "${3:-}" ] || chrt -f -p 50 "$pid" >/dev/null
	done
}

# shellcheck disable=SC2086
$SRV env RUST_LOG="${RUST_LOG:-info}" "$sluice" serve --backend xdp --iface slsrv0 --addr 198.18.0.1 --listen 53=dns --drain 0 \
	--zone "$work/example.test.zone" --cores 0 "${server_args[@]}" \
	--control "$work/control.sock" $SERVER_OPTS >"$out/$stamp.server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
	if [ -S "$work/control.sock" ]; then break; fi
	kill -0 "$server_pid" 2>/dev/null || { cat "$out/$stamp.server.log" >&2; echo "$name: sluice did not start" >&2; exit 1; }
	sleep 0.1
done
[ -S "$work/control.sock" ] || { echo "$name: sluice is not serving after 10 s" >&2; exit 1; }
sleep 0.5
pin_napi slsrv0 0 fifo
# The generator spins on core 1: its receive work preempts it, as a NIC's softirq
# would, or the server's answers would wait behind the flood it sends.
pin_napi slpeer0 1 fifo
mac=$($SRV cat /sys/class/net/slsrv0/address)
napi_ns() { # the server's NAPI threads' CPU time so far, ns
	local t=0
	for pid in $(pgrep "^napi/slsrv0-" || true); do t=$((t + $(cut -d' ' -f1 "/proc/$pid/schedstat"))); done
	echo "$t"
}
napi_before=$(napi_ns)

gen_status=0
$PEER "$bin/overload" --iface slpeer0 --server-mac "$mac" --core 1 --server-pid "$server_pid" \
	--json "$out/$stamp.json" "${gen_args[@]}" | tee "$out/$stamp.txt" >&2 || gen_status=$?
"$sluice" stats --control "$work/control.sock" >"$out/$stamp.stats" 2>&1 || true
napi_after=$(napi_ns)
grep -h "steering program\|syn budget" "$out/$stamp.stats" | sed 's/^/server: /' >&2 || true
echo "server: its veth's receive work (NAPI thread, core 0) took $(((napi_after - napi_before) / 1000000)) ms of CPU over the run" | tee -a "$out/$stamp.stats" >&2
if [ "$gen_status" -ne 0 ]; then
	echo "the generator failed ($gen_status); the server's stats are in $out/$stamp.stats" >&2
	exit "$gen_status"
fi
tail -n 1 "$out/$stamp.txt"
