//! The real driver (`bottle_core::smolvm::Smolvm`) against the smolvm test
//! double, version by version: discovery, the version gate, the argv of every
//! command, parsing of what comes back, smolvm's errors passed through, and
//! egress-event polling.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;

use std::ffi::OsString;
use std::time::Duration;

use bottle_core::smolvm::{
    BundleAddr, CreateRequest, EgressTracker, MachineName, MachineState, Smolfile, SmolfileInput, Smolvm, SmolvmError,
    Version, VmImage,
};
use smolvm_support::{Double, root_or_skip};

const BUNDLE: &str = "10.201.7.2";

fn request(d: &Double, name: &str, image: VmImage) -> CreateRequest {
    let input = SmolfileInput {
        name: name.into(),
        workdir: "/workspace".into(),
        workspace: Some(d.dir.path().to_path_buf()),
        env: Default::default(),
        cpus: 2.0,
        memory_mib: 2048,
    };
    let bundle = BundleAddr { ip: BUNDLE.parse().unwrap(), proxy_port: 8080 };
    CreateRequest {
        name: MachineName::new(name).unwrap(),
        smolfile: Smolfile::for_bottle(&input, bundle, &image).unwrap(),
        smolfile_path: d.dir.path().join(format!("{name}.Smolfile")),
        image,
        labels: [("dev.bottle.name".to_owned(), name.to_owned())].into(),
    }
}

fn tarball(d: &Double) -> VmImage {
    let tar = d.dir.path().join("agent.tar");
    std::fs::write(&tar, b"not really a docker save archive").unwrap();
    VmImage::Tarball(tar)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn full_lifecycle_on_1_9_3() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    assert_eq!(vm.version(), Version::new(1, 9, 3));
    let req = request(&d, "bottle-life", tarball(&d));
    let name = req.name.clone();

    vm.create(&req).await.unwrap();
    let st = vm.status(&name).await.unwrap();
    assert_eq!((st.state.clone(), st.pid, st.network), (MachineState::Created, None, Some(true)));

    vm.start(&name).await.unwrap();
    let st = vm.status(&name).await.unwrap();
    assert_eq!(st.state, MachineState::Running);
    assert!(st.pid.is_some_and(|p| p > 0));

    let out = vm.exec(&name, &s(&["echo", "hello", "vm"]), Duration::from_secs(10)).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "hello vm\n"));
    let empty = vm.exec(&name, &[], Duration::from_secs(10)).await.unwrap_err();
    assert!(empty.to_string().ends_with("no command given"), "{empty}");
    let out = vm.exec(&name, &s(&["false"]), Duration::from_secs(10)).await.unwrap();
    assert_eq!(out.exit_code, 1, "the guest's exit code is returned, not raised");

    let listed = vm.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "bottle-life");

    vm.stop(&name).await.unwrap();
    assert_eq!(vm.status(&name).await.unwrap().state, MachineState::Stopped);
    vm.delete(&name).await.unwrap();
    assert!(vm.list().await.unwrap().is_empty());

    let smolfile = req.smolfile_path.display().to_string();
    let tar = match &req.image {
        VmImage::Tarball(t) => t.display().to_string(),
        VmImage::Registry(_) => unreachable!(),
    };
    assert_eq!(
        d.machine_calls(),
        [
            format!(
                "machine create -n bottle-life -s {smolfile} --net-backend virtio-net --image {tar} \
                 --label dev.bottle.name=bottle-life"
            ),
            "machine status -n bottle-life --json".into(),
            "machine start -n bottle-life".into(),
            "machine status -n bottle-life --json".into(),
            "machine exec --name bottle-life -- echo hello vm".into(),
            "machine exec --name bottle-life -- false".into(),
            "machine ls --json".into(),
            "machine stop -n bottle-life".into(),
            "machine status -n bottle-life --json".into(),
            "machine delete -n bottle-life -f".into(),
            "machine ls --json".into(),
        ]
    );
    // The Smolfile smolvm read carries no tarball path: that went on the command line.
    let written = std::fs::read_to_string(&req.smolfile_path).unwrap();
    assert!(!written.contains("agent.tar") && written.contains("allow_cidrs = [\"10.201.7.2/32\"]"), "{written}");
}

#[tokio::test]
async fn version_gate_refuses_0_8_0_before_any_machine_command() {
    let d = Double::new("0.8.0");
    let err = Smolvm::at(d.bin.clone()).await.unwrap_err();
    assert!(matches!(err, SmolvmError::TooOld(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("smolvm 0.8.0 is too old"), "{msg}");
    assert!(msg.contains("not enforced") && msg.contains("virtio-net") && msg.contains("1.1.3 or newer"), "{msg}");
    assert_eq!(d.calls(), [s(&["--version"])]);
}

#[tokio::test]
async fn version_1_1_3_is_accepted_and_has_no_egress_events() {
    let d = Double::new("1.1.3");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    let req = request(&d, "bottle-old", tarball(&d));
    vm.create(&req).await.unwrap();
    assert_eq!(vm.egress_events(&req.name).await.unwrap(), None);
    assert!(d.machine_calls().iter().all(|c| !c.contains("egress-events")), "{:?}", d.machine_calls());
}

#[tokio::test]
async fn name_clash_passes_smolvm_error_through() {
    let d = Double::new("1.9.3");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    let req = request(&d, "bottle-twice", tarball(&d));
    vm.create(&req).await.unwrap();
    let err = vm.create(&req).await.unwrap_err();
    match &err {
        SmolvmError::Failed { code, message, .. } => {
            assert_eq!(*code, 1);
            assert_eq!(
                message,
                "Error: config operation failed: create machine: machine 'bottle-twice' already exists or is being created"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with("smolvm machine create -n bottle-twice"), "{err}");
}

#[tokio::test]
async fn missing_machine_errors_carry_smolvm_text() {
    let d = Double::new("1.9.3");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    let ghost = MachineName::new("bottle-ghost").unwrap();
    let e = vm.start(&ghost).await.unwrap_err().to_string();
    assert!(e.ends_with("exit 1: Error: vm not found: bottle-ghost"), "{e}");
    let e = vm.status(&ghost).await.unwrap_err().to_string();
    assert!(e.contains("Error: config operation failed: machine status: machine 'bottle-ghost' not found"), "{e}");
    // exec: smolvm's own refusal is an error, not a guest exit code 1.
    let e = vm.exec(&ghost, &s(&["true"]), Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, SmolvmError::Failed { code: 1, .. }), "{e:?}");
    assert!(e.to_string().contains("Error: vm not found: bottle-ghost"), "{e}");
}

#[tokio::test]
async fn exec_on_a_stopped_machine_is_smolvm_error() {
    let d = Double::new("1.9.3");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    let req = request(&d, "bottle-idle", tarball(&d));
    vm.create(&req).await.unwrap();
    let e = vm.exec(&req.name, &s(&["true"]), Duration::from_secs(5)).await.unwrap_err().to_string();
    assert!(e.contains("is not running. Use 'smolvm machine start --name bottle-idle' first."), "{e}");
}

#[tokio::test]
async fn every_call_is_bounded_by_its_timeout() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    let req = request(&d, "bottle-slow", tarball(&d));
    vm.create(&req).await.unwrap();
    vm.start(&req.name).await.unwrap();
    let started = std::time::Instant::now();
    let e = vm.exec(&req.name, &s(&["sleep", "30"]), Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(e, SmolvmError::Timeout { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(e.to_string().contains("smolvm machine exec --name bottle-slow: no answer after 500ms"), "{e}");
}

#[tokio::test]
async fn egress_events_are_parsed_and_deduplicated_across_polls() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.8.1");
    let vm = Smolvm::at(d.bin.clone()).await.unwrap();
    let req = request(&d, "bottle-egress", tarball(&d));
    vm.create(&req).await.unwrap();
    vm.start(&req.name).await.unwrap();
    let mut tracker = EgressTracker::default();
    assert_eq!(tracker.fresh(vm.egress_events(&req.name).await.unwrap().unwrap()), []);

    let curl =
        |target: &str| s(&["curl", "-sS", "--noproxy", "*", "--connect-timeout", "5", &format!("http://{target}/")]);
    // Blocked twice in a row: a retry. Then another destination.
    for _ in 0..2 {
        let blocked = vm.exec(&req.name, &curl("192.0.2.7:443"), Duration::from_secs(10)).await.unwrap();
        assert_eq!(blocked.exit_code, 7, "smolvm answers a denied SYN with a reset: curl says refused");
    }
    let first = vm.egress_events(&req.name).await.unwrap().unwrap();
    assert_eq!(first.len(), 2, "smolvm lists each retry: {first:?}");
    assert!(first.iter().all(|e| e.operation == "connect" && e.dest == "192.0.2.7:443"));
    let fresh = tracker.fresh(first);
    assert_eq!(fresh.len(), 1, "{fresh:?}");

    vm.exec(&req.name, &curl("198.51.100.9:80"), Duration::from_secs(10)).await.unwrap();
    let second = vm.egress_events(&req.name).await.unwrap().unwrap();
    assert_eq!(second.len(), 3);
    let fresh = tracker.fresh(second);
    assert_eq!(fresh.iter().map(|e| e.dest.as_str()).collect::<Vec<_>>(), ["198.51.100.9:80"]);
    let again = tracker.fresh(vm.egress_events(&req.name).await.unwrap().unwrap());
    assert!(again.is_empty(), "{again:?}");
    assert!(d.machine_calls().contains(&"machine egress-events -n bottle-egress --limit 200 --json".to_owned()));
}

#[tokio::test]
async fn discovery_order_explicit_then_env_then_path() {
    let d = Double::new("1.9.3");
    let path = Some(OsString::from(d.bin.parent().unwrap()));
    let found = Smolvm::discover_in(None, None, path.clone()).await.unwrap();
    assert_eq!(found.bin(), d.bin);

    let other = Double::new("1.8.1");
    let via_env = Smolvm::discover_in(None, Some(other.bin.clone().into()), path.clone()).await.unwrap();
    assert_eq!(via_env.version(), Version::new(1, 8, 1));

    let old = Double::new("0.8.0");
    let explicit = Smolvm::discover_in(Some(&old.bin), Some(other.bin.clone().into()), path).await.unwrap_err();
    assert!(matches!(explicit, SmolvmError::TooOld(_)), "explicit wins even when it is refused: {explicit:?}");

    let empty = tempfile::tempdir().unwrap();
    let none = Smolvm::discover_in(None, None, Some(empty.path().into())).await.unwrap_err();
    assert!(matches!(none, SmolvmError::NotFound { .. }), "{none:?}");
    assert!(none.to_string().contains("BOTTLE_SMOLVM"), "{none}");
}

#[tokio::test]
async fn not_smolvm_is_refused_with_what_it_said() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("smolvm");
    smolvm_support::write_executable(&fake, "#!/bin/sh\necho 'error: unrecognized subcommand' >&2\nexit 2\n");
    let e = Smolvm::at(fake).await.unwrap_err().to_string();
    assert!(e.contains("smolvm --version: exit 2: error: unrecognized subcommand"), "{e}");

    let odd = dir.path().join("odd");
    smolvm_support::write_executable(&odd, "#!/bin/sh\necho 'docker 1.9.3'\n");
    let e = Smolvm::at(odd).await.unwrap_err().to_string();
    assert!(e.contains("expected `smolvm X.Y.Z`"), "{e}");
}

#[test]
fn positional_create_and_delete_match_the_double_on_1_0_1_forms() {
    // The argv builder is version-aware; the double rejects the wrong form with exit 2
    // exactly like clap does, so the old form is checked against an old double.
    let d = Double::new("0.8.0");
    let req = request(&d, "bottle-legacy", VmImage::Registry("alpine".into()));
    std::fs::write(&req.smolfile_path, req.smolfile.render()).unwrap();
    let args =
        bottle_core::smolvm::driver::create_args(Version::new(1, 0, 1), &req.name, &req.smolfile_path, &req.image);
    let out = std::process::Command::new(&d.bin).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_form =
        bottle_core::smolvm::driver::create_args(Version::new(1, 9, 3), &req.name, &req.smolfile_path, &req.image);
    let out = std::process::Command::new(&d.bin).args(&new_form).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: unexpected argument '-n' found"));
}
