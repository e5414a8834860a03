//! The engine's platform decides what runs in a bottle, not the host's.
//!
//! On a Mac the engine is a Linux VM (linux/arm64 on Apple silicon), so a
//! binary built for the host cannot run there. bottle asks the engine for its
//! OS and architecture and refuses a static binary built for anything else,
//! naming both, before it makes any image.

use std::path::Path;

use anyhow::Context;
use bollard::Docker;

/// An engine platform in Docker's names (`linux`, `amd64` / `arm64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

impl Platform {
    /// The folder name release binaries for this platform live in (`linux-arm64`).
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }

    /// The Rust target bottle's static binaries are built for on this platform.
    pub fn rust_target(&self) -> anyhow::Result<&'static str> {
        match (self.os.as_str(), self.arch.as_str()) {
            ("linux", "amd64") => Ok("x86_64-unknown-linux-gnu"),
            ("linux", "arm64") => Ok("aarch64-unknown-linux-gnu"),
            _ => anyhow::bail!("engine platform {self}: bottle ships binaries for linux/amd64 and linux/arm64 only"),
        }
    }
}

static ENGINE_PLATFORM: tokio::sync::OnceCell<Platform> = tokio::sync::OnceCell::const_new();

/// The platform of the engine this process talks to, asked once (`/version`).
pub async fn engine_platform(docker: &Docker) -> anyhow::Result<Platform> {
    ENGINE_PLATFORM
        .get_or_try_init(|| async {
            let v = docker.version().await.context("docker: asking the engine for its platform (/version)")?;
            let (os, arch) = (v.os.unwrap_or_default(), v.arch.unwrap_or_default());
            if os.is_empty() || arch.is_empty() {
                anyhow::bail!("docker: the engine's /version names no Os/Arch");
            }
            Ok(Platform { os, arch: normalize_arch(&arch) })
        })
        .await
        .cloned()
}

/// The engine platform when no engine handle is at hand (connecting once if nothing asked yet).
pub async fn current_platform() -> anyhow::Result<Platform> {
    if let Some(p) = ENGINE_PLATFORM.get() {
        return Ok(p.clone());
    }
    engine_platform(&crate::engine::connect().await?).await
}

/// Docker reports Go's names; some engines report the kernel's.
fn normalize_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

/// What an executable's header says it is built for, in the same names (`linux/amd64`, `macos`).
fn binary_platform(head: &[u8]) -> String {
    match head {
        [0x7f, b'E', b'L', b'F', class, data, ..] if head.len() >= 20 => {
            let machine = if *data == 1 {
                u16::from_le_bytes([head[18], head[19]])
            } else {
                u16::from_be_bytes([head[18], head[19]])
            };
            let arch = match (class, machine) {
                (2, 0x3e) => "amd64",
                (2, 0xb7) => "arm64",
                (1, 0x03) => "386",
                (1, 0x28) => "arm",
                _ => "unknown architecture",
            };
            format!("linux/{arch}")
        }
        [0xcf, 0xfa, 0xed, 0xfe, ..] | [0xca, 0xfe, 0xba, 0xbe, ..] => "macos (Mach-O)".into(),
        _ => "not an executable bottle knows".into(),
    }
}

/// Refuses `binary` unless it is built for `engine`, naming both and what to install.
pub fn check_binary(binary: &Path, engine: &Platform) -> anyhow::Result<()> {
    let mut head = [0u8; 20];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(binary).with_context(|| format!("image: opening {}", binary.display()))?;
        f.read(&mut head).with_context(|| format!("image: reading {}", binary.display()))?
    };
    let built_for = binary_platform(&head[..n]);
    if built_for != engine.to_string() {
        anyhow::bail!(
            "image: the engine runs {engine}, but {} is built for {built_for}; install bottle's {} binaries (the release tarball's lib/bottle/{}/) or point {} at ones built for {engine}",
            binary.display(),
            engine.dir_name(),
            engine.dir_name(),
            super::BUNDLE_BIN_ENV,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, 1];
        h.resize(18, 0);
        h.extend(machine.to_le_bytes());
        h
    }

    #[test]
    fn headers_name_their_platform() {
        assert_eq!(binary_platform(&elf(2, 0x3e)), "linux/amd64");
        assert_eq!(binary_platform(&elf(2, 0xb7)), "linux/arm64");
        assert_eq!(binary_platform(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]), "macos (Mach-O)");
        assert_eq!(binary_platform(b"#!/bin/sh\n"), "not an executable bottle knows");
    }

    #[test]
    fn a_mismatch_names_both_platforms_and_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bottle-bundle");
        std::fs::write(&bin, elf(2, 0x3e)).unwrap();
        let arm = Platform { os: "linux".into(), arch: "arm64".into() };
        let e = check_binary(&bin, &arm).unwrap_err().to_string();
        assert!(e.contains("linux/arm64") && e.contains("linux/amd64") && e.contains("linux-arm64"), "{e}");
        check_binary(&bin, &Platform { os: "linux".into(), arch: "amd64".into() }).unwrap();
    }

    #[test]
    fn kernel_arch_names_become_docker_names() {
        assert_eq!(normalize_arch("aarch64"), "arm64");
        assert_eq!(normalize_arch("amd64"), "amd64");
    }
}
