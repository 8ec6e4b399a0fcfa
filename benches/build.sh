#!/usr/bin/env bash
# Benchmark (not a test): `minibox build` of the seed's two-stage Dockerfile (stage 1: a Go
# build of the hello HTTP server; stage 2: FROM scratch, the binary, passwd/group, the
# certificates, USER nobody), cold (empty cache) and warm (everything cached), side by side with
# `podman build` of the same file on the same base image.
#
#   benches/build.sh [--runs N]
#
# The Go build image is made from the host's files (Debian's golang-go 1.19: the toolchain,
# the C library it links, busybox-static as /bin/sh, CA certificates), imported by both tools
# from one tarball (podman with runc: crun refuses this host's hybrid cgroups). Needs root,
# golang-go, busybox-static, podman, runc and the release build
# (cargo build --release). Nothing is left behind: minibox's and podman's stores live in a temp
# dir removed at the end.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in
    /*) ;;
    *) target_dir=$repo/$target_dir ;;
esac
MINIBOX=${MINIBOX:-$target_dir/release/minibox}
runs=3
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: ${0##*/} [--runs N]" >&2; exit 2 ;;
    esac
done
for tool in /usr/lib/go-1.19/bin/go busybox podman; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done
[ -x "$MINIBOX" ] || { echo "error: $MINIBOX is missing: cargo build --release" >&2; exit 1; }

work=$(mktemp -d /tmp/mbb.XXXXXX)
export MINIBOX_ROOT=$work/state MINIBOX_DATA_ROOT=$work/data
pod=(podman --root "$work/pr" --runroot "$work/pn" --storage-driver overlay)
cleanup() {
    "${pod[@]}" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> the Go build image, from the host's files"
base=$work/base
mkdir -p "$base"/{bin,etc/ssl/certs,tmp,root,usr/lib,usr/share,lib/x86_64-linux-gnu,lib64}
chmod 1777 "$base/tmp"
cp /bin/busybox "$base/bin/busybox"
for a in sh ls cat mkdir rm env; do ln -s busybox "$base/bin/$a"; done
cp -a /usr/lib/go-1.19 "$base/usr/lib/"
cp -a /usr/share/go-1.19 "$base/usr/share/"
cp -L /lib/x86_64-linux-gnu/libc.so.6 "$base/lib/x86_64-linux-gnu/"
cp -L /lib64/ld-linux-x86-64.so.2 "$base/lib64/"
cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$base/etc/group"
tar -C "$base" -cf "$work/base.tar" .
echo "    $(du -sh "$work/base.tar" | cut -f1) tarball"
changes=(--change 'ENV PATH=/usr/lib/go-1.19/bin:/bin' --change 'ENV GOCACHE=/tmp/gocache' --change 'ENV GOPROXY=off')
"$MINIBOX" import -q "${changes[@]}" "$work/base.tar" localhost/mb-gobuild >/dev/null
"${pod[@]}" import "${changes[@]}" "$work/base.tar" localhost/mb-gobuild >/dev/null

ctx=$work/ctx
mkdir -p "$ctx"
cat >"$ctx/hello.go" <<'GO'
package main

import (
	"fmt"
	"log"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Hello World")
	})
	log.Println("Start listening...")
	log.Fatal(http.ListenAndServe(":8080", nil))
}
GO
printf 'module hello\n\ngo 1.19\n' >"$ctx/go.mod"
cat >"$ctx/Dockerfile" <<'DF'
FROM localhost/mb-gobuild AS build
WORKDIR /src
COPY go.mod hello.go ./
RUN CGO_ENABLED=0 go build -o /hello .

FROM scratch
COPY --from=build /hello /main
COPY --from=build /etc/passwd /etc/group /etc/
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
USER nobody
EXPOSE 8080
ENTRYPOINT ["/main"]
DF

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
row() { printf '%-34s %8s s\n' "$1" "$2"; }

for n in $(seq "$runs"); do
    echo "==> run $n"
    # Cold: the build's own images go first (the base image stays, as it would on a machine).
    t0=$(now); "$MINIBOX" build -q --no-cache -t mb-hello "$ctx" >/dev/null; t1=$(now)
    t2=$(now); "$MINIBOX" build -q -t mb-hello "$ctx" >/dev/null; t3=$(now)
    t4=$(now); "${pod[@]}" build -q --no-cache --network none --runtime runc -t mb-hello "$ctx" >/dev/null; t5=$(now)
    t6=$(now); "${pod[@]}" build -q --network none --runtime runc -t mb-hello "$ctx" >/dev/null; t7=$(now)
    row "minibox build, cold (--no-cache)" "$(secs "$t0" "$t1")"
    row "minibox build, warm cache" "$(secs "$t2" "$t3")"
    row "podman build, cold (--no-cache)" "$(secs "$t4" "$t5")"
    row "podman build, warm cache" "$(secs "$t6" "$t7")"
done

echo "==> the image runs (minibox run -d -p)"
port=$((20000 + RANDOM % 10000))
id=$("$MINIBOX" run -d -p 127.0.0.1:$port:8080 mb-hello)
for _ in $(seq 50); do
    if out=$(curl -fsS "http://127.0.0.1:$port/" 2>/dev/null); then break; fi
    sleep 0.1
done
echo "    GET / -> ${out:-nothing}"
"$MINIBOX" logs "$id" | head -1
"$MINIBOX" rm -f "$id" >/dev/null
