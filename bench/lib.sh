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
# The median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", (b-a)*1000}'; }

# The machine a figure was measured on, and how busy it was.
host_lines() {
  log "=== run $(date -Is)  host: $(nproc) cores, $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  log "cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
}

# ---- bottles (bench/up-down.sh, bench/scale.sh). The caller sets BC (a bottle-core), TAG (a
# name prefix of its own), T and STEP_TIMEOUT; every bottle is named "$TAG-*", its spec and
# output live in $T, and `bottles_cleanup` (run it on exit) downs whatever is left of them.

# The start of a bottle bench: bottle-core in BC (core_bin), TAG=$1-<pid>, a temp dir, the
# results file RES (default /tmp/bottle-$1-results.txt), cleanup on exit, the machine
# lines, and the warm-up `up`.
bottles_bench() {
  STEP_TIMEOUT=${STEP_TIMEOUT:-300}
  TAG=$1-$$
  bench_tmp "bottle-$1"
  RES=${RES:-/tmp/bottle-$1-results.txt}; : > "$RES"
  core_bin
  BC=$BOTTLE_CORE_BIN
  on_exit bottles_cleanup
  host_lines
  log "docker: $(docker version --format '{{.Server.Version}}') | $("$BC" --version)"
  bottle_warm_up
}

# Writes the spec of bottle $1 in $T (workspace beside it, allowlist `allowed.test`, 1 CPU,
# 1 GiB, 256 pids) and prints its path.
bottle_spec() {
  local d=$T/$1; mkdir -p "$d/workspace"
  cat > "$d/bottle.toml" <<SPEC
name = "$1"
workspace = "./workspace"
[egress]
allow = ["allowed.test"]
[resources]
cpus = 1
memory = "1G"
pids = 256
SPEC
  echo "$d/bottle.toml"
}
# `up --json` of bottle $1: its status (with `timings`) in $T/$1.out, its progress in $T/$1.err.
bottle_up() { timeout "$STEP_TIMEOUT" "$BC" --json up -f "$(bottle_spec "$1")" > "$T/$1.out" 2> "$T/$1.err"; }
bottle_down() { timeout "$STEP_TIMEOUT" "$BC" down "$1" >/dev/null 2>> "$T/$1.err"; }

# Names of every bottle of ours that has a container or a network left.
bottles_left() {
  { docker ps -a --filter label=dev.bottle.name --format '{{.Label "dev.bottle.name"}}'
    docker network ls --filter label=dev.bottle.name --format '{{.Label "dev.bottle.name"}}'
  } | grep "^$TAG-" | sort -u
}

# Downs whatever is left of our bottles (8 at a time, each bounded), then lets `gc` take
# the rest; plain containers named "$TAG-*" (baselines) go too.
bottles_cleanup() {
  bottles_left | xargs -r -P 8 -I{} timeout 120 "$BC" down {} >/dev/null 2>&1
  timeout 300 "$BC" gc >/dev/null 2>&1
  docker ps -aq --filter "name=^$TAG-" | xargs -r docker rm -f >/dev/null 2>&1
  return 0
}

# One warm-up `up` (not recorded) makes whatever image is missing. From a checkout, the
# timed `up`s then use that warm-up's static build as a packaged install ships it, so
# they measure what a user waits for, not cargo's freshness check (~0.3 s per process).
bottle_warm_up() {
  local w=$TAG-warm
  bottle_up "$w" || { log "warm-up up failed:"; tail -20 "$T/$w.err" | tee -a "$RES"; exit 1; }
  AGENT_IMAGE=$(docker inspect --format '{{.Config.Image}}' "bottle-$w-agent")
  bottle_down "$w"
  log "agent image: $AGENT_IMAGE"
  if [ -z "${BOTTLE_BUNDLE_BIN:-}" ]; then
    local triple; triple=$(rustc -vV | sed -n 's/^host: //p')
    export BOTTLE_BUNDLE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/bundle-static/$triple/release/bottle-bundle
  fi
  log "static binaries: $(dirname "$BOTTLE_BUNDLE_BIN")"
  log "warm-up up steps (stderr of bottle-core up):"; sed 's/^/    /' "$T/$w.err" | tee -a "$RES" >/dev/null
}
