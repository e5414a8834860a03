#!/usr/bin/env bash
# The test command: installs and starts what the tests need on a fresh Debian
# machine (a Docker engine included), then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages curl git openssl ca-certificates python3 iproute2
scripts/install-docker.sh

echo "==> cargo test (workspace, Docker-backed tests included)" >&2
cargo test --workspace --locked 2>&1
