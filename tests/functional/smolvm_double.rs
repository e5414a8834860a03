//! The smolvm test double answers as smolvm does where bottle depends on it, not as
//! bottle's code hopes: a usage error from a `value_enum` is clap's exit 2, a wrong TOML
//! type is serde's error, smolvm's resource limits hold, a binary under another name
//! prints its `note:` line first (and the driver still finds smolvm's `Error:` below it),
//! and the guest's packets meet a real policy: a denied TCP connect is reset, a denied
//! UDP datagram vanishes, and both are in smolvm's denial log.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;

use std::process::{Command, Output};
use std::time::Duration;

use bottle_core::smolvm::{MachineName, Smolvm};
use smolvm_support::{Double, root_or_skip, write_executable};

fn run(d: &Double, args: &[&str]) -> Output {
    Command::new(&d.bin).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn smolfile(d: &Double, body: &str) -> String {
    let p = d.dir.path().join("t.Smolfile");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn usage_types_and_resources_are_refused_as_smolvm_refuses_them() {
    let d = Double::new("1.9.3");
    let ok = smolfile(&d, "net = true\n");
    let o = run(&d, &["machine", "create", "-n", "a", "-s", &ok, "--net-backend", "slirp"]);
    assert_eq!(o.status.code(), Some(2), "clap value_enum error");
    assert!(stderr(&o).starts_with("error: invalid value 'slirp' for '--net-backend <NET_BACKEND>'"), "{}", stderr(&o));
    assert!(stderr(&o).contains("[possible values: tsi, virtio-net]"));

    for (body, want) in [
        ("cpus = \"2\"\n", "invalid type: string \"2\", expected u8"),
        ("cpus = 300\n", "invalid value: integer `300`, expected u8"),
        ("net = 1\n", "invalid type: integer `1`, expected a boolean"),
        ("env = [\"A=1\", 2]\n", "invalid type: integer `2`, expected a string"),
    ] {
        let o = run(&d, &["machine", "create", "-n", "b", "-s", &smolfile(&d, body)]);
        assert_eq!(o.status.code(), Some(1), "{body}");
        let e = stderr(&o);
        assert!(e.starts_with("Error: config operation failed: load smolfile: failed to parse"), "{e}");
        assert!(e.contains("TOML parse error at line 1") && e.contains(want), "{body}: {e}");
    }

    let o = run(&d, &["machine", "create", "-n", "c", "-s", &smolfile(&d, "memory = 63\n")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error: config operation failed: validate resources: memory must be at least 64 MiB (got 63 MiB)\n"
    );
    let o = run(&d, &["machine", "create", "-n", "c", "-s", &smolfile(&d, "cpus = 17\nmemory = 64\n")]);
    assert_eq!(o.status.code(), Some(0), "more than 16 vCPUs only warns");
    assert!(stderr(&o).starts_with("warning: requested 17 vCPUs but the hypervisor supports at most 16"));
}

#[tokio::test]
async fn under_another_name_the_note_comes_first_and_the_error_is_still_found() {
    let d = Double::new("1.9.3");
    let other = d.dir.path().join("bin/smolvm-1.9.3");
    write_executable(&other, &std::fs::read_to_string(&d.bin).unwrap());
    let o = Command::new(&other).args(["machine", "exec", "--name", "ghost", "--", "true"]).output().unwrap();
    let e = stderr(&o);
    assert!(e.starts_with("note: no packed assets found for 'smolvm-1.9'"), "{e}");
    assert!(e.contains("\nError: vm not found: ghost\n"), "{e}");
    let vm = Smolvm::at(other).await.unwrap();
    let err = vm.exec(&MachineName::new("ghost").unwrap(), &["true".into()], Duration::from_secs(10)).await;
    let err = err.expect_err("smolvm's refusal is an error, not the guest's exit 1").to_string();
    assert!(err.ends_with("Error: vm not found: ghost"), "{err}");
}

#[test]
fn the_guest_meets_a_real_policy_reset_for_tcp_silence_for_udp() {
    if !root_or_skip() {
        return;
    }
    let d = Double::new("1.9.3");
    let sf = smolfile(&d, "net = true\n[network]\nallow_cidrs = [\"198.18.255.1/32\"]\n");
    assert!(run(&d, &["machine", "create", "-n", "p", "-s", &sf]).status.success());
    assert!(run(&d, &["machine", "start", "-n", "p"]).status.success());
    // A reset raises ConnectionRefusedError; a dropped SYN would raise a timeout after 5 s
    // instead, so the exception says which without timing anything.
    let py = "import socket\n\
              try: socket.create_connection(('198.51.100.7',443),timeout=5)\n\
              except ConnectionRefusedError: print('refused')\n\
              u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.settimeout(0.5)\n\
              u.sendto(b'x',('198.51.100.7',123))\n\
              try: u.recv(9)\n\
              except socket.timeout: print('udp silent')\n";
    let o = run(&d, &["machine", "exec", "--name", "p", "--", "python3", "-c", py]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "refused\nudp silent\n", "{}", stderr(&o));
    let log = run(&d, &["machine", "egress-events", "-n", "p", "--json"]);
    let events: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    let seen: Vec<String> =
        events.as_array().unwrap().iter().map(|e| format!("{} {}", e["operation"], e["dest"])).collect();
    assert_eq!(seen, ["\"connect\" \"198.51.100.7:443\"", "\"sendto\" \"198.51.100.7:123\""]);
}
