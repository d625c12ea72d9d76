#!/usr/bin/env bash
# Announces the service while this host's sluice is healthy: polls sluice's /health
# (sluice serve --metrics ADDR:PORT) and enables BIRD's `service` protocol while it
# answers 200, disables it otherwise. Withdrawn at once on a 503 (SIGTERM: sluice keeps
# serving for its --lameduck seconds while the withdrawal spreads) or when sluice is
# gone (connection refused); after MISSES polls in a row without an answer when it
# hangs (one slow answer is not a dead server). The state is written to BIRD again
# every few seconds, so a BIRD that restarted (its `service` disabled again) is set
# right.
#
#   deploy/fleet/announce.sh HEALTH_URL BIRD_SOCKET [INTERVAL_S]
#   deploy/fleet/announce.sh http://127.0.0.1:9153/health /run/bird/bird.ctl 0.2
#
#   ALSO_CHECK="kdig +notcp +time=1 +retry=0 @192.0.2.53 example.test SOA"
#       a command that must succeed too: the UDP server beside sluice (udp.md)
#   TIMEOUT_S=1 MISSES=3   how long a poll waits for an answer; how many may go
#
# Why a health check driving birdc, not sluice adding a route itself: a route sluice
# added would outlive a sluice killed by SIGKILL or the OOM killer and go on drawing
# clients to a dead server; this fails closed (no answer, no route). Run it as a
# service of its own that is always restarted (it withdraws when it starts, until it
# has seen sluice healthy).
set -uo pipefail
url=${1:?HEALTH_URL}
sock=${2:?BIRD_SOCKET}
interval=${3:-0.2}
timeout=${TIMEOUT_S:-1}
misses_allowed=${MISSES:-3}
command -v curl >/dev/null || { echo "announce.sh: needs curl" >&2; exit 1; }
command -v birdc >/dev/null || { echo "announce.sh: needs birdc (bird2)" >&2; exit 1; }
state=unknown
said=0
set_state() { # up|down
	# Written again every 25 polls even when unchanged: BIRD may have restarted.
	if [ "$1" = "$state" ] && [ $((said % 25)) -ne 0 ]; then said=$((said + 1)); return; fi
	if [ "$1" = up ]; then what=enable; else what=disable; fi
	if birdc -s "$sock" "$what" service >/dev/null 2>&1; then
		[ "$1" = "$state" ] || echo "announce.sh: $(date +%T.%3N) sluice $1: service route ${what}d"
		state=$1
		said=1
	fi
}
trap 'set_state down; exit 0' TERM INT
misses=0
while :; do
	code=$(curl -s -o /dev/null -m "$timeout" -w '%{http_code}' "$url" 2>/dev/null)
	how=$? # 0: an answer (code says which); 28: none in time; else refused or worse
	if [ "$code" = 200 ] && { [ -z "${ALSO_CHECK:-}" ] || $ALSO_CHECK >/dev/null 2>&1; }; then
		misses=0
		set_state up
	elif [ "$how" = 28 ] && [ "$state" = up ] && [ $((misses += 1)) -lt "$misses_allowed" ]; then
		# No answer in time: a few of those in a row before calling the server dead.
		:
	else
		set_state down
	fi
	sleep "$interval"
done
