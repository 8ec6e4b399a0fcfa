#!/usr/bin/env bash
# Runs one of minibox's cgroup suites inside a VM (see README.md here): tests/cgroup_v2.rs in a
# pure cgroup v2 VM (the default), or tests/cgroup_v1.rs in a VM that mounts cgroup v1
# hierarchies. Builds minibox, the payload and the test binary statically, then boots the VM
# with them and runs the tests, one at a time.
#
#   tests/vm/cgroup-tests.sh [v1|v2] [TEST-BINARY-ARGS...]
#
# Extra arguments go to the test binary (e.g. a test name filter).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
suite=v2
if [[ ${1:-} == v1 || ${1:-} == v2 ]]; then
    suite=$1
    shift
fi
target=x86_64-unknown-linux-gnu
release="${CARGO_TARGET_DIR:-$repo/target}/$target/release"
# The static build of tests/static-build.sh (same flags: one build serves both): no dynamic
# loader, nothing relocated at start.
export RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static"
# A static minibox must link libseccomp.a (from libseccomp-dev): linked against libseccomp.so it
# still builds, then crashes at start (build.rs refuses that). The libseccomp-sys build script
# reads these two.
export LIBSECCOMP_LINK_TYPE=static
LIBSECCOMP_LIB_PATH=$(pkg-config --variable=libdir libseccomp) || {
    echo "cgroup-tests.sh: libseccomp not found: apt-get install libseccomp-dev pkg-config" >&2
    exit 1
}
export LIBSECCOMP_LIB_PATH

cargo build --quiet --release --target "$target" -p minibox -p payload
if readelf -ld "$release/minibox" | grep -qE 'INTERP|\(NEEDED\)'; then
    echo "cgroup-tests.sh: $release/minibox is not statically linked" >&2
    exit 1
fi
# The test binary's path is only known from cargo's JSON messages.
test_bin=$(cargo test --quiet --release --target "$target" --test "cgroup_$suite" --no-run \
    --message-format=json | grep -o "\"executable\":\"[^\"]*cgroup_$suite[^\"]*\"" | tail -n 1 |
    cut -d'"' -f4)
[[ -x "$test_bin" ]] || {
    echo "cgroup-tests.sh: could not build the cgroup_$suite test binary" >&2
    exit 1
}

# Each container's root is an overlay (its own writable layer over ROOTFS): the VM's kernel
# loads the module. The device cgroup tests attack with a block device the VM opens (it has no
# disk): loop's. A kernel of one's own (MINIBOX_VM_KERNEL) must have both built in.
modules=(--module overlay --module loop)
[[ -z ${MINIBOX_VM_KERNEL:-} ]] || modules=()

exec "$repo/tests/vm/run-in-vm.sh" --cgroup "$suite" --mem 1024 --timeout 1200 "${modules[@]}" \
    --add "$release/minibox:/bin/minibox" \
    --add "$release/payload:/opt/payload" \
    --add "$test_bin:/opt/cgroup_$suite" \
    -- env MINIBOX_BIN=/bin/minibox MINIBOX_PAYLOAD=/opt/payload RUST_BACKTRACE=0 \
    "/opt/cgroup_$suite" --test-threads=1 "$@"
