#!/usr/bin/env bash
# The test command named in the README: every test of the workspace, including the
# end-to-end ones that build network namespaces and attach XDP programs (as root; they
# skip with a message otherwise, and fail instead under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
ebpf/build.sh --check
# The Kubernetes manifests are YAML a kubectl would accept (their sluice.toml and zone
# are checked by the sluice crate's tests).
python3 - deploy/kubernetes/*.yaml <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    assert docs, f"{path}: empty"
    for d in docs:
        assert isinstance(d, dict) and ("kind" in d or path.endswith("kustomization.yaml")), f"{path}: not a Kubernetes object"
PY
# The DNS end-to-end tests run the `sluice` binary itself: cargo test builds a package's
# binaries only for that package's own integration tests, so build them first.
cargo build --workspace --bins
cargo test --workspace --all-targets "$@"
