#!/usr/bin/env bash
# Benchmark (not a test): Kubernetes' CRI through containerd 1.6, pod + container
# start-to-running latency (RunPodSandbox, CreateContainer, StartContainer until
# ContainerStatus says RUNNING), with minibox and with runc as the runtime handler, alternated
# (minibox, runc, minibox, runc), N runs each. It reuses tests/cri.rs's throwaway containerd
# (its namespace, config and images) through MINIBOX_CRI_BENCH.
#
#   benches/cri.sh [--runs N]        (default N=20)
#
# Needs root and what tests/cri.rs needs (containerd, containernetworking-plugins, the venv of
# tests/run-all.sh). Uses the release build of minibox.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
runs=20
[ "${1:-}" = --runs ] && runs=$2
cd "$repo"
cargo build --release -q
./rootfs-examples/build.sh >/dev/null
results=$(mktemp)
trap 'rm -f "$results"' EXIT
MINIBOX_BIN=$target_dir/release/minibox MINIBOX_CRI_BENCH=$runs \
    cargo test -q --test cri -- --nocapture 2>&1 | grep '^cri bench:' >"$results"
python3 - "$results" <<'PY'
import json, sys
print(f"{'handler':10} {'median ms':>10} {'min ms':>8}")
for line in open(sys.argv[1]):
    r = json.loads(line.split(":", 1)[1])
    print(f"{r['handler']:10} {r['median_ms']:10.1f} {r['min_ms']:8.1f}")
PY
