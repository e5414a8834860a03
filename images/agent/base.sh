#!/usr/bin/env bash
# Makes the base the agent Dockerfile starts FROM, for an engine that reaches no
# registry: a minimal Debian from debootstrap, as a tarball for the engine's image
# import. Needs root and debootstrap (Linux); bottle-core runs it, caches OUT by the
# hash of this file, and tags the import under the Dockerfile's FROM name.
# Usage: base.sh OUT.tar
set -euo pipefail
out=${1:?usage: base.sh OUT.tar}
suite=${BOTTLE_AGENT_SUITE:-bookworm}
mirror=${BOTTLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || { echo "base.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
dir=$(mktemp -d /var/tmp/bottle-agent-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "base: debootstrap --variant=minbase $suite" >&2
debootstrap --variant=minbase "$suite" "$dir" "$mirror" >&2
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/tmp/*
echo "base: writing $out" >&2
tar -C "$dir" --numeric-owner -cf "$out.partial" .
mv "$out.partial" "$out"
