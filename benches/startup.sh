#!/usr/bin/env bash
# Benchmark (not a test) of container start-up cost: how much longer
# `minibox run --rm ROOTFS /payload exit 0` takes than running `payload exit 0`
# directly (the "floor"), with and without cgroup limits, and an OCI bundle
# with and without a device cgroup (docker's rules), on this host (with
# hyperfine) and in a pure cgroup v2 QEMU VM (with `payload bench`).
# See benches/README.md.
#
#   benches/startup.sh [--host-only | --vm-only] [--runs N]
#
# Needs root. Runnable from any directory. Nothing is left behind: the rootfs
# and minibox's state root are temp dirs, and every container is run with --rm.
set -euo pipefail

prog=${0##*/}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target=x86_64-unknown-linux-gnu
# Like rootfs-examples/build.sh: respect CARGO_TARGET_DIR, relative to the repo.
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in
    /*) ;;
    *) target_dir=$repo/$target_dir ;;
esac
PAYLOAD=$target_dir/$target/release/payload
MINIBOX=$target_dir/release/minibox
MINIBOX_STATIC=$target_dir/$target/release/minibox

usage() {
    cat <<EOF
usage: $prog [--host-only | --vm-only] [--runs N]

Measures container start-up cost (median wall time of one short-lived
container) against the floor (the same program run directly):
  host: hyperfine -N --warmup 5 --runs N        (default N=50)
  VM:   payload bench N ... in a pure cgroup v2 QEMU (TCG) VM (default N=30)

  --host-only   only the host half
  --vm-only     only the VM half
  --runs N      runs per command, both halves
EOF
}

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 2; }
step() { printf '\n==> %s\n' "$*"; }

do_host=1 do_vm=1 runs=
while (($#)); do
    case $1 in
        --host-only) do_vm= ; shift ;;
        --vm-only)   do_host= ; shift ;;
        --runs)      (($# >= 2)) || die "--runs needs a value"; runs=$2; shift 2 ;;
        --runs=*)    runs=${1#*=}; shift ;;
        -h|--help)   usage; exit 0 ;;
        *)           usage >&2; die "unexpected argument '$1'" ;;
    esac
done
[[ -n $do_host || -n $do_vm ]] || die "--host-only and --vm-only exclude each other"
if [[ -n $runs ]]; then
    [[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
fi
host_runs=${runs:-50}
vm_runs=${runs:-30}
((EUID == 0)) || die "needs root (minibox run does)"

# ------------------------------------------------------------------- build
# Others may be editing the tree: a failed build is retried after a minute.
build() {   # build DESCRIPTION COMMAND...
    local what=$1 i
    shift
    for ((i = 1; i <= 5; i++)); do
        if (cd "$repo" && "$@"); then
            return 0
        fi
        ((i < 5)) || break
        printf '%s: building %s failed (attempt %d/5), retrying in 60 s\n' "$prog" "$what" "$i" >&2
        sleep 60
    done
    die "cannot build $what"
}

require_static() {   # like rootfs-examples/build.sh
    if readelf -ld "$1" | grep -qE 'INTERP|\(NEEDED\)'; then
        die "$1 is not statically linked"
    fi
}

step "building the payload (rootfs-examples/build.sh)"
build payload "$repo/rootfs-examples/build.sh"
step "building minibox (release)"
build minibox cargo build --release -p minibox
[[ -x $MINIBOX ]] || die "no $MINIBOX after the build"
if [[ -n $do_vm ]]; then
    step "building minibox (release, static, $target) for the VM"
    # libseccomp.a, not libseccomp.so: see tests/vm/cgroup-tests.sh.
    libseccomp_dir=$(pkg-config --variable=libdir libseccomp) ||
        die "libseccomp not found: apt-get install libseccomp-dev pkg-config"
    build "static minibox" env RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$libseccomp_dir" \
        cargo build --release --target "$target" -p minibox
    require_static "$MINIBOX_STATIC"
fi
require_static "$PAYLOAD"

# ------------------------------------------------------------ scratch space
WORK=$(mktemp -d "${TMPDIR:-/tmp}/minibox-bench.XXXXXX")
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$WORK"   # the container runs as nobody

ROOTFS=$WORK/rootfs
STATE=$WORK/state
DATA=$WORK/data     # each container's writable layer (minibox makes it, 0700)
mkdir -p "$ROOTFS"/{etc,proc,dev,sys}   # minibox makes $STATE itself
install -m 0755 "$PAYLOAD" "$ROOTFS/payload"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$ROOTFS/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$ROOTFS/etc/group"

# Two bundles of `minibox spec`'s config for the same rootfs and program: one as it comes (docker's
# device rules: a device cgroup), one without linux.resources.devices (no device cgroup), so the
# pair prices the device cgroup alone. ROOT_IN is where the rootfs is for whoever runs them.
bundles() {   # bundles DIR ROOT_IN
    local dir=$1 root_in=$2
    mkdir -p "$dir/devices" "$dir/nodevices"
    "$MINIBOX" spec "$ROOTFS" /payload exit 0 >"$dir/spec.json" || die "minibox spec failed"
    python3 - "$dir" "$root_in" <<'PY' || die "cannot write the bundles"
import json, sys
d, root = sys.argv[1], sys.argv[2]
c = json.load(open(d + "/spec.json"))
c["root"]["path"] = root
assert c["linux"]["resources"]["devices"], "minibox spec wrote no device rules"
json.dump(c, open(d + "/devices/config.json", "w"))
del c["linux"]["resources"]["devices"]
json.dump(c, open(d + "/nodevices/config.json", "w"))
PY
}

shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
ms() { awk -v v="$1" -v f="$2" 'BEGIN { printf "%.2f", v * f }'; }   # ms VALUE FACTOR
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }

host_floor=- host_plain=- host_limits=- host_note=
host_nodevices=- host_devices=-
vm_floor=- vm_plain=- vm_limits=- vm_note=
vm_nodevices=- vm_devices=-

# -------------------------------------------------------------------- host
run_host() {
    step "host: hyperfine -N --warmup 5 --runs $host_runs"
    if ! command -v hyperfine >/dev/null; then
        echo "installing hyperfine"
        env DEBIAN_FRONTEND=noninteractive apt-get -qq update
        env DEBIAN_FRONTEND=noninteractive apt-get -qq -y --no-install-recommends install hyperfine
    fi
    local mb=("$MINIBOX" --root "$STATE" --data-root "$DATA" run --rm)
    # hyperfine -N splits a command line into words shell-style: quote the paths.
    local q_mb floor_cmd plain_cmd limits_cmd nodevices_cmd devices_cmd
    q_mb="$(shq "$MINIBOX") --root $(shq "$STATE") --data-root $(shq "$DATA") run --rm"
    floor_cmd="$(shq "$PAYLOAD") exit 0"
    plain_cmd="$q_mb $(shq "$ROOTFS") /payload exit 0"
    limits_cmd="$q_mb --memory 64m --cpus 1 $(shq "$ROOTFS") /payload exit 0"
    bundles "$WORK/host-bundles" "$ROOTFS"
    nodevices_cmd="$q_mb --bundle $(shq "$WORK/host-bundles/nodevices") bench"
    devices_cmd="$q_mb --bundle $(shq "$WORK/host-bundles/devices") bench"

    # Sanity checks: hyperfine -N aborts on the first failure, and says little.
    local out
    if ! out=$("${mb[@]}" "$ROOTFS" /payload exit 0 2>&1); then
        printf '%s\n' "$out" >&2
        die "minibox run fails on this host; nothing to measure"
    fi
    local with_limits=1
    if [[ -r /sys/fs/cgroup/cgroup.controllers ]]; then
        echo "cgroup v2 root controllers: $(</sys/fs/cgroup/cgroup.controllers)"
    else
        echo "no cgroup v2 at /sys/fs/cgroup; v1 hierarchies:" \
            "$(awk '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++)
                   if (o[i] ~ /^(memory|cpu|pids)$/) printf "%s ", o[i] }' /proc/mounts)"
    fi
    if ! out=$("${mb[@]}" --memory 64m --cpus 1 "$ROOTFS" /payload exit 0 2>&1); then
        with_limits=
        host_note="minibox run --memory 64m --cpus 1 fails here: $out"
        printf 'NOTE: %s\n      (measuring without limits only)\n' "$host_note"
    fi
    local b
    for b in nodevices devices; do
        out=$("${mb[@]}" --bundle "$WORK/host-bundles/$b" bench 2>&1) ||
            die "minibox run --bundle ($b) fails on this host: $out"
    done

    local json=$WORK/host.json
    local cmds=(-n floor "$floor_cmd" -n minibox "$plain_cmd")
    [[ -z $with_limits ]] || cmds+=(-n minibox+limits "$limits_cmd")
    cmds+=(-n bundle "$nodevices_cmd" -n bundle+devices "$devices_cmd")
    hyperfine -N --warmup 5 --runs "$host_runs" --export-json "$json" "${cmds[@]}"

    # Medians (seconds) by command name, from hyperfine's pretty-printed JSON.
    local name value
    while read -r name value; do
        case $name in
            floor)          host_floor=$(ms "$value" 1000) ;;
            minibox)        host_plain=$(ms "$value" 1000) ;;
            minibox+limits) host_limits=$(ms "$value" 1000) ;;
            bundle)         host_nodevices=$(ms "$value" 1000) ;;
            bundle+devices) host_devices=$(ms "$value" 1000) ;;
        esac
    done < <(awk -F'"' '
        $2 == "command" { name = $4 }
        $2 == "median"  { v = $3; gsub(/[ :,]/, "", v); print name, v }' "$json")
    [[ $host_floor != - && $host_plain != - ]] || die "could not read medians from $json"

    # One directory per container; the root's lock file stays.
    local left
    left=$(find "$STATE" -mindepth 1 -maxdepth 1 -type d | wc -l)
    ((left == 0)) || printf 'NOTE: %d containers left in the state root despite --rm\n' "$left"
}

# ---------------------------------------------------------------------- VM
run_vm() {
    step "VM (pure cgroup v2, QEMU TCG): payload bench $vm_runs, one boot"
    # Runs in the guest's busybox sh, with RUNS and MINIBOX_ROOT set. Each result line is
    # labelled; a container's own output is dropped.
    # shellcheck disable=SC2016
    local guest_script='
set -e
b() { label=$1; shift; out=$(/opt/payload bench "$RUNS" "$@"); echo "BENCH $label $(printf "%s\n" "$out" | tail -n 1)"; }
echo "cgroup v2 root controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
b floor /opt/payload exit 0
b minibox /bin/minibox run --rm /opt/rootfs /payload exit 0
b minibox+limits /bin/minibox run --rm --memory 64m --cpus 1 /opt/rootfs /payload exit 0
b bundle /bin/minibox run --rm --bundle /opt/bundles/nodevices bench
b bundle+devices /bin/minibox run --rm --bundle /opt/bundles/devices bench
echo "containers left in the state root: $(find "$MINIBOX_ROOT" -mindepth 1 -maxdepth 1 -type d | wc -l)"
echo "cgroups left under /sys/fs/cgroup/minibox: $(find /sys/fs/cgroup/minibox -mindepth 1 -type d 2>/dev/null | wc -l)"
'
    local log=$WORK/vm.log rc=0
    bundles "$WORK/vm-bundles" /opt/rootfs
    "$repo/tests/vm/run-in-vm.sh" --mem 1024 --timeout 1800 --module overlay \
        --add "$MINIBOX_STATIC:/bin/minibox" \
        --add "$PAYLOAD:/opt/payload" \
        --add "$ROOTFS:/opt/rootfs" \
        --add "$WORK/vm-bundles:/opt/bundles" \
        -- env MINIBOX_ROOT=/tmp/minibox-state MINIBOX_DATA_ROOT=/tmp/minibox-data RUNS="$vm_runs" sh -c "$guest_script" 2>&1 | tee "$log" || rc=$?
    local label rest us
    while read -r _ label rest; do
        us=$(sed -n 's/.*median_us=\([0-9]*\).*/\1/p' <<<"$rest")
        [[ -n $us ]] || continue
        case $label in
            floor)          vm_floor=$(ms "$us" 0.001) ;;
            minibox)        vm_plain=$(ms "$us" 0.001) ;;
            minibox+limits) vm_limits=$(ms "$us" 0.001) ;;
            bundle)         vm_nodevices=$(ms "$us" 0.001) ;;
            bundle+devices) vm_devices=$(ms "$us" 0.001) ;;
        esac
    done < <(grep '^BENCH ' "$log" || true)
    if ((rc != 0)); then
        vm_note="the VM run failed (status $rc); figures missing above are those not reached"
        printf 'NOTE: %s\n' "$vm_note"
    fi
}

[[ -z $do_host ]] || run_host
[[ -z $do_vm ]] || run_vm

# ----------------------------------------------------------------- summary
row() {   # row LABEL FLOOR VALUE
    if [[ $3 == - ]]; then
        printf '  %-16s %10s\n' "$1" "-"
    elif [[ $1 == floor || $2 == - ]]; then
        printf '  %-16s %10s ms\n' "$1" "$3"
    else
        printf '  %-16s %10s ms  (%s ms over the floor)\n' "$1" "$3" "$(diff_ms "$3" "$2")"
    fi
}
size=$(stat -c %s "$MINIBOX")
step "summary (medians; $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs)"
if [[ -n $do_host ]]; then
    echo "host ($host_runs runs, hyperfine):"
    row floor "$host_floor" "$host_floor"
    row minibox "$host_floor" "$host_plain"
    row minibox+limits "$host_floor" "$host_limits"
    row bundle "$host_floor" "$host_nodevices"
    row bundle+devices "$host_floor" "$host_devices"
    [[ -z $host_note ]] || echo "  note: $host_note"
fi
if [[ -n $do_vm ]]; then
    echo "VM ($vm_runs runs, payload bench; QEMU TCG, 10-35x slower than the host):"
    row floor "$vm_floor" "$vm_floor"
    row minibox "$vm_floor" "$vm_plain"
    row minibox+limits "$vm_floor" "$vm_limits"
    row bundle "$vm_floor" "$vm_nodevices"
    row bundle+devices "$vm_floor" "$vm_devices"
    [[ -z $vm_note ]] || echo "  note: $vm_note"
fi
printf 'target/release/minibox: %s bytes (%s MiB)\n' "$size" \
    "$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')"
# A host without usable cgroup limits is a fact about the host, not a failure;
# a VM run that did not finish is.
[[ -z $vm_note ]] || exit 1
