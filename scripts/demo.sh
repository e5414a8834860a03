#!/usr/bin/env bash
# bottle's main job, end to end, on a fresh Linux machine:
#   start a Docker engine (with --install-docker, or after asking), build
#   bottle-core, bring up examples/bottle.toml, show its status, send one
#   allowed and one blocked request from inside the agent, show the block
#   event, and tear everything down again.
#
# The "internet" here is a canary: a web server container on a Docker network
# of the demo's own, which the bundle reaches through the BOTTLE_CANARY_*
# options (a static name override for allowed.test). No request leaves this machine.
#
# Usage: scripts/demo.sh [--install-docker]
set -euo pipefail
cd "$(dirname "$0")/.."

install_docker=ask
for arg in "$@"; do
  case "$arg" in
    --install-docker) install_docker=yes ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
  if [ "$install_docker" = ask ] && [ -t 0 ]; then
    read -r -p "No Docker engine answers. Install (Debian docker.io) and start one now? [y/N] " answer
    case "$answer" in y|Y|yes) install_docker=yes ;; esac
  fi
  if [ "$install_docker" != yes ]; then
    echo "demo: no Docker engine answers; rerun with --install-docker (as root) or start one yourself" >&2
    exit 1
  fi
  step "starting a Docker engine"
  scripts/install-docker.sh
fi

. scripts/lib/deps.sh
ensure_packages curl ca-certificates debootstrap

# One cargo run builds bottle-core, the bundle and the probe (static, with the same flags),
# so every crate compiles once; `up` then finds the fresh static build and runs no cargo.
step "building bottle-core, bottle-bundle and bottle-probe (one static release build)"
bin_dir=$(scripts/build-static.sh --with-core)
bottle=$bin_dir/bottle-core

step "building the images (bundle, agent): cached after the first run"
agent_image=$("$bin_dir/examples/prepare_images")

canary_net=bottle-demo-canary
canary=bottle-demo-canary-origin
cleanup() {
  step "tearing down"
  "$bottle" down demo || true
  docker rm -f "$canary" >/dev/null 2>&1 || true
  docker network rm "$canary_net" >/dev/null 2>&1 || true
}
trap cleanup EXIT
docker rm -f "$canary" >/dev/null 2>&1 || true
docker network rm "$canary_net" >/dev/null 2>&1 || true

step "starting the canary origin (allowed.test) on its own network"
# Internal: the canary needs no way out, and the bundle's egress network must stay its gateway.
docker network create --internal "$canary_net" >/dev/null
docker run -d --name "$canary" --network "$canary_net" "$agent_image" \
  sh -c 'mkdir -p /srv && echo "hello from the canary" > /srv/index.html && cd /srv && exec python3 -m http.server 80' >/dev/null
canary_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$canary")
export BOTTLE_CANARY_HOSTS="allowed.test=$canary_ip"
export BOTTLE_CANARY_CIDRS="$canary_ip/32"
export BOTTLE_CANARY_NETWORKS="$canary_net"
export BOTTLE_CANARY_URL="http://allowed.test/"

step "bottle-core up -f examples/bottle.toml"
mkdir -p examples/workspace
"$bottle" up -f examples/bottle.toml

step "bottle-core status demo"
"$bottle" status demo

step "allowed: curl http://allowed.test/ from inside the agent"
"$bottle" exec demo -- curl -sS --max-time 10 http://allowed.test/

step "blocked: curl http://blocked.test/ from inside the agent (expect 403)"
"$bottle" exec demo -- curl -sS --max-time 10 -o /dev/null -w 'HTTP %{http_code}\n' http://blocked.test/ || true

step "bottle-core events demo (the block, as the host sees it)"
"$bottle" events demo
