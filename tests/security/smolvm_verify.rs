//! The escape suite on the smolmachines backend, as a user runs it:
//! `CLAUDE_BOTTLE_BACKEND=smolmachines bottle-core verify -f bottle.toml`, with
//! `BOTTLE_SMOLVM` pointing at the smolvm double (tests/doubles/smolvm).
//! The bundle and the canaries are real (Docker, host processes, a metadata
//! namespace); only the VMM is stood in for, and its "guest" is a real network
//! namespace, so every probe's packets meet a real policy.
//!
//! `privileges` is left out: the double runs guest commands on the host's
//! filesystem as root (it has no guest kernel), so what those probes see there
//! is the test machine, not a VM.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;
#[path = "../support/docker/mod.rs"]
mod support;

use std::process::Output;

use smolvm_support::{Double, import_image, root_or_skip};
use support::engine;

/// Every category the double can stand in for (see the module docs for `privileges`).
const ONLY: &str = "direct,hosts,dns,egress-port,proxy,dlp,git,fail-closed";

/// Whether this machine has what the double's guest network needs, printing why not.
fn tools_or_skip() -> bool {
    if !root_or_skip() {
        return false;
    }
    for tool in ["ip", "iptables"] {
        let found = std::process::Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success());
        if !found {
            skip::skipped(format_args!("the smolvm double's guest network needs `{tool}`, which is not installed"));
            return false;
        }
    }
    true
}

/// Removes the test's agent image and whatever its bottles and canaries left behind.
struct Cleanup {
    bottle: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        support::remove_labelled(&[format!("label={}={}", bottle_core::sidecar::labels::NAME, self.bottle)]);
        let _ = std::process::Command::new("docker").args(["rmi", "-f", &self.image]).output();
    }
}

/// Runs `bottle-core verify -f bottle.toml --json --only ONLY` on the smolmachines backend,
/// with a double whose policy also lets `leak` through, and an agent image of the test's own.
async fn verify(test: &str, leak: &str, only: &str) -> Output {
    let name = format!("sv{}{test}", std::process::id());
    let image = format!("bottle-smolverify-test:{name}");
    import_image(&image, None);
    let _cleanup = Cleanup { bottle: name.clone(), image: image.clone() };
    let d = Double::leaking("1.9.3", leak);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workspace")).unwrap();
    let spec = format!(
        "name = \"{name}\"\nimage = \"{image}\"\nworkspace = \"./workspace\"\n\n[egress]\nallow = [\"allowed.test\"]\n\n\
         [resources]\ncpus = 1\nmemory = \"512M\"\npids = 128\n"
    );
    std::fs::write(dir.path().join("bottle.toml"), spec).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(["verify", "-f", "bottle.toml", "--json", "--only", only])
        .current_dir(dir.path())
        .env("CLAUDE_BOTTLE_BACKEND", "smolmachines")
        .env("BOTTLE_SMOLVM", &d.bin)
        .output()
        .await
        .unwrap()
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON report ({e}); stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    })
}

fn with_verdict<'a>(json: &'a serde_json::Value, verdict: &str) -> Vec<&'a serde_json::Value> {
    json["findings"].as_array().unwrap().iter().filter(|f| f["verdict"] == verdict).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_the_double_through_the_backend() {
    if !tools_or_skip() || !engine().await {
        return;
    }
    let out = verify("a", "", ONLY).await;
    let json = report(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = with_verdict(&json, "fail");
    // The double has no guest filesystem: its "guest" reads the host's, where the suite keeps the
    // planted credential. So the one probe that searches files may fail here (whether it gets to
    // the suite's temp dir within its search bounds varies); nothing else may.
    let file_search = "credential in env, files, process list";
    let others: Vec<_> = failed.iter().filter(|f| f["probe"] != file_search).collect();
    assert!(others.is_empty(), "failed on the double: {others:#?}\nstderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(if failed.is_empty() { 0 } else { 5 }), "{stderr}");
    assert_eq!(json["backend"], "smolmachines");
    let categories: Vec<&str> = json["categories"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(categories.join(","), ONLY);
    let passed: Vec<&str> = with_verdict(&json, "pass").iter().map(|f| f["probe"].as_str().unwrap()).collect();
    for probe in ["host loopback via the agent's gateway", "egress-port bypass", "metadata", "smolvm gateway resolver"]
    {
        assert!(passed.iter().any(|p| p.starts_with(probe)), "{probe} did not pass: {passed:#?}\n{json:#}");
    }
    // The VM's blocked connects were refusals (smolvm's reset), judged with the host's witness.
    let direct = json["findings"].as_array().unwrap().iter().find(|f| f["probe"].as_str().unwrap().starts_with("tcp "));
    let direct = direct.expect("a direct tcp probe");
    assert!(direct["observation"].as_str().unwrap().starts_with("refused; the host reaches"), "{direct:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vmm_that_lets_the_metadata_address_through_fails_the_suite_and_is_named() {
    if !tools_or_skip() || !engine().await {
        return;
    }
    // The policy still passes the start check (its canary is the bundle's control plane),
    // but routes one of the suite's canaries through.
    let out = verify("b", "169.254.169.254/32", "hosts").await;
    let json = report(&out);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    let failed: Vec<String> =
        with_verdict(&json, "fail").iter().map(|f| format!("{}: {}", f["probe"], f["observation"])).collect();
    assert!(failed.iter().any(|f| f.starts_with("\"metadata 169.254.169.254:80\"")), "{failed:#?}");
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("\"host, outside and metadata canary logs\"") && f.contains("metadata tcp/80")),
        "the metadata canary logged the contact too: {failed:#?}"
    );
}
