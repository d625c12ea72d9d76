#!/usr/bin/env bash
# Builds the BPF objects reproducibly, or checks that the committed ones are what their
# sources build to. The flags are the contract: the same clang (Debian 12's clang 14) on
# any checkout path gives identical bytes, thanks to -fdebug-prefix-map.
#
#   ebpf/build.sh                 rebuild every ebpf/*.o in place
#   ebpf/build.sh --check         fail if a committed ebpf/*.o differs from a fresh build
#   ebpf/build.sh --out NAME F    build ebpf/NAME.c into F (used by build.rs)
#
# Objects: sluice_xdp.o, the steering program; impair.o, the tests' packet-loss classifier.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
names=(sluice_xdp impair)

build() {
	local name=$1 out=$2
	(cd "$here" && clang -O2 -g -target bpf -Wall -Werror \
		-I"/usr/include/$(cc -print-multiarch)" \
		-fdebug-prefix-map="$here"=. \
		-c "$name.c" -o "$out")
}

case "${1:-}" in
--check)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	for n in "${names[@]}"; do
		build "$n" "$tmp/$n.o"
		if ! cmp -s "$tmp/$n.o" "$here/$n.o"; then
			echo "ebpf/$n.o is stale: run ebpf/build.sh and commit the object" >&2
			exit 1
		fi
	done
	echo "ebpf/*.o match their sources ($(clang --version | head -1))"
	;;
--out)
	build "$2" "$3"
	;;
"")
	for n in "${names[@]}"; do
		build "$n" "$here/$n.o"
		echo "built ebpf/$n.o"
	done
	;;
*)
	echo "usage: $0 [--check | --out NAME FILE]" >&2
	exit 2
	;;
esac
