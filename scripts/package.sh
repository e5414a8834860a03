#!/usr/bin/env bash
# Makes the package a user installs: dist/bottle-<version>-<os>-<arch>.tar.gz with
#   bin/bottle-core                                   (for this host; static on Linux)
#   lib/bottle/linux-<arch>/bottle-bundle, bottle-probe (static, one folder per engine arch built)
#   share/doc/bottle/*.md, INSTALL
# bottle-core finds the Linux binaries relative to itself, so the tarball works wherever
# it is unpacked, with no cargo and no source tree.
#
#   scripts/package.sh [--arch amd64|arm64|all] [--core-bin PATH] [--out DIR]
#
# --arch: engine architectures to ship (default: this machine's; `all` = amd64 and arm64,
#   which fails here with the reason scripts/build-static.sh gives: no arm64 Rust std).
# --core-bin: ship this bottle-core instead of building a release one (the install test
#   passes its own debug build to keep CI short).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
arches= core_bin= out=$repo/dist
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arches=${2:?}; shift 2 ;;
    --core-bin) core_bin=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) echo "package: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$(uname -m)" in x86_64) host_arch=amd64 ;; aarch64|arm64) host_arch=arm64 ;; *) host_arch=$(uname -m) ;; esac
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=macos ;; *) os=$(uname -s | tr '[:upper:]' '[:lower:]') ;; esac
case ${arches:-$host_arch} in all) arches="amd64 arm64" ;; *) arches=${arches:-$host_arch} ;; esac
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' core/Cargo.toml | head -1)
name=bottle-$version-$os-$host_arch

if [ -z "$core_bin" ] && [ "$os" = linux ]; then
  # Static, in the same cargo run as this machine's bundle and probe: each crate compiles once.
  core_bin=$(scripts/build-static.sh --with-core)/bottle-core
elif [ -z "$core_bin" ]; then
  echo "package: cargo build --release -p bottle-core" >&2
  cargo build --release -p bottle-core >&2
  core_bin=${CARGO_TARGET_DIR:-$repo/target}/release/bottle-core
fi
[ -x "$core_bin" ] || { echo "package: $core_bin is not an executable bottle-core" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin" "$root/share/doc/bottle"
install -m 0755 "$core_bin" "$root/bin/bottle-core"
. scripts/lib/linux-binaries.sh
# shellcheck disable=SC2086
put_linux_binaries "$root/lib/bottle" $arches
install -m 0644 README.md docs/*.md "$root/share/doc/bottle/"
install -m 0644 bundle/README.md "$root/share/doc/bottle/bundle.md"
cat > "$root/INSTALL" <<TXT
bottle $version for $os/$host_arch (engine binaries: $(for a in $arches; do printf 'linux/%s ' "$a"; done))

Install: unpack anywhere and put bin/ on your PATH, e.g.
    mkdir -p ~/.local/opt && tar -xzf $name.tar.gz -C ~/.local/opt
    export PATH=~/.local/opt/$name/bin:\$PATH
Keep bin/ and lib/ together: bottle-core finds the binaries it runs in bottles in
../lib/bottle/linux-<engine arch>/ beside itself.

Needs: a Docker engine your user may use (Linux: be in the socket's group, e.g.
\`usermod -aG docker <you>\`; macOS: OrbStack or colima, see share/doc/bottle/macos.md).
bottle-core finds it like the docker CLI: DOCKER_HOST, the current docker context, then
/var/run/docker.sock. \`bottle-core doctor\` checks all of this.

The default agent image is built by the engine FROM debian:bookworm-slim. An engine that
reaches no registry needs that base once: as root on Linux, the first \`bottle-core up\`
makes it with debootstrap; otherwise \`docker load\` it.

Locks go to \$XDG_RUNTIME_DIR/bottle (macOS: \$TMPDIR/bottle), caches to
\$XDG_CACHE_HOME/bottle (macOS: ~/Library/Caches/bottle); root uses /run/bottle and
/var/cache/bottle. BOTTLE_RUN_DIR and BOTTLE_CACHE_DIR override them.
TXT
mkdir -p "$out"
tar -C "$stage" -czf "$out/$name.tar.gz.partial" "$name"
mv "$out/$name.tar.gz.partial" "$out/$name.tar.gz"
echo "package: wrote $out/$name.tar.gz" >&2
echo "$out/$name.tar.gz"
