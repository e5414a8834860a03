#!/usr/bin/env bash
# The test command: installs and starts what the tests need on a fresh Debian
# machine (a Docker engine included), then runs every test in the workspace,
# every fuzz target for a bounded time, and the Linux checks of the Swift layer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages curl git openssl ca-certificates python3 iproute2 iptables
scripts/install-docker.sh
# The real Claude Code binary the agent tests run, fetched once per machine and checked against its pinned sha512.
scripts/fetch-claude-code.sh

echo "==> cargo test (workspace, Docker-backed tests included)" >&2
cargo test --workspace --locked 2>&1

echo "==> fuzzing (every fuzz target, about 5 minutes in all: scripts/fuzz.sh)" >&2
scripts/fuzz.sh

echo "==> Swift checks (BottleKit in a trixie chroot, against the real cdylib and Docker)" >&2
scripts/swift-check.sh
