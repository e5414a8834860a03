#!/usr/bin/env bash
# Regenerates the Swift bindings of the `bottle-ffi` crate from the built cdylib
# (uniffi proc-macros: the library itself carries the interface). The outputs
# are committed so a Mac build needs no Rust-side generation step, and they are
# never edited by hand: run this after changing ffi/, and CI runs it with
# `--check`, which fails when the committed files are stale.
#
#   swift/BottleKit/Generated/bottle_ffi.swift   the Swift API (BottleKit)
#   swift/BottleFFI/bottle_ffiFFI.h               the C ABI it calls
#   swift/BottleFFI/module.modulemap              Linux only: links libbottle_ffi.so
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
check=0
[ "${1:-}" = "--check" ] && check=1

cargo build -q -p bottle-ffi --features bindgen --lib --bin uniffi-bindgen
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$TARGET/debug/uniffi-bindgen" generate --library "$TARGET/debug/libbottle_ffi.so" \
  --language swift --no-format --out-dir "$out" >/dev/null
mkdir -p "$out/kit" "$out/ffi"
mv "$out/bottle_ffi.swift" "$out/kit/"
mv "$out/bottle_ffiFFI.h" "$out/ffi/"
# uniffi's own modulemap has no `link` line (on Apple the XCFramework brings the
# library); on Linux the module must name the cdylib so swiftc links it.
cat >"$out/ffi/module.modulemap" <<'MAP'
module bottle_ffiFFI {
    header "bottle_ffiFFI.h"
    link "bottle_ffi"
    export *
}
MAP

if [ $check = 1 ]; then
  diff -ru swift/BottleKit/Generated "$out/kit" && diff -ru swift/BottleFFI "$out/ffi" || {
    echo "gen-swift-bindings: the committed bindings are stale; run scripts/gen-swift-bindings.sh" >&2
    exit 1
  }
  exit 0
fi
mkdir -p swift/BottleKit/Generated swift/BottleFFI
cp "$out/kit/bottle_ffi.swift" swift/BottleKit/Generated/
cp "$out/ffi/bottle_ffiFFI.h" "$out/ffi/module.modulemap" swift/BottleFFI/
echo "gen-swift-bindings: wrote swift/BottleKit/Generated and swift/BottleFFI" >&2
