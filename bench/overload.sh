#!/usr/bin/env bash
# Goodput under overload (issue 18): sluice on AF_XDP (one worker, core 0, its veth's
# NAPI thread beside it) offered more one-query DNS connections than it can finish.
# The load is bench/src/overload (a templated client on its own AF_XDP socket in the
# peer namespace, core 1): first the closed-loop capacity C, then open loop at 1.5x,
# 3x and 10x C for SECS seconds each, with persistent connections asking a steady
# trickle of queries throughout. The last line reads exactly:
#   capacity C conn/s; at 3x offered answered A conn/s (R %); at 10x (R10 %)
# (R: answered over C). Each phase's line says what was really offered.
#
#   bench/overload.sh                         (root)  SECS=10 ADMISSION=adaptive
#   ADMISSION=off bench/overload.sh           the same server without XDP admission
#   SERVER_OPTS="--busy-poll 0" ...           more options for sluice serve
#   SLUICE_BIN=PATH ...                       serve with another build of sluice (an A/B)
#
# Writes the generator's output and JSON, and the server's stats and log, under
# bench/results/runs/overload/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
ADMISSION=${ADMISSION:-adaptive}
name=bench/overload.sh
tag=${ADMISSION//\//-}
server_args=(--admission "$ADMISSION")
gen_args=(--seconds "$SECS")
# shellcheck source=bench/lib/generator-run.sh
. bench/lib/generator-run.sh
