#!/usr/bin/env bash
# Benchmark: `bottle-core up` (to agent-ready, i.e. start check passed) and
# `bottle-core down`, median of RUNS, against a plain `docker run` of the same
# agent image + one `docker exec` in the same run. Each `up --json`'s own step
# times (`timings`) are summed up as medians too. Many bottles at once: bench/scale.sh.
#
#   bench/up-down.sh                 # RUNS=10
#   RUNS=7 bench/up-down.sh
#
# Images must be cached for the figures to mean anything: one warm-up `up` (not
# recorded) builds whatever is missing. Every bottle is named updown-<pid>-* and
# removed on exit (down, then gc); workspaces live in a temp dir.
# BOTTLE_CORE_BIN / BOTTLE_BUNDLE_BIN reuse prebuilt binaries instead of building (with
# BOTTLE_CORE_BIN but without BOTTLE_BUNDLE_BIN, the timed runs use the static build the
# warm-up made).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-10}
bottles_bench updown

# ---------------------------------------------------------------- up/down vs docker run
log ""; log "=== up/down x $RUNS, each followed by a plain docker run of the agent image"
for i in $(seq "$RUNS"); do
  n=$TAG-$i
  t0=$(now); bottle_up "$n"; rc=$?; t1=$(now)
  bottle_down "$n"; drc=$?; t2=$(now)
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
log "ratio: up / docker run = $(awk -v a="$UP" -v b="$RUN" 'BEGIN{printf "%.2f", a/b}')  (goals: <= 2 and up <= 600 ms; down <= 1000 ms)"
log "$(python3 bench/timings.py $(seq -f "$T/$TAG-%g.out" "$RUNS"))"
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

log "results: $RES"
