//! Shared by the smolvm test files: a per-test instance of the smolvm test
//! double (core/tests/doubles/smolvm) with its own state, log and version.
//!
//! Each instance is a wrapper named `smolvm` that sets the double's
//! environment and execs it, so tests never touch the process environment and
//! can run in parallel.

#![allow(dead_code)] // each test file uses a different part of this module

use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub struct Double {
    pub dir: TempDir,
    pub bin: PathBuf,
    pub log: PathBuf,
    pub state: PathBuf,
}

pub fn double_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/smolvm")
}

impl Double {
    pub fn new(version: &str) -> Self {
        Self::with_policy(version, "enforce")
    }

    /// `policy = "ignore"` makes the simulated network let everything through.
    pub fn with_policy(version: &str, policy: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin_dir = dir.path().join("bin");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let log = dir.path().join("argv.jsonl");
        let bin = bin_dir.join("smolvm");
        let script = format!(
            "#!/bin/sh\nexport SMOLVM_DOUBLE_VERSION='{version}' SMOLVM_DOUBLE_STATE='{}' \
             SMOLVM_DOUBLE_LOG='{}' SMOLVM_DOUBLE_POLICY='{policy}'\nexec python3 '{}' \"$@\"\n",
            state.display(),
            log.display(),
            double_script().display()
        );
        write_executable(&bin, &script);
        Self { dir, bin, log, state }
    }

    /// Every argv the double received, in order (without the program name).
    pub fn calls(&self) -> Vec<Vec<String>> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
            })
            .collect()
    }

    /// The calls after the version probe, as space-joined strings.
    pub fn machine_calls(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| c.first().is_some_and(|w| w == "machine")).map(|c| c.join(" ")).collect()
    }
}

/// Writes an executable script at `p` without ever holding it open for writing in
/// this process: tests run on threads, and a child another thread forks meanwhile
/// would inherit that descriptor until its exec, making an exec of `p` fail with
/// ETXTBSY ("Text file busy"). So `install` (a child of its own) writes it.
pub fn write_executable(p: &Path, text: &str) {
    let source = p.with_extension("src");
    std::fs::write(&source, text).unwrap();
    let out = std::process::Command::new("install").arg("-m").arg("0755").arg(&source).arg(p).output().unwrap();
    assert!(out.status.success(), "install {}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
}
