#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on the
# first crash, timeout or leak. Each target starts from its committed seeds
# (fuzz/seeds/<target>/, read-only) plus a scratch corpus; a crashing input is
# kept in fuzz/artifacts/<target>/ and its path printed, to be turned into a
# regression test.
#
#   FUZZ_SECS=20 scripts/fuzz.sh              every target, 20 s each (default)
#   FUZZ_SECS=300 scripts/fuzz.sh chunked     one target, longer
#
# Needs the nightly toolchain (libFuzzer's sanitizer flags) and cargo-fuzz,
# installed here from crates.io at a pinned version into ~/.cargo/bin.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

CARGO_FUZZ_VERSION=0.13.2
SECS=${FUZZ_SECS:-20}
# libFuzzer's own per-input limits: an input taking longer, or a process
# growing past this, is a finding like a crash.
PER_INPUT_TIMEOUT=10
RSS_LIMIT_MB=2048

log() { echo "==> $*" >&2; }

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "scripts/fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

log "building the fuzz targets (nightly, optimised, debug assertions on)"
cargo +nightly fuzz build --debug-assertions >&2

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "seeds/$t" "artifacts/$t"
  log "fuzzing $t for ${SECS}s"
  if ! cargo +nightly fuzz run --debug-assertions "$t" "$scratch/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -timeout="$PER_INPUT_TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB" \
    -print_final_stats=1 2> "$scratch/$t.log"; then
    tail -n 40 "$scratch/$t.log" >&2
    echo "scripts/fuzz.sh: $t failed; the input is in fuzz/artifacts/$t/ (reproduce: cargo +nightly fuzz run $t fuzz/artifacts/$t/<file>)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$t.log" | tr '\n' ' ' >&2
  echo >&2
done
log "fuzzing: ${#targets[@]} targets, no crash"
