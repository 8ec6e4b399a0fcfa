#!/usr/bin/env bash
# Benchmark (not a test) of minibox's networking, run entirely inside a throwaway network +
# mount namespace that plays the host (nothing of the real host's interfaces, routes or
# firewall is touched; minibox's state and data roots are a tmpfs there).
#
#   benches/network.sh [--duration SECS] [--runs N]
#
# - HTTP throughput and latency of the hello server (rootfs-examples/hello, keep-alive, wrk
#   -t2 -c64): direct on the (namespace) host, in a container with --network host, published
#   with -p on a bridge network (kernel DNAT), and with -p on `private` (the userland relay).
#   The bridge and private cases are measured through the host's non-loopback address
#   (10.88.0.1) for the bridge — what DNAT serves — and through 127.0.0.1 for private.
# - Start-up cost of a container on a bridge network vs `private` (hyperfine).
#
# Needs root, wrk and hyperfine (apt-get install wrk hyperfine). Build first:
#   cargo build --release && ./rootfs-examples/build.sh
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
MINIBOX=${MINIBOX:-$target_dir/release/minibox}
PAYLOAD=$target_dir/x86_64-unknown-linux-gnu/release/payload
HELLO=$repo/rootfs-examples/hello/rootfs
DURATION=10
RUNS=30
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        *) echo "usage: $0 [--duration SECS] [--runs N]" >&2; exit 2 ;;
    esac
done
for tool in wrk hyperfine nft unshare; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$MINIBOX" ] && [ -x "$HELLO/main" ] && [ -x "$PAYLOAD" ] || {
    echo "$0: build first: cargo build --release && ./rootfs-examples/build.sh" >&2; exit 1; }

if [ "${MINIBOX_BENCH_INSIDE:-}" != 1 ]; then
    # Re-run this script inside a new network and mount namespace: the "host" of the bench.
    exec env MINIBOX_BENCH_INSIDE=1 unshare --net --mount --propagation private "$0" "${args[@]}"
fi

work=$(mktemp -d /tmp/minibox-netbench-XXXXXX)
mount -t tmpfs tmpfs "$work"
export MINIBOX_ROOT=$work/run MINIBOX_DATA_ROOT=$work/data
ip link set lo up
rootfs=$work/rootfs
mkdir -p "$rootfs"/{etc,proc,dev,sys,tmp}
cp "$PAYLOAD" "$rootfs/payload"
printf 'nobody:x:65534:65534::/:/x\n' >"$rootfs/etc/passwd"
printf 'nogroup:x:65534:\n' >"$rootfs/etc/group"

cleanup() {
    for c in $("$MINIBOX" ps -aq 2>/dev/null); do "$MINIBOX" rm -f "$c" >/dev/null 2>&1 || true; done
    umount -l "$work" 2>/dev/null || true
    rmdir "$work" 2>/dev/null || true
}
trap cleanup EXIT

wait_http() {
    for _ in $(seq 100); do
        "$PAYLOAD" connect "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$0: nothing answers on $1" >&2
    exit 1
}

bench() { # NAME URL
    local out rps p50 p99
    out=$(wrk -t2 -c64 -d"${DURATION}s" --latency "$2")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%-34s %12s req/s   p50 %-9s p99 %s\n' "$1" "$rps" "$p50" "$p99"
}

echo "== HTTP (wrk -t2 -c64 -d${DURATION}s, keep-alive), hello server"
PORT=8081 "$HELLO/main" >/dev/null 2>&1 &
direct=$!
wait_http 127.0.0.1:8081
bench "direct on the host" http://127.0.0.1:8081/
kill "$direct"

"$MINIBOX" run -d --name h-host --network host -e PORT=8082 "$HELLO" /main >/dev/null
wait_http 127.0.0.1:8082
bench "--network host" http://127.0.0.1:8082/

"$MINIBOX" run -d --name h-bridge --network bridge -p 8083:8080 "$HELLO" /main >/dev/null
wait_http 10.88.0.1:8083
bench "-p on bridge (DNAT, via 10.88.0.1)" http://10.88.0.1:8083/
bench "-p on bridge (loopback: relay)" http://127.0.0.1:8083/

"$MINIBOX" run -d --name h-private -p 127.0.0.1:8084:8080 "$HELLO" /main >/dev/null
wait_http 127.0.0.1:8084
bench "-p on private (relay)" http://127.0.0.1:8084/

for c in h-host h-bridge h-private; do "$MINIBOX" rm -f "$c" >/dev/null; done

echo
echo "== start-up: a container on the bridge network vs private (hyperfine, $RUNS runs)"
hyperfine -N --warmup 3 --runs "$RUNS" \
    "$MINIBOX run --rm $rootfs /payload exit 0" \
    "$MINIBOX run --rm --network bridge $rootfs /payload exit 0"
