# Sourced by scripts/package.sh, scripts/build-xcframework.sh --app and tests/functional/app_layout.rs.
# put_linux_binaries DIR ARCH...: builds bottle-bundle and bottle-probe for each Linux engine
# ARCH (scripts/build-static.sh) and installs them in DIR/linux-ARCH/. bottle-core looks for
# them there relative to its own executable (core/src/images/static_bin.rs): the tarball's
# lib/bottle/ beside bin/, the app's Contents/Resources/ beside Contents/MacOS/.
put_linux_binaries() {
  local dir=$1; shift
  local arch built bin
  for arch in "$@"; do
    built=$(scripts/build-static.sh --arch "$arch")
    mkdir -p "$dir/linux-$arch"
    for bin in bottle-bundle bottle-probe; do
      install -m 0755 "$built/$bin" "$dir/linux-$arch/$bin"
    done
  done
}
