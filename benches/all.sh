#!/usr/bin/env bash
# Benchmark (not a test): minibox's start-up side by side with its peers and the floors, in ONE
# run, interleaved (A B C ... A B C ...: a machine that drifts or a neighbour's build slows all
# of them alike), medians and ratios in one table.
#
#   benches/all.sh [--runs N]        (default N=40)
#
# Rows (the static payload, `/payload exit 0`, as the container's program):
#   direct          payload exit 0, no container at all
#   floor           unshare -mpnuiC -f --mount-proc chroot ROOTFS /payload exit 0 (util-linux)
#   minibox run     minibox run --rm --memory 64m --cpus 0.5 ROOTFS /payload exit 0
#   runc run        runc run of runc's default bundle, same limits (memory 64m, cpu 50000/100000)
#   crun run        the same with crun, where crun runs on this host (it refuses a hybrid
#                   cgroup v1/v2 host: then the row says why it is missing)
#   minibox --version, runc --version: the binary's own start
#   c+s+d           create + start + delete --force of the same bundle (each through `sh -c`)
#
# Needs root, runc (crun optional), util-linux, python3. Uses the release build of minibox
# (built here; MINIBOX=PATH MINIBOX_NO_BUILD=1: another). MINIBOX_VS=PATH adds the same minibox
# rows for a second binary (an older commit's, the static build), interleaved with the rest:
# before and after in one run. Nothing is left behind: rootfs, bundles and state roots are temp
# dirs.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
PAYLOAD=$target_dir/x86_64-unknown-linux-gnu/release/payload
MINIBOX=${MINIBOX:-$target_dir/release/minibox}
runs=40
[ "${1:-}" = --runs ] && runs=$2

[ "$(id -u)" = 0 ] || { echo "benches/all.sh: needs root" >&2; exit 1; }
if [ -z "${MINIBOX_NO_BUILD:-}" ]; then
    (cd "$repo" && cargo build --release -q -p minibox && ./rootfs-examples/build.sh >/dev/null)
fi
[ -x "$PAYLOAD" ] || { echo "benches/all.sh: no payload: rootfs-examples/build.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/mbx-allbench-XXXXXX)
cleanup() {
    for rt in runc crun; do
        for id in $("$rt" --root "$work/state-$rt" list -q 2>/dev/null); do
            "$rt" --root "$work/state-$rt" delete -f "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/rootfs"/{proc,sys,dev,tmp,etc}
cp "$PAYLOAD" "$work/rootfs/payload"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$work/rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$work/rootfs/etc/group"

# Bundles: each runtime's own default config, our program, no terminal, the same limits.
bundle() {   # bundle NAME SPEC_JSON
    mkdir -p "$work/$1"
    python3 - "$work/$1" "$work/rootfs" "$2" <<'PY'
import json, sys
d, rootfs, spec = sys.argv[1:]
c = json.load(open(spec))
c["root"] = {"path": rootfs, "readonly": c.get("root", {}).get("readonly", False)}
c["process"]["args"] = ["/payload", "exit", "0"]
c["process"]["terminal"] = False
r = c.setdefault("linux", {}).setdefault("resources", {})
r["memory"] = {"limit": 64 << 20}
r["cpu"] = {"quota": 50000, "period": 100000}
json.dump(c, open(d + "/config.json", "w"))
PY
}
mkdir -p "$work/minibox-spec" && "$MINIBOX" spec --bundle "$work/minibox-spec"
bundle minibox "$work/minibox-spec/config.json"
(mkdir -p "$work/runc-spec" && cd "$work/runc-spec" && runc spec)
bundle runc "$work/runc-spec/config.json"
bundle crun "$work/runc-spec/config.json"

crun_why=
if ! command -v crun >/dev/null; then
    crun_why="crun is not installed"
elif ! crun_why=$(crun --root "$work/state-probe" run --bundle "$work/crun" probe 2>&1 </dev/null); then
    crun_why=$(printf '%s' "$crun_why" | tail -n 1)
else
    crun_why=
fi

csd() {   # csd NAME BIN: create + start + delete through sh (an id no one else uses: the
    # cgroup is named after it)
    local root=$work/state-$1 id=allbench-$1-$$
    printf '%s --root %s create --bundle %s/%s %s >/dev/null </dev/null && %s --root %s start %s && %s --root %s delete --force %s' \
        "$2" "$root" "$work" "$1" "$id" "$2" "$root" "$id" "$2" "$root" "$id"
}
# name<TAB>argv as JSON
{
    printf 'direct\t["%s","exit","0"]\n' "$PAYLOAD"
    printf 'floor\t["unshare","-mpnuiC","-f","--mount-proc","chroot","%s","/payload","exit","0"]\n' "$work/rootfs"
    printf 'minibox run\t["%s","--root","%s","--data-root","%s","run","--rm","--memory","64m","--cpus","0.5","%s","/payload","exit","0"]\n' \
        "$MINIBOX" "$work/state-minibox" "$work/data" "$work/rootfs"
    printf 'runc run\t["runc","--root","%s","run","--bundle","%s","allbench-r-%s"]\n' "$work/state-runc" "$work/runc" "$$"
    [ -n "$crun_why" ] ||
        printf 'crun run\t["crun","--root","%s","run","--bundle","%s","allbench-r-%s"]\n' "$work/state-crun" "$work/crun" "$$"
    printf 'minibox --version\t["%s","--version"]\n' "$MINIBOX"
    printf 'runc --version\t["runc","--version"]\n'
    printf 'minibox c+s+d\t["sh","-c","%s"]\n' "$(csd minibox "$MINIBOX")"
    if [ -n "${MINIBOX_VS:-}" ]; then
        printf 'vs: minibox run\t["%s","--root","%s","--data-root","%s","run","--rm","--memory","64m","--cpus","0.5","%s","/payload","exit","0"]\n' \
            "$MINIBOX_VS" "$work/state-vs" "$work/data-vs" "$work/rootfs"
        printf 'vs: minibox --version\t["%s","--version"]\n' "$MINIBOX_VS"
        cp -r "$work/minibox" "$work/vs"
        printf 'vs: minibox c+s+d\t["sh","-c","%s"]\n' "$(csd vs "$MINIBOX_VS")"
    fi
    printf 'runc c+s+d\t["sh","-c","%s"]\n' "$(csd runc runc)"
    [ -n "$crun_why" ] || printf 'crun c+s+d\t["sh","-c","%s"]\n' "$(csd crun crun)"
} >"$work/commands"

python3 - "$work/commands" "$runs" "$MINIBOX" "$crun_why" <<'PY'
import json, os, statistics, subprocess, sys, time
path, runs, minibox, crun_why = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cmds = []
for line in open(path):
    name, argv = line.rstrip("\n").split("\t", 1)
    cmds.append((name, json.loads(argv)))
devnull = os.open(os.devnull, os.O_RDWR)

def once(argv):
    t = time.perf_counter_ns()
    p = subprocess.Popen(argv, stdin=devnull, stdout=devnull, stderr=devnull)
    rc = p.wait()
    return (time.perf_counter_ns() - t) / 1e6, rc

for name, argv in cmds:  # sanity and warm-up: each must succeed
    for _ in range(3):
        out = subprocess.run(argv, stdin=devnull, stdout=devnull, stderr=subprocess.PIPE, text=True)
        if out.returncode != 0:
            sys.exit(f"benches/all.sh: {name} fails (status {out.returncode}): {out.stderr.strip()}")
times = {name: [] for name, _ in cmds}
for _ in range(runs):  # interleaved: A B C ... A B C ...
    for name, argv in cmds:
        times[name].append(once(argv)[0])
med = {n: statistics.median(v) for n, v in times.items()}
size = os.stat(minibox).st_size
vs = os.environ.get("MINIBOX_VS")
print(f"{runs} runs each, interleaved; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
      f"Linux {os.uname().release}, {os.cpu_count()} CPUs; minibox binary {size / 1e6:.2f} MB")
print(f"{'':20} {'median ms':>9} {'min ms':>7} {'vs floor':>9} {'vs runc':>8} {'vs crun':>8}")
def ratio(n, ref):
    return f"{med[n] / med[ref]:.2f}x" if ref in med else "-"
peers = {"run": ("runc run", "crun run"), "version": ("runc --version", None),
         "c+s+d": ("runc c+s+d", "crun c+s+d")}
for name, _ in cmds:
    kind = "version" if "version" in name else "c+s+d" if "c+s+d" in name else "run"
    runc, crun = peers[kind]
    vs_floor = ratio(name, "floor") if kind == "run" else "-"
    print(f"{name:20} {med[name]:9.2f} {min(times[name]):7.2f} {vs_floor:>9} "
          f"{ratio(name, runc):>8} {ratio(name, crun) if crun else '-':>8}")
if crun_why:
    print(f"crun: left out ({crun_why})")
if vs:
    print(f"vs: {vs} ({os.stat(vs).st_size / 1e6:.2f} MB)")
PY
