#!/usr/bin/env bash
# The OCI runtime-tools validation suite (github.com/opencontainers/runtime-tools, its
# validation/*/*.t TAP programs) against minibox and, side by side, runc and crun.
# Not part of CI: CI cannot download the suite, and its code is not ours to carry. Check it out
# yourself, anywhere outside this repository, at the commit we measure against:
#
#   git clone https://github.com/opencontainers/runtime-tools /somewhere/runtime-tools
#   git -C /somewhere/runtime-tools checkout 408c51e
#   RUNTIME_TOOLS=/somewhere/runtime-tools tests/oci-validation/run.sh [NAME=PATH ...]
#
# With no NAME=PATH arguments it runs minibox (this tree's release build), runc and crun (each
# when installed). Needs root and Go >= 1.19 (Debian's golang-go) to build the suite with its
# vendored modules (no network). Each test program runs from the checkout (it reads
# rootfs-amd64.tar.gz and runtimetest from there) with RUNTIME=PATH, one at a time, under a
# timeout. A program passes when it exits 0 and prints no "not ok" line, and either its TAP
# plan or no TAP at all (what node-tap counts; SKIPs are passes): *_fail programs such as
# process_rlimits_fail print nothing when the runtime refuses the bad config, as it must, and
# exit 1 when it does not. Output:
#   $OUT/NAME/TEST.tap           each program's TAP stream and stderr
#   $OUT/results.md              the table: test, one column per runtime; pass counts; wall time
# OUT defaults to a new directory under /tmp; TESTS="a b" limits the run to those programs.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/../.." && pwd)

: "${RUNTIME_TOOLS:?set RUNTIME_TOOLS to a runtime-tools checkout (commit 408c51e)}"
[ "$(id -u)" = 0 ] || { echo "tests/oci-validation/run.sh: needs root" >&2; exit 1; }
rt=$(cd -- "$RUNTIME_TOOLS" && pwd)
per_test_timeout=${PER_TEST_TIMEOUT:-300}

# Build the suite when it is not built yet (offline: its modules are vendored).
if [ ! -x "$rt/runtimetest" ] || ! ls "$rt"/validation/*/*.t >/dev/null 2>&1; then
    command -v go >/dev/null || { echo "run.sh: install Go (apt-get install golang-go)" >&2; exit 1; }
    echo "== building the validation suite in $rt" >&2
    (cd "$rt" && GOFLAGS=-mod=vendor GOPROXY=off make runtimetest validation-executables >/dev/null)
fi

runtimes=("$@")
if ((${#runtimes[@]} == 0)); then
    (cd "$repo" && cargo build --release -q)
    target_dir=${CARGO_TARGET_DIR:-$repo/target}
    runtimes=("minibox=$target_dir/release/minibox")
    for r in runc crun; do
        command -v "$r" >/dev/null && runtimes+=("$r=$(command -v "$r")")
    done
fi

if [ -n "${TESTS:-}" ]; then
    tests=($TESTS)
else
    tests=()
    for t in "$rt"/validation/*/*.t; do tests+=("$(basename "$t" .t)"); done
fi

out=${OUT:-$(mktemp -d /tmp/oci-validation-XXXXXX)}
mkdir -p "$out"
declare -A result passed wall
for spec in "${runtimes[@]}"; do
    name=${spec%%=*} path=${spec#*=}
    mkdir -p "$out/$name"
    passed[$name]=0
    start=$(date +%s%N)
    for t in "${tests[@]}"; do
        log=$out/$name/$t.tap
        set +e
        # In a mount namespace of its own (a runtime that mounts in its caller's namespace, as
        # runc does for a bundle without a mount namespace, leaves nothing on the host), with
        # temp dirs of its own.
        tmp=$(mktemp -d "$out/tmp.XXXXXX")
        # (Traversable: a container's root mapped by a user namespace reaches its bundle.)
        chmod 755 "$out" "$tmp"
        (cd "$rt" && TMPDIR=$tmp RUNTIME=$path timeout "$per_test_timeout" \
            unshare --mount --propagation slave "validation/$t/$t.t") >"$log" 2>&1
        rc=$?
        set -e
        if ((rc == 0)) && ! grep -q '^not ok' "$log" &&
            { grep -q '^1\.\.[0-9]' "$log" || ! grep -q '^TAP version' "$log"; }; then
            result[$name,$t]=pass
            passed[$name]=$((passed[$name] + 1))
        else
            oks=$(grep -c '^ok' "$log" || true) nots=$(grep -c '^not ok' "$log" || true)
            result[$name,$t]="FAIL ($oks ok, $nots not ok, exit $rc)"
        fi
        printf '%-8s %-40s %s\n' "$name" "$t" "${result[$name,$t]}" >&2
        rm -rf "$tmp" 2>/dev/null || echo "run.sh: $tmp could not be removed" >&2
        # The groups the suite names (cgroupsPath /cgrouptest, testdir/cgrouptest), once empty.
        for g in /sys/fs/cgroup/*/testdir/cgrouptest /sys/fs/cgroup/*/testdir \
            /sys/fs/cgroup/*/cgrouptest /sys/fs/cgroup/testdir/cgrouptest /sys/fs/cgroup/testdir \
            /sys/fs/cgroup/cgrouptest; do
            [ -d "$g" ] && rmdir "$g" 2>/dev/null
        done
        true
    done
    wall[$name]=$((($(date +%s%N) - start) / 1000000000))
done

{
    printf '| test |'
    for spec in "${runtimes[@]}"; do printf ' %s |' "${spec%%=*}"; done
    printf '\n|---|'
    for _ in "${runtimes[@]}"; do printf -- '---|'; done
    printf '\n'
    for t in "${tests[@]}"; do
        printf '| %s |' "$t"
        for spec in "${runtimes[@]}"; do printf ' %s |' "${result[${spec%%=*},$t]}"; done
        printf '\n'
    done
    printf '| **passed** (of %d) |' "${#tests[@]}"
    for spec in "${runtimes[@]}"; do printf ' **%s** |' "${passed[${spec%%=*}]}"; done
    printf '\n| wall time |'
    for spec in "${runtimes[@]}"; do printf ' %s s |' "${wall[${spec%%=*}]}"; done
    printf '\n'
} >"$out/results.md"
cat "$out/results.md"
echo "TAP output: $out" >&2
