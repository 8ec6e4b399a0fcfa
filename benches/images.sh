#!/usr/bin/env bash
# Benchmark (not a test) of the image store, on a Debian-sized image (~75 MiB of files: the
# payload plus shared libraries from /usr/lib/x86_64-linux-gnu; the size matters, not the
# realism):
#   - `minibox load` of it as a `docker save` archive: time, and the data root's disk use;
#   - `minibox pull` of it from a local registry (docker-registry, pushed there gzip-compressed
#     by skopeo): time, and disk use;
#   - the start-up time of a container made from the image (an overlay of its layer) against
#     one from a plain directory holding the same files (hyperfine, one run of each).
#
#   benches/images.sh [--runs N] [--mib M]
#
# Needs root, hyperfine, docker-registry and skopeo (Debian packages), and the release build
# (cargo build --release; ./rootfs-examples/build.sh). Runnable from any directory; nothing is
# left behind: every store, registry and rootfs lives in a temp dir removed at the end.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in
    /*) ;;
    *) target_dir=$repo/$target_dir ;;
esac
MINIBOX=$target_dir/release/minibox
PAYLOAD=$target_dir/x86_64-unknown-linux-gnu/release/payload
runs=20
mib=75
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        *) echo "usage: ${0##*/} [--runs N] [--mib M]" >&2; exit 2 ;;
    esac
done
for tool in hyperfine skopeo /usr/bin/docker-registry; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done
[ -x "$MINIBOX" ] || { echo "error: $MINIBOX is missing: cargo build --release" >&2; exit 1; }
[ -x "$PAYLOAD" ] || { echo "error: $PAYLOAD is missing: ./rootfs-examples/build.sh" >&2; exit 1; }

work=$(mktemp -d /var/tmp/minibox-bench-images.XXXXXX)
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
export MINIBOX_ROOT=$work/state

# The rootfs: the payload, passwd/group, and ~$mib MiB of libraries.
rootfs=$work/rootfs
mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
cp "$PAYLOAD" "$rootfs/payload"
printf 'root:x:0:0::/root:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
find /usr/lib/x86_64-linux-gnu -type f -links 1 -printf '%s %P\n' | sort -k2 >"$work/all"
awk -v max=$((mib << 20)) '{ if (s + $1 > max) next; s += $1; print $2 }' "$work/all" >"$work/files"
mkdir -p "$rootfs/usr/lib/x86_64-linux-gnu"
tar -C /usr/lib/x86_64-linux-gnu -cf - -T "$work/files" | tar -C "$rootfs/usr/lib/x86_64-linux-gnu" -xf -

# A `docker save` archive of it: one uncompressed layer, its config, manifest.json.
img=$work/img
mkdir -p "$img"
tar -C "$rootfs" --numeric-owner -cf "$img/layer.tar" .
diff_id=sha256:$(sha256sum "$img/layer.tar" | cut -d' ' -f1)
printf '{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Entrypoint":["/payload"],"Cmd":["exit","0"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$diff_id" >"$img/config.json"
cfg=$(sha256sum "$img/config.json" | cut -d' ' -f1)
mv "$img/config.json" "$img/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["bench:1"],"Layers":["layer.tar"]}]' "$cfg" >"$img/manifest.json"
tar -C "$img" -cf "$work/bench.tar" manifest.json "$cfg.json" layer.tar
echo "image: $(du -sm "$rootfs" | cut -f1) MiB of files, archive $(du -sm "$work/bench.tar" | cut -f1) MiB"

seconds() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null
    e=$(date +%s%N)
    printf '%d.%03d' $(((e - s) / 1000000000)) $(((e - s) / 1000000 % 1000))
}

echo "== load"
export MINIBOX_DATA_ROOT=$work/data-load
sync
echo "load: $(seconds "$MINIBOX" load -i "$work/bench.tar") s, data root $(du -sm "$MINIBOX_DATA_ROOT" | cut -f1) MiB"

echo "== pull (local registry, gzip layer)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
/usr/bin/docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
skopeo copy --quiet --dest-tls-verify=false --dest-compress "docker-archive:$work/bench.tar" \
    "docker://127.0.0.1:$port/bench:1"
echo "registry holds $(du -sm "$work/registry" | cut -f1) MiB"
export MINIBOX_DATA_ROOT=$work/data-pull
echo "pull: $(seconds "$MINIBOX" pull --insecure "127.0.0.1:$port/bench:1") s, data root $(du -sm "$MINIBOX_DATA_ROOT" | cut -f1) MiB"

echo "== start-up: image (overlay of its layer) vs plain directory (overlay of ROOTFS)"
export MINIBOX_DATA_ROOT=$work/data-load
hyperfine -N --warmup 3 --runs "$runs" \
    -n image "$MINIBOX run --rm bench:1" \
    -n directory "$MINIBOX run --rm $rootfs /payload exit 0"
