# Sourced by scripts/build-xcframework.sh --app (and by core/tests/app_layout.rs on Linux).
# app_put_linux_binaries APP ARCH...: builds bottle-bundle and bottle-probe for each Linux
# engine ARCH (scripts/build-static.sh) and puts them in APP/Contents/Resources/linux-ARCH/,
# where bottle-core, running inside APP/Contents/MacOS/BottleApp, looks for them
# (core/src/images/static_bin.rs: <exe>/../Resources/<os>-<arch>/). A Mac on Apple silicon
# runs its engine as linux/arm64, an Intel Mac as linux/amd64.
app_put_linux_binaries() {
  local app=$1; shift
  local arch built bin
  for arch in "$@"; do
    built=$(scripts/build-static.sh --arch "$arch")
    mkdir -p "$app/Contents/Resources/linux-$arch"
    for bin in bottle-bundle bottle-probe; do
      install -m 0755 "$built/$bin" "$app/Contents/Resources/linux-$arch/$bin"
    done
  done
}
