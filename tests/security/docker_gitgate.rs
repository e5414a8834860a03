//! git-gate as an agent uses it: the agent image's own `git`, inside a real Docker bottle,
//! through the bundle image's git-gate, to a real `git http-backend` upstream in a
//! container of the test's own. Clone, commit, push a new branch, push a fast-forward
//! (which needs the gate to spool the pack in the bundle's `/tmp`), then the refusals:
//! a force push, a push to a protected branch and a tag overwrite. The same flow runs with
//! the gate's upstream over plain HTTP and over HTTPS, verified against a test CA.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;
#[path = "../support/tls/mod.rs"]
mod tls_support;

use std::collections::BTreeMap;

use bottle_core::backend::BottleBackend;
use bottle_core::docker::{DockerBackend, DockerOptions};
use bottle_core::sidecar::{SidecarOptions, labels};
use bottle_core::spec::{GitSpec, RepoSpec, SecretSource};
use support::{Print, docker, unique};

const CANARY_LABEL: &str = "dev.bottle.test-canary";
const CREDENTIAL: &str = "x-access-token:h11-upstream-token";

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let n = &self.0;
        support::remove_labelled(&[format!("label={}={n}", labels::NAME), format!("label={CANARY_LABEL}={n}")]);
    }
}

/// A git smart-HTTP upstream (`upstream.py` over `git http-backend`) on an internal network
/// of its own, holding `repo.git` with one commit on `main`; over HTTPS on 443 when `tls`
/// holds the certificate and key for `allowed.test` (`cert.pem`, `key.pem`). Returns (network, ip).
async fn upstream(b: &DockerBackend, name: &str, tls: Option<&std::path::Path>) -> (String, String) {
    let image = bottle_core::images::ensure_agent_image(b.docker(), &Print("upstream")).await.unwrap();
    let label = format!("{CANARY_LABEL}={name}");
    let support = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/gitgate");
    let serve = match tls {
        Some(_) => "--port 443 --tls-cert /certs/cert.pem --tls-key /certs/key.pem",
        None => "--port 80",
    };
    let script = format!(
        "set -e; git init -q --bare -b main /tmp/srv/repo.git; d=$(mktemp -d); git -C $d init -q -b main; \
         git -C $d -c user.name=t -c user.email=t@t.invalid commit -q --allow-empty -m seed; \
         git -C $d push -q /tmp/srv/repo.git main; \
         exec python3 /up/upstream.py --host 0.0.0.0 {serve} --root /tmp/srv --credential {CREDENTIAL}"
    );
    let mut mounts = vec!["-v".to_string(), format!("{support}:/up:ro")];
    if let Some(dir) = tls {
        mounts.extend(["-v".to_string(), format!("{}:/certs:ro", dir.display())]);
    }
    let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
    let (network, _, ip) = support::canary_container(name, &label, &image, &mounts, &["sh", "-c", &script]);
    (network, ip)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_git_clones_pushes_fast_forwards_and_is_refused_where_the_rules_say() {
    workflow("gitflow", false).await;
}

/// The gate dials the upstream over real TLS, trusting only the public roots and the test's
/// CA (handed to the bundle as `canary_ca`): nothing else changes for the agent.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_workflow_holds_with_an_https_upstream() {
    workflow("gitflow-tls", true).await;
}

async fn workflow(test: &str, tls: bool) {
    if !support::engine().await {
        return;
    }
    let name = unique(test);
    let _cleanup = Cleanup(name.clone());
    let certs = tempfile::tempdir().unwrap();
    // The upstream container reads the key as whichever user its image runs as.
    std::fs::set_permissions(certs.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ca = tls.then(|| tls_support::local_ca(certs.path(), &["allowed.test"]).0);
    let probe = DockerBackend::connect(DockerOptions { start_check: false, ..Default::default() }).await.unwrap();
    let (network, ip) = upstream(&probe, &name, tls.then_some(certs.path())).await;
    let options = DockerOptions {
        sidecar: SidecarOptions {
            canary_hosts: BTreeMap::from([("allowed.test".into(), vec![ip.clone()])]),
            canary_cidrs: vec![format!("{ip}/32")],
            canary_networks: vec![network],
            canary_url: None,
            canary_ca: ca,
        },
        start_check: false,
    };
    let b = DockerBackend::connect(options).await.unwrap();
    let url = format!("{}://allowed.test/repo.git", if tls { "https" } else { "http" });
    let (mut spec, _ws) = support::spec(&name);
    let creds = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(creds.path(), format!("repo = \"{CREDENTIAL}\"\n")).unwrap();
    spec.git = GitSpec {
        credentials: Some(SecretSource::File(creds.path().into())),
        repos: vec![RepoSpec {
            alias: "repo".into(),
            upstream: url.clone(),
            fetch: true,
            push: vec!["agent/*".into(), "main".into()],
            protected: vec!["main".into()],
            tags: true,
            push_options: vec![],
        }],
    };
    b.up(&spec, &Print(name.clone())).await.unwrap();

    // Each step prints a marker and git's output, and stops at the first unexpected result.
    let script = r#"
        set -u; url="$1"; cd "$(mktemp -d)"
        g() { git -c user.name=a -c user.email=a@a.invalid "$@"; }
        step() { echo "== $1"; shift; "$@" 2>&1; echo "rc=$?"; }
        step clone git clone -q "$url" r; cd r || exit 1
        g commit -q --allow-empty -m one
        step new-branch git push origin HEAD:refs/heads/agent/work
        g commit -q --allow-empty -m two
        step fast-forward git push origin HEAD:refs/heads/agent/work
        step tag git push origin HEAD:refs/tags/v1
        g reset -q --hard HEAD~2; g commit -q --allow-empty -m rewritten
        step force git push --force origin HEAD:refs/heads/agent/work
        step protected git push origin HEAD:refs/heads/main
        step tag-overwrite git push --force origin HEAD:refs/tags/v1
    "#;
    let out = b.exec(&name, &["sh".into(), "-c".into(), script.into(), "flow".into(), url.clone()]).await.unwrap();
    let text = format!("{}{}", out.stdout, out.stderr);
    let step = |s: &str| -> String {
        let from = text.find(&format!("== {s}\n")).unwrap_or_else(|| panic!("no step {s} in:\n{text}"));
        let rest = &text[from + s.len() + 4..];
        rest[..rest.find("== ").unwrap_or(rest.len())].to_string()
    };
    assert!(step("clone").contains("rc=0"), "clone:\n{text}");
    assert!(step("new-branch").contains("rc=0"), "new branch:\n{text}");
    assert!(step("fast-forward").contains("rc=0"), "fast-forward (the spool 500 before the fix):\n{text}");
    assert!(step("tag").contains("rc=0"), "tag create:\n{text}");
    for refused in ["force", "protected", "tag-overwrite"] {
        let s = step(refused);
        assert!(!s.contains("rc=0") && s.contains("rejected"), "{refused} must be refused by the gate:\n{text}");
    }
    // The upstream's own view: the branch is at the fast-forward, main untouched, v1 unmoved.
    let origin = format!("bottle-0canary-{name}-origin");
    let refs =
        docker(&["exec", &origin, "git", "-C", "/tmp/srv/repo.git", "for-each-ref", "--format=%(refname) %(subject)"]);
    let subject =
        |r: &str| refs.lines().find(|l| l.starts_with(&format!("{r} "))).map(|l| l[r.len() + 1..].to_string());
    assert_eq!(subject("refs/heads/agent/work").as_deref(), Some("two"), "{refs}");
    assert_eq!(subject("refs/heads/main").as_deref(), Some("seed"), "{refs}");
    assert_eq!(subject("refs/tags/v1").as_deref(), Some("two"), "{refs}");
    b.down(&name, &Print(name.clone())).await.unwrap();
}
