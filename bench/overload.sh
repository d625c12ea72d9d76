#!/usr/bin/env bash
# Goodput under overload (issue 18): sluice on AF_XDP (one worker, core 0, its veth's
# NAPI thread beside it) offered more one-query DNS connections than it can finish.
# The load is bench/src/overload (a templated client on its own AF_XDP socket in the
# peer namespace, core 1): first the closed-loop capacity, then open loop at 1.5x,
# 3x and 10x of it for SECS seconds each, with persistent connections asking a steady
# trickle of queries throughout. Each load runs in 2 s slices with the capacity
# measured again between them, once the server is quiet, and each slice offers its
# multiple of the capacity last measured: the machines are shared and their speed
# drifts by half within seconds. The last line reads exactly:
#   capacity C conn/s; at 3x offered answered A conn/s (R %); at 10x (R10 %)
# (C: the median capacity measured; R: answered over the capacity measured beside that
# load). Each phase's line says what was really offered.
#
#   bench/overload.sh                         (root)  SECS=10 ADMISSION=adaptive
#   ADMISSION=off bench/overload.sh           the same server without XDP admission
#   SERVER_OPTS="--busy-poll 0" ...           more options for sluice serve
#   SLUICE_BIN=PATH ...                       serve with another build of sluice (an A/B)
#   DEVICE=memory bench/overload.sh           no root, no network: the same worker and
#                                             generator on the in-memory device, which
#                                             plays the steering program's admission
#                                             and the ring's drops (ADMISSION adaptive
#                                             or off); without veth's receive cost,
#                                             as on a NIC with zero-copy AF_XDP
#
# Writes the generator's output and JSON, and the server's stats and log, under
# bench/results/runs/overload/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
ADMISSION=${ADMISSION:-adaptive}
name=bench/overload.sh
tag=${ADMISSION//\//-}
if [[ ${DEVICE:-xdp} == memory ]]; then
	if [[ $(nproc) -lt 2 ]]; then
		echo "$name: needs two cores (server and load on their own)" >&2
		exit 1
	fi
	case $ADMISSION in adaptive | off) ;; *)
		echo "$name: DEVICE=memory takes ADMISSION=adaptive or off" >&2
		exit 1
		;;
	esac
	cargo build --release -q -p sluice-benches --bin overload
	out=bench/results/runs/overload
	mkdir -p "$out"
	stamp="$(date -u +%Y%m%dT%H%M%SZ)-$(git rev-parse --short HEAD 2>/dev/null || echo nogit)-memory-$tag"
	"${CARGO_TARGET_DIR:-target}/release/overload" --device memory --admission "$ADMISSION" \
		--zone userspace/dns/tests/data/example.test.zone --server-core 0 --core 1 \
		--seconds "$SECS" --json "$out/$stamp.json" | tee "$out/$stamp.txt" >&2
	tail -n 1 "$out/$stamp.txt"
	exit 0
fi
server_args=(--admission "$ADMISSION")
gen_args=(--seconds "$SECS")
# shellcheck source=bench/lib/generator-run.sh
. bench/lib/generator-run.sh
