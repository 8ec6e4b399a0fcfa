#!/usr/bin/env bash
# Benchmark (not a test): `docker run --rm` of a trivial image (the static payload, `payload
# exit 0`, --network none) with `--runtime minibox` vs Docker's runc, side by side in one
# hyperfine run (A B A B...), through Debian's dockerd 20.10.
#
#   benches/docker.sh [--runs N]        (default N=30)
#
# Needs root, docker.io and hyperfine. dockerd runs in a throwaway network+mount namespace
# (unshare --net --mount, tmpfs on /run) with its own data/exec roots and socket under a temp
# dir, no iptables, no bridge, its own cgroup parent; everything goes on exit. Uses the
# release build of minibox (built here).
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
runs=30
[ "${1:-}" = --runs ] && runs=$2
[ "$(id -u)" = 0 ] || { echo "benches/docker.sh: needs root" >&2; exit 1; }
(cd "$repo" && cargo build --release -q && ./rootfs-examples/build.sh >/dev/null)

if [ "${MBX_IN_NAMESPACE:-}" != 1 ]; then
    MBX_IN_NAMESPACE=1 exec unshare --net --mount --fork "$0" --runs "$runs"
fi
mount -t tmpfs tmpfs /run
work=$(mktemp -d /tmp/mbx-dockerbench-XXXXXX)
cleanup() {
    [ -f "$work/docker.pid" ] && kill "$(cat "$work/docker.pid")" 2>/dev/null
    for _ in $(seq 100); do [ -e "$work/docker.pid" ] || break; sleep 0.1; done
    find /sys/fs/cgroup -maxdepth 4 -type d -name "mbxdockerbench-$$" 2>/dev/null |
        while read -r g; do find "$g" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
echo '{}' >"$work/daemon.json"
/usr/sbin/dockerd --config-file "$work/daemon.json" --data-root "$work/data" \
    --exec-root "$work/exec" -H "unix://$work/docker.sock" --pidfile "$work/docker.pid" \
    --iptables=false --ip6tables=false --bridge=none --ip-forward=false --storage-driver vfs \
    --cgroup-parent "mbxdockerbench-$$" --add-runtime "minibox=$target_dir/release/minibox" \
    >"$work/dockerd.log" 2>&1 &
docker=(/usr/bin/docker -H "unix://$work/docker.sock")
for _ in $(seq 150); do "${docker[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
mkdir -p "$work/image/etc" "$work/image/tmp"
cp "$target_dir/x86_64-unknown-linux-gnu/release/payload" "$work/image/payload"
tar -C "$work/image" -c . | "${docker[@]}" import - mbx-bench:latest >/dev/null

run="${docker[*]} run --rm --network none"
hyperfine --warmup 3 --runs "$runs" -N --export-json "$work/result.json" \
    -n minibox "$run --runtime minibox mbx-bench /payload exit 0" \
    -n runc "$run --runtime runc mbx-bench /payload exit 0"
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"{'runtime':10} {'median ms':>10} {'stddev ms':>10} {'min ms':>8} {'max ms':>8}")
for x in r:
    print(f"{x['command']:10} {x['median']*1e3:10.1f} {x['stddev']*1e3:10.1f} {x['min']*1e3:8.1f} {x['max']*1e3:8.1f}")
PY
