//! Renders the bundle's files from a spec: `bundle.toml`, the control token,
//! the never-leave secrets and the git credentials.
//!
//! These files are the only place secret values go. They are uploaded into
//! the bundle container before it starts (see `bundle.rs`), never bind-mounted
//! from the host and never passed as environment, so neither the agent nor
//! `docker inspect` of either container shows them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use bottle_protocol::config::{
    BundleConfig, Control, DEFAULT_CONTROL_PORT, DEFAULT_GIT_GATE_PORT, DEFAULT_PROXY_PORT, DEFAULT_SUPERVISE_PORT,
    DlpConfig, EgressConfig, GitConfig, GitRepo, Listen, PolicyConfig,
};
use toml::Spanned;

use super::network::Placement;
use crate::spec::{SecretSource, Spec};

/// Where the files live inside the bundle.
pub const DIR: &str = "/etc/bottle";
pub const CONFIG_PATH: &str = "/etc/bottle/bundle.toml";
pub const TOKEN_PATH: &str = "/etc/bottle/control.token";
pub const SECRETS_PATH: &str = "/etc/bottle/secrets.toml";
pub const GIT_CREDENTIALS_PATH: &str = "/etc/bottle/git-credentials.toml";

/// Knobs that exist for canaries and tests, never set from a bottle.toml.
///
/// A test stands up a canary "internet" origin on a Docker network of its own;
/// these let the bundle reach it without touching real DNS or real addresses.
#[derive(Debug, Clone, Default)]
pub struct SidecarOptions {
    /// Static `name -> addresses` the bundle's egress resolves before DNS.
    pub canary_hosts: BTreeMap<String, Vec<String>>,
    /// Private CIDRs the bundle may dial although they are private (where the canary lives).
    pub canary_cidrs: Vec<String>,
    /// Extra Docker networks the bundle joins (the canary's network); each must be `internal`.
    pub canary_networks: Vec<String>,
    /// An allowed URL the start check also fetches from inside the agent (the escape
    /// suite's canary), so allowed traffic is seen to pass end to end.
    pub canary_url: Option<String>,
}

/// Env: `name=ip[,name=ip...]` for [`SidecarOptions::canary_hosts`].
pub const CANARY_HOSTS_ENV: &str = "BOTTLE_CANARY_HOSTS";
/// Env: comma-separated CIDRs for [`SidecarOptions::canary_cidrs`].
pub const CANARY_CIDRS_ENV: &str = "BOTTLE_CANARY_CIDRS";
/// Env: comma-separated Docker networks for [`SidecarOptions::canary_networks`].
pub const CANARY_NETWORKS_ENV: &str = "BOTTLE_CANARY_NETWORKS";
/// Env: the URL for [`SidecarOptions::canary_url`].
pub const CANARY_URL_ENV: &str = "BOTTLE_CANARY_URL";

impl SidecarOptions {
    /// Reads the `BOTTLE_CANARY_*` variables (how the demo and CI hand a canary to the CLI).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let list = |name| -> Vec<String> {
            var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let mut canary_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in list(CANARY_HOSTS_ENV) {
            let (name, ip) =
                pair.split_once('=').with_context(|| format!("{CANARY_HOSTS_ENV}: {pair:?} is not name=ip"))?;
            canary_hosts.entry(name.to_string()).or_default().push(ip.to_string());
        }
        Ok(Self {
            canary_hosts,
            canary_cidrs: list(CANARY_CIDRS_ENV),
            canary_networks: list(CANARY_NETWORKS_ENV),
            canary_url: var(CANARY_URL_ENV).filter(|u| !u.is_empty()),
        })
    }
}

/// One file for the bundle's `/etc/bottle`.
#[derive(Clone)]
pub struct BundleFile {
    pub path: &'static str,
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for BundleFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BundleFile({}, {} bytes)", self.path, self.contents.len())
    }
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub config: BundleConfig,
    pub files: Vec<BundleFile>,
}

/// A fresh 256-bit control-plane token, hex.
pub fn new_token() -> String {
    rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect()
}

fn spanned(items: &[String]) -> Vec<Spanned<String>> {
    items.iter().map(|s| Spanned::new(0..0, s.clone())).collect()
}

/// Builds the bundle's config and files for `spec` at `placement`; reads secret values now.
pub fn render(spec: &Spec, placement: &Placement, options: &SidecarOptions, token: &str) -> anyhow::Result<Rendered> {
    let at = |port| Some(SocketAddr::from((placement.bundle_ip, port)));
    let mut files = vec![BundleFile { path: TOKEN_PATH, contents: token.as_bytes().to_vec() }];

    let secrets_file = if spec.secrets.is_empty() {
        None
    } else {
        let mut table = BTreeMap::new();
        for s in &spec.secrets {
            table.insert(s.name.clone(), read_secret(&s.from).with_context(|| format!("secret {:?}", s.name))?);
        }
        files.push(BundleFile { path: SECRETS_PATH, contents: toml::to_string(&table)?.into_bytes() });
        Some(SECRETS_PATH.into())
    };

    let credentials_file = match &spec.git.credentials {
        None => None,
        Some(src) => {
            let text = read_secret(src).context("git.credentials")?;
            // Never echo the parser's message: it quotes the offending text, which is a credential.
            let table: BTreeMap<String, String> = toml::from_str(&text).map_err(|_| {
                anyhow::anyhow!("git.credentials: not a TOML table of alias = \"token\" strings (content not shown)")
            })?;
            if let Some(alias) = table.keys().find(|a| !spec.git.repos.iter().any(|r| &r.alias == *a)) {
                anyhow::bail!("git.credentials: alias {alias:?} names no [[git.repo]] of this bottle");
            }
            files.push(BundleFile { path: GIT_CREDENTIALS_PATH, contents: text.into_bytes() });
            Some(GIT_CREDENTIALS_PATH.into())
        }
    };

    let repos = spec
        .git
        .repos
        .iter()
        .map(|r| GitRepo {
            alias: Spanned::new(0..0, r.alias.clone()),
            upstream: Spanned::new(0..0, r.upstream.clone()),
            fetch: r.fetch,
            push: spanned(&r.push),
            protected: spanned(&r.protected),
            tags: r.tags,
        })
        .collect();

    let config = BundleConfig {
        bottle: spec.name.clone(),
        listen: Listen {
            proxy: at(DEFAULT_PROXY_PORT).expect("some"),
            control: SocketAddr::from((placement.bundle_egress_ip, DEFAULT_CONTROL_PORT)),
            egress: SocketAddr::from(([127, 0, 0, 1], bottle_protocol::config::EGRESS_PORT)),
            git_gate: at(DEFAULT_GIT_GATE_PORT),
            supervise: at(DEFAULT_SUPERVISE_PORT),
        },
        control: Control { token_file: TOKEN_PATH.into() },
        policy: PolicyConfig { allow: spanned(&spec.allow), deny: spanned(&spec.deny) },
        dlp: DlpConfig { secrets_file, disable_builtin_patterns: false },
        egress: EgressConfig {
            nameservers: Vec::new(),
            hosts: options.canary_hosts.iter().map(|(k, v)| (k.clone(), spanned(v))).collect(),
            allow_cidrs: spanned(&options.canary_cidrs),
        },
        limits: Default::default(),
        git: GitConfig { credentials_file, ca_file: None, spool_max_bytes: None, spool_deadline_secs: None, repos },
        supervise: Default::default(),
    };
    files.insert(0, BundleFile { path: CONFIG_PATH, contents: config.to_toml().into_bytes() });
    Ok(Rendered { config, files })
}

/// Reads a secret's value from the host; errors name the source, never the value.
fn read_secret(src: &SecretSource) -> anyhow::Result<String> {
    match src {
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| anyhow::anyhow!("env var {var} is not set on the host"))
        }
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {}", path.display(), e.kind()))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{GitSpec, RepoSpec, Secret};

    pub(crate) fn spec(name: &str) -> Spec {
        Spec {
            allow: vec!["allowed.test".into(), "*.example.test:443".into()],
            deny: vec!["bad.example.test".into()],
            ..Spec::new(name, "/tmp")
        }
    }

    fn placement() -> Placement {
        crate::sidecar::network::tests::placement()
    }

    #[test]
    fn rendered_config_parses_back_and_binds_where_the_placement_says() {
        let r = render(&spec("b"), &placement(), &SidecarOptions::default(), "tok").unwrap();
        let text = String::from_utf8(r.files[0].contents.clone()).unwrap();
        let back = BundleConfig::parse(Path::new(CONFIG_PATH), &text).unwrap();
        assert_eq!(back.listen.proxy.to_string(), "10.213.0.2:3128");
        assert_eq!(back.listen.control.to_string(), "10.213.0.18:9090", "control sits on the egress network");
        assert_eq!(back.policy.allow.len(), 2);
        assert_eq!(back.policy.deny[0].get_ref(), "bad.example.test");
        assert_eq!(r.files[1].path, TOKEN_PATH);
        assert_eq!(r.files[1].contents, b"tok");
    }

    #[test]
    fn secrets_and_credentials_go_to_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "hunter2-value").unwrap();
        let creds = dir.path().join("c");
        std::fs::write(&creds, "app = \"user:ghp_secret\"\n").unwrap();
        let mut s = spec("b");
        s.secrets = vec![Secret { name: "API".into(), from: SecretSource::File(secret) }];
        s.git = GitSpec {
            credentials: Some(SecretSource::File(creds)),
            repos: vec![RepoSpec {
                alias: "app".into(),
                upstream: "https://git.example.test/app.git".into(),
                fetch: true,
                push: vec!["agent/*".into()],
                protected: vec!["main".into()],
                tags: false,
            }],
        };
        let r = render(&s, &placement(), &SidecarOptions::default(), "tok").unwrap();
        let config = String::from_utf8(r.files[0].contents.clone()).unwrap();
        assert!(!config.contains("hunter2") && !config.contains("ghp_secret"), "{config}");
        let by_path = |p| r.files.iter().find(|f| f.path == p).unwrap().contents.clone();
        assert!(String::from_utf8(by_path(SECRETS_PATH)).unwrap().contains("API = \"hunter2-value\""));
        assert!(String::from_utf8(by_path(GIT_CREDENTIALS_PATH)).unwrap().contains("ghp_secret"));
        assert!(!format!("{r:?}").contains("hunter2"), "Debug never shows file contents");
    }

    #[test]
    fn bad_credentials_file_error_does_not_echo_content() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("c");
        std::fs::write(&creds, "app = ghp_unquoted_secret\n").unwrap();
        let mut s = spec("b");
        s.git.credentials = Some(SecretSource::File(creds));
        let e = format!("{:#}", render(&s, &placement(), &SidecarOptions::default(), "t").unwrap_err());
        assert!(e.contains("git.credentials") && !e.contains("ghp_"), "{e}");
    }

    #[test]
    fn missing_secret_env_names_the_variable() {
        let mut s = spec("b");
        s.secrets = vec![Secret { name: "K".into(), from: SecretSource::Env("BOTTLE_TEST_UNSET_VAR_X".into()) }];
        let e = format!("{:#}", render(&s, &placement(), &SidecarOptions::default(), "t").unwrap_err());
        assert!(e.contains("BOTTLE_TEST_UNSET_VAR_X") && e.contains("\"K\""), "{e}");
    }

    #[test]
    fn canary_options_read_from_variables() {
        let vars = BTreeMap::from([
            (CANARY_HOSTS_ENV, "allowed.test=172.18.0.2, allowed.test=172.18.0.3"),
            (CANARY_NETWORKS_ENV, "canary-net"),
            (CANARY_URL_ENV, "http://allowed.test/"),
        ]);
        let o = SidecarOptions::from_vars(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(o.canary_hosts["allowed.test"], ["172.18.0.2", "172.18.0.3"]);
        assert_eq!(o.canary_networks, ["canary-net"]);
        assert!(o.canary_cidrs.is_empty());
        assert_eq!(o.canary_url.as_deref(), Some("http://allowed.test/"));
        let bad = SidecarOptions::from_vars(|k| (k == CANARY_HOSTS_ENV).then(|| "nope".into())).unwrap_err();
        assert!(bad.to_string().contains("\"nope\" is not name=ip"), "{bad}");
    }

    #[test]
    fn tokens_are_fresh_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
