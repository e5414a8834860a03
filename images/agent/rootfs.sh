#!/usr/bin/env bash
# Builds bottle's default agent rootfs as a tarball, with no image registry:
# debootstrap a minimal Debian, add the tools an agent needs (sh, curl, git,
# python3, CA certificates), and tar it for `docker import`.
# Usage: rootfs.sh OUT.tar   (bottle-core caches OUT by the hash of this file)
set -euo pipefail
out=${1:?usage: rootfs.sh OUT.tar}
suite=${BOTTLE_AGENT_SUITE:-bookworm}
mirror=${BOTTLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages="curl git python3 ca-certificates bash"

command -v debootstrap >/dev/null || { echo "rootfs.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
dir=$(mktemp -d /var/tmp/bottle-agent-rootfs.XXXXXX)
cleanup() { umount "$dir/proc" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

echo "rootfs: debootstrap --variant=minbase $suite" >&2
debootstrap --variant=minbase "$suite" "$dir" "$mirror" >&2
mount -t proc proc "$dir/proc"
echo "rootfs: installing $packages" >&2
chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >&2
chroot "$dir" apt-get clean
umount "$dir/proc"
# An unprivileged user for the agent, with a home bottle mounts as tmpfs.
chroot "$dir" useradd --create-home --uid 1000 --shell /bin/bash agent
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/tmp/*
echo "rootfs: writing $out" >&2
tar -C "$dir" --numeric-owner -cf "$out.partial" .
mv "$out.partial" "$out"
