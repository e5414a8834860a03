# Sourced by the bench scripts (`. bench/lib.sh` from the checkout's root): where the
# binaries under test come from, one temp dir, and what to stop and remove on exit,
# so every bench cleans up the same way even when a step fails or it is interrupted.
#
# Binaries: BOTTLE_BIN (a bottle-bundle) and BOTTLE_CORE_BIN (a bottle-core) measure
# prebuilt ones, e.g. another revision's, instead of building this tree.

ROOT=$PWD
PIDS=()
EXIT_HOOKS=()

bench_exit() {
  local hook p
  for hook in "${EXIT_HOOKS[@]}"; do "$hook" || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null; done
  [ -n "${T:-}" ] && rm -rf "$T"
  return 0
}
trap bench_exit EXIT INT TERM

# Runs `$1` (a function name) on exit, before the processes in PIDS are stopped.
on_exit() { EXIT_HOOKS+=("$1"); }

# A fresh temp dir in T, removed on exit; $1 is its name prefix.
bench_tmp() { T=$(mktemp -d "/tmp/${1:-bottle-bench}.XXXXXX"); }

# Sets BIN to a release bottle-bundle: BOTTLE_BIN, or this tree built now.
bundle_bin() {
  if [ -z "${BOTTLE_BIN:-}" ]; then
    echo "==> cargo build --release -p bottle-bundle" >&2
    cargo build --release -q -p bottle-bundle >&2 || exit 1
    BOTTLE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/bottle-bundle
  fi
  BIN=$BOTTLE_BIN
}

# Sets BOTTLE_CORE_BIN: as given, or this tree's static release build, made now in one
# cargo run with the bundle and probe that `up` ships (scripts/build-static.sh
# --with-core, as a packaged install has them; its directory also holds
# examples/prepare_images). That build also exports BOTTLE_BUNDLE_BIN, so no `up` runs
# cargo's freshness check.
core_bin() {
  [ -n "${BOTTLE_CORE_BIN:-}" ] && return
  echo "==> scripts/build-static.sh --with-core" >&2
  local dir; dir=$(scripts/build-static.sh --with-core) || exit 1
  BOTTLE_CORE_BIN=$dir/bottle-core
  export BOTTLE_BUNDLE_BIN=${BOTTLE_BUNDLE_BIN:-$dir/bottle-bundle}
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 10 s for a TCP listener at 127.0.0.1:$1 (or host $2); fails the bench if none.
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port ${2:-127.0.0.1}:$1 not up" >&2
  exit 1
}

# Waits up to 10 s for a line starting `PORT n` in file $1 (how the test doubles announce
# where they listen) and prints n.
announced_port() {
  for _ in $(seq 100); do grep -q PORT "$1" 2>/dev/null && break; sleep 0.1; done
  awk '/^PORT/{print $2; exit}' "$1"
}

# `log` writes a line to stdout and to the results file RES.
log() { echo "$*" | tee -a "$RES"; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", (b-a)*1000}'; }

# The machine a figure was measured on, and how busy it was.
host_lines() {
  log "=== run $(date -Is)  host: $(nproc) cores, $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  log "cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
}
