//! The sandbox-escape suite against a real engine: the full suite passes on a
//! normal bottle, a deliberately broken boundary is caught and named, `--only`
//! picks categories, and the JSON report has its documented shape.
//!
//! Each test prepares its own suite (canaries, a throwaway bottle and its
//! neighbour) and removes everything after, also when it panics.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;

use bottle_core::backend::BackendKind;
use bottle_core::sidecar::labels;
use bottle_core::spec::Spec;
use bottle_core::verify::{Category, Outcome, Suite, VERIFY_LABEL};
use support::{Print, engine};

/// The suite's throwaway bottle; its name is unique to this test and process.
fn spec(test: &str) -> (Spec, tempfile::TempDir) {
    support::spec(&support::unique(test))
}

/// Removes a run's canaries and bottles even when the test panicked half-way.
struct Cleanup {
    run: String,
    bottles: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut filters = vec![format!("label={VERIFY_LABEL}={}", self.run)];
        filters.extend(self.bottles.iter().map(|b| format!("label={}={b}", labels::NAME)));
        support::remove_labelled(&filters);
    }
}

fn cleanup(s: &Suite) -> Cleanup {
    Cleanup { run: s.run_id().to_string(), bottles: s.made_bottles() }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_full_suite_passes_on_a_normal_bottle_and_only_picks_categories() {
    if !engine().await {
        return;
    }
    let (spec, _ws) = spec("vfull");
    let suite = Suite::prepare(BackendKind::Docker, &spec, &[], &Print("full")).await.unwrap();
    let _cleanup = cleanup(&suite);

    // --only: exactly the chosen categories, in suite order.
    let some = suite.run(&[Category::Privileges, Category::EgressPort], &Print("full")).await;
    assert_eq!(some.categories, [Category::EgressPort, Category::Privileges]);
    assert!(some.findings.iter().all(|f| some.categories.contains(&f.category)), "{}", some.table());

    let report = suite.run(&[], &Print("full")).await;
    eprintln!("{}", report.table());
    assert!(report.ok(), "the suite fails on a normal bottle:\n{}", report.table());
    for c in Category::ALL {
        assert!(
            report.findings.iter().any(|f| f.category == c && f.verdict == Outcome::Pass),
            "{c:?} proved nothing:\n{}",
            report.table()
        );
    }
    // On a bottle the suite made, every probe runs: a not-run here would hide a gap.
    let not_run: Vec<&str> =
        report.findings.iter().filter(|f| f.verdict == Outcome::NotRun).map(|f| f.probe.as_str()).collect();
    assert!(not_run.iter().all(|p| p.starts_with("metadata") || p.starts_with("resolv.conf")), "{not_run:?}");
    let push = report.findings.iter().find(|f| f.probe == "push to protected branch main").unwrap();
    assert!(push.observation.contains("main is protected"), "{push:?}");

    // The --json shape.
    let json = serde_json::to_value(&report).unwrap();
    for key in ["bottle", "backend", "categories", "passed", "failed", "not_run", "elapsed_ms", "findings"] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    let f = &json["findings"][0];
    assert_eq!(f["category"], "direct");
    for key in ["probe", "expectation", "observation", "verdict"] {
        assert!(f[key].is_string(), "finding lacks {key}: {f}");
    }
    suite.finish(&Print("full")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bottle_joined_to_the_outside_network_is_caught_and_named() {
    if !engine().await {
        return;
    }
    let (spec, _ws) = spec("vbroken");
    let only = [Category::Direct, Category::Hosts];
    let suite = Suite::prepare(BackendKind::Docker, &spec, &only, &Print("broken")).await.unwrap();
    let _cleanup = cleanup(&suite);
    let intact = suite.run(&only, &Print("broken")).await;
    assert!(intact.ok(), "{}", intact.table());

    // Break the boundary the way a misconfigured backend would: a second, direct network.
    let agent = labels::object_name(suite.bottle(), labels::ROLE_AGENT);
    let out = std::process::Command::new("docker")
        .args(["network", "connect", suite.outside_network(), &agent])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let report = suite.run(&only, &Print("broken")).await;
    eprintln!("{}", report.table());
    assert!(!report.ok(), "the broken boundary went unnoticed:\n{}", report.table());
    let failed: Vec<&str> =
        report.findings.iter().filter(|f| f.verdict == Outcome::Fail).map(|f| f.probe.as_str()).collect();
    assert!(failed.iter().any(|p| p.starts_with("tcp ") && p.ends_with(":22")), "{failed:?}");
    assert!(failed.contains(&"outside canary log"), "the canary saw the contact: {failed:?}");
    assert!(failed.iter().any(|p| p.starts_with("rfc1918 canary")), "{failed:?}");
    // The outside network is dual-stack: the new path is caught over IPv6 too.
    assert!(failed.iter().any(|p| p.starts_with("ipv6 ULA canary")), "{failed:?}");
    assert!(report.table().contains("FAIL"));

    suite.finish(&Print("broken")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_on_a_running_bottle_with_a_host_route_exits_5_with_a_json_report() {
    if !engine().await {
        return;
    }
    use bottle_core::backend::BottleBackend;
    use bottle_core::docker::{DockerBackend, DockerOptions};
    let (spec, _ws) = spec("vcli");
    let b = DockerBackend::connect(DockerOptions { start_check: false, ..Default::default() }).await.unwrap();
    let network = format!("bottle-0verify-{}-hostroute", spec.name);
    // Dropped in reverse: the bottle's containers go first, then the network they were joined to.
    let _net = NetCleanup(network.clone());
    let _cleanup = Cleanup { run: format!("{}-none", spec.name), bottles: vec![spec.name.clone()] };
    b.up(&spec, &Print("cli")).await.unwrap();
    // A misconfigured backend: the agent also on an ordinary bridge, whose gateway is the host.
    let agent = labels::object_name(&spec.name, labels::ROLE_AGENT);
    for args in
        [&["network", "create", network.as_str()][..], &["network", "connect", network.as_str(), agent.as_str()]]
    {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bottle-core"))
        .args(["verify", &spec.name, "--only", "hosts,privileges", "--json"])
        .env_remove("CLAUDE_BOTTLE_BACKEND")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("probe(s) failed"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["bottle"], spec.name.as_str());
    assert_eq!(json["categories"], serde_json::json!(["hosts", "privileges"]));
    let failed: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .map(|f| f["probe"].as_str().unwrap())
        .collect();
    assert!(failed.iter().any(|p| p.starts_with("host address")), "{failed:?}");
    assert!(failed.iter().all(|p| !p.starts_with("docker socket")), "privileges still hold: {failed:?}");
    b.down(&spec.name, &Print("cli")).await.unwrap();
}

/// Removes a network the test made itself.
struct NetCleanup(String);

impl Drop for NetCleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["network", "rm", &self.0]).output();
    }
}
