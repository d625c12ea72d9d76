#!/usr/bin/env bash
# Builds the XDP object reproducibly, or checks that the committed one is what the source
# builds to. The flags are the contract: the same clang (Debian 12's clang 14) on any
# checkout path gives identical bytes, thanks to -fdebug-prefix-map.
#
#   ebpf/build.sh            rebuild ebpf/sluice_xdp.o in place
#   ebpf/build.sh --check    fail if ebpf/sluice_xdp.o differs from a fresh build
#   ebpf/build.sh --out F    build into F (used by userspace/xsk/build.rs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/sluice_xdp.c"
obj="$here/sluice_xdp.o"

build() {
	local out=$1
	(cd "$here" && clang -O2 -g -target bpf -Wall -Werror \
		-I"/usr/include/$(cc -print-multiarch)" \
		-fdebug-prefix-map="$here"=. \
		-c sluice_xdp.c -o "$out")
}

case "${1:-}" in
--check)
	tmp=$(mktemp)
	trap 'rm -f "$tmp"' EXIT
	build "$tmp"
	if ! cmp -s "$tmp" "$obj"; then
		echo "ebpf/sluice_xdp.o is stale: run ebpf/build.sh and commit the object" >&2
		exit 1
	fi
	echo "ebpf/sluice_xdp.o matches ebpf/sluice_xdp.c ($(clang --version | head -1))"
	;;
--out)
	build "$2"
	;;
"")
	build "$obj"
	echo "built $obj"
	;;
*)
	echo "usage: $0 [--check | --out FILE]" >&2
	exit 2
	;;
esac
