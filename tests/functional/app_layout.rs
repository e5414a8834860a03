//! The `.app` layout `scripts/build-xcframework.sh --app` gives the Linux binaries, checked
//! on Linux as far as it runs here: the script's resources step (scripts/lib/linux-binaries.sh)
//! for this machine's arch (amd64; arm64 cannot be built here, see scripts/build-static.sh).
//! The lookup from `Contents/MacOS/<app>` to these folders is unit-tested in
//! `images::static_bin`; the Xcode steps before it need a Mac.

use std::path::Path;
use std::process::Command;

#[test]
fn the_app_resources_hold_static_linux_binaries_per_arch() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let app = tempfile::tempdir().unwrap();
    let app = app.path().join("bottle.app");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#". scripts/lib/linux-binaries.sh && put_linux_binaries "$1/Contents/Resources" amd64"#)
        .arg("linux-binaries")
        .arg(&app)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for bin in ["bottle-bundle", "bottle-probe"] {
        let path = app.join("Contents/Resources/linux-amd64").join(bin);
        let head = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let engine = bottle_core::images::Platform { os: "linux".into(), arch: "amd64".into() };
        bottle_core::images::check_binary(&path, &engine).unwrap();
        // Static: no program interpreter (PT_INTERP), so it runs in a FROM scratch image or any VM.
        assert!(!has_interpreter(&head), "{bin} needs a dynamic loader");
    }
}

/// Whether a 64-bit little-endian ELF has a PT_INTERP program header.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(54), u16_at(56));
    (0..count).any(|i| u32::from_le_bytes(elf[phoff + i * size..][..4].try_into().unwrap()) == 3)
}
