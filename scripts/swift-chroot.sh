#!/usr/bin/env bash
# A Debian trixie chroot with Swift (`swiftlang`, 6.0.3) for checking the Swift
# layer on Linux: bookworm has no Swift, and a chroot needs no image registry.
#
#   scripts/swift-chroot.sh ensure            create it once (cached)
#   scripts/swift-chroot.sh run CMD [ARG...]  run CMD inside, in the repo
#
# The chroot lives in /var/cache/bottle/swift-<hash>, where <hash> is the content
# hash of the recipe (suite, packages, and the `ensure` function that applies
# them): changing the recipe makes a new chroot, an unchanged one reuses the old
# one, and edits elsewhere in this file (comments, `run`) do not rebuild. It is built in a temporary directory and renamed
# into place only when complete, so an interrupted build is never reused.
#
# `run` works in a private mount namespace (unshare), so the bind mounts (/proc,
# /dev, the repo, the cargo target dir, the Docker socket, /run/bottle, and the
# paths in BOTTLE_CHROOT_BINDS) vanish with the
# process and concurrent runs never see each other's mounts. Paths inside are
# the same as outside, so a cdylib path printed by cargo works unchanged.
set -euo pipefail

SUITE=trixie
MIRROR=${BOTTLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=(swiftlang libc6-dev)
CACHE=${BOTTLE_CACHE:-/var/cache/bottle}

REPO=$(cd "$(dirname "$0")/.." && pwd)

need_root() {
  [ "$(id -u)" -eq 0 ] || { echo "swift-chroot: must run as root (debootstrap, chroot, mount)" >&2; exit 1; }
}

ensure() {
  need_root
  [ -f "$ROOT/.complete" ] && return 0
  mkdir -p "$CACHE"
  exec 9>"$CACHE/swift-$HASH.lock"
  flock 9
  [ -f "$ROOT/.complete" ] && return 0
  command -v debootstrap >/dev/null || {
    . "$REPO/scripts/lib/deps.sh"
    ensure_packages debootstrap
  }
  local tmp="$ROOT.tmp"
  rm -rf "$tmp"
  local t0=$SECONDS
  echo "==> swift-chroot: debootstrap $SUITE into $tmp" >&2
  debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" >&2
  local t1=$SECONDS
  echo "==> swift-chroot: installing ${PACKAGES[*]}" >&2
  unshare --mount --propagation private bash -c '
    set -e
    mount -t proc proc "$1/proc"
    chroot "$1" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c "
      apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends $2 &&
      apt-get clean && rm -rf /var/lib/apt/lists/*"
  ' _ "$tmp" "${PACKAGES[*]}" >&2
  echo "debootstrap $((t1 - t0))s, packages $((SECONDS - t1))s" >"$tmp/.complete"
  mv "$tmp" "$ROOT"
  echo "==> swift-chroot: ready in $ROOT ($(cat "$ROOT/.complete"))" >&2
}

HASH=$(printf '%s\n' "$SUITE" "${PACKAGES[*]}" "$(declare -f ensure)" | sha256sum | cut -c1-16)
ROOT="$CACHE/swift-$HASH"

# bind_same SRC: mounts SRC at the same path inside the chroot (directories or files).
bind_same() {
  local src=$1 dst="$ROOT$1"
  # Never `: >` an existing path: under an earlier bind (the repo) it IS the host file, and
  # truncating it emptied the static bundle binary the round-trip test then ran.
  if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : >"$dst"; fi
  mount --bind "$src" "$dst"
}

run() {
  ensure
  export -f bind_same
  export ROOT
  mkdir -p "$TARGET"
  unshare --mount --propagation private bash -c '
    set -e
    mount -t proc proc "$ROOT/proc"
    mount --bind /dev "$ROOT/dev"
    bind_same "$REPO"
    case "$TARGET/" in "$REPO"/*) ;; *) bind_same "$TARGET" ;; esac
    # Shared with host processes: the per-bottle address pool and image build locks.
    mkdir -p /run/bottle && bind_same /run/bottle
    # Extra paths the caller needs inside (e.g. a BOTTLE_BUNDLE_BIN elsewhere), colon-separated.
    IFS=: read -ra extra <<<"${BOTTLE_CHROOT_BINDS:-}"
    for p in "${extra[@]}"; do if [ -e "$p" ]; then bind_same "$p"; fi; done
    # The Swift round-trip tests drive the host engine, exactly as the app does on a Mac.
    sock=$(readlink -f /var/run/docker.sock 2>/dev/null || true)
    # Only the socket file itself: /var/run is a symlink inside the chroot too.
    if [ -S "$sock" ]; then bind_same "$sock"; fi
    exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root TERM=dumb \
      BOTTLE_LOG="${BOTTLE_LOG:-}" BOTTLE_BUNDLE_BIN="${BOTTLE_BUNDLE_BIN:-}" CARGO_TARGET_DIR="$TARGET" \
      bash -c "cd \"\$0\" && exec \"\$@\"" "$REPO" "$@"
  ' _ "$@"
}

case "${1:-}" in
  ensure) ensure; echo "$ROOT" ;;
  run) shift; TARGET=${CARGO_TARGET_DIR:-$REPO/target}; export REPO TARGET; run "$@" ;;
  path) echo "$ROOT" ;;
  *) echo "usage: $0 ensure | run CMD [ARG...] | path" >&2; exit 2 ;;
esac
