#!/usr/bin/env bash
# Benchmark (not a test) of what seccomp costs a container, on this host:
#   1. start-up: `minibox run --rm ROOTFS /payload exit 0` with Docker's default filter (its
#      compiled program kept in the state root, as after the first run), with the filter
#      compiled afresh each run (a cold state root), and with --security-opt seccomp=unconfined;
#   2. a syscall-heavy loop inside: `payload getppid-loop N` (N raw getppid calls; default
#      10,000,000), with and without the filter, and run directly on the host.
# See benches/README.md.
#
#   benches/seccomp.sh [--runs N] [--calls N]
#
# Needs root. Nothing is left behind: the rootfs and the state root are temp dirs, and every
# container is run with --rm.
set -euo pipefail

prog=${0##*/}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in
    /*) ;;
    *) target_dir=$repo/$target_dir ;;
esac
PAYLOAD=$target_dir/$target/release/payload
MINIBOX=$target_dir/release/minibox

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 2; }
step() { printf '\n==> %s\n' "$*"; }

runs=50 calls=10000000 loops=5
while (($#)); do
    case $1 in
        --runs)  (($# >= 2)) || die "--runs needs a value"; runs=$2; shift 2 ;;
        --calls) (($# >= 2)) || die "--calls needs a value"; calls=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unexpected argument '$1'" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ && $calls =~ ^[1-9][0-9]*$ ]] || die "--runs and --calls take positive integers"
((EUID == 0)) || die "needs root (minibox run does)"
command -v hyperfine >/dev/null || die "hyperfine is missing: apt-get install hyperfine"

step "building the payload and minibox (release)"
(cd "$repo" && ./rootfs-examples/build.sh >/dev/null && cargo build --release -p minibox)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/minibox-seccomp-bench.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
chmod 755 "$WORK"
ROOTFS=$WORK/rootfs STATE=$WORK/state COLD=$WORK/cold
mkdir -p "$ROOTFS"/{etc,proc,dev,sys}
install -m 0755 "$PAYLOAD" "$ROOTFS/payload"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$ROOTFS/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$ROOTFS/etc/group"

mb="$MINIBOX --root $STATE run --rm"
status=$("$MINIBOX" --root "$STATE" run --rm "$ROOTFS" /payload status)
grep -q '^Seccomp:.2' <<<"$status" || die "the default run is not under a seccomp filter"
# Other work on the machine drifts; hyperfine runs its commands one after the other. So the
# runs are split into $rounds rounds, the commands' order alternating, and each figure is the
# median of its rounds' medians.
rounds=5
per_round=$(((runs + rounds - 1) / rounds))
declare -A medians
for ((r = 1; r <= rounds; r++)); do
    step "start-up, round $r/$rounds: hyperfine -N --warmup 3 --runs $per_round"
    cmds=(-n "default filter" "$mb $ROOTFS /payload exit 0"
        -n "unconfined" "$mb --security-opt seccomp=unconfined $ROOTFS /payload exit 0")
    if ((r % 2 == 0)); then
        cmds=("${cmds[@]:3:3}" "${cmds[@]:0:3}")
    fi
    hyperfine -N --style basic --warmup 3 --runs "$per_round" --export-json "$WORK/round.json" \
        "${cmds[@]}" -n "default filter, compiled each run" --prepare "rm -rf $COLD" \
        "$MINIBOX --root $COLD run --rm $ROOTFS /payload exit 0" | grep -E '^(Benchmark|  Time)'
    while IFS=$'\t' read -r name value; do
        medians[$name]+="$value "
    done < <(awk -F'"' '
        $2 == "command" { name = $4 }
        $2 == "median"  { v = $3; gsub(/[ :,]/, "", v); printf "%s\t%.3f\n", name, v * 1000 }' \
        "$WORK/round.json")
done
mid() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A median
for name in "default filter" "unconfined" "default filter, compiled each run"; do
    median[$name]=$(mid "${medians[$name]}")
    printf '%-36s round medians (ms): %s\n' "$name" "${medians[$name]}"
done

step "getppid-loop $calls, $loops runs each (ns per call, median)"
loop_median() {   # loop_median COMMAND...: the median ns_per_call of $loops runs
    local i out
    for ((i = 0; i < loops; i++)); do
        out=$("$@")
        sed -n 's/.*ns_per_call=\([0-9.]*\).*/\1/p' <<<"$out"
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
host_ns=$(loop_median "$PAYLOAD" getppid-loop "$calls")
filtered_ns=$(loop_median $mb "$ROOTFS" /payload getppid-loop "$calls")
unconfined_ns=$(loop_median $mb --security-opt seccomp=unconfined "$ROOTFS" /payload getppid-loop "$calls")

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a - b) / b * 100 }'; }
step "summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs)"
printf 'start-up, median of %d rounds of %d runs (hyperfine):\n' "$rounds" "$per_round"
printf '  %-36s %8.2f ms\n' "unconfined" "${median[unconfined]}"
printf '  %-36s %8.2f ms  (%s)\n' "default filter (kept program)" "${median[default filter]}" \
    "$(pct "${median[default filter]}" "${median[unconfined]}")"
printf '  %-36s %8.2f ms  (%s)\n' "default filter, compiled each run" \
    "${median[default filter, compiled each run]}" \
    "$(pct "${median[default filter, compiled each run]}" "${median[unconfined]}")"
printf 'getppid, ns per call (median of %d runs of %d calls):\n' "$loops" "$calls"
printf '  %-36s %8.1f ns\n' "host, no container" "$host_ns"
printf '  %-36s %8.1f ns\n' "container, unconfined" "$unconfined_ns"
printf '  %-36s %8.1f ns  (%s)\n' "container, default filter" "$filtered_ns" \
    "$(pct "$filtered_ns" "$unconfined_ns")"
