#!/usr/bin/env bash
# One command for a zone change on a host: after the zone files (shared by sluice and
# the kernel UDP server beside it) are edited, with the SOA serial raised, both load
# them and each says whether it did. sluice first: it checks every zone before it
# swaps any in, so a broken file stops here with both servers on the old zones (a
# zone that does not load leaves the old one served and fails the command).
#
#   deploy/fleet/zone-reload.sh [KNOT_SOCKET] [SLUICE_CONTROL]
#       defaults /run/knot/knot.sock and /run/sluice/control.sock; SLUICE=PATH for the
#       sluice binary
set -euo pipefail
knot_sock=${1:-/run/knot/knot.sock}
control=${2:-/run/sluice/control.sock}
sluice=${SLUICE:-sluice}
"$sluice" reload --control "$control"
# -b: wait until the zones are loaded, not only scheduled.
knotc -s "$knot_sock" -b zone-reload
