#!/usr/bin/env bash
# git-gate benchmark: clone and push a ~50 MiB repository through the gate and
# directly against the same `git http-backend` upstream, interleaved in one run.
# Prints medians over REPS runs, and the median of each rep's gate/direct ratio
# (direct and gate run back to back in each rep, so the ratio cancels slow drifts
# in machine load). Loopback only.
#
#   bench/git-gate.sh            # REPS=5 SIZE_MIB=50
#   REPS=7 SIZE_MIB=50 bench/git-gate.sh
#   BOTTLE_BIN=/path/to/bottle-bundle bench/git-gate.sh   # a prebuilt bundle, no build
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=${REPS:-5}
SIZE_MIB=${SIZE_MIB:-50}
UPDATE_MIB=${UPDATE_MIB:-10}
BLOBS=5
COMMITS=20
CRED_USER=bench
CRED_TOKEN=bench-token-5d1f0c9a

bundle_bin
bench_tmp bottle-gitgate

export HOME=$T/home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 NO_PROXY='*'
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.test GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.test
mkdir -p "$HOME" "$T/root"

echo "==> building a ${SIZE_MIB} MiB repository (${BLOBS} random blobs, ${COMMITS} small commits)" >&2
git init -q -b base "$T/work"
(
  cd "$T/work"
  for i in $(seq 1 "$BLOBS"); do
    head -c $((SIZE_MIB * 1024 * 1024 / BLOBS)) /dev/urandom > "blob$i"
    git add "blob$i" && git commit -q -m "blob $i"
  done
  for i in $(seq 1 "$COMMITS"); do echo "$i" > "file$i" && git add "file$i" && git commit -q -m "commit $i"; done
  git checkout -q -b next
  head -c $((UPDATE_MIB * 1024 * 1024)) /dev/urandom > update && git add update && git commit -q -m update
)
git init -q --bare -b base "$T/root/clone.git"
git -C "$T/work" push -q "$T/root/clone.git" base

python3 tests/support/gitgate/upstream.py --root "$T/root" --credential "$CRED_USER:$CRED_TOKEN" \
  > "$T/upstream.port" 2>/dev/null &
PIDS+=($!)
UP=$(announced_port "$T/upstream.port")
GATE_PORT=$(free_port)

echo "control-token-0123456789" > "$T/token"
{
  echo "clone = \"$CRED_USER:$CRED_TOKEN\""
  for i in $(seq 1 "$REPS"); do echo "p$i = \"$CRED_USER:$CRED_TOKEN\""; done
} > "$T/credentials.toml"
{
  cat <<TOML
bottle = "bench"
[listen]
proxy = "127.0.0.1:0"
control = "127.0.0.1:0"
egress = "127.0.0.1:0"
git_gate = "127.0.0.1:$GATE_PORT"
[control]
token_file = "$T/token"
[policy]
allow = ["127.0.0.0/8"]
[egress]
allow_cidrs = ["127.0.0.0/8"]
[git]
credentials_file = "$T/credentials.toml"
[[git.repo]]
alias = "clone"
upstream = "http://127.0.0.1:$UP/clone.git"
TOML
  for i in $(seq 1 "$REPS"); do
    printf '[[git.repo]]\nalias = "p%s"\nupstream = "http://127.0.0.1:%s/p%s.git"\npush = ["agent/*"]\n' "$i" "$UP" "$i"
  done
} > "$T/bundle.toml"
RUST_LOG=warn "$BIN" --config "$T/bundle.toml" 2> "$T/bundle.log" &
PIDS+=($!)
wait_port "$GATE_PORT"

AUTH="Authorization: Basic $(printf '%s' "$CRED_USER:$CRED_TOKEN" | base64)"
DIRECT=(git -c "http.extraHeader=$AUTH")
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
declare -A R
record() { R[$1]+="$2 "; }

for i in $(seq 1 "$REPS"); do
  git init -q --bare -b base "$T/root/d$i.git"
  git init -q --bare -b base "$T/root/p$i.git"
  for via in direct gate; do
    if [ $via = direct ]; then url="http://127.0.0.1:$UP"; g=("${DIRECT[@]}"); c=clone; p=d$i
    else url="http://127.0.0.1:$GATE_PORT"; g=(git); c=clone; p=p$i; fi
    rm -rf "$T/c"
    s=$(now); "${g[@]}" clone -q "$url/$c.git" "$T/c"; e=$(now); record "clone-$via" "$(elapsed "$s" "$e")"
    s=$(now); "${g[@]}" -C "$T/work" push -q "$url/$p.git" base:refs/heads/agent/bench; e=$(now)
    record "push-new-$via" "$(elapsed "$s" "$e")"
    s=$(now); "${g[@]}" -C "$T/work" push -q "$url/$p.git" next:refs/heads/agent/bench; e=$(now)
    record "push-ff-$via" "$(elapsed "$s" "$e")"
  done
  echo "    rep $i/$REPS done" >&2
done

median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "git-gate benchmark: ${SIZE_MIB} MiB repository, ${REPS} reps, medians in seconds ($(git --version), $(nproc) cores)"
echo
echo "| operation | direct (median s) | via gate (median s) | overhead of medians | median of per-rep gate/direct |"
echo "|---|---|---|---|---|"
for op in clone push-new push-ff; do
  d=$(median "${R[$op-direct]}"); g=$(median "${R[$op-gate]}")
  paired=$(python3 -c "import statistics as s; d='${R[$op-direct]}'.split(); g='${R[$op-gate]}'.split(); print(f'{(s.median(float(b) / float(a) for a, b in zip(d, g)) - 1) * 100:+.1f}%')")
  echo "| $op | $d | $g | $(python3 -c "print(f'{($g / $d - 1) * 100:+.1f}%')") | $paired |"
done
echo
for k in $(printf '%s\n' "${!R[@]}" | sort); do echo "raw $k: ${R[$k]}"; done
