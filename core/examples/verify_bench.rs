//! Benchmark of the escape suite and the start check (run by `bench/verify.sh`; not a test).
//!
//! Prints, as medians over `RUNS` runs, with an in-run baseline:
//! - the full suite's wall time (`Suite::run`, all categories; each run on a freshly
//!   prepared throwaway bottle, because fail-closed stops its bundle), and the
//!   prepare/teardown time around it;
//! - the start check on a running bottle (its three probes: proxy refusal, direct
//!   connect to the control plane, allowed canary);
//! - the baseline: a bare `exec true` round trip into the same agent.

#[path = "../../tests/support/skip.rs"]
mod skip;
#[path = "../../tests/support/docker/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bottle_core::backend::Progress;
use bottle_core::sidecar::{Placement, SidecarOptions, labels};
use bottle_core::spec::Resources;
use bottle_core::verify::Suite;

struct Quiet;

impl Progress for Quiet {
    fn step(&self, _message: &str) {}
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let checks: usize = std::env::var("CHECK_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(21);
    // The tests' spec, so the benchmark times the suite on the bottle the tests verify; with more room.
    let (mut spec, _ws) = support::spec(&format!("bench{}", std::process::id()));
    spec.resources = Resources { cpus: 1.0, memory_mib: 256, pids: 256 };

    // Start check and baseline, on a prepared suite's bottle (its bundle reaches the canary).
    let suite = Suite::prepare(bottle_core::backend::BackendKind::Docker, &spec, &[], &Quiet).await?;
    let b = suite.backend();
    let agent = labels::object_name(suite.bottle(), labels::ROLE_AGENT);
    let p = Placement::find(suite.docker(), bottle_core::backend::BackendKind::Docker, suite.bottle())
        .await?
        .expect("placement");
    let options: SidecarOptions = suite.sidecar().clone();
    let (mut check, mut base) = (Vec::new(), Vec::new());
    for _ in 0..checks {
        let t = Instant::now();
        b.exec(suite.bottle(), &["true".into()]).await?;
        base.push(t.elapsed());
        let t = Instant::now();
        let v = bottle_core::docker::start_check(suite.docker(), &agent, &p, &spec.allow, &options).await;
        check.push(t.elapsed());
        anyhow::ensure!(v.verdict == bottle_core::backend::Verdict::Verified, "start check: {}", v.detail);
    }
    suite.finish(&Quiet).await;
    println!("start check (3 probes, concurrent):                median {} over {checks}", ms(median(check)));
    println!("baseline exec `true` round trip:                    median {} over {checks}", ms(median(base)));

    if runs == 0 {
        return Ok(());
    }
    let (mut prep, mut full, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let suite = Suite::prepare(bottle_core::backend::BackendKind::Docker, &spec, &[], &Quiet).await?;
        prep.push(t.elapsed());
        let t = Instant::now();
        let report = suite.run(&[], &Quiet).await;
        full.push(t.elapsed());
        anyhow::ensure!(report.ok(), "suite failed:\n{}", report.table());
        let t = Instant::now();
        suite.finish(&Quiet).await;
        down.push(t.elapsed());
        eprintln!("run: {} probes, {} passed, {} not run", report.findings.len(), report.passed, report.not_run);
    }
    println!("full suite (all categories):                        median {} over {runs}", ms(median(full)));
    println!("  prepare (canaries + 2 bottles up):                median {}", ms(median(prep)));
    println!("  teardown:                                         median {}", ms(median(down)));
    Ok(())
}
