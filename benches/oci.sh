#!/usr/bin/env bash
# Benchmark (not a test): create + start + delete of a trivial OCI bundle (the static payload,
# `/payload exit 0`), minibox vs runc vs crun, side by side in one hyperfine run. Each runtime
# gets its own state root and its own bundle over the same rootfs; the config.json is each
# runtime's own default (`minibox spec`, `runc spec`) with the payload as process.args.
#
#   benches/oci.sh [--runs N]        (default N=50)
#
# Needs root, hyperfine, runc and crun (crun is skipped when absent). Uses the release build of
# minibox (built here). Nothing is left behind: bundles and state roots are temp dirs.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
PAYLOAD=$target_dir/x86_64-unknown-linux-gnu/release/payload
MINIBOX=$target_dir/release/minibox
runs=50
[ "${1:-}" = --runs ] && runs=$2

[ "$(id -u)" = 0 ] || { echo "benches/oci.sh: needs root" >&2; exit 1; }
[ -x "$PAYLOAD" ] || { echo "benches/oci.sh: build the payload first: rootfs-examples/build.sh" >&2; exit 1; }
(cd "$repo" && cargo build --release -q)

work=$(mktemp -d /tmp/mbx-ocibench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs"/{proc,sys,dev,tmp,etc}
cp "$PAYLOAD" "$work/rootfs/payload"

# One bundle per runtime, its default config with our program (and no terminal).
bundle() {
    local name=$1; shift
    mkdir -p "$work/$name"
    "$@" > "$work/$name/config.json.in"
    python3 - "$work/$name" "$work/rootfs" <<'PY'
import json, sys
d, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(d + "/config.json.in"))
c["root"] = {"path": rootfs, "readonly": c.get("root", {}).get("readonly", False)}
c["process"]["args"] = ["/payload", "exit", "0"]
c["process"]["terminal"] = False
json.dump(c, open(d + "/config.json", "w"))
PY
}
mkdir -p "$work/minibox-spec" && "$MINIBOX" spec --bundle "$work/minibox-spec"
bundle minibox cat "$work/minibox-spec/config.json"
runtimes=(minibox "$MINIBOX")
if command -v runc >/dev/null; then
    (cd "$work" && mkdir -p runc-spec && cd runc-spec && runc spec && cat config.json) > /dev/null
    bundle runc cat "$work/runc-spec/config.json"
    runtimes+=(runc runc)
fi
if command -v crun >/dev/null; then
    bundle crun cat "$work/runc-spec/config.json"
    # crun refuses some hosts (a cgroup v1/v2 hybrid: "cgroups in hybrid mode not supported").
    if why=$(crun --root "$work/state-probe" run --bundle "$work/crun" probe 2>&1 </dev/null); then
        runtimes+=(crun crun)
    else
        echo "benches/oci.sh: crun cannot run here, left out: $why" >&2
    fi
fi

cmds=()
for ((i = 0; i < ${#runtimes[@]}; i += 2)); do
    name=${runtimes[i]} bin=${runtimes[i + 1]}
    root=$work/state-$name
    # create + start + delete; the payload exits at once, delete --force covers the race.
    cmds+=(-n "$name" "$bin --root $root create --bundle $work/$name b >/dev/null 2>&1 </dev/null && $bin --root $root start b && $bin --root $root delete --force b")
done
hyperfine --warmup 5 --runs "$runs" -S bash --export-json "$work/result.json" "${cmds[@]}"
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"{'runtime':10} {'median ms':>10} {'stddev ms':>10} {'min ms':>8} {'max ms':>8}")
for x in r:
    print(f"{x['command']:10} {x['median']*1e3:10.1f} {x['stddev']*1e3:10.1f} {x['min']*1e3:8.1f} {x['max']*1e3:8.1f}")
PY
