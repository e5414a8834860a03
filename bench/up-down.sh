#!/usr/bin/env bash
# Benchmark: `bottle-core up` (to agent-ready, i.e. start check passed) and
# `bottle-core down`, median of RUNS, against a plain `docker run` of the same
# agent image in the same run; then TWENTY bottles brought up at once (time
# until all are up, total memory of their bundles).
#
#   bench/up-down.sh                 # RUNS=10 MANY=20
#   RUNS=3 MANY=5 bench/up-down.sh
#
# Images must be cached for the figures to mean anything: one warm-up `up` (not
# recorded) builds whatever is missing. Every bottle is named perf-<pid>-* and
# removed on exit (down, then gc); workspaces live in a temp dir.
# BOTTLE_CORE_BIN / BOTTLE_BUNDLE_BIN reuse prebuilt binaries instead of building (with
# BOTTLE_CORE_BIN but without BOTTLE_BUNDLE_BIN, the timed runs use the static build the
# warm-up made).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-10}
MANY=${MANY:-20}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
TAG=perf-$$
bench_tmp bottle-updown
RES=${RES:-/tmp/bottle-updown-results.txt}; : > "$RES"

core_bin
BC=$BOTTLE_CORE_BIN
median() { sort -n | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }

CREATED=()
cleanup() {
  for n in "${CREATED[@]}"; do timeout 60 "$BC" down "$n" >/dev/null 2>&1; done
  docker ps -aq --filter "name=^$TAG-base-" | xargs -r docker rm -f >/dev/null 2>&1
  # anything an interrupted up left behind under our names
  for n in $(docker ps -a --format '{{.Label "dev.bottle.name"}}' | grep "^$TAG-" | sort -u); do
    timeout 60 "$BC" down "$n" >/dev/null 2>&1
  done
}
on_exit cleanup

spec() { # name -> path of its bottle.toml
  local d=$T/$1; mkdir -p "$d/workspace"
  cat > "$d/bottle.toml" <<EOF
name = "$1"
workspace = "./workspace"
[egress]
allow = ["allowed.test"]
[resources]
cpus = 1
memory = "1G"
pids = 256
EOF
  echo "$d/bottle.toml"
}
up() { CREATED+=("$1"); timeout "$STEP_TIMEOUT" "$BC" up -f "$(spec "$1")" > "$T/$1.out" 2> "$T/$1.err"; }
down() { timeout "$STEP_TIMEOUT" "$BC" down "$1" >/dev/null 2>> "$T/$1.err"; }

host_lines
log "docker: $(docker version --format '{{.Server.Version}}') | $("$BC" --version)"

# ---------------------------------------------------------------- warm-up (builds/caches images)
W=$TAG-warm
up $W || { log "warm-up up failed:"; tail -20 "$T/$W.err" | tee -a "$RES"; exit 1; }
AGENT_IMAGE=$(docker inspect --format '{{.Config.Image}}' "bottle-$W-agent")
down $W
log "agent image: $AGENT_IMAGE"
# A packaged install ships the static binaries (bottle-core finds bottle-probe beside
# bottle-bundle). From a checkout, point at the warm-up's build, so the timed `up`s
# measure what a user waits for, not cargo's freshness check (~0.3 s per process).
if [ -z "${BOTTLE_BUNDLE_BIN:-}" ]; then
  triple=$(rustc -vV | sed -n 's/^host: //p')
  export BOTTLE_BUNDLE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/bundle-static/$triple/release/bottle-bundle
fi
log "static binaries: $(dirname "$BOTTLE_BUNDLE_BIN")"
log "warm-up up steps (stderr of bottle-core up):"; sed 's/^/    /' "$T/$W.err" | tee -a "$RES" >/dev/null

# ---------------------------------------------------------------- up/down vs docker run
log ""; log "=== up/down x $RUNS, each followed by a plain docker run of the agent image"
for i in $(seq "$RUNS"); do
  n=$TAG-$i
  t0=$(now); up "$n"; rc=$?; t1=$(now)
  down "$n"; drc=$?; t2=$(now)
  b=$TAG-base-$i
  t3=$(now)
  docker run -d --name "$b" "$AGENT_IMAGE" sleep infinity >/dev/null && docker exec "$b" true
  brc=$?; t4=$(now)
  docker rm -f "$b" >/dev/null; t5=$(now)
  log "RAW run=$i up_ms=$(ms $t0 $t1) up_rc=$rc down_ms=$(ms $t1 $t2) down_rc=$drc docker_run_ms=$(ms $t3 $t4) run_rc=$brc docker_rm_ms=$(ms $t4 $t5)"
  [ $rc = 0 ] || tail -5 "$T/$n.err" | tee -a "$RES"
done
log "last up's steps:"; sed 's/^/    /' "$T/$TAG-$RUNS.err" | tee -a "$RES" >/dev/null
med() { grep '^RAW run=' "$RES" | sed -n "s/.* $1=\([0-9]*\).*/\1/p" | median; }
UP=$(med up_ms); DOWN=$(med down_ms); RUN=$(med docker_run_ms); RM=$(med docker_rm_ms)
log "median: up ${UP} ms, down ${DOWN} ms, plain docker run+exec ${RUN} ms, docker rm -f ${RM} ms"
log "ratio: up / docker run = $(awk -v a="$UP" -v b="$RUN" 'BEGIN{printf "%.2f", a/b}')  (goals: <= 2, up <= 1500 ms, down <= 1000 ms)"

# ---------------------------------------------------------------- many at once
log ""; log "=== $MANY bottles up at once"
pids=(); t0=$(now)
for i in $(seq "$MANY"); do up "$TAG-m$i" & pids+=($!); done
fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
t1=$(now)
log "all $MANY up in $(ms $t0 $t1) ms ($fails failed)"
for i in $(seq "$MANY"); do [ -s "$T/$TAG-m$i.err" ] && grep -qi error "$T/$TAG-m$i.err" && tail -3 "$T/$TAG-m$i.err" | tee -a "$RES"; done
# memory: cgroup memory usage per container (docker stats MemUsage, rss+cache as the engine counts it)
# and the bundle process's VmRSS read from the host's /proc.
sum_kib() { awk '{s+=$1} END{printf "%.1f", s/1024}'; }
bundles=$(docker ps -q --filter "label=dev.bottle.role=bundle" --filter "name=^bottle-$TAG-m")
agents=$(docker ps -q --filter "label=dev.bottle.role=agent" --filter "name=^bottle-$TAG-m")
cg() { docker stats --no-stream --format '{{.MemUsage}}' $1 | awk '{v=$1; u=v; gsub(/[0-9.]/,"",u); gsub(/[A-Za-z]/,"",v);
  f=(u=="GiB")?1048576:(u=="MiB")?1024:(u=="KiB")?1:(u=="B")?1/1024:0; printf "%.0f\n", v*f}'; }
rss() { for c in $1; do p=$(docker inspect --format '{{.State.Pid}}' "$c"); awk '/^VmRSS/{print $2}' /proc/$p/status; done; }
nb=$(echo $bundles | wc -w)
log "bundles running: $nb; total bundle process RSS $(rss "$bundles" | sum_kib) MiB; total bundle cgroup memory $(cg "$bundles" | sum_kib) MiB"
log "agents running: $(echo $agents | wc -w); total agent cgroup memory $(cg "$agents" | sum_kib) MiB"
t0=$(now)
pids=(); for i in $(seq "$MANY"); do down "$TAG-m$i" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
log "all $MANY down in $(ms $t0 $(now)) ms"
log "results: $RES"
