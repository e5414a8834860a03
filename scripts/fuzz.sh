#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on the
# first crash, hang (an input over PER_INPUT_TIMEOUT) or memory blow-up. Each
# target starts from its committed seeds (fuzz/seeds/<target>/, read-only) plus
# a kept corpus of what earlier runs found; a failing input is kept in
# fuzz/artifacts/<target>/ and its path printed, to be turned into a
# regression test in the crate that owns the code.
#
#   scripts/fuzz.sh                        every target, FUZZ_BUDGET s in all
#   FUZZ_SECS=600 scripts/fuzz.sh chunked  one target, longer
#
# FUZZ_BUDGET (default 300) is the wall time for the whole run, the build
# included: what the build leaves is shared among the targets, at least
# MIN_SECS each. FUZZ_SECS sets each target's time instead.
#
# Toolchain: libFuzzer's instrumentation needs unstable rustc flags. Nightly is
# used when rustup has it; otherwise stable with RUSTC_BOOTSTRAP=1, because a
# fresh machine has only its one stable toolchain and cannot fetch another.
#
# Sanitizer: none. The project has no `unsafe` code, so AddressSanitizer
# would only re-check what Rust's bounds checks already catch, while making
# every dependency build slower and each run about twice as slow; panics,
# overflow checks (debug assertions are on) and libFuzzer's own timeout and
# RSS limits are what find bugs in safe code.
#
# Cache: the build and the corpus live in fuzz/target and fuzz/corpus (both
# ignored by git). CI clones the repo afresh for every run, so under CI=true
# they live in the machine's bottle cache instead, like the Claude Code tarball.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/deps.sh"
cd "$root/fuzz"

CARGO_FUZZ_VERSION=0.13.2
BUDGET=${FUZZ_BUDGET:-300}
MIN_SECS=10
PER_INPUT_TIMEOUT=10
RSS_LIMIT_MB=2048
if [ "${CI:-}" = true ]; then
  state=${FUZZ_STATE_DIR:-${BOTTLE_CACHE_DIR:-/var/cache/bottle}/fuzz}
else
  state=${FUZZ_STATE_DIR:-$root/fuzz}
fi

log() { echo "==> $*" >&2; }
started=$SECONDS

# libFuzzer itself is C++, built by libfuzzer-sys.
ensure_packages g++
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked >&2
fi
if rustup toolchain list | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
mkdir -p "$state"
flags=(--sanitizer none --debug-assertions --target-dir "$state/target")

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

log "building the fuzz targets (${fuzz[*]}; optimised, debug assertions on) into $state/target"
"${fuzz[@]}" build "${flags[@]}" 2>&1 | { grep -v '^ *Compiling' || true; } >&2

if [ -n "${FUZZ_SECS:-}" ]; then
  secs=$FUZZ_SECS
else
  secs=$(((BUDGET - (SECONDS - started)) / ${#targets[@]}))
  [ "$secs" -ge "$MIN_SECS" ] || secs=$MIN_SECS
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  corpus="$state/corpus/$t"
  artifacts="$root/fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  log "fuzzing $t ($((i + 1))/${#targets[@]}) for ${secs}s"
  if ! "${fuzz[@]}" run "${flags[@]}" "$t" "$corpus" "seeds/$t" -- \
    -max_total_time="$secs" -timeout="$PER_INPUT_TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB" \
    -print_final_stats=1 2> "$logs/$t.log"; then
    # From the panic or libFuzzer's report on: cargo-fuzz's own backtrace after it says nothing.
    sed -n '/panicked at\|ERROR: libFuzzer/,$p' "$logs/$t.log" | head -n 30 >&2
    input=$(grep -o "Test unit written to .*" "$logs/$t.log" | tail -n 1 | sed 's/^Test unit written to //')
    echo "scripts/fuzz.sh: $t failed on ${input:-an input in $artifacts/}" >&2
    echo "  reproduce: (cd fuzz && ${fuzz[*]} run ${flags[*]} $t ${input:-$artifacts/<file>})" >&2
    exit 1
  fi
  awk '/^stat::number_of_executed_units/ { runs = $NF } /^stat::peak_rss_mb/ { rss = $NF }
    END { printf "    %d inputs run, peak RSS %d MB\n", runs, rss }' "$logs/$t.log" >&2
done
log "fuzzing: ${#targets[@]} targets, no crash, $((SECONDS - started))s in all"
