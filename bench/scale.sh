#!/usr/bin/env bash
# Benchmark: many bottles on one host. For each N in COUNTS, N `bottle-core up`s are
# started at once and timed until the last returns; every one must come back verified.
# Then, with the N bottles idle: each bundle's RSS and the total (and the engine's
# docker-proxy for each published control port), `ls` and `ls --json` (median of
# LS_RUNS each), the engine and kernel objects they hold (bridges, iptables rules,
# conntrack entries, inotify instances), and a subnet collision check; then all N
# downed at once and timed, `gc`, and a check that nothing of ours is left.
#
#   bench/scale.sh                          # COUNTS="10 50 100"
#   COUNTS="5 10" bench/scale.sh
#
# Goals (issue 16): 100 verified within 60 s; each idle bundle <= 8 MiB RSS; `ls` with 100
# <= 300 ms; no subnet collision and no leftover after `gc`. A collision, a leftover or an
# unverified bottle fails the bench (exit 1) after the figures of that N are printed.
# Every bottle is named scale-<pid>-*; whatever is left is downed on exit, even on failure.
# BOTTLE_CORE_BIN / BOTTLE_BUNDLE_BIN as in bench/up-down.sh; BOTTLE_BASE_CORE_BIN, another
# build of bottle-core whose `ls` is timed alternately with this one's (the before arm).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
COUNTS=${COUNTS:-"10 50 100"}
LS_RUNS=${LS_RUNS:-5}
# How long the bottles sit idle before their memory is read.
IDLE_S=${IDLE_S:-5}
FAILED=0
fail() { log "FAIL: $*"; FAILED=1; }
bottles_bench scale
log "limits: inotify max_user_instances $(cat /proc/sys/fs/inotify/max_user_instances), conntrack max $(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo n/a), pool ${BOTTLE_SUBNET_POOL:-10.213.0.0/16} /${BOTTLE_SUBNET_PREFIX:-28}"
# Every docker-proxy is the engine's userland forwarder of one published port.
proxies() { pgrep -x docker-proxy | wc -l; }
engine_objects() {
  log "  engine/kernel: bridges $(ip -o link show type bridge | wc -l), iptables rules $(iptables-save 2>/dev/null | grep -c '^-A'), conntrack entries $(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a), inotify instances $(find /proc/[0-9]*/fd -lname 'anon_inode:inotify' 2>/dev/null | wc -l), docker-proxy processes $(proxies)"
}
log ""; log "=== before: load $(cut -d' ' -f1-3 /proc/loadavg)"; engine_objects

for N in $COUNTS; do
  log ""; log "=== N=$N: $N bottles up at once  (load before $(cut -d' ' -f1-3 /proc/loadavg))"
  names=(); for i in $(seq "$N"); do names+=("$TAG-n$N-$i"); done
  pids=(); t0=$(now)
  for n in "${names[@]}"; do bottle_up "$n" & pids+=($!); done
  fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
  t1=$(now)
  verified=$(for n in "${names[@]}"; do python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["allowlist"]["verdict"])' "$T/$n.out" 2>/dev/null; done | grep -cx verified)
  log "  all $N up in $(ms $t0 $t1) ms: $verified verified, $fails failed  (goal for 100: all verified within 60000 ms)"
  [ "$verified" = "$N" ] || fail "N=$N: only $verified of $N verified"
  for n in "${names[@]}"; do grep -q '"verified"' "$T/$n.out" 2>/dev/null || { log "  $n:"; tail -3 "$T/$n.err" | sed 's/^/    /' | tee -a "$RES" >/dev/null; }; done
  log "  $(python3 bench/timings.py $(printf "$T/%s.out " "${names[@]}"))"

  # Subnets: every network of ours has its own, and none overlaps another network's.
  collisions=$(docker network ls -q | xargs docker network inspect --format '{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{end}}' | python3 -c '
import ipaddress, sys
nets = [(l.split()[0], ipaddress.ip_network(s)) for l in sys.stdin for s in l.split()[1:] if "." in s]
bad = [f"{a}={x} overlaps {b}={y}" for i, (a, x) in enumerate(nets) for (b, y) in nets[i + 1:] if x.overlaps(y)]
print("\n".join(bad))')
  ours=$(docker network ls --filter label=dev.bottle.name --format '{{.Label "dev.bottle.name"}}' | grep -c "^$TAG-n$N-")
  if [ -n "$collisions" ]; then fail "N=$N: subnet collision: $collisions"; else log "  subnets: $ours networks of ours, no two overlap (checked against every network of the engine)"; fi

  sleep "$IDLE_S"
  # Idle memory: each bundle's VmRSS (and its anonymous part) from the host's /proc.
  mem=$(for n in "${names[@]}"; do
      p=$(docker inspect --format '{{.State.Pid}}' "bottle-$n-bundle" 2>/dev/null) || continue
      awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} END{print r, a}' "/proc/$p/status" 2>/dev/null
    done)
  log "  idle bundle RSS (KiB): $(echo "$mem" | python3 -c '
import statistics, sys
rows = [tuple(map(int, l.split())) for l in sys.stdin if l.strip()]
rss = [r[0] for r in rows]
print(f"{len(rss)} bundles, median {statistics.median(rss):.0f}, max {max(rss)}, total {sum(rss) / 1024:.1f} MiB "
      f"(anonymous part: median {statistics.median(r[1] for r in rows):.0f}, total {sum(r[1] for r in rows) / 1024:.1f} MiB); "
      f"{sum(r > 8192 for r in rss)} over 8 MiB")')  (goal: each <= 8192)"
  log "  docker-proxy: $(proxies) processes, total RSS $(for p in $(pgrep -x docker-proxy); do awk '/^VmRSS/{print $2}' /proc/$p/status; done | awk '{s+=$1} END{printf "%.1f", s/1024}') MiB"
  engine_objects

  # ls with N (and whatever else runs on this engine) bottles; with BOTTLE_BASE_CORE_BIN,
  # that build's `ls` too, the two alternated: the baseline of the same run.
  arms=("$BC"); [ -n "${BOTTLE_BASE_CORE_BIN:-}" ] && arms+=("$BOTTLE_BASE_CORE_BIN")
  for mode in ls "--json ls"; do
    for i in "${!arms[@]}"; do : > "$T/ls-$i.ms"; done
    for r in $(seq "$LS_RUNS"); do
      for i in "${!arms[@]}"; do
        a=$(now); timeout 120 "${arms[$i]}" $mode > "$T/ls-$i.out" 2>&1; b=$(now); echo "$(ms $a $b)" >> "$T/ls-$i.ms"
      done
    done
    log "  \`$mode\`: median $(median < "$T/ls-0.ms") ms of $LS_RUNS (all: $(tr '\n' ' ' < "$T/ls-0.ms"))  (goal with 100: <= 300 ms)"
    [ "${#arms[@]}" = 2 ] && log "  \`$mode\` of the base build, alternated with it: median $(median < "$T/ls-1.ms") ms (all: $(tr '\n' ' ' < "$T/ls-1.ms"))"
  done
  listed=$(python3 -c 'import json,sys; print(sum(1 for b in json.load(open(sys.argv[1])) if b["name"].startswith(sys.argv[2])))' "$T/ls-0.out" "$TAG-n$N-")
  [ "$listed" = "$N" ] || fail "N=$N: ls --json lists $listed of our $N bottles"

  pids=(); t0=$(now)
  for n in "${names[@]}"; do bottle_down "$n" & pids+=($!); done
  dfails=0; for p in "${pids[@]}"; do wait "$p" || dfails=$((dfails + 1)); done
  t1=$(now)
  log "  all $N down at once in $(ms $t0 $t1) ms ($dfails failed)"
  t0=$(now); timeout 300 "$BC" gc >/dev/null 2>> "$T/gc.err"; t1=$(now)
  left=$(bottles_left | grep -c "^$TAG-n$N-")
  log "  gc in $(ms $t0 $t1) ms; objects of ours left after it: $left bottles"
  [ "$left" = 0 ] || fail "N=$N: $left bottles left after down and gc: $(bottles_left | tr '\n' ' ')"
  log "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
done
log ""; log "results: $RES"
exit "$FAILED"
