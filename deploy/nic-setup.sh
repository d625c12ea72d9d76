#!/usr/bin/env bash
# Prepares a real NIC for sluice: one worker per queue, each queue's interrupt on the
# core its worker is pinned to, and no offloads that AF_XDP cannot see through.
#
#   deploy/nic-setup.sh IFACE QUEUES [FIRST_CORE]
#
# - sets the combined channel count to QUEUES (one AF_XDP socket and worker per queue);
# - turns off GRO/LRO (XDP needs linear frames; LRO also merges segments behind TCP's back);
# - pins the IRQ of queue i to core FIRST_CORE+i, so a queue's interrupts, its NAPI work
#   and its worker share a core;
# - stops irqbalance from moving them again;
# - sets napi_defer_hard_irqs=2 and gro_flush_timeout=200us, so that with
#   `sluice serve --napi-busy-poll USECS` the workers drive their queues' NAPI from
#   their own loops (preferred busy polling) and interrupts stay off while they do.
# Run as root. It prints what it changes; nothing else on the host is touched.
set -euo pipefail
iface=${1:?usage: $0 IFACE QUEUES [FIRST_CORE]}
queues=${2:?usage: $0 IFACE QUEUES [FIRST_CORE]}
first=${3:-0}
[ -e "/sys/class/net/$iface" ] || { echo "no interface $iface" >&2; exit 1; }
command -v ethtool >/dev/null || { echo "ethtool is missing (apt-get install ethtool)" >&2; exit 1; }

echo "channels: $(ethtool -l "$iface" | awk '/Current/{f=1} f&&/Combined/{print $2; exit}') -> $queues combined"
ethtool -L "$iface" combined "$queues"
ethtool -K "$iface" gro off lro off 2>/dev/null || true
echo "offloads: gro off, lro off"

if systemctl is-active --quiet irqbalance 2>/dev/null; then
	systemctl stop irqbalance
	echo "irqbalance stopped (it would move the IRQs again)"
fi
i=0
for irq in $(grep -E "$iface[-_](TxRx|rx|combined|comp)?[-_]?[0-9]+" /proc/interrupts | cut -d: -f1 | tr -d ' '); do
	[ "$i" -lt "$queues" ] || break
	core=$((first + i))
	echo "$core" >"/proc/irq/$irq/smp_affinity_list"
	echo "irq $irq (queue $i) -> core $core"
	i=$((i + 1))
done
[ "$i" -gt 0 ] || echo "warning: found no per-queue IRQs for $iface in /proc/interrupts; pin them by hand"
echo 2 >"/sys/class/net/$iface/napi_defer_hard_irqs"
echo 200000 >"/sys/class/net/$iface/gro_flush_timeout"
echo "napi_defer_hard_irqs 2, gro_flush_timeout 200000 ns (for --napi-busy-poll)"
echo "next: run one sluice worker per queue, pinned to cores $first-$((first + queues - 1))"
