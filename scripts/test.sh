#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine,
# then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages curl git openssl ca-certificates python3 iproute2
echo "==> cargo test (workspace)" >&2
cargo test --workspace --locked 2>&1
