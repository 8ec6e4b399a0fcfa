#!/usr/bin/env bash
# The whole test suite. Builds as you; the tests that need root run under sudo when you are
# not root (CI is root). The cgroup suites need a given kind of host: tests/cgroup_v2.rs (all
# named v2_*) a pure cgroup v2 host, tests/cgroup_v1.rs (all named v1_*) one whose controllers
# are mounted as cgroup v1 hierarchies (legacy or hybrid, like our CI machine). Each runs
# natively where it can and in a VM (tests/vm/) otherwise, and one test at a time, since they
# check that no group is left. (So no other test's name may contain "v1_" or "v2_".)
set -euo pipefail
cd "$(dirname "$0")/.."

# What minibox links and what the tests drive, from Debian's packages (installed when missing):
# libseccomp (the seccomp compiler), nftables/iproute2/util-linux (bridge networks, throwaway
# network namespaces), podman/containerd/docker.io (engines driving minibox), skopeo/docker-registry
# (a local registry to pull from), containernetworking-plugins + python3-venv (tests/cri.rs: CNI
# for pods, and a venv for the CRI client's stubs from PyPI), chromium (show's and ui's pages, in
# a real browser), busybox-static (tests/images_made.rs: the shell of the images it builds).
packages=(libseccomp-dev pkg-config nftables iproute2 util-linux podman containerd docker.io skopeo
    docker-registry containernetworking-plugins python3-venv chromium busybox-static)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "== installing ${missing[*]}"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

./rootfs-examples/build.sh
# The static minibox (glibc's static libc, libseccomp.a, not PIE): built, checked, and run on
# this host; the cgroup VM suites below boot it.
echo "== static build (tests/static-build.sh)"
./tests/static-build.sh

# tests/cri.rs talks CRI v1 gRPC from Python, with PyPI's stubs, in a venv of its own.
target_dir=${CARGO_TARGET_DIR:-target}
if ! "$target_dir/cri-venv/bin/python3" -c 'import grpc, cri_api.v1' 2>/dev/null; then
    echo "== making $target_dir/cri-venv (container-runtime-interface-api, grpcio from PyPI)"
    /usr/bin/python3 -m venv "$target_dir/cri-venv"
    "$target_dir/cri-venv/bin/pip" install -q container-runtime-interface-api grpcio
fi
export MINIBOX_CRI_PYTHON=$(cd "$target_dir" && pwd)/cri-venv/bin/python3

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

# A cgroup v1 mount (type "cgroup", not "cgroup2") whose options name each controller.
has_v1_controllers() {
    for c in memory cpu cpuacct pids; do
        grep -Eq " - cgroup [^ ]+ ([^ ]*,)?$c(,[^ ]*)?\$" /proc/self/mountinfo || return 1
    done
}

# The engines' suites (tests/docker.rs, tests/cri.rs) spend most of their minutes waiting on
# dockerd and containerd in namespaces of their own: each runs beside the rest, and its output
# is shown (and its failure fails the run) at the end.
cargo test --workspace --no-run -q
declare -A engines=()
for suite in docker cri; do
    log=$(mktemp "/tmp/minibox-$suite-XXXXXX.log")
    cargo test -q --test "$suite" >"$log" 2>&1 &
    engines[$suite]="$! $log"
done
echo "== the engines' suites (docker, cri) run beside the rest; their output comes at the end"
engines_done() {
    local failed=0 suite pid log rc
    for suite in "${!engines[@]}"; do
        read -r pid log <<<"${engines[$suite]}"
        rc=0
        wait "$pid" || rc=$?
        echo "== tests/$suite.rs (beside the rest): exit $rc"
        cat "$log"
        rm -f "$log"
        ((rc == 0)) || failed=1
    done
    engines=()
    return "$failed"
}
# (A failure elsewhere still waits for them: they clean up what they started.)
trap 'engines_done >&2 || true' EXIT

echo "== tests on this host, except the cgroup suites and the engines'"
cargo test --workspace -- --skip v1_ --skip v2_ --skip docker_runs_containers_with_minibox \
    --skip kubernetes_cri_runs_pods_with_minibox
if has_v2_controllers; then
    echo "== cgroup v2 tests, natively (this host has cgroup v2 controllers)"
    cargo test --test cgroup_v2 -- --test-threads=1
    echo "== cgroup v1 tests, in a VM with cgroup v1 hierarchies"
    ./tests/vm/cgroup-tests.sh v1
elif has_v1_controllers; then
    echo "== cgroup v1 tests, natively (this host has cgroup v1 hierarchies)"
    cargo test --test cgroup_v1 -- --test-threads=1
    echo "== cgroup v2 tests, in a pure cgroup v2 VM"
    ./tests/vm/cgroup-tests.sh v2
else
    echo "== cgroup v1 and v2 tests, in VMs (this host has neither set of controllers)"
    ./tests/vm/cgroup-tests.sh v1
    ./tests/vm/cgroup-tests.sh v2
fi
engines_done
trap - EXIT
