#!/usr/bin/env bash
# Builds the binaries that run inside bottles, bottle-bundle and bottle-probe,
# statically (crt-static on the gnu target: these machines have no musl target)
# for one Linux engine architecture, into
# $CARGO_TARGET_DIR/bundle-static/<rust target>/release/ (default target/).
#
#   scripts/build-static.sh [--arch amd64|arm64] [--with-core]   (default arch: this machine's)
#
# --with-core also builds bottle-core and its prepare_images example in the same cargo
# run, with the same flags, so every crate is compiled once (scripts/demo.sh uses it).
#
# amd64 on an x86_64 Linux host: plain cargo. Anything else is a cross build
# with cargo-zigbuild, zig's linker from PyPI's `ziglang`; it still needs the
# target's Rust standard library from rustup (`rustup target add`), which
# these machines cannot fetch, so here it stops and says so.
# bottle-core runs this itself in a source checkout when a source file is
# newer than the last build (the stamp file below), and scripts/package.sh
# runs it for the release tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
arch= packages=(-p bottle-bundle -p bottle-probe)
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    --with-core) packages+=(-p bottle-core --bins --example prepare_images); shift ;;
    *) echo "build-static: unknown argument $1 (usage: build-static.sh [--arch amd64|arm64] [--with-core])" >&2; exit 2 ;;
  esac
done
case "$(uname -m)" in x86_64) host_arch=amd64 ;; aarch64|arm64) host_arch=arm64 ;; *) host_arch=$(uname -m) ;; esac
arch=${arch:-$host_arch}
case $arch in
  amd64) target=x86_64-unknown-linux-gnu ;;
  arm64) target=aarch64-unknown-linux-gnu ;;
  *) echo "build-static: --arch $arch: bottle builds for amd64 and arm64 only" >&2; exit 2 ;;
esac
out=${CARGO_TARGET_DIR:-$PWD/target}/bundle-static

if [ "$(uname -s)" = Linux ] && [ "$arch" = "$host_arch" ]; then
  build=(cargo build)
else
  # A cross build. Checked in the order a user would fix them.
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "build-static: cannot build for linux/$arch: the Rust standard library for $target is not installed." >&2
    echo "build-static: run \`rustup target add $target\` (on these CI machines rustup cannot fetch it, so linux/$arch binaries must come from a machine that can)." >&2
    exit 3
  fi
  if ! cargo zigbuild --help >/dev/null 2>&1; then
    echo "build-static: cross builds need cargo-zigbuild: cargo install cargo-zigbuild --locked; pip install ziglang" >&2
    exit 3
  fi
  build=(cargo zigbuild)
fi

echo "build-static: ${build[*]} --release --target $target ${packages[*]} (static) into $out" >&2
# Symbols stay for panic messages; debug info would make the bundle image 6x larger
# and every `up` hash those bytes to find its image.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=debuginfo CARGO_TARGET_DIR="$out" \
  "${build[@]}" --release --target "$target" "${packages[@]}" >&2
touch "$out/$target/release/.bottle-static-stamp"
echo "$out/$target/release"
