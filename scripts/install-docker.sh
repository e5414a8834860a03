#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine, idempotently:
# installs Debian's docker.io when dockerd is missing, then starts dockerd in
# the background when no engine answers, and waits (bounded) until it does.
# bottle builds every image locally, so no registry is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd-bottle.log}
# How long to wait for a freshly started dockerd to answer.
DOCKERD_START_TIMEOUT_S=${DOCKERD_START_TIMEOUT_S:-60}

# The tools bottle's image builds use (debootstrap makes the agent image's base where no registry is reachable).
ensure_packages debootstrap ca-certificates

if docker info >/dev/null 2>&1; then
  echo "==> docker engine already answering ($(docker version -f '{{.Server.Version}}' 2>/dev/null))" >&2
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "==> dockerd or docker missing: installing docker.io" >&2
  ensure_packages docker.io
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-docker: no engine answers and starting dockerd needs root; run: sudo $0" >&2
  exit 1
fi

echo "==> starting dockerd in the background (log: $DOCKERD_LOG)" >&2
mkdir -p "$(dirname "$DOCKERD_LOG")"
nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
echo "$!" > /run/dockerd-bottle.pid

deadline=$((SECONDS + DOCKERD_START_TIMEOUT_S))
until docker info >/dev/null 2>&1; do
  if [ $SECONDS -ge $deadline ]; then
    echo "install-docker: dockerd did not answer within ${DOCKERD_START_TIMEOUT_S}s; last log lines:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2
    exit 1
  fi
  sleep 0.5
done
echo "==> docker engine answering ($(docker version -f '{{.Server.Version}}'))" >&2
