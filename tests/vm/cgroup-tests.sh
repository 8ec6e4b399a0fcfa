#!/usr/bin/env bash
# Runs tests/cgroup_v2.rs inside a pure cgroup v2 VM (see README.md here): builds minibox, the
# payload and the test binary statically, then boots the VM with them and runs the tests.
# Extra arguments go to the test binary (e.g. a test name filter).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
target=x86_64-unknown-linux-gnu
release="${CARGO_TARGET_DIR:-$repo/target}/$target/release"
export RUSTFLAGS="-C target-feature=+crt-static"

cargo build --quiet --release --target "$target" -p minibox -p payload
# The test binary's path is only known from cargo's JSON messages.
test_bin=$(cargo test --quiet --release --target "$target" --test cgroup_v2 --no-run \
    --message-format=json | grep -o '"executable":"[^"]*cgroup_v2[^"]*"' | tail -n 1 | cut -d'"' -f4)
[[ -x "$test_bin" ]] || { echo "cgroup-tests.sh: could not build the cgroup_v2 test binary" >&2; exit 1; }

exec "$repo/tests/vm/run-in-vm.sh" --mem 1024 --timeout 1200 \
    --add "$release/minibox:/bin/minibox" \
    --add "$release/payload:/opt/payload" \
    --add "$test_bin:/opt/cgroup_v2" \
    -- env MINIBOX_BIN=/bin/minibox MINIBOX_PAYLOAD=/opt/payload RUST_BACKTRACE=0 \
    /opt/cgroup_v2 --test-threads=1 "$@"
