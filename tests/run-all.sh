#!/usr/bin/env bash
# The whole test suite. Builds as you; the tests that need root run under sudo when you are
# not root (CI is root). See README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

./rootfs-examples/build.sh

if [ "$(id -u)" != 0 ]; then
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="sudo -E"
fi
cargo test --workspace
