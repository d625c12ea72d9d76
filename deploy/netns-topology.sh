#!/usr/bin/env bash
# The demo's topology, by hand: two network namespaces joined by a veth pair, for
# trying sluice (or a peer such as Knot DNS) interactively. The demo, the tests and the
# benchmarks build the same thing themselves (userspace/netns) with unique names.
#
#   deploy/netns-topology.sh up   [QUEUES]   create sl-srv (198.18.0.1) and sl-peer (198.18.0.2)
#   deploy/netns-topology.sh down            remove them
#
# 198.18.0.0/15 is reserved for benchmarking (RFC 2544) and exists only in these
# namespaces. Needs root and iproute2.
set -euo pipefail
SRV=sl-srv PEER=sl-peer SIF=slsrv0 PIF=slpeer0
case "${1:-}" in
up)
	q=${2:-1}
	ip netns add "$SRV"
	ip netns add "$PEER"
	ip link add "$SIF" numtxqueues "$q" numrxqueues "$q" netns "$SRV" type veth \
		peer name "$PIF" numtxqueues "$q" numrxqueues "$q" netns "$PEER"
	ip -n "$SRV" addr add 198.18.0.1/24 dev "$SIF"
	ip -n "$PEER" addr add 198.18.0.2/24 dev "$PIF"
	for ns in "$SRV" "$PEER"; do ip -n "$ns" link set lo up; done
	# A queue in front of each veth end, as a NIC has its TX ring: veth then stops the
	# queue when its peer's ring is full and senders wait, instead of dropping the frame
	# (veth's default, noqueue), which costs bursts retransmission timeouts. (Linux 6.16
	# and later, towards a peer that receives in NAPI: a native XDP program attached, or
	# GRO on with TSO off at the sender.)
	for end in "$SRV $SIF" "$PEER $PIF"; do
		read -r ns dev <<<"$end"
		if [ "$q" -le 1 ]; then
			ip netns exec "$ns" tc qdisc replace dev "$dev" root pfifo limit 1000
		else
			ip netns exec "$ns" tc qdisc replace dev "$dev" root handle 1: mq
			for i in $(seq 1 "$q"); do
				ip netns exec "$ns" tc qdisc replace dev "$dev" parent "1:$(printf %x "$i")" pfifo limit 1000
			done
		fi
	done
	ip -n "$SRV" link set "$SIF" up
	ip -n "$PEER" link set "$PIF" up
	# veth sends CHECKSUM_PARTIAL frames unless told otherwise; AF_XDP sees them raw.
	if command -v ethtool >/dev/null; then ip netns exec "$PEER" ethtool -K "$PIF" tx off >/dev/null; fi
	echo "up: netns $SRV ($SIF 198.18.0.1) <-> netns $PEER ($PIF 198.18.0.2), $q queue(s)"
	echo "try: ip netns exec $SRV <server>   and   ip netns exec $PEER <client>"
	;;
down)
	ip netns del "$SRV" 2>/dev/null || true
	ip netns del "$PEER" 2>/dev/null || true
	echo down
	;;
*)
	echo "usage: $0 up [QUEUES] | down" >&2
	exit 2
	;;
esac
