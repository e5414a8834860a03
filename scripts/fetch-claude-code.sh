#!/usr/bin/env bash
# Puts the pinned Claude Code npm tarball in bottle's cache, checked against the
# registry's sha512, so the tests (and `up`) never download it again on this machine.
# Needs only curl, openssl and base64 (no node, no npm). The version and
# sha512 are read from core/src/images/claude_code.rs, where they are pinned.
# Usage: scripts/fetch-claude-code.sh [x86_64|aarch64]   (default: this machine's engine arch)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/core/src/images/claude_code.rs"
arch=${1:-$(docker info --format '{{.Architecture}}' 2>/dev/null || uname -m)}
[ "$arch" = arm64 ] && arch=aarch64
version=$(sed -n 's/^pub const CLAUDE_CODE_VERSION: &str = "\(.*\)";/\1/p' "$src")
read -r package integrity < <(awk -v a="\"$arch\"," '$1 == a { getline p; getline i; gsub(/[",]/, "", p); gsub(/[",]/, "", i); print p, i }' "$src" | tr -s ' ' ' ')
[ -n "$version" ] && [ -n "${package:-}" ] || { echo "fetch-claude-code: no pinned package for $arch in $src" >&2; exit 1; }
cache=${BOTTLE_CACHE_DIR:-/var/cache/bottle}/claude-code
out="$cache/$package-$version.tgz"
check() { [ "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)" = "$integrity" ]; }
if [ -f "$out" ] && check "$out"; then
  echo "fetch-claude-code: $out is cached and verified" >&2
  exit 0
fi
mkdir -p "$cache"
url="https://registry.npmjs.org/@anthropic-ai/$package/-/$package-$version.tgz"
echo "fetch-claude-code: downloading $url" >&2
curl -fsSL --retry 2 --max-time 900 -o "$out.partial" "$url"
check "$out.partial" || { rm -f "$out.partial"; echo "fetch-claude-code: $url does not match the pinned sha512; refused" >&2; exit 1; }
mv "$out.partial" "$out"
echo "fetch-claude-code: cached $out" >&2
