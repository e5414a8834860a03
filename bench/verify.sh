#!/usr/bin/env bash
# Escape-suite and start-check timings (see docs/BENCHMARKS.md, "Escape suite").
# Needs a Docker engine (scripts/install-docker.sh) and root (the suite makes a network namespace).
# RUNS (default 3) full-suite runs (0: start check only), CHECK_RUNS (default 21) start checks; medians are printed.
# The time goes to docker exec round trips and network timeouts, not CPU, so the
# debug build is the default; PROFILE=--release builds the example optimised.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run ${PROFILE:-} -q -p bottle-core --example verify_bench
