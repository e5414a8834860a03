//! bottle where its users are: the package from `scripts/package.sh`, unpacked into a
//! temporary prefix and run by a normal user in the docker group (made by this test),
//! with no cargo on PATH and a working folder outside the checkout. That user brings a
//! bottle up from a bottle.toml in an empty folder (verified), and `status`, `exec`,
//! `events`, `down` and `gc` each do their real job. `cargo` and `rustc` on the user's
//! PATH are tripwires: if `up` ran a compiler, the test fails.
//!
//! Before the user joins the docker group, `doctor` must say the socket is not open to them
//! and what to do.
//!
//! Needs root (to create the user) and a Docker engine; otherwise it skips and says why.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/docker/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

/// A normal user (the test adds it to the docker group), removed (with its home) when dropped.
struct User {
    name: String,
    home: PathBuf,
}

impl Drop for User {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("id").args(["-u", &self.name]).output() {
            let _ = std::fs::remove_dir_all(format!("/tmp/bottle-{}", text(&out.stdout).trim()));
        }
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A world-traversable folder under /tmp (test temp dirs are root-only).
fn open_dir(tag: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(tag).tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

impl User {
    fn create() -> Self {
        let name = format!("bh13u{}", std::process::id());
        let home = PathBuf::from(format!("/tmp/{name}-home"));
        sh(Command::new("useradd").args(["--create-home", "--home-dir"]).arg(&home).arg(&name));
        Self { name, home }
    }

    fn uid(&self) -> u32 {
        text(&sh(Command::new("id").args(["-u", &self.name])).stdout).trim().parse().unwrap()
    }

    /// Runs `bottle-core args` as this user in `cwd`, with only `path` on PATH.
    fn bottle(&self, core: &Path, path: &str, cwd: &Path, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("PATH={path}"))
            .arg(core)
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    }
}

/// Removes the bottle's objects even when the test panicked half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        support::remove_labelled(std::slice::from_ref(&self.0));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_normal_user_runs_the_installed_package_without_cargo() {
    if !bottle_core::paths::is_root() {
        skip::skipped("creating a test user needs root");
        return;
    }
    if !support::engine().await {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // The package, with this test's own bottle-core build (a release build would add minutes to CI).
    let dist = open_dir("bh13-dist");
    let out = sh(Command::new("bash")
        .arg(repo.join("scripts/package.sh"))
        .args(["--core-bin", env!("CARGO_BIN_EXE_bottle-core"), "--out"])
        .arg(dist.path()));
    let tarball = PathBuf::from(text(&out.stdout).trim());
    let name = tarball.file_name().unwrap().to_string_lossy().trim_end_matches(".tar.gz").to_string();
    assert!(name.starts_with("bottle-0.") && name.ends_with("-linux-amd64"), "{name}");

    let prefix = open_dir("bh13-prefix");
    sh(Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(prefix.path()));
    let root = prefix.path().join(&name);
    for f in
        ["bin/bottle-core", "lib/bottle/linux-amd64/bottle-bundle", "lib/bottle/linux-amd64/bottle-probe", "INSTALL"]
    {
        assert!(root.join(f).is_file(), "{f} missing from the package");
    }
    let core = root.join("bin/bottle-core");

    // The default agent image as root makes it on this registry-less engine (a no-op once made):
    // the user's `up` then finds it, as after an admin's first `up`.
    let engine = bottle_core::engine::connect().await.unwrap();
    bottle_core::images::ensure_agent_image(&engine, &support::Print("install")).await.unwrap();

    let user = User::create();
    // Tripwires: a compiler run by `up` leaves its name here.
    let trip = open_dir("bh13-trip");
    let ran = trip.path().join("ran");
    std::fs::set_permissions(trip.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for tool in ["cargo", "rustc"] {
        let shim = trip.path().join(tool);
        std::fs::write(&shim, format!("#!/bin/sh\necho {tool} \"$@\" >> {}\nexit 1\n", ran.display())).unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", trip.path().display());

    // An empty folder of the user's, outside the checkout, holding only bottle.toml.
    let cwd = user.home.join("project");
    std::fs::create_dir_all(&cwd).unwrap();
    let bottle = format!("bh13u{}", std::process::id());
    std::fs::write(cwd.join("bottle.toml"), format!("name = \"{bottle}\"\nworkspace = \".\"\n")).unwrap();
    sh(Command::new("chown").arg("-R").arg(format!("{0}:{0}", user.name)).arg(&user.home));
    let _cleanup = Cleanup(format!("label={}={bottle}", bottle_core::sidecar::labels::NAME));

    let run = |args: &[&str]| user.bottle(&core, &path, &cwd, args);
    // Not yet in the socket's group: doctor says so, and what to do.
    let doctor = run(&["--json", "doctor"]);
    let said = text(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(bottle_core::cli::Exit::EngineUnavailable as i32), "{said}");
    assert!(said.contains("may not open /var/run/docker.sock") && said.contains("usermod -aG docker"), "{said}");
    sh(Command::new("usermod").args(["-aG", "docker", &user.name]));
    let up = run(&["--json", "up", "-f", "bottle.toml"]);
    assert!(up.status.success(), "up as {}: {}", user.name, text(&up.stderr));
    let st: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(st["allowlist"]["verdict"], "verified", "{st}");
    assert!(!ran.exists(), "up ran a compiler: {}", std::fs::read_to_string(&ran).unwrap_or_default());
    // Per-user places: no XDG_RUNTIME_DIR here (no login session), so /tmp/bottle-<uid>; cache under ~/.cache.
    let uid = user.uid();
    assert!(Path::new(&format!("/tmp/bottle-{uid}/bottle-{bottle}.lock")).exists(), "lock in the user's run dir");
    assert!(user.home.join(".cache/bottle/probe").is_dir(), "probe copy in the user's cache");

    let st = run(&["--json", "status", &bottle]);
    assert!(st.status.success(), "{}", text(&st.stderr));
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["state"], "running", "{st}");

    let ex = run(&[
        "exec",
        &bottle,
        "--",
        "sh",
        "-c",
        "id -u; curl -s -o /dev/null -w '%{http_code}' http://h13-denied.invalid/",
    ]);
    assert!(ex.status.success(), "{}", text(&ex.stderr));
    // The agent runs as the workspace's owner (here the test user), then the proxy refuses.
    assert_eq!(text(&ex.stdout), format!("{uid}\n403"), "agent uid, then the proxy's refusal");

    let ev = run(&["--json", "events", &bottle]);
    assert!(ev.status.success(), "{}", text(&ev.stderr));
    assert!(text(&ev.stdout).contains("h13-denied.invalid"), "the refusal is an event: {}", text(&ev.stdout));

    let down = run(&["down", &bottle]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    let gone = run(&["status", &bottle]);
    assert_eq!(gone.status.code(), Some(bottle_core::cli::Exit::NotFound as i32), "{}", text(&gone.stderr));
    // gc only lists here (the engine is shared): our bottle is gone, so it is not among the garbage.
    let gc = run(&["--json", "gc", "--dry-run"]);
    assert!(gc.status.success(), "{}", text(&gc.stderr));
    assert!(!text(&gc.stdout).contains(&bottle), "{}", text(&gc.stdout));
    assert!(!ran.exists(), "a command ran a compiler: {}", std::fs::read_to_string(&ran).unwrap_or_default());
}

/// Two users' `up`s at the same moment do not share their pool lock (each has its own lock
/// folder), so both may pick the same subnet. The engine refuses the second network
/// ("pool overlaps") and that `up` takes the next free one: both bottles come up verified,
/// on disjoint subnets. Two lock folders stand in for the two users (what differs between
/// users is exactly that folder); the pool is a /26 of this test's own, so there are exactly
/// four /28s for the four networks.
#[tokio::test(flavor = "multi_thread")]
async fn two_users_picking_subnets_at_once_are_kept_apart_by_the_engine() {
    if !support::engine().await {
        return;
    }
    let pool = format!("10.214.{}.0/26", std::process::id() % 250);
    let names: Vec<String> = (0..2).map(|i| format!("bh13p{}-{i}", std::process::id())).collect();
    let _cleanup: Vec<Cleanup> =
        names.iter().map(|n| Cleanup(format!("label={}={n}", bottle_core::sidecar::labels::NAME))).collect();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<_> = names
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| {
            std::fs::write(dir.path().join("bottle.toml"), format!("name = \"{name}\"\nworkspace = \".\"\n")).unwrap();
            Command::new(env!("CARGO_BIN_EXE_bottle-core"))
                .args(["--json", "up", "-f", "bottle.toml"])
                .current_dir(dir.path())
                .env("BOTTLE_RUN_DIR", dir.path().join("run"))
                .env("BOTTLE_SUBNET_POOL", &pool)
                .env_remove("CLAUDE_BOTTLE_BACKEND")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut subnets = Vec::new();
    for (child, name) in children.into_iter().zip(&names) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "up {name}: {}", text(&out.stderr));
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(st["allowlist"]["verdict"], "verified", "{st}");
        let engine = bottle_core::engine::connect().await.unwrap();
        let p = bottle_core::sidecar::Placement::find(&engine, bottle_core::backend::BackendKind::Docker, name)
            .await
            .unwrap()
            .unwrap();
        subnets.extend([p.agent_subnet, p.egress_subnet]);
    }
    for (i, a) in subnets.iter().enumerate() {
        for b in &subnets[i + 1..] {
            assert!(!bottle_core::netpool::overlaps(a, b), "{a} and {b} collide: {subnets:?}");
        }
    }
    for (name, dir) in names.iter().zip(&dirs) {
        let out = Command::new(env!("CARGO_BIN_EXE_bottle-core"))
            .args(["down", name])
            .env("BOTTLE_RUN_DIR", dir.path().join("run"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

/// Name locks are per user now, so one user's `up` or `gc` cannot see that another user's
/// `up` of a name is in progress. The engine's labels say who made a half-made bottle:
/// another user's (within the grace period) is neither removed by `up` nor by `gc`.
#[tokio::test(flavor = "multi_thread")]
async fn another_users_half_made_bottle_is_left_alone() {
    if !support::engine().await {
        return;
    }
    use bottle_core::sidecar::labels;
    let name = format!("bh13h{}", std::process::id());
    let filter = format!("label={}={name}", labels::NAME);
    let _cleanup = Cleanup(filter.clone());
    // What another user's `up` has made so far: its agent network.
    let mut create = Command::new("docker");
    create.args(["network", "create", "--internal"]);
    for (k, v) in [
        (labels::NAME, name.as_str()),
        (labels::BACKEND, "docker"),
        (labels::ROLE, labels::ROLE_AGENT_NET),
        (labels::MAKER, "4242"),
    ] {
        create.args(["--label", &format!("{k}={v}")]);
    }
    sh(create.arg(labels::object_name(&name, labels::ROLE_AGENT_NET)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bottle.toml"), format!("name = \"{name}\"\nworkspace = \".\"\n")).unwrap();
    let core = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bottle-core"))
            .args(args)
            .current_dir(dir.path())
            .env("BOTTLE_RUN_DIR", dir.path().join("run"))
            .env_remove("CLAUDE_BOTTLE_BACKEND")
            .output()
            .unwrap()
    };
    let up = core(&["up", "-f", "bottle.toml"]);
    let err = text(&up.stderr);
    assert!(!up.status.success() && err.contains("another user (uid 4242)"), "{err}");
    let gc = core(&["--json", "gc", "--dry-run"]);
    assert!(gc.status.success(), "{}", text(&gc.stderr));
    assert!(!text(&gc.stdout).contains(&name), "gc would remove it: {}", text(&gc.stdout));
    let left = sh(Command::new("docker").args(["network", "ls", "-q", "--filter", &filter]));
    assert!(!text(&left.stdout).trim().is_empty(), "the other user's network is still there");
}
