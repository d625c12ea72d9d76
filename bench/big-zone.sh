#!/usr/bin/env bash
# Big zones (issue 21): the resident memory and load time of one generated zone of
# RECORDS records in sluice and in Knot DNS, each serving it on loopback (sluice on
# kernel sockets: the zone data is the same on either backend). The zone: an apex (SOA,
# NS), then names h0, h1, ... each with an A record, and every fourth one an AAAA, every
# tenth a TXT and an MX as well, so that a name holds 1.4 records on average, as in
# hosting zones. Both are asked a few names (the answers must agree), then their memory
# is read (VmRSS) and the time from start to "zone loaded" in their logs. Then sluice
# reloads the zone while a client asks it every millisecond: the slowest answer, and
# the peak memory of the load and of the reload (VmHWM), are printed before the last
# line.
#
#   bench/big-zone.sh                   RECORDS=1000000
#   RECORDS=10000000 bench/big-zone.sh  ten million (about 2 GB for sluice, 2.5 for Knot)
#
# Writes bench/results/runs/big-zone/; the last line reads exactly:
#   zone of N records: sluice B bytes/record, loaded in S s; Knot B bytes/record, loaded in S s
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
for c in knotd kdig python3; do
	command -v "$c" >/dev/null || { echo "big-zone: $c is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
cargo build --release -q -p sluice
sluice=${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}
out=bench/results/runs/big-zone
mkdir -p "$out"
work=$(mktemp -d /tmp/sluice-big-zone.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# The zone: RECORDS records in all.
python3 - "$RECORDS" "$work/big.test.zone" <<'PY'
import sys
want, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("$ORIGIN big.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n")
    n, i = 3, 0
    while n < want:
        f.write(f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n"); n += 1
        if i % 4 == 0 and n < want:
            f.write(f"h{i} IN AAAA 2001:db8::{i >> 16:x}:{i & 0xffff:x}\n"); n += 1
        if i % 10 == 0 and n + 1 < want:
            f.write(f'h{i} IN TXT "v=spf1 ip4:10.0.0.0/8 -all {i}"\n')
            f.write(f"h{i} IN MX 10 mail.h{i}\n"); n += 2
        i += 1
PY
echo "big-zone: $RECORDS records, $(du -m "$work/big.test.zone" | cut -f1) MB of zone file" >&2

now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
wait_log() { # FILE TEXT PID
	for _ in $(seq 6000); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { cat "$1" >&2; return 1; }
		sleep 0.05
	done
	return 1
}

# sluice
start=$(now_ms)
RUST_LOG=info "$sluice" serve --backend kernel --addr 127.0.0.1 --listen 5391=dns \
	--zone "$work/big.test.zone" --control "$work/sluice.sock" >"$work/sluice.log" 2>&1 &
spid=$!
pids+=("$spid")
wait_log "$work/sluice.log" "zones loaded" "$spid" || { echo "big-zone: sluice did not load the zone" >&2; exit 1; }
sluice_ms=$(($(now_ms) - start))
wait_log "$work/sluice.log" "serving" "$spid"

# Knot DNS
cat >"$work/knot.conf" <<EOF
server:
    rundir: "$work"
    listen: 127.0.0.1@5392
database:
    storage: "$work/db"
log:
  - target: "$work/knotd.log"
    any: info
zone:
  - domain: big.test
    file: "$work/big.test.zone"
    journal-content: none
    zonefile-sync: -1
    semantic-checks: off
EOF
start=$(now_ms)
knotd -c "$work/knot.conf" >/dev/null 2>&1 &
kpid=$!
pids+=("$kpid")
wait_log "$work/knotd.log" "loaded, serial" "$kpid" || { echo "big-zone: Knot did not load the zone" >&2; exit 1; }
knot_ms=$(($(now_ms) - start))

# The same answers from both.
for name in h0 h7 h40 "h$(( (RECORDS * 2 / 3) / 2 ))" nope; do
	for t in A AAAA TXT MX; do
		a=$(kdig +tcp +short @127.0.0.1 -p 5391 "$name.big.test" "$t" | sort)
		b=$(kdig +tcp +short @127.0.0.1 -p 5392 "$name.big.test" "$t" | sort)
		if [[ $a != "$b" ]]; then
			echo "big-zone: $name $t: sluice says '$a', Knot '$b'" >&2
			exit 1
		fi
	done
done
sluice_kb=$(rss_kb "$spid")
knot_kb=$(rss_kb "$kpid")
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
load_peak_kb=$(hwm_kb "$spid")

# A reload of the same zone while a client asks every millisecond on one connection:
# the worst answer time through it, and the peak memory (the old index serves until
# the new one is whole, so both are held at the peak).
python3 - 127.0.0.1 5391 "$work/asker.out" "$work/asker.stop" <<'PY' &
import socket, struct, sys, time, os
host, port, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
q = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x02h7\x03big\x04test\x00" + b"\x00\x01\x00\x01"
s = socket.create_connection((host, port)); s.settimeout(10)
worst, n, end = 0.0, 0, time.time() + 60
while not os.path.exists(stop) and time.time() < end:
    t = time.perf_counter()
    s.sendall(struct.pack(">H", len(q)) + q)
    need = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
    s.recv(need, socket.MSG_WAITALL)
    worst = max(worst, time.perf_counter() - t); n += 1
    time.sleep(0.001)
open(out, "w").write(f"{n} {worst * 1000:.1f}\n")
PY
asker=$!
pids+=("$asker")
sleep 0.5
start=$(now_ms)
"$sluice" reload --control "$work/sluice.sock" >/dev/null
reload_ms=$(($(now_ms) - start))
sleep 0.3
touch "$work/asker.stop"
wait "$asker"
read -r asked worst_ms <"$work/asker.out"
reload_peak_kb=$(hwm_kb "$spid")
per() { echo $(($1 * 1024 / RECORDS)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
{
	echo "sluice: resident $((sluice_kb / 1024)) MB, loaded in $(secs "$sluice_ms") s"
	echo "sluice: peak $((load_peak_kb / 1024)) MB during the load, $((reload_peak_kb / 1024)) MB during a reload ($(secs "$reload_ms") s; $asked answers meanwhile, the slowest in $worst_ms ms)"
	echo "Knot DNS: resident $((knot_kb / 1024)) MB, loaded in $(secs "$knot_ms") s"
	echo "zone of $RECORDS records: sluice $(per "$sluice_kb") bytes/record, loaded in $(secs "$sluice_ms") s; Knot $(per "$knot_kb") bytes/record, loaded in $(secs "$knot_ms") s"
} | tee "$out/$(date -u +%Y%m%dT%H%M%SZ)-$(git rev-parse --short HEAD 2>/dev/null || echo nogit)-$RECORDS.txt"
