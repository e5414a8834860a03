#!/usr/bin/env bash
# Soak benchmark: a real bottle (`bottle-core up`) under TUNNELS open CONNECT tunnels,
# a slow-loris of LORIS connections and a header flood of unfinished ~FLOOD_KB heads
# on the proxy, supervise and git-gate, all at once for DURATION seconds, while a normal
# client keeps making requests. All load comes from inside the agent container
# (bench/soak_load.py); the allowed origin is a canary container on an internal network
# this script creates, reached through the BOTTLE_CANARY_* options. Nothing leaves the
# machine.
#
# Measured, in the same run: the normal client's latency per service before the load
# (quiet, the baseline), under it and after it; the bundle container's peak memory
# (cgroup v1 memory.max_usage_in_bytes or v2 memory.peak) against its limit and its
# process's peak RSS; its RestartCount before and after; what each service did with the
# flood and the slow-loris connections. Goal: the normal client's p99 under 10 ms under
# load, and the bundle never restarts.
#
#   bench/soak.sh                                  # DURATION=60 QUIET=30 AFTER=10
#   DURATION=30 TUNNELS=200 LORIS=100 FLOOD=50 bench/soak.sh
#   BOTTLE_CORE_BIN=target/bundle-static/x86_64-unknown-linux-gnu/release/bottle-core bench/soak.sh
#
# Knobs (all bounded): DURATION, QUIET, AFTER (seconds); TUNNELS, LORIS, FLOOD (flood
# connections per service), FLOOD_KB, LORIS_EVERY (seconds between slow-loris bytes),
# RATE (normal client requests per second), PROGRESS (seconds between progress lines).
# AGENT_IMAGE names the canary's image when BOTTLE_CORE_BIN has no examples/prepare_images
# beside it. Raw lines and the summary land in RES (/tmp/bottle-soak-results.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-60}
QUIET=${QUIET:-30}
AFTER=${AFTER:-10}
TUNNELS=${TUNNELS:-1000}
LORIS=${LORIS:-500}
LORIS_EVERY=${LORIS_EVERY:-5}
FLOOD=${FLOOD:-300}
FLOOD_KB=${FLOOD_KB:-400}
RATE=${RATE:-20}
PROGRESS=${PROGRESS:-5}
RES=${RES:-/tmp/bottle-soak-results.txt}; : > "$RES"
NAME=soak-$$
AGENT=bottle-$NAME-agent
BUNDLE=bottle-$NAME-bundle
NET=bottle-0canary-$NAME
CANARY=$NAME-canary

core_bin
BC=$BOTTLE_CORE_BIN
bench_tmp bottle-soak
WS=$T/workspace
mkdir -p "$WS" "$T/canary"

teardown() {
  timeout 120 "$BC" down "$NAME" >/dev/null 2>&1
  docker rm -f "$CANARY" >/dev/null 2>&1
  docker network rm "$NET" >/dev/null 2>&1
}
on_exit teardown

host_lines
log "docker: $(docker version --format '{{.Server.Version}}'), cgroup v$(docker info --format '{{.CgroupVersion}}') | $("$BC" --version)"
log "params: DURATION=$DURATION QUIET=$QUIET AFTER=$AFTER TUNNELS=$TUNNELS LORIS=$LORIS LORIS_EVERY=$LORIS_EVERY FLOOD=$FLOOD FLOOD_KB=$FLOOD_KB RATE=$RATE"

# ---------------------------------------------------------------- canary origin
if [ -z "${AGENT_IMAGE:-}" ]; then
  prep=$(dirname "$BC")/examples/prepare_images
  [ -x "$prep" ] || { echo "soak: no $prep; set AGENT_IMAGE to an image with python3 for the canary" >&2; exit 1; }
  AGENT_IMAGE=$("$prep") || exit 1
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$T/canary/key.pem" -out "$T/canary/cert.pem" \
  -subj "/CN=allowed.test" -addext "subjectAltName=DNS:allowed.test" 2>/dev/null || exit 1
chmod 644 "$T/canary/"*
cp bench/soak_load.py "$T/canary/"
cp bench/soak_load.py "$T/canary/cert.pem" "$WS/"
# The agent runs as its workspace's owner: a plain user, who writes the results there.
chown -R 1000:1000 "$WS"
# Internal: the canary needs no way out, and the bundle's egress network must stay its gateway.
docker network create --internal "$NET" >/dev/null || exit 1
# The canary stands for origins elsewhere, which share no cores with the bottle: the same
# CPU weight as the bundle, so the agent's load does not queue it behind itself.
docker run -d --name "$CANARY" --network "$NET" --cpu-shares 4096 -v "$T/canary:/canary:ro" \
  "$AGENT_IMAGE" python3 /canary/soak_load.py canary --cert /canary/cert.pem --key /canary/key.pem >/dev/null || exit 1
canary_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CANARY")
export BOTTLE_CANARY_HOSTS="allowed.test=$canary_ip" BOTTLE_CANARY_CIDRS="$canary_ip/32" \
  BOTTLE_CANARY_NETWORKS="$NET" BOTTLE_CANARY_URL="http://allowed.test/"

# ---------------------------------------------------------------- the bottle
cat > "$T/bottle.toml" <<EOF
name = "$NAME"
workspace = "./workspace"
[egress]
allow = ["allowed.test"]
[[git.repo]]
alias = "soak"
upstream = "http://allowed.test/soak.git"
[resources]
cpus = 2
memory = "2G"
pids = 512
EOF
echo "==> bottle-core up $NAME" >&2
timeout 300 "$BC" up -f "$T/bottle.toml" > "$T/up.out" 2> "$T/up.err" || { tail -20 "$T/up.err" >&2; exit 1; }

inspect() { docker inspect -f "$1" "$BUNDLE"; }
RESTARTS_BEFORE=$(inspect '{{.RestartCount}}')
PID0=$(inspect '{{.State.Pid}}')
LIMIT=$(inspect '{{.HostConfig.Memory}}')
# The bundle's memory cgroup as the host mounts it: cgroup v1 (memory controller) or v2.
cg=$(awk -F: '$2 == "memory" || ($1 == "0" && $2 == "") {print $3; exit}' "/proc/$PID0/cgroup")
if [ -f "/sys/fs/cgroup/memory$cg/memory.max_usage_in_bytes" ]; then
  CG=/sys/fs/cgroup/memory$cg PEAK_FILE=memory.max_usage_in_bytes USAGE_FILE=memory.usage_in_bytes
else
  CG=/sys/fs/cgroup$cg PEAK_FILE=memory.peak USAGE_FILE=memory.current
fi
[ -f "$CG/$PEAK_FILE" ] || { echo "soak: no $CG/$PEAK_FILE for the bundle's cgroup" >&2; exit 1; }
log "bundle $BUNDLE: pid $PID0, memory limit $((LIMIT / 1048576)) MiB, RestartCount $RESTARTS_BEFORE, cgroup $CG"
log "agent: $(docker exec "$AGENT" sh -c 'python3 --version; ulimit -n' | tr '\n' ' ')"

# ---------------------------------------------------------------- the run
agent_py() { docker exec "$AGENT" python3 /workspace/soak_load.py "$@"; }
LOAD_ARGS=(--tunnels "$TUNNELS" --loris "$LORIS" --loris-every "$LORIS_EVERY" --flood "$FLOOD" --flood-kb "$FLOOD_KB" --status /workspace/load.json)
agent_py client --seconds $((QUIET + DURATION + AFTER)) --rate "$RATE" --out /workspace/client.jsonl 2> "$T/client.err" &
CLIENT=$!; PIDS+=($CLIENT)
# The canary's own latency, asked from the host at the same pace per service: the proxy's
# and git-gate's answers come from it, and it serves the thousand tunnels too.
python3 bench/soak_load.py client --origin "$canary_ip:80" --seconds $((QUIET + DURATION + AFTER)) \
  --rate "$(python3 -c "print($RATE / 3)")" --out "$T/origin.jsonl" 2> "$T/origin.err" &
ORIGIN_CLIENT=$!; PIDS+=($ORIGIN_CLIENT)
SAMPLED_PEAK=0 FDS_PEAK=0 SAME_PID=yes
sample() { # memory and fds of the bundle now (USAGE, FDS), and whether it is still the same process
  local pid
  USAGE=$(cat "$CG/$USAGE_FILE" 2>/dev/null || echo 0); [ "$USAGE" -gt "$SAMPLED_PEAK" ] && SAMPLED_PEAK=$USAGE
  FDS=$(ls "/proc/$PID0/fd" 2>/dev/null | wc -l); [ "$FDS" -gt "$FDS_PEAK" ] && FDS_PEAK=$FDS
  pid=$(inspect '{{.State.Pid}}'); [ "$pid" = "$PID0" ] || SAME_PID="no (pid $PID0 -> $pid)"
  echo "$(date +%s.%N) $USAGE $FDS" >> "$T/memory.txt"
}
progress() { # $1: phase
  sample
  printf '[%s %3ds] %s | bundle %d MiB, %d fds, restarts %s\n' "$1" $(( $(date +%s) - START )) \
    "$(python3 bench/soak_load.py progress --status "$WS/load.json" --client "$WS/client.jsonl" --window "$PROGRESS")" \
    $((USAGE / 1048576)) "$FDS" "$(inspect '{{.RestartCount}}')" >&2
}
START=$(date +%s)
echo "==> quiet: the normal client alone for $QUIET s" >&2
for _ in $(seq $((QUIET / PROGRESS))); do sleep "$PROGRESS"; progress quiet; done
sleep $((QUIET % PROGRESS))
echo "==> load for $DURATION s: $TUNNELS tunnels, $LORIS slow-loris, $FLOOD x ${FLOOD_KB} KB flood per service" >&2
agent_py load --seconds "$DURATION" --ca /workspace/cert.pem "${LOAD_ARGS[@]}" 2> "$T/load.err" &
LOAD=$!; PIDS+=($LOAD)
# Bounded: the load stops itself at DURATION (+20 s grace); past that it is killed.
for _ in $(seq $(((DURATION + 30) / PROGRESS))); do
  kill -0 "$LOAD" 2>/dev/null || break
  sleep "$PROGRESS"; progress load
done
kill "$LOAD" 2>/dev/null
wait "$LOAD" 2>/dev/null
echo "==> after: the normal client alone again until it stops" >&2
while kill -0 "$CLIENT" 2>/dev/null; do sleep "$PROGRESS"; progress after; done
wait "$ORIGIN_CLIENT" 2>/dev/null
[ -s "$T/load.err" ] && { echo "load stderr:"; tail -5 "$T/load.err"; } | tee -a "$RES"
[ -s "$T/client.err" ] && { echo "client stderr:"; tail -5 "$T/client.err"; } | tee -a "$RES"
sample

# ---------------------------------------------------------------- summary
logs=$(docker logs "$BUNDLE" 2>&1)
log_counts=$(printf '%s\n' "$logs" | awk '{n++} /limit reached/{l++} /accept:/{a++} /WARN/{w++} /ERROR/{e++}
  END{printf "%d lines, %d WARN, %d ERROR, %d limit-reached, %d failed accepts", n, w, e, l, a}')
cat > "$T/info.json" <<EOF
{"cgroup_peak": $(cat "$CG/$PEAK_FILE" 2>/dev/null || echo 0), "cgroup_file": "$PEAK_FILE", "limit": $LIMIT,
 "sampled_peak": $SAMPLED_PEAK, "fds_peak": $FDS_PEAK,
 "vmhwm_kb": $(awk '/^VmHWM/{print $2}' "/proc/$PID0/status" 2>/dev/null || echo 0),
 "restarts_before": $RESTARTS_BEFORE, "restarts_after": $(inspect '{{.RestartCount}}'),
 "oom_killed": "$(inspect '{{.State.OOMKilled}}')", "same_pid": "$SAME_PID", "log_counts": "$log_counts"}
EOF
python3 bench/soak_load.py summary "${LOAD_ARGS[@]/\/workspace/$WS}" --client "$WS/client.jsonl" --origin-client "$T/origin.jsonl" --rate "$RATE" --info "$T/info.json" | tee -a "$RES"
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
log "results: $RES"
