//! The engine decides what runs in a bottle: `up` against an engine that says it runs
//! linux/arm64 refuses the amd64 binaries at hand before it makes anything, and the
//! arm64 cross build says why it cannot run here. Also: the engine is found through a
//! docker context, as the `docker` CLI finds it.
//!
//! The arm64 engine is a TEST DOUBLE: these machines have no arm64 engine. It is a
//! unix socket that answers `/version` (and `/_ping`) with the fields Docker's API
//! documents for that call, and 404 `{"message":"page not found"}` (what dockerd answers
//! for an unknown path) to anything else; it records every request so the test can see
//! that nothing was created.

#[path = "../support/skip.rs"]
mod skip;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The /version body of a Docker 27 engine on Apple silicon (field names from the Engine API).
const ARM64_VERSION: &str = r#"{"Platform":{"Name":"Docker Engine - Community"},"Version":"27.3.1","ApiVersion":"1.47","MinAPIVersion":"1.24","GitCommit":"41ca978","GoVersion":"go1.22.7","Os":"linux","Arch":"arm64","KernelVersion":"6.10.14-linuxkit","BuildTime":"2024-09-20T11:41:19.000000000+00:00"}"#;

/// Serves the double on `sock` until the runtime ends; returns the request lines it saw.
fn fake_engine(rt: &tokio::runtime::Runtime, sock: &Path) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(sock).unwrap()
    };
    let log = seen.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    let _ = r.read_exact(&mut body).await;
                    log.lock().unwrap().push(line.trim().to_string());
                    let path = line.split_whitespace().nth(1).unwrap_or("").split('?').next().unwrap_or("");
                    let (status, body) = if path.ends_with("/version") {
                        ("200 OK", ARM64_VERSION)
                    } else if path.ends_with("/_ping") {
                        ("200 OK", "OK")
                    } else {
                        ("404 Not Found", r#"{"message":"page not found"}"#)
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nApi-Version: 1.47\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if r.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    seen
}

fn up(dir: &Path, envs: &[(&str, &str)]) -> Output {
    std::fs::write(dir.join("bottle.toml"), "name = \"h13-arch\"\nworkspace = \".\"\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bottle-core"));
    cmd.args(["up", "-f", "bottle.toml"]).current_dir(dir).env_remove("CLAUDE_BOTTLE_BACKEND");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn an_arm64_engine_refuses_the_amd64_binaries_before_making_anything() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let seen = fake_engine(&rt, &sock);
    // The amd64 binary at hand: this very bottle-core, an x86_64 ELF like the static bundle.
    let amd64 = env!("CARGO_BIN_EXE_bottle-core");
    if !cfg!(target_arch = "x86_64") {
        skip::skipped("the test's own build stands in for the amd64 binary, and this build is not amd64");
        return;
    }
    let host = format!("unix://{}", sock.display());
    let run = dir.path().join("run");
    let out = up(
        dir.path(),
        &[
            ("DOCKER_HOST", &host),
            ("BOTTLE_BUNDLE_BIN", amd64),
            ("BOTTLE_PROBE_BIN", amd64),
            ("BOTTLE_RUN_DIR", run.to_str().unwrap()),
        ],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("the engine runs linux/arm64") && err.contains("built for linux/amd64"), "{err}");
    assert!(err.contains("linux-arm64"), "says which binaries to install: {err}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|l| l.contains("/version")), "asked the engine: {seen:?}");
    assert!(seen.iter().all(|l| l.starts_with("GET") || l.starts_with("HEAD")), "nothing was made: {seen:?}");
    assert!(!run.join("bottle-h13-arch.lock").exists(), "refused before taking the name's lock");
}

#[test]
fn the_arm64_cross_build_fails_with_its_reason_on_a_machine_without_that_std() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-static.sh");
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let have = installed.map(|o| text(&o.stdout).lines().any(|l| l == "aarch64-unknown-linux-gnu")).unwrap_or(false);
    if have {
        skip::skipped("aarch64-unknown-linux-gnu is installed here, so the cross build could run");
        return;
    }
    let out = Command::new("bash").arg(script).args(["--arch", "arm64"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("aarch64-unknown-linux-gnu is not installed") && err.contains("rustup target add"), "{err}");
}

/// The engine found through `~/.docker` the way the docker CLI finds it: a context whose
/// endpoint is a second socket path (a symlink to the real engine's socket).
#[test]
fn doctor_follows_the_current_docker_context_to_a_second_socket() {
    let real = Path::new("/var/run/docker.sock");
    if !real.exists() {
        skip::skipped(format_args!("no engine socket at {} here", real.display()));
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let second = home.path().join("engine-elsewhere.sock");
    std::os::unix::fs::symlink(real, &second).unwrap();
    let name = "h13-test-context";
    let docker = home.path().join(".docker");
    std::fs::write(docker_config(&docker), format!(r#"{{"currentContext":"{name}"}}"#)).unwrap();
    let digest = sha256_hex(name);
    let meta = docker.join("contexts/meta").join(digest);
    std::fs::create_dir_all(&meta).unwrap();
    let host = format!("unix://{}", second.display());
    std::fs::write(
        meta.join("meta.json"),
        format!(r#"{{"Name":"{name}","Metadata":{{"Description":"test"}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
    )
    .unwrap();
    let doctor = || {
        Command::new(env!("CARGO_BIN_EXE_bottle-core"))
            .args(["--json", "doctor"])
            .env("HOME", home.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_CONFIG")
            .env_remove("CLAUDE_BOTTLE_BACKEND")
            .output()
            .unwrap()
    };
    let out = doctor();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    let engine = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "engine").unwrap().clone();
    assert_eq!(engine["ok"], true, "{engine}");
    let detail = engine["detail"].as_str().unwrap();
    assert!(detail.contains(&host) && detail.contains(name), "{detail}");
    // With the context's socket gone, doctor names it and says what to do.
    std::fs::remove_file(&second).unwrap();
    let out = doctor();
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&second.display().to_string()) && err.contains("does not exist"), "{err}");
}

fn docker_config(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    dir.join("config.json")
}

fn sha256_hex(s: &str) -> String {
    let out =
        Command::new("sha256sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn();
    let mut child = out.unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    text(&out.stdout).split_whitespace().next().unwrap().to_string()
}
