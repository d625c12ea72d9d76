#!/usr/bin/env bash
# The fleet in network namespaces (issue 20): a router running BIRD that spreads the
# DNS service address over two sluice hosts by ECMP, each host announcing it over BGP
# (with BFD) while its sluice is healthy, and a client behind the router.
#
#   client --- router (BIRD, multipath, L4 hash) ---+--- host 1 (sluice on AF_XDP, BIRD)
#                                                    +--- host 2 (sluice on AF_XDP, BIRD)
#
# It runs DNS-over-TCP load from the client (persistent connections and one-query
# connections, bench/src/fleet-load) through it all:
#   (a) steady load: both hosts take a share of the connections;
#   (b) a rolling restart, host 1 then host 2: SIGTERM (sluice's /health goes 503,
#       announce.sh withdraws the route, sluice keeps serving for its lame-duck time,
#       then drains), start again, wait until it is announced again;
#   (c) host 2 dies (its sluice, BIRD and announcer stopped, then killed): the
#       router's BFD drops its path; the queries that fail are counted, and how long
#       after the host died the last of them was sent.
# Last line exactly:
#   fleet: N queries, F failed; rolling restart lost L; kill lost K (within T ms)
#
#   deploy/fleet/demo.sh                  (root; needs bird2, curl, python3)
#   SECS=8 LAMEDUCK=2                     steady load's seconds; sluice's --lameduck
#   SLUICE_BIN=PATH FLEET_LOAD_BIN=PATH   use these builds instead of building
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-8}
SERVICE=198.18.100.53
LAMEDUCK=${LAMEDUCK:-2}
if [[ $(id -u) -ne 0 ]]; then
	echo "fleet: needs root (network namespaces, XDP, AF_XDP)" >&2
	exit 1
fi
for c in bird birdc curl python3; do
	command -v "$c" >/dev/null || { echo "fleet: $c is missing (apt-get install bird2 curl python3)" >&2; exit 1; }
done
if [[ -z ${SLUICE_BIN:-} || -z ${FLEET_LOAD_BIN:-} ]]; then
	cargo build --release -q -p sluice -p sluice-benches
fi
bin=${CARGO_TARGET_DIR:-target}/release
sluice=${SLUICE_BIN:-$bin/sluice}
load=${FLEET_LOAD_BIN:-$bin/fleet-load}

# Unique names (interface names have 15 characters at most).
P=fl$(( $$ % 9000 + 1000 ))
CL=$P-cl RT=$P-rt
work=$(mktemp -d /tmp/sluice-fleet.XXXXXX)
created=()
cleanup() {
	# Only what this run created: a namespace of the same name from another run is not
	# ours to remove.
	for ns in "${created[@]}"; do
		# Whatever still runs in it (sluice, BIRD, which daemonizes, the announcer).
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
cp userspace/dns/tests/data/example.test.zone userspace/dns/tests/data/included.zone "$work/"
say() { echo "fleet: $*" >&2; }

# The namespaces and links.
for ns in "$CL" "$RT" "$P-h1" "$P-h2"; do
	ip netns add "$ns" || { echo "fleet: cannot create namespace $ns (left by another run?)" >&2; exit 1; }
	created+=("$ns")
	ip -n "$ns" link set lo up
done
link() { # NS_A IF_A ADDR_A NS_B IF_B ADDR_B
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$4" addr add "$6/24" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
}
link "$CL" "${P}c" 10.77.0.2 "$RT" "${P}r0" 10.77.0.1
ip -n "$CL" route add default via 10.77.0.1
for i in 1 2; do
	link "$P-h$i" "${P}h$i" "10.77.$i.2" "$RT" "${P}r$i" "10.77.$i.1"
	ip -n "$P-h$i" route add default via "10.77.$i.1"
	# The service address, for the kernel's own use (ICMP, a UDP server beside sluice);
	# TCP port 53 never reaches the kernel while sluice's XDP program is attached.
	ip -n "$P-h$i" addr add "$SERVICE/32" dev lo
done
ip netns exec "$RT" sysctl -qw net.ipv4.ip_forward=1
# Multipath by the 4-tuple: a TCP connection stays on one host.
ip netns exec "$RT" sysctl -qw net.ipv4.fib_multipath_hash_policy=1

# BIRD: the router, then each host.
hosts=""
for i in 1 2; do
	hosts+="protocol bgp host$i from host { neighbor 10.77.$i.2 as 65001; source address 10.77.$i.1; }"$'\n'
done
sed -e "s|@LOG@|$work/bird-rt.log|" -e "s|@ROUTER_ID@|10.77.0.1|" -e "s|@ROUTER_AS@|65000|" \
	deploy/fleet/bird-router.conf | awk -v hosts="$hosts" '{ if ($0 == "@HOSTS@") printf "%s", hosts; else print }' >"$work/bird-rt.conf"
ip netns exec "$RT" bird -c "$work/bird-rt.conf" -s "$work/bird-rt.ctl" -P "$work/bird-rt.pid"
start_host() { # I: BIRD (once), sluice, announcer
	local i=$1 ns=$P-h$1
	if [[ ! -S $work/bird-h$i.ctl ]]; then
		sed -e "s|@LOG@|$work/bird-h$i.log|" -e "s|@HOST_IP@|10.77.$i.2|" -e "s|@HOST_AS@|65001|" \
			-e "s|@ROUTER_IP@|10.77.$i.1|" -e "s|@ROUTER_AS@|65000|" -e "s|@SERVICE@|$SERVICE|" \
			deploy/fleet/bird-host.conf >"$work/bird-h$i.conf"
		ip netns exec "$ns" bird -c "$work/bird-h$i.conf" -s "$work/bird-h$i.ctl" -P "$work/bird-h$i.pid"
	fi
	ip netns exec "$ns" env RUST_LOG=info "$sluice" serve --backend xdp --iface "${P}h$i" \
		--addr "$SERVICE" --listen 53=dns --zone "$work/example.test.zone" --cores $((i - 1)) \
		--metrics 127.0.0.1:9153 --lameduck "$LAMEDUCK" --drain 2 --control "$work/h$i.sock" \
		>>"$work/sluice-h$i.log" 2>&1 &
	eval "sluice_h$i=$!"
	if [[ -z $(eval echo "\${announce_h$i:-}") ]]; then
		ip netns exec "$ns" deploy/fleet/announce.sh http://127.0.0.1:9153/health "$work/bird-h$i.ctl" 0.1 \
			>>"$work/announce-h$i.log" 2>&1 &
		eval "announce_h$i=$!"
	fi
}
# How many hosts the router's route to the service has.
paths() {
	local r
	r=$(ip -n "$RT" route show "$SERVICE" 2>/dev/null)
	if [[ -z $r ]]; then echo 0; elif grep -q nexthop <<<"$r"; then grep -c nexthop <<<"$r"; else echo 1; fi
}
wait_paths() { # N TIMEOUT_S
	local deadline=$((SECONDS + $2))
	while [[ $(paths) -ne $1 ]]; do
		if ((SECONDS >= deadline)); then
			say "the router has $(paths) paths to $SERVICE, not $1, after $2 s"
			ip -n "$RT" route show "$SERVICE" >&2 || true
			tail -n 5 "$work"/announce-h*.log "$work"/bird-*.log >&2 || true
			exit 1
		fi
		sleep 0.1
	done
}
start_host 1
start_host 2
wait_paths 2 30
say "the router spreads $SERVICE over 2 hosts: $(ip -n "$RT" route show "$SERVICE" | tr -s ' \n' ' ')"

run_load() { # SECONDS OUT [STOP_FILE]
	ip netns exec "$CL" "$load" --server "$SERVICE:53" --persistent 4 --one-query 4 --seconds "$1" \
		${3:+--stop-file "$3"} >"$2"
}
field() { sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p" "$1"; }
dns_connections() { # I: DNS connections host I has admitted so far
	"$sluice" stats --json --control "$work/h$1.sock" |
		python3 -c 'import json, sys; print(sum(w["dns"]["connections"] for w in json.load(sys.stdin)["workers"]))'
}

# (a) Steady load: both hosts take a share.
before1=$(dns_connections 1) before2=$(dns_connections 2)
run_load "$SECS" "$work/steady.json"
c1=$(($(dns_connections 1) - before1)) c2=$(($(dns_connections 2) - before2))
say "steady: $(field "$work/steady.json" queries) queries, $(field "$work/steady.json" failed) failed; connections host 1 $c1, host 2 $c2"
if ((c1 == 0 || c2 == 0)); then
	say "one host took no connection"
	exit 1
fi

# (b) Rolling restart under load.
run_load 120 "$work/restart.json" "$work/restarted" &
load_pid=$!
sleep 2
for i in 1 2; do
	pid=$(eval echo "\$sluice_h$i")
	say "restarting host $i (SIGTERM: withdraw, ${LAMEDUCK} s lame duck, drain)"
	kill -TERM "$pid"
	wait_paths 1 10
	deadline=$((SECONDS + LAMEDUCK + 10))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || { say "host $i's sluice did not exit"; tail -n 5 "$work/sluice-h$i.log" >&2; exit 1; }
		sleep 0.1
	done
	start_host "$i"
	wait_paths 2 30
	say "host $i is back and announced"
done
sleep 1
touch "$work/restarted"
wait "$load_pid"
say "rolling restart: $(field "$work/restart.json" queries) queries, $(field "$work/restart.json" retried) asked again on a new connection, $(field "$work/restart.json" failed) failed"

# (c) Host 2 dies under load: its sluice, BIRD and announcer stop at once and are then
# killed. Stopped first, as a host that hangs or loses power: none of them sends
# anything more, no FIN closes the BGP session (as a kill would, and the router would
# know at once), no RST ends a client's connection; only BFD tells the router.
run_load 6 "$work/kill.json" &
load_pid=$!
sleep 2
kill_ms=$(date +%s%3N)
dying=("$(eval echo "\$sluice_h2")" "$(eval echo "\$announce_h2")" "$(cat "$work/bird-h2.pid")")
kill -STOP "${dying[@]}"
say "host 2 stopped"
wait_paths 1 10
detected_ms=$(($(date +%s%3N) - kill_ms))
kill -KILL "${dying[@]}"
wait "$load_pid"
# How long after the kill the last query that failed was sent.
last=$(field "$work/kill.json" last_failure_ms)
within=0
if ((last > kill_ms)); then within=$((last - kill_ms)); fi
say "kill: the router dropped host 2 within ${detected_ms} ms; $(field "$work/kill.json" retried) queries asked again, $(field "$work/kill.json" failed) failed"

n=0 f=0
for phase in steady restart kill; do
	n=$((n + $(field "$work/$phase.json" queries)))
	f=$((f + $(field "$work/$phase.json" failed)))
done
echo "fleet: $n queries, $f failed; rolling restart lost $(field "$work/restart.json" failed); kill lost $(field "$work/kill.json" failed) (within $within ms)"
