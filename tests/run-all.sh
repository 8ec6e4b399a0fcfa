#!/usr/bin/env bash
# The whole test suite. Builds as you; the tests that need root run under sudo when you are
# not root (CI is root). The cgroup v2 tests (tests/cgroup_v2.rs, all named v2_*) run natively
# on a pure cgroup v2 host, and in a VM (tests/vm/) on a v1 or hybrid host like our CI machine.
set -euo pipefail
cd "$(dirname "$0")/.."

./rootfs-examples/build.sh

if [ "$(id -u)" != 0 ]; then
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
fi

has_v2_controllers() {
    local have
    have=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || true)
    for c in memory cpu pids; do
        grep -qw "$c" <<<"$have" || return 1
    done
}

if has_v2_controllers; then
    echo "== all tests, natively (this host has cgroup v2 controllers)"
    cargo test --workspace -- --test-threads=1
else
    echo "== tests on this host (no cgroup v2 controllers here: the v2_* tests run in the VM)"
    cargo test --workspace -- --skip v2_
    echo "== cgroup v2 tests, in a VM"
    ./tests/vm/cgroup-tests.sh
fi
