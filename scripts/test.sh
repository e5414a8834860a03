#!/usr/bin/env bash
# The test command: installs and starts what the tests need on a fresh Debian
# machine (a Docker engine included), then gates on rustfmt and clippy, runs every
# test in the workspace (listing what any test skipped, and why), every fuzz target
# for a bounded time, and the Linux checks of the Swift layer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages curl git openssl ca-certificates python3 iproute2 iptables
scripts/install-docker.sh
# The real Claude Code binary the agent tests run, fetched once per machine and checked against its pinned sha512.
scripts/fetch-claude-code.sh

echo "==> lints: cargo fmt --check, cargo clippy -D warnings (either failing fails the run)" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings 2>&1

# A test that cannot run here says why in this file (tests/support/skip.rs), listed below.
skips="$PWD/target/test-skips.txt"
mkdir -p target
: > "$skips"
echo "==> cargo test (workspace, Docker-backed tests included)" >&2
BOTTLE_TEST_SKIPS="$skips" cargo test --workspace --locked 2>&1
if [ -s "$skips" ]; then
  echo "==> $(wc -l < "$skips") test(s) skipped a check here, each with its reason:" >&2
  sed 's/^/    /' "$skips" >&2
else
  echo "==> no test skipped anything" >&2
fi

echo "==> fuzzing (every fuzz target, about 5 minutes in all: scripts/fuzz.sh)" >&2
scripts/fuzz.sh

echo "==> Swift checks (BottleKit in a trixie chroot, against the real cdylib and Docker)" >&2
scripts/swift-check.sh
