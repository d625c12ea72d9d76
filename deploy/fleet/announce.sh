#!/usr/bin/env bash
# Announces the service while this host's sluice is healthy: polls sluice's /health
# (sluice serve --metrics ADDR:PORT) and enables BIRD's `service` protocol when it
# answers 200, disables it otherwise: on SIGTERM (503 for sluice's --lameduck seconds,
# while it still serves), when sluice is gone (connection refused), or hangs (no answer
# within the poll). The host's BIRD then withdraws the route; the router, whose BFD
# watches the host itself, drops a host that dies altogether.
#
#   deploy/fleet/announce.sh HEALTH_URL BIRD_SOCKET [INTERVAL_S]
#   deploy/fleet/announce.sh http://127.0.0.1:9153/health /run/bird/bird.ctl 0.1
#
# Why a health check driving birdc, not sluice adding a route itself: a route sluice
# added would outlive a sluice killed by SIGKILL or the OOM killer and go on drawing
# clients to a dead server; this fails closed (no answer, no route).
set -uo pipefail
url=${1:?HEALTH_URL}
sock=${2:?BIRD_SOCKET}
interval=${3:-0.2}
command -v curl >/dev/null || { echo "announce.sh: needs curl" >&2; exit 1; }
command -v birdc >/dev/null || { echo "announce.sh: needs birdc (bird2)" >&2; exit 1; }
state=unknown
set_state() { # up|down
	[ "$1" = "$state" ] && return
	if [ "$1" = up ]; then what=enable; else what=disable; fi
	if birdc -s "$sock" "$what" service >/dev/null 2>&1; then
		echo "announce.sh: $(date +%T.%3N) sluice $1: service route ${what}d"
		state=$1
	fi
}
trap 'set_state down; exit 0' TERM INT
while :; do
	code=$(curl -s -o /dev/null -m "$interval" -w '%{http_code}' "$url" 2>/dev/null)
	if [ "$code" = 200 ]; then set_state up; else set_state down; fi
	sleep "$interval"
done
