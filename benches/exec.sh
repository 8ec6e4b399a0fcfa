#!/usr/bin/env bash
# Benchmark (not a test): how long `exec` of a trivial command (`/payload exit 0`) into a
# running container takes, minibox vs runc, from one hyperfine run (median and spread).
#   - minibox: `minibox exec C /payload exit 0` into a `minibox run -d` container (docker's
#     form: pipes relayed, the sealed self-copy made on each exec, seccomp program kept);
#   - runc:    `runc exec ID /payload exit 0` into a `runc run -d` container of a bundle made
#     by `runc spec` from a copy of the same rootfs (private --root state dir).
# See benches/README.md.
#
#   benches/exec.sh [--runs N]
#
# Needs root, hyperfine and runc. Nothing is left behind: both containers are removed, and the
# rootfs, bundle and state roots are temp dirs.
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

runs=100
while (($#)); do
    case $1 in
        --runs) (($# >= 2)) || die "--runs needs a value"; runs=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unexpected argument '$1'" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs takes a positive integer"
((EUID == 0)) || die "needs root"
command -v hyperfine >/dev/null || die "hyperfine is missing: apt-get install hyperfine"
command -v runc >/dev/null || die "runc is missing: apt-get install runc"

step "building the payload and minibox (release)"
(cd "$repo" && ./rootfs-examples/build.sh >/dev/null && cargo build --release -p minibox)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/minibox-exec-bench.XXXXXX")
STATE=$WORK/state DATA=$WORK/data RUNC_ROOT=$WORK/runc BUNDLE=$WORK/bundle
CID=mbx-exec-bench RID=mbx-exec-bench-$$
cleanup() {
    "$MINIBOX" --root "$STATE" --data-root "$DATA" rm -f "$CID" >/dev/null 2>&1 || true
    runc --root "$RUNC_ROOT" kill "$RID" KILL >/dev/null 2>&1 || true
    sleep 0.2
    runc --root "$RUNC_ROOT" delete -f "$RID" >/dev/null 2>&1 || true
    rm -rf -- "$WORK"
}
trap cleanup EXIT
chmod 755 "$WORK"
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{etc,proc,dev,sys,tmp}
install -m 0755 "$PAYLOAD" "$ROOTFS/payload"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$ROOTFS/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$ROOTFS/etc/group"

step "starting both containers (/payload sleep 3600)"
"$MINIBOX" --root "$STATE" --data-root "$DATA" run -d --name "$CID" "$ROOTFS" /payload sleep 3600 >/dev/null
mkdir -p "$BUNDLE"
cp -a "$ROOTFS" "$BUNDLE/rootfs"
(cd "$BUNDLE" && runc spec)
python3 - "$BUNDLE/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/payload", "sleep", "3600"]
spec["root"]["readonly"] = False
json.dump(spec, open(path, "w"), indent=2)
PY
(cd "$BUNDLE" && runc --root "$RUNC_ROOT" run -d "$RID" </dev/null >/dev/null 2>&1)
runc --root "$RUNC_ROOT" exec "$RID" /payload exit 0 || die "runc exec does not work here"
"$MINIBOX" --root "$STATE" --data-root "$DATA" exec "$CID" /payload exit 0 || die "minibox exec does not work"

step "exec latency: hyperfine -N --warmup 5 --runs $runs"
hyperfine -N --style basic --warmup 5 --runs "$runs" --export-json "$WORK/exec.json" \
    -n "minibox exec" "$MINIBOX --root $STATE --data-root $DATA exec $CID /payload exit 0" \
    -n "runc exec" "runc --root $RUNC_ROOT exec $RID /payload exit 0"

step "summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, $(runc --version | head -1))"
python3 - "$WORK/exec.json" <<'PY'
import json, statistics, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(x * 1000 for x in r["times"])
    q = statistics.quantiles(t, n=4)
    print(f'  {r["command"]:<14} median {r["median"]*1000:7.2f} ms   IQR {q[0]:.2f}..{q[2]:.2f} ms'
          f'   min {t[0]:.2f}  max {t[-1]:.2f}  stddev {r["stddev"]*1000:.2f} ms  (n={len(t)})')
PY
