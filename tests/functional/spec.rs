//! bottle.toml parsing: the full example, and every class of refusal with its exact position.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_core::backend::BackendKind;
use bottle_core::spec::{ImageSource, RepoSpec, Resources, Secret, SecretSource, Spec, SpecError};

/// A directory holding `bottle.toml` next to an existing `workspace/`.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("workspace")).unwrap();
        Self { tmp }
    }
    fn file(&self) -> PathBuf {
        self.tmp.path().join("bottle.toml")
    }
    fn parse(&self, text: &str) -> Result<Spec, SpecError> {
        Spec::parse(&self.file(), text)
    }
    /// Parses `text` expecting a refusal; returns its message.
    fn refuse(&self, text: &str) -> String {
        match self.parse(text) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(SpecError::Invalid(e)) => e.to_string(),
            Err(e) => panic!("wrong error kind: {e}"),
        }
    }
    /// `file:line:col` prefix for the bottle.toml.
    fn at(&self, line: usize, col: usize) -> String {
        format!("{}:{line}:{col}: ", self.file().display())
    }
}

const HEAD: &str = "name = \"demo\"\nworkspace = \"./workspace\"\n";

#[test]
fn full_example_parses_to_the_expected_spec() {
    let d = Dir::new();
    std::fs::create_dir(d.tmp.path().join("agent")).unwrap();
    std::fs::write(d.tmp.path().join("agent/Dockerfile.agent"), "FROM scratch\n").unwrap();
    let text = r#"
name = "my-bottle-1"
image = { build = "agent", dockerfile = "Dockerfile.agent" }
workspace = "workspace"
workdir = "/src/app"
backend = "smolmachines"

[agent]
command = ["claude", "--dangerously-skip-permissions"]
[agent.env]
TERM = "xterm-256color"

[egress]
allow = ["api.anthropic.com", "*.GitHub.com:443", "10.1.0.0/16", "allowed.test"]
deny = ["evil.github.com"]

[[secret]]
name = "ANTHROPIC_API_KEY"
env = "ANTHROPIC_API_KEY"

[[secret]]
name = "DEPLOY"
file = "secrets/deploy.key"

[git]
credentials = { file = "git-credentials.toml" }

[[git.repo]]
alias = "app"
upstream = "https://git.example.test/acme/app.git"
push = ["agent/*"]
protected = ["main"]
tags = true
push_options = ["ci.skip", "merge_request.*"]

[[git.repo]]
alias = "docs"
upstream = "http://127.0.0.1:8080/docs.git"
fetch = false

[resources]
cpus = 2.0
memory = "4G"
pids = 256
"#;
    let s = d.parse(text).unwrap();
    let base = std::fs::canonicalize(d.tmp.path()).unwrap();
    assert_eq!(s.source, d.file());
    assert_eq!(s.name, "my-bottle-1");
    assert_eq!(
        s.image,
        ImageSource::Build { context: base.join("agent"), dockerfile: Some("Dockerfile.agent".into()) }
    );
    assert_eq!(s.workspace, base.join("workspace"));
    assert_eq!(s.workdir, "/src/app");
    assert_eq!(s.backend, Some(BackendKind::Smolmachines));
    assert_eq!(s.command, ["claude", "--dangerously-skip-permissions"]);
    assert_eq!(s.env, BTreeMap::from([("TERM".to_string(), "xterm-256color".to_string())]));
    assert_eq!(s.allow, ["api.anthropic.com", "*.github.com:443", "10.1.0.0/16", "allowed.test"]);
    assert_eq!(s.deny, ["evil.github.com"]);
    assert_eq!(
        s.secrets,
        [
            Secret { name: "ANTHROPIC_API_KEY".into(), from: SecretSource::Env("ANTHROPIC_API_KEY".into()) },
            Secret { name: "DEPLOY".into(), from: SecretSource::File(d.tmp.path().join("secrets/deploy.key")) },
        ]
    );
    assert_eq!(s.git.credentials, Some(SecretSource::File(d.tmp.path().join("git-credentials.toml"))));
    assert_eq!(
        s.git.repos,
        [
            RepoSpec {
                alias: "app".into(),
                upstream: "https://git.example.test/acme/app.git".into(),
                fetch: true,
                push: vec!["agent/*".into()],
                protected: vec!["main".into()],
                tags: true,
                push_options: vec!["ci.skip".into(), "merge_request.*".into()],
            },
            RepoSpec {
                alias: "docs".into(),
                upstream: "http://127.0.0.1:8080/docs.git".into(),
                fetch: false,
                push: vec![],
                protected: vec![],
                tags: false,
                push_options: vec![],
            },
        ]
    );
    assert_eq!(s.resources, Resources { cpus: 2.0, memory_mib: 4096, pids: 256 });
}

#[test]
fn minimal_spec_takes_the_documented_defaults() {
    let d = Dir::new();
    let s = d.parse(HEAD).unwrap();
    assert_eq!(s.image, ImageSource::Default);
    assert_eq!(s.workdir, "/workspace");
    assert!(s.command.is_empty() && s.env.is_empty() && s.allow.is_empty() && s.secrets.is_empty());
    assert!(s.git.credentials.is_none() && s.git.repos.is_empty());
    assert_eq!(s.resources, Resources::default());
    assert_eq!(s.backend, None);
}

#[test]
fn the_agent_runs_as_the_image_user_only_when_the_spec_says_so() {
    let d = Dir::new();
    assert!(!d.parse(HEAD).unwrap().run_as_image_user, "non-root is the default");
    assert!(d.parse(&format!("{HEAD}[agent]\nrun_as_image_user = true\n")).unwrap().run_as_image_user);
    let e = d.refuse(&format!("{HEAD}[agent]\nrun_as_image_user = \"yes\"\n"));
    assert!(e.starts_with(&d.at(4, 21)) && e.contains("run_as_image_user"), "{e}");
}

#[test]
fn spec_new_is_the_minimal_file() {
    let d = Dir::new();
    let parsed = d.parse(HEAD).unwrap();
    // Where the file wrote things is the file's own; everything else is the minimal spec's.
    let built = Spec {
        source: parsed.source.clone(),
        origins: parsed.origins.clone(),
        ..Spec::new("demo", parsed.workspace.clone())
    };
    assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bottle.toml");
    let s = Spec::load(&path).unwrap();
    assert_eq!(s.name, "demo");
    assert_eq!(s.image, ImageSource::Default);
    assert!(s.workspace.ends_with("examples/workspace"), "{}", s.workspace.display());
    assert!(s.allow.iter().any(|a| a == "allowed.test"));
}

#[test]
fn memory_accepts_mib_integers_and_suffixes() {
    let d = Dir::new();
    for (v, mib) in [("1536", 1536), ("\"512M\"", 512), ("\"2GiB\"", 2048)] {
        let s = d.parse(&format!("{HEAD}[resources]\nmemory = {v}\n")).unwrap();
        assert_eq!(s.resources.memory_mib, mib, "{v}");
    }
}

#[test]
fn unknown_top_level_key_is_refused_with_position() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}workspce = \"x\"\n"));
    assert!(e.starts_with(&d.at(3, 1)), "{e}");
    assert!(e.contains("workspce") && e.contains("unknown field"), "{e}");
}

#[test]
fn unknown_nested_key_is_refused_with_position() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[egress]\nallow = []\nalow = [\"x\"]\n"));
    assert!(e.starts_with(&format!("{}egress.alow = \"alow\"", d.at(5, 1))), "{e}");
    let e = d.refuse(&format!("{HEAD}[[git.repo]]\nalias = \"a\"\nupstream = \"https://h.test/a\"\npussh = []\n"));
    assert!(e.starts_with(&format!("{}git.repo.pussh", d.at(6, 1))), "{e}");
    let e = d.refuse(&format!("{HEAD}image = {{ build = \"workspace\", dockerfil = \"D\" }}\n"));
    assert!(e.starts_with(&format!("{}image = \"dockerfil\"", d.at(3, 32))), "{e}");
}

#[test]
fn bad_host_entry_names_index_value_and_position() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[egress]\nallow = [\"ok.test\", \"https://bad.test/x\"]\n"));
    assert!(e.starts_with(&format!("{}egress.allow[1] = \"https://bad.test/x\": ", d.at(4, 21))), "{e}");
    let e = d.refuse(&format!("{HEAD}[egress]\ndeny = [\"*\"]\n"));
    assert!(e.starts_with(&format!("{}egress.deny[0] = \"*\"", d.at(4, 9))), "{e}");
    let e = d.refuse(&format!("{HEAD}[egress]\nallow = [\"host.test:70000\"]\n"));
    assert!(e.starts_with(&d.at(4, 10)) && e.contains("70000"), "{e}");
}

#[test]
fn bad_cidr_is_refused_with_position() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[egress]\nallow = [\"10.0.0.0/33\"]\n"));
    assert!(e.starts_with(&format!("{}egress.allow[0] = \"10.0.0.0/33\": not a valid CIDR", d.at(4, 10))), "{e}");
    let e = d.refuse(&format!("{HEAD}[egress]\nallow = [\"10.0.0.1/8\"]\n"));
    assert!(e.contains("did you mean `10.0.0.0/8`"), "{e}");
}

#[test]
fn secret_given_as_value_is_refused_without_echoing_it() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[[secret]]\nname = \"TOKEN\"\nvalue = \"sk-live-123456\"\n"));
    assert!(e.starts_with(&format!("{}secret[0].value = \"<redacted>\": ", d.at(5, 9))), "{e}");
    assert!(e.contains("never go in bottle.toml"), "{e}");
    assert!(!e.contains("sk-live"), "secret leaked: {e}");
    let e = d.refuse(&format!("{HEAD}[git]\ncredentials = {{ value = \"ghp_abcdef\" }}\n"));
    assert!(e.starts_with(&d.at(4, 25)) && !e.contains("ghp_"), "{e}");
}

#[test]
fn secret_needs_exactly_one_source() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[[secret]]\nname = \"T\"\n"));
    assert!(e.starts_with(&format!("{}secret[0]", d.at(4, 8))) && e.contains("exactly one"), "{e}");
    let e = d.refuse(&format!("{HEAD}[[secret]]\nenv = \"A\"\n"));
    assert!(e.starts_with(&format!("{}secret.name = \"[[secret]]\": missing field `name`", d.at(3, 1))), "{e}");
    let e = d.refuse(&format!("{HEAD}[[secret]]\nname = \"T\"\nenv = \"A\"\nfile = \"f\"\n"));
    assert!(e.starts_with(&format!("{}secret[0].env = \"A\"", d.at(5, 7))), "{e}");
}

#[test]
fn missing_workspace_is_refused_and_never_created() {
    let d = Dir::new();
    let e = d.refuse("name = \"demo\"\nworkspace = \"./nope\"\n");
    assert!(e.starts_with(&format!("{}workspace = \"./nope\": ", d.at(2, 13))), "{e}");
    assert!(!d.tmp.path().join("nope").exists());
    std::fs::write(d.tmp.path().join("plain"), "").unwrap();
    let e = d.refuse("name = \"demo\"\nworkspace = \"plain\"\n");
    assert!(e.contains("is not a directory"), "{e}");
    let e = d.refuse("name = \"demo\"\n");
    assert!(e.starts_with(&format!("{}workspace = \"\": missing field `workspace`", d.at(1, 1))), "{e}");
}

#[test]
fn bad_name_is_refused() {
    let d = Dir::new();
    for bad in ["Demo", "-demo", "demo-", "de mo", "", "a_b", &"a".repeat(41)] {
        let e = d.refuse(&format!("name = \"{bad}\"\nworkspace = \"workspace\"\n"));
        assert!(e.starts_with(&format!("{}name = \"{bad}\": ", d.at(1, 8))), "{e}");
    }
    assert!(d.parse(&format!("name = \"{}\"\nworkspace = \"workspace\"\n", "a".repeat(40))).is_ok());
}

#[test]
fn bad_memory_is_refused() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[resources]\nmemory = \"2XB\"\n"));
    assert!(e.starts_with(&format!("{}resources.memory = \"2XB\": ", d.at(4, 10))), "{e}");
    let e = d.refuse(&format!("{HEAD}[resources]\nmemory = 8\n"));
    assert!(e.starts_with(&format!("{}resources.memory = \"8\": ", d.at(4, 10))), "{e}");
    let e = d.refuse(&format!("{HEAD}[resources]\ncpus = 0\n"));
    assert!(e.starts_with(&format!("{}resources.cpus = \"0\"", d.at(4, 8))), "{e}");
}

#[test]
fn smolmachines_refuses_what_smolvm_would_cap_or_round() {
    let d = Dir::new();
    for (cpus, from_file) in [("17", true), ("1.5", true), ("17", false)] {
        let text = if from_file {
            format!("{HEAD}backend = \"smolmachines\"\n[resources]\ncpus = {cpus}\n")
        } else {
            format!("{HEAD}\n[resources]\ncpus = {cpus}\n")
        };
        let forced = (!from_file).then_some(BackendKind::Smolmachines);
        let e = match Spec::parse_for(&d.file(), &text, forced) {
            Err(SpecError::Invalid(e)) => e.to_string(),
            other => panic!("cpus = {cpus} accepted on smolmachines: {other:?}"),
        };
        let want = format!("{}resources.cpus = \"{cpus}\": on smolmachines,", d.at(5, 8));
        assert!(e.starts_with(&want) && e.contains("from 1 to 16"), "{e}");
    }
    let fine = format!("{HEAD}backend = \"smolmachines\"\n[resources]\ncpus = 16\nmemory = 64\n");
    assert_eq!(d.parse(&fine).unwrap().resources.cpus, 16.0);
    // The same values stay fine on Docker, which takes fractions and more than 16.
    let docker = format!("{HEAD}\n[resources]\ncpus = 17.5\n");
    assert_eq!(Spec::parse_for(&d.file(), &docker, Some(BackendKind::Docker)).unwrap().resources.cpus, 17.5);
}

#[test]
fn git_repo_rules_are_checked() {
    let d = Dir::new();
    let repo =
        |alias: &str, upstream: &str| format!("{HEAD}[[git.repo]]\nalias = \"{alias}\"\nupstream = \"{upstream}\"\n");
    let e = d.refuse(&repo("a/b", "https://h.test/a"));
    assert!(e.starts_with(&format!("{}git.repo[0].alias = \"a/b\"", d.at(4, 9))), "{e}");
    let e = d.refuse(&repo("a", "ssh://h.test/a"));
    assert!(e.starts_with(&format!("{}git.repo[0].upstream = \"ssh://h.test/a\"", d.at(5, 12))), "{e}");
    let e = d.refuse(&repo("a", "https://user:hunter2@h.test/a"));
    assert!(e.contains("<redacted>") && !e.contains("hunter2"), "{e}");
    let e = d.refuse(&repo("a", "https://h.test:0/a"));
    assert!(e.contains("port `0`"), "{e}");
    assert!(d.parse(&repo("a", "http://[::1]:8080/a.git")).is_ok());
    let e = d.refuse(&format!("{}push = [\"agent/*\", \"bad branch\"]\n", repo("a", "https://h.test/a")));
    assert!(e.starts_with(&format!("{}git.repo[0].push[1] = \"bad branch\"", d.at(6, 20))), "{e}");
    let e = d.refuse(&format!("{}push_options = [\"ci.skip\", \"ci.*.x\"]\n", repo("a", "https://h.test/a")));
    assert!(e.starts_with(&format!("{}git.repo[0].push_options[1] = \"ci.*.x\"", d.at(6, 28))), "{e}");
    assert!(e.contains("merge_request.*"), "the message shows the accepted forms: {e}");
}

#[test]
fn unreadable_file_is_a_read_error() {
    let e = Spec::load(Path::new("/nonexistent/bottle.toml")).unwrap_err();
    assert!(matches!(e, SpecError::Read { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/bottle.toml"), "{e}");
}

#[test]
fn reserved_proxy_env_and_bad_backend_are_refused() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}[agent.env]\nhttps_proxy = \"http://x\"\n"));
    assert!(e.starts_with(&format!("{}agent.env.https_proxy", d.at(4, 1))), "{e}");
    let e = d.refuse(&format!("{HEAD}backend = \"podman\"\n"));
    assert!(e.starts_with(&format!("{}backend = \"podman\"", d.at(3, 11))), "{e}");
}

#[test]
fn docs_full_example_is_valid() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bottle-toml.md")).unwrap();
    let after = doc.split("## Full example").nth(1).expect("docs have a full example");
    let block = after.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block");
    let d = Dir::new();
    std::fs::create_dir(d.tmp.path().join("agent-image")).unwrap();
    std::fs::write(d.tmp.path().join("agent-image/Dockerfile"), "FROM scratch\n").unwrap();
    let s = d.parse(block).unwrap();
    assert_eq!(s.name, "my-agent");
    assert_eq!(s.git.repos.len(), 1);
    assert_eq!(s.secrets.len(), 1);
    assert_eq!(s.apis[0].credential, SecretSource::Env("ANTHROPIC_API_KEY".into()));
}

#[test]
fn secret_sources_read_the_value_and_name_only_the_source_on_error() {
    let d = Dir::new();
    let file = d.tmp.path().join("key");
    std::fs::write(&file, "v4lue\n").unwrap();
    assert_eq!(SecretSource::File(file).read().unwrap(), "v4lue");
    let e = SecretSource::File(d.tmp.path().join("absent")).read().unwrap_err().to_string();
    assert!(e.contains("absent"), "{e}");
    let e = SecretSource::Env("BOTTLE_TEST_SURELY_UNSET_VAR".into()).read().unwrap_err().to_string();
    assert!(e.contains("BOTTLE_TEST_SURELY_UNSET_VAR"), "{e}");
}

#[test]
fn the_claude_code_agent_image_runs_claude_and_implies_the_anthropic_gate() {
    let d = Dir::new();
    let s = d.parse(&format!("{HEAD}image = {{ agent = \"claude-code\" }}\n")).unwrap();
    assert_eq!(s.image, ImageSource::Agent(bottle_core::spec::AgentKind::ClaudeCode));
    assert_eq!(s.command, ["claude"]);
    assert_eq!(s.apis.len(), 1);
    let a = &s.apis[0];
    assert_eq!(
        (a.name.as_str(), a.upstream.as_str(), a.header.as_str()),
        ("anthropic", "https://api.anthropic.com", "x-api-key")
    );
    assert_eq!(a.credential, SecretSource::Env("ANTHROPIC_API_KEY".into()));
    assert_eq!((a.key_env.as_str(), a.base_url_env.as_str()), ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"));
    assert!(!s.allow.iter().any(|h| h.contains("anthropic")), "the API host is not put on the proxy's allowlist");
}

#[test]
fn the_example_claude_code_bottle_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/claude-code/bottle.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let d = Dir::new();
    let s = d.parse(&text).unwrap();
    assert_eq!(s.apis[0].name, "anthropic");
}

#[test]
fn unknown_agents_and_bad_api_entries_are_refused_with_their_position() {
    let d = Dir::new();
    let e = d.refuse(&format!("{HEAD}image = {{ agent = \"codex-x\" }}\n"));
    assert!(
        e.starts_with(&format!("{}image.agent = \"codex-x\": unknown agent; known: claude-code", d.at(3, 19))),
        "{e}"
    );
    let e = d.refuse(&format!(
        "{HEAD}[[api]]\nname = \"a\"\nupstream = \"http://api.test\"\ncredential = {{ env = \"K\" }}\n"
    ));
    assert!(e.starts_with(&d.at(5, 12)) && e.contains("https://"), "{e}");
    let e = d.refuse(&format!(
        "{HEAD}[[api]]\nname = \"a\"\nupstream = \"https://api.test\"\nheader = \"basic\"\ncredential = {{ env = \"K\" }}\n"
    ));
    assert!(e.starts_with(&d.at(6, 10)) && e.contains("api[0].header"), "{e}");
    let e = d.refuse(&format!(
        "{HEAD}[agent.env]\nANTHROPIC_API_KEY = \"sk-real\"\n[[api]]\nname = \"a\"\nupstream = \"https://api.test\"\ncredential = {{ env = \"K\" }}\n"
    ));
    assert!(e.contains("bottle sets ANTHROPIC_API_KEY for the API gate"), "{e}");
    let e = d.refuse(&format!(
        "{HEAD}[[api]]\nname = \"a\"\nupstream = \"https://api.test\"\ncredential = {{ value = \"sk\" }}\n"
    ));
    assert!(e.contains("never go in bottle.toml") && !e.contains("\"sk\""), "{e}");
}

#[test]
fn a_secret_command_is_a_program_and_arguments_and_exactly_one_source() {
    let d = Dir::new();
    let s = d
        .parse(&format!(
            "{HEAD}[[secret]]\nname = \"K\"\ncommand = [\"security\", \"find-generic-password\", \"-w\"]\n\
             [[secret]]\nname = \"L\"\ncommand = [\"./bin/get\", \"x\"]\n\
             [git]\ncredentials = {{ command = [\"op\", \"read\", \"op://v/git\"] }}\n"
        ))
        .unwrap();
    let argv = |v: &[&str]| SecretSource::Command(v.iter().map(|a| a.to_string()).collect());
    assert_eq!(s.secrets[0].from, argv(&["security", "find-generic-password", "-w"]), "a bare name is found on PATH");
    let local = d.tmp.path().join("./bin/get");
    assert_eq!(s.secrets[1].from, argv(&[local.to_str().unwrap(), "x"]), "a path is the file's folder's");
    assert_eq!(s.git.credentials, Some(argv(&["op", "read", "op://v/git"])));
    assert_eq!(s.origins.get("secret[0]").map(|p| (p.line, p.col)), Some((5, 11)), "kept for up's checks");

    let e = d.refuse(&format!("{HEAD}[[secret]]\nname = \"K\"\ncommand = []\n"));
    assert!(e.starts_with(&format!("{}secret[0].command = \"[]\": the command is empty", d.at(5, 11))), "{e}");
    let e = d.refuse(&format!("{HEAD}[[secret]]\nname = \"K\"\nenv = \"A\"\ncommand = [\"x\"]\n"));
    assert!(e.starts_with(&format!("{}secret[0].env = \"A\"", d.at(5, 7))) && e.contains("not env and command"), "{e}");
    let e = d.refuse(&format!(
        "{HEAD}[[api]]\nname = \"m\"\nupstream = \"https://a.test\"\ncredential = {{ command = [\" \"] }}\n"
    ));
    assert!(e.contains("api[0].credential.command[0]") && e.contains("program name is empty"), "{e}");
}
