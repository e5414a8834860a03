#!/usr/bin/env bash
# macOS only. Builds the Rust side of the menu-bar app as an XCFramework with
# cargo-swift 0.11.1 (the release that matches uniffi 0.31.1) and puts it where
# Package.swift's binary target expects it: swift/BottleFFIRust.xcframework.
# With --app, also builds BottleApp and wraps it in build/bottle.app, because
# UNUserNotificationCenter (and LSUIElement) only work from a real .app bundle, with
# the Linux bottle-bundle and bottle-probe in Contents/Resources/linux-<arch>/ (where
# the core, running inside the app, finds them; a cross build: cargo-zigbuild).
#
# The Swift bindings are NOT taken from cargo-swift's output: BottleKit uses the
# committed ones (scripts/gen-swift-bindings.sh); both come from uniffi_bindgen
# 0.31.1 over the same library, and the Linux CI checks the committed ones are current.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CARGO_SWIFT_VERSION=0.11.1

[ "$(uname -s)" = Darwin ] || { echo "build-xcframework: needs macOS (cargo-swift drives Xcode's tools)" >&2; exit 1; }
if ! cargo swift --version 2>/dev/null | grep -q "$CARGO_SWIFT_VERSION"; then
  cargo install cargo-swift --version "=$CARGO_SWIFT_VERSION" --locked
fi
rustup target add aarch64-apple-darwin x86_64-apple-darwin




(
  cd ffi
  cargo swift package --platforms macos --name BottleFFIPackage --xcframework-name BottleFFIRust \
    --release --accept-all
  rm -rf "$REPO/swift/BottleFFIRust.xcframework"
  fw=$(find BottleFFIPackage -maxdepth 2 -name 'BottleFFIRust.xcframework' -type d | head -1)
  [ -n "$fw" ] || { echo "build-xcframework: cargo-swift produced no BottleFFIRust.xcframework" >&2; exit 1; }
  mv "$fw" "$REPO/swift/BottleFFIRust.xcframework"
  rm -rf BottleFFIPackage
)
echo "build-xcframework: wrote swift/BottleFFIRust.xcframework" >&2

if [ "${1:-}" = "--app" ]; then
  swift build -c release --product BottleApp
  app=swift/build/bottle.app
  rm -rf "$app" && mkdir -p "$app/Contents/MacOS"
  cp "$(swift build -c release --show-bin-path)/BottleApp" "$app/Contents/MacOS/BottleApp"
  cp macos-app/Info.plist "$app/Contents/Info.plist"
  # What runs inside bottles is Linux, built for the engine's VM (arm64 on Apple silicon,
  # amd64 on Intel; BOTTLE_APP_ARCHES overrides), not for this Mac.
  . scripts/lib/linux-binaries.sh
  case "$(uname -m)" in arm64) default_arches=arm64 ;; *) default_arches=amd64 ;; esac
  # shellcheck disable=SC2086
  put_linux_binaries "$app/Contents/Resources" ${BOTTLE_APP_ARCHES:-$default_arches}
  codesign --force --sign - "$app"
  echo "build-xcframework: wrote $app (open it with: open $app)" >&2
fi
