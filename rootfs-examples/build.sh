#!/usr/bin/env bash
# Builds the programs that run inside minibox containers, as static binaries:
#   - hello:   Hello World HTTP server, installed as rootfs-examples/hello/rootfs/main
#   - payload: test payload, left at target/x86_64-unknown-linux-gnu/release/payload
# and completes the hello root filesystem (empty mount points, CA bundle).
# Runnable from any directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target=x86_64-unknown-linux-gnu
# Respect CARGO_TARGET_DIR (relative values are relative to the repo, where
# cargo runs); default to the repo's target/.
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$repo/$target_dir" ;;
esac
release="$target_dir/$target/release"
rootfs="$here/hello/rootfs"

# crt-static links glibc statically, relocation-model=static makes a plain (not
# position-independent) executable: nothing to relocate at start. The explicit --target
# matters: with it, RUSTFLAGS apply only to target code, not to proc-macro crates (which must
# stay dynamic libraries). The same flags as tests/static-build.sh's static minibox, so that
# one build of the shared crates serves both.
echo "==> building hello and payload (static, $target)"
(
    cd "$repo"
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --release --target "$target" -p hello -p payload
)

# Check that both binaries really are static: no program interpreter (dynamic loader) and
# no needed shared libraries. readelf comes with binutils, which gcc brings.
for bin in hello payload; do
    path="$release/$bin"
    headers="$(readelf -ld "$path")"
    if grep -qE 'INTERP|\(NEEDED\)' <<<"$headers"; then
        echo "error: $path is not statically linked:" >&2
        grep -E 'INTERP|interpreter|\(NEEDED\)' <<<"$headers" >&2
        exit 1
    fi
    echo "    $bin: static"
done

echo "==> assembling $rootfs"
install -m 0755 "$release/hello" "$rootfs/main"
# Mount points; git does not keep empty directories.
mkdir -p "$rootfs/proc" "$rootfs/dev" "$rootfs/sys" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
# Like the scratch image it imitates, ship the host's CA certificates.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [[ -f "$ca_bundle" ]]; then
    install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
else
    echo "    note: $ca_bundle not found, rootfs has no CA bundle"
fi

echo "==> done"
echo "    hello rootfs: $rootfs (entry point /main)"
echo "    payload:      $release/payload"
