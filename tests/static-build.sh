#!/usr/bin/env bash
# Builds minibox (and the payload) as static executables and checks the result on this host:
# glibc's static C library and libseccomp.a, not position-independent (no dynamic loader, no
# shared library, nothing to relocate at start: the fewest page faults a start can take), then
# `minibox --version` and a container run from it. tests/run-all.sh runs it; the cgroup VM
# suites (tests/vm/cgroup-tests.sh) and benches/startup.sh use the same build.
#
#   tests/static-build.sh        (its last line: the static minibox's path)
#
# A +crt-static build linked against libseccomp.so builds but dies at start (SIGSEGV): build.rs
# refuses it; LIBSECCOMP_LINK_TYPE=static below is what makes it right.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
release="$target_dir/$target/release"
export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
export LIBSECCOMP_LINK_TYPE=static
LIBSECCOMP_LIB_PATH=$(pkg-config --variable=libdir libseccomp) || {
    echo "static-build.sh: libseccomp not found: apt-get install libseccomp-dev pkg-config" >&2
    exit 1
}
export LIBSECCOMP_LIB_PATH
cargo build --quiet --release --target "$target" -p minibox -p payload
bin=$release/minibox
fail() { echo "static-build.sh: $*" >&2; exit 1; }
if readelf -ld "$bin" | grep -qE 'INTERP|\(NEEDED\)'; then
    fail "$bin is not statically linked"
fi
readelf -h "$bin" | grep -q 'Type: *EXEC' || fail "$bin is position-independent (want a plain EXEC)"
version=$("$bin" --version) || fail "$bin --version failed"
[[ $version == "minibox "* ]] || fail "$bin --version printed: $version"
if [[ $(id -u) == 0 ]]; then
    work=$(mktemp -d /tmp/minibox-static-XXXXXX)
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"
    mkdir -p "$work/rootfs"/{proc,sys,dev,tmp,etc}
    cp "$release/payload" "$work/rootfs/payload"
    echo 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$work/rootfs/etc/passwd"
    echo 'nogroup:x:65534:' >"$work/rootfs/etc/group"
    out=$("$bin" --root "$work/state" --data-root "$work/data" run --rm --name static-build-smoke \
        "$work/rootfs" /payload id) || fail "a container run from $bin failed: $out"
    [[ $out == "uid=65534 "* ]] || fail "the static minibox's container printed: $out"
fi
echo "$bin"
