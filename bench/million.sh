#!/usr/bin/env bash
# A million connections (issue 18): sluice on AF_XDP (one worker, core 0) holds N
# concurrent established DNS connections, opened at RATE a second by the templated
# generator on its own AF_XDP socket (core 1) from 256 source addresses, each answered
# once and then left open, idle (at 50,000 a second, a quarter of the attempts were lost
# to the server's RX ring and given up). Then new clients, one at a time, are answered while
# the rest are held. The server's resident memory is read before and after. The last
# line reads exactly:
#   held N connections, NNN bytes each, new client answered in NN ms
# (bytes: the server's resident memory grown, over the connections held).
#
#   bench/million.sh                          (root)  N=1000000 RATE=25000
#   SERVER_OPTS=..., SLUICE_BIN=PATH ...     more server options; another sluice build
#
# Writes the generator's output and the server's stats and log under
# bench/results/runs/million/.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RATE=${RATE:-25000}
name=bench/million.sh
tag=$N
server_args=(--max-connections $((N * 2)) --max-per-source $((N / 128 + 1000))
	--idle-timeout 3600 --max-lifetime 7200)
gen_args=(--hold "$N" --rate "$RATE")
# shellcheck source=bench/lib/generator-run.sh
. bench/lib/generator-run.sh
