#!/usr/bin/env bash
# Installs the system packages sluice's demo, tests and benchmarks use, when missing.
# Quick when everything is there; needs root (apt-get) otherwise.
#   clang, llvm, libbpf-dev  rebuild and check the XDP object (ebpf/build.sh)
#   iproute2                 network namespaces and veth pairs
#   iputils-ping             the "ping still works while attached" test
#   util-linux               setpriv, for the "no privileges" test
#   knot                     Knot DNS, the server our answers are compared with
#   knot-dnsutils, dnsutils  kdig and dig, DNS clients of the end-to-end tests
#   dnsperf                  the DNS load generator of the end-to-end tests
#   ethtool                  NIC/veth settings of the benchmarks
#   python3-yaml             the syntax check of deploy/kubernetes/*.yaml
#   prometheus               promtool and a Prometheus server for the metrics tests
#   bird2, curl              BGP on the fleet demo's router and hosts, its health checks
#   unbound                  the resolver of the UDP-beside-TCP test
set -euo pipefail
need=()
command -v clang >/dev/null || need+=(clang llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v setpriv >/dev/null || need+=(util-linux)
command -v knotd >/dev/null || need+=(knot)
command -v kdig >/dev/null || need+=(knot-dnsutils)
command -v dig >/dev/null || need+=(dnsutils)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v ethtool >/dev/null || need+=(ethtool)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
command -v promtool >/dev/null || need+=(prometheus)
command -v bird >/dev/null || need+=(bird2)
command -v curl >/dev/null || need+=(curl)
command -v unbound >/dev/null || need+=(unbound)
if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${need[*]} (run as root, or install them)" >&2
		exit 1
	fi
	echo "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
	echo "cargo is missing: install the Rust toolchain (rustup)" >&2
	exit 1
fi
