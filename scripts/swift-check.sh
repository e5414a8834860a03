#!/usr/bin/env bash
# The Linux checks of the Swift layer (see macos-app/README.md), run in the
# Debian trixie chroot made by scripts/swift-chroot.sh:
#   0. the committed bindings match the Rust library (gen-swift-bindings.sh --check);
#   1. `swift build` + `swift test` of BottleKit against the real cdylib and the
#      host's Docker engine;
#   2. `swiftc -typecheck` of all BottleKit sources together, with the app model
#      as the Mac builds it (`@Observable`, which step 1 leaves out because Debian's
#      Swift cannot link Observation), against the generated bindings;
#   3. `swiftc -parse` of the SwiftUI/AppKit/UserNotifications app sources.
# Each step's duration is printed, since CI time is budgeted.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
T=$CARGO_TARGET_DIR

step() { echo "==> swift-check: $*" >&2; }
timed() { local t=$SECONDS; "$@"; echo "    ($((SECONDS - t))s)" >&2; }

step "chroot"
timed scripts/swift-chroot.sh ensure >/dev/null
step "bindings are current"
timed scripts/gen-swift-bindings.sh --check

step "engine and images (built on the host: the chroot has no cargo or debootstrap)"
bash scripts/install-docker.sh >&2
timed cargo run -q -p bottle-core --example prepare_images >/dev/null
if [ -z "${BOTTLE_BUNDLE_BIN:-}" ]; then
  triple=$(rustc -vV | sed -n 's/^host: //p')
  export BOTTLE_BUNDLE_BIN="$T/bundle-static/$triple/release/bottle-bundle"
fi
export BOTTLE_CHROOT_BINDS="$BOTTLE_BUNDLE_BIN"

in_chroot() { scripts/swift-chroot.sh run "$@"; }
SCRATCH="$T/swift"

step "1. swift build + swift test (BottleKit, real cdylib, real Docker)"
timed in_chroot swift build --scratch-path "$SCRATCH"
timed in_chroot swift test --scratch-path "$SCRATCH"

step "2. swiftc -typecheck: BottleKit with the @Observable model, against the bindings"
timed in_chroot swiftc -typecheck -module-name BottleKit -I swift/BottleFFI -D BOTTLE_OBSERVATION \
  swift/BottleKit/Generated/*.swift swift/BottleKit/Model/*.swift

step "3. swiftc -parse: SwiftUI/AppKit/UserNotifications sources"
timed in_chroot swiftc -parse macos-app/Sources/BottleApp/*.swift
step "all Swift checks passed"
