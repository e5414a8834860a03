//! Rendered Smolfiles: byte-for-byte against tests/golden/, and accepted by
//! smolvm's own published parser at 1.1.3 (oldest smolvm bottle allows) and
//! 1.33.0 (newest published), and by the test double at each smolvm version.
//!
//! Set BOTTLE_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.

#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/smolvm/mod.rs"]
mod smolvm_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use bottle_core::smolvm::{BundleAddr, Smolfile, SmolfileInput, VmImage};

struct Case {
    golden: &'static str,
    input: SmolfileInput,
    bundle: BundleAddr,
    image: VmImage,
}

fn cases() -> Vec<Case> {
    let v4 = BundleAddr { ip: "10.201.7.2".parse().unwrap(), proxy_port: 8080 };
    let mut env = BTreeMap::new();
    env.insert("GIT_AUTHOR_NAME".to_owned(), "Agent \"Bot\" O'Neil".to_owned());
    env.insert("LANG".to_owned(), "C.UTF-8".to_owned());
    env.insert("PATH_EXTRA".to_owned(), "a=b;c\\d".to_owned());
    vec![
        Case {
            golden: "tarball-default",
            input: SmolfileInput {
                name: "demo".into(),
                workdir: "/workspace".into(),
                workspace: Some("/home/dev/project".into()),
                env: BTreeMap::new(),
                cpus: 2.0,
                memory_mib: 2048,
            },
            bundle: v4,
            image: VmImage::Tarball("/var/tmp/bottle/demo-agent.tar".into()),
        },
        Case {
            golden: "registry-full",
            input: SmolfileInput {
                name: "full".into(),
                workdir: "/src".into(),
                workspace: Some("/Users/dev/My Project".into()),
                env,
                cpus: 4.0,
                memory_mib: 8192,
            },
            bundle: BundleAddr { ip: "172.30.0.2".parse().unwrap(), proxy_port: 3128 },
            image: VmImage::Registry("ghcr.io/example/agent:1.2".into()),
        },
        Case {
            golden: "ipv6-no-workspace",
            input: SmolfileInput {
                name: "v6".into(),
                workdir: "/workspace".into(),
                workspace: None,
                env: BTreeMap::new(),
                cpus: 1.0,
                memory_mib: 512,
            },
            bundle: BundleAddr { ip: "fd00:b07:1::2".parse().unwrap(), proxy_port: 8080 },
            image: VmImage::Tarball("/tmp/a.tar.gz".into()),
        },
    ]
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden").join(format!("{name}.Smolfile"))
}

fn rendered() -> Vec<(&'static str, String, Case)> {
    cases()
        .into_iter()
        .map(|c| {
            let text = Smolfile::for_bottle(&c.input, c.bundle, &c.image).unwrap().render();
            (c.golden, text, c)
        })
        .collect()
}

#[test]
fn rendered_smolfiles_match_golden_files_byte_for_byte() {
    let update = std::env::var_os("BOTTLE_UPDATE_GOLDEN").is_some();
    for (name, text, _) in rendered() {
        let path = golden_path(name);
        if update {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(text, want, "{name}: rendered Smolfile differs from {}", path.display());
    }
}

#[test]
fn smolfile_1_33_0_parser_reads_what_was_meant() {
    for (name, text, case) in rendered() {
        let sf = smolfile_1_33_0::parse(&text).unwrap_or_else(|e| panic!("{name}: smolfile 1.33.0 rejects it: {e}"));
        let net = sf.network.expect("a [network] table");
        let host_bits = if case.bundle.ip.is_ipv4() { 32 } else { 128 };
        assert_eq!(net.allow_cidrs, [format!("{}/{host_bits}", case.bundle.ip)], "{name}");
        assert_eq!(net.allow_hosts, ["bottle-dns-closed.invalid"], "{name}: DNS closed by smolvm's filter");
        assert_eq!(sf.net, Some(true), "{name}");
        assert_eq!(sf.cpus, Some(case.input.cpus as u8), "{name}");
        assert_eq!(sf.memory.map(u64::from), Some(case.input.memory_mib), "{name}");
        assert_eq!(sf.entrypoint, ["/bin/sh", "-c"], "{name}: an idle workload, never the agent");
        assert_eq!(sf.cmd, ["exec sleep 2147483647"], "{name}");
        assert_eq!(sf.workdir.as_deref(), Some(case.input.workdir.as_str()), "{name}");
        match &case.image {
            VmImage::Tarball(_) => assert_eq!(sf.image, None, "{name}: a tarball must not be in the Smolfile"),
            VmImage::Registry(r) => assert_eq!(sf.image.as_deref(), Some(r.as_str()), "{name}"),
        }
        let proxy = match case.bundle.ip {
            IpAddr::V4(ip) => format!("http://{ip}:{}", case.bundle.proxy_port),
            IpAddr::V6(ip) => format!("http://[{ip}]:{}", case.bundle.proxy_port),
        };
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            assert!(sf.env.contains(&format!("{key}={proxy}")), "{name}: {key} in {:?}", sf.env);
        }
        for (k, v) in &case.input.env {
            assert!(sf.env.contains(&format!("{k}={v}")), "{name}: {k} round trip in {:?}", sf.env);
        }
        let mounts: Vec<String> =
            case.input.workspace.iter().map(|w| format!("{}:{}", w.display(), case.input.workdir)).collect();
        assert_eq!(sf.volumes, mounts, "{name}");
    }
}

/// The 1.1.3 parser lives in its own workspace (see its Cargo.toml for why);
/// this builds and runs it with the lockfile it was committed with.
#[test]
fn smolfile_1_1_3_parser_accepts_every_rendered_smolfile() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut expected = Vec::new();
    for (name, text, case) in rendered() {
        let p = dir.path().join(format!("{name}.Smolfile"));
        std::fs::write(&p, text).unwrap();
        let host_bits = if case.bundle.ip.is_ipv4() { 32 } else { 128 };
        expected.push(format!("ok {} ", p.display()));
        expected.push(format!("allow_cidrs=[\"{}/{host_bits}\"]", case.bundle.ip));
        paths.push(p);
    }
    // The golden files themselves too, so a hand-edited golden cannot drift.
    paths.extend(cases().iter().map(|c| golden_path(c.golden)));
    let out = run_1_1_3_checker(&paths);
    for want in expected {
        assert!(out.contains(&want), "smolfile 1.1.3: expected {want:?} in:\n{out}");
    }
    assert!(!out.contains("rejected"), "smolfile 1.1.3 rejected a Smolfile:\n{out}");
}

/// And the checker can fail: an unknown key is rejected, as smolvm would.
#[test]
fn smolfile_1_1_3_parser_rejects_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.Smolfile");
    // `user` exists in smolfile 1.33.0 but not in smolvm 1.1.3..1.9.3.
    std::fs::write(&bad, "user = \"agent\"\nnet = true\n").unwrap();
    assert!(smolfile_1_33_0::parse("user = \"agent\"\n").is_ok(), "1.33.0 accepts `user`");
    let out = run_1_1_3_checker(&[bad]);
    assert!(out.contains("rejected") && out.contains("unknown field `user`"), "{out}");
}

fn run_1_1_3_checker(paths: &[PathBuf]) -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/smolfile_1_1_3/Cargo.toml");
    // <target>/debug/deps/<this test> -> <target>/smolfile-1.1.3
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("smolfile-1.1.3");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--locked", "--manifest-path"])
        .arg(&manifest)
        .arg("--")
        .args(paths)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo for the smolfile 1.1.3 checker");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "smolfile 1.1.3 checker did not run: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The double validates keys per smolvm version (as smolvm's own structs do);
/// every golden file must create a machine on each version bottle supports.
#[test]
fn double_accepts_rendered_smolfiles_on_each_supported_version() {
    for version in ["1.1.3", "1.8.1", "1.9.3"] {
        let d = smolvm_support::Double::new(version);
        for (i, c) in cases().iter().enumerate() {
            let out = Command::new(&d.bin)
                .args(["machine", "create", "-n", &format!("m{i}"), "-s"])
                .arg(golden_path(c.golden))
                .output()
                .unwrap();
            assert!(out.status.success(), "{version} {}: {}", c.golden, String::from_utf8_lossy(&out.stderr));
        }
    }
}
