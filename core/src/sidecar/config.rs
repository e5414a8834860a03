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
    ApiEntry, ApiGateConfig, BundleConfig, Control, DEFAULT_API_GATE_PORT, DEFAULT_CONTROL_PORT, DEFAULT_GIT_GATE_PORT,
    DEFAULT_PROXY_PORT, DEFAULT_SUPERVISE_PORT, DlpConfig, EgressConfig, GitConfig, GitRepo, Listen, PolicyConfig,
};
use toml::Spanned;

use super::network::Placement;
use crate::spec::Spec;

/// Where the files live inside the bundle.
pub const DIR: &str = "/etc/bottle";
pub const CONFIG_PATH: &str = "/etc/bottle/bundle.toml";
pub const TOKEN_PATH: &str = "/etc/bottle/control.token";
pub const SECRETS_PATH: &str = "/etc/bottle/secrets.toml";
pub const GIT_CREDENTIALS_PATH: &str = "/etc/bottle/git-credentials.toml";
pub const CANARY_CA_PATH: &str = "/etc/bottle/canary-ca.pem";
/// The bundle's own state (kill switch, the host's policy, grants, event epoch). It lives in
/// the container's writable layer, which an engine restart keeps and `down` removes, in the
/// one folder the bundle's user may write.
pub const STATE_PATH: &str = "/tmp/bottle-bundle-state.json";

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
    /// A PEM CA the bundle's API gate and git gate trust besides the public roots (that of a
    /// canary model API or git upstream), so their real TLS can be tested against a local CA.
    pub canary_ca: Option<std::path::PathBuf>,
}

/// Env: `name=ip[,name=ip...]` for [`SidecarOptions::canary_hosts`].
pub const CANARY_HOSTS_ENV: &str = "BOTTLE_CANARY_HOSTS";
/// Env: comma-separated CIDRs for [`SidecarOptions::canary_cidrs`].
pub const CANARY_CIDRS_ENV: &str = "BOTTLE_CANARY_CIDRS";
/// Env: comma-separated Docker networks for [`SidecarOptions::canary_networks`].
pub const CANARY_NETWORKS_ENV: &str = "BOTTLE_CANARY_NETWORKS";
/// Env: the URL for [`SidecarOptions::canary_url`].
pub const CANARY_URL_ENV: &str = "BOTTLE_CANARY_URL";
/// Env: a PEM file for [`SidecarOptions::canary_ca`].
pub const CANARY_CA_ENV: &str = "BOTTLE_CANARY_CA";

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
            canary_ca: var(CANARY_CA_ENV).filter(|u| !u.is_empty()).map(Into::into),
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

    let mut table = BTreeMap::new();
    for s in &spec.secrets {
        table.insert(s.name.clone(), s.from.read().with_context(|| format!("secret {:?}", s.name))?);
    }
    let mut apis = Vec::new();
    for a in &spec.apis {
        // The credential is a never-leave secret too: DLP then guards it on every path out.
        let credential = format!("api.{}", a.name);
        let value = a.credential.read().with_context(|| format!("api {:?} credential", a.name))?;
        table.insert(credential.clone(), value);
        let s = |v: String| Spanned::new(0..0, v);
        apis.push(ApiEntry {
            name: s(a.name.clone()),
            upstream: s(a.upstream.clone()),
            header: s(a.header.clone()),
            credential: s(credential),
            placeholder: s(format!("bottle-placeholder-{}-{}", a.name, &new_token()[..32])),
        });
    }
    let secrets_file = if table.is_empty() {
        None
    } else {
        files.push(BundleFile { path: SECRETS_PATH, contents: toml::to_string(&table)?.into_bytes() });
        Some(SECRETS_PATH.into())
    };
    let ca_file = match &options.canary_ca {
        None => None,
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("{CANARY_CA_ENV} {}", path.display()))?;
            files.push(BundleFile { path: CANARY_CA_PATH, contents: pem });
            Some(std::path::PathBuf::from(CANARY_CA_PATH))
        }
    };

    let credentials_file = match &spec.git.credentials {
        None => None,
        Some(src) => {
            let text = src.read().context("git.credentials")?;
            check_git_credentials(&text, &spec.git.repos).context("git.credentials")?;
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
            push_options: spanned(&r.push_options),
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
            api_gate: if apis.is_empty() { None } else { at(DEFAULT_API_GATE_PORT) },
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
        git: GitConfig {
            credentials_file,
            ca_file: ca_file.clone(),
            spool_max_bytes: None,
            spool_deadline_secs: None,
            repos,
        },
        supervise: Default::default(),
        api_gate: ApiGateConfig { ca_file, ..Default::default() },
        apis,
        state_file: Some(STATE_PATH.into()),
    };
    files.insert(0, BundleFile { path: CONFIG_PATH, contents: config.to_toml().into_bytes() });
    Ok(Rendered { config, files })
}

/// Checks the git credentials' text (TOML `alias = "token"` lines, each alias one of
/// `repos`), at `up`'s checks and again here, so what is checked is what is rendered.
pub fn check_git_credentials(text: &str, repos: &[crate::spec::RepoSpec]) -> anyhow::Result<()> {
    // Never echo the parser's message: it quotes the offending text, which is a credential.
    let table: BTreeMap<String, String> = toml::from_str(text)
        .map_err(|_| anyhow::anyhow!("not a TOML table of alias = \"token\" strings (content not shown)"))?;
    if let Some(alias) = table.keys().find(|a| !repos.iter().any(|r| &r.alias == *a)) {
        anyhow::bail!("alias {alias:?} names no [[git.repo]] of this bottle");
    }
    Ok(())
}

/// What the agent gets for each `[[api]]`: the gate's URL for it and its placeholder, never the credential.
pub fn api_env(spec: &Spec, config: &BundleConfig) -> Vec<(String, String)> {
    let Some(gate) = config.listen.api_gate else {
        return Vec::new();
    };
    let mut env = Vec::new();
    for a in &spec.apis {
        if let Some(entry) = config.apis.iter().find(|e| e.name.get_ref() == &a.name) {
            env.push((a.base_url_env.clone(), format!("http://{gate}/{}", a.name)));
            env.push((a.key_env.clone(), entry.placeholder.get_ref().clone()));
        }
    }
    env
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{GitSpec, RepoSpec, Secret, SecretSource};

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
                push_options: vec![],
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

    /// `echo value > file` ends the file in a newline. The rendered secret must
    /// not, or the bundle's pattern ends in `\n` and the raw value in a query
    /// string passes. Checked through the bundle's own loader and scanner.
    #[test]
    fn a_newline_terminated_secret_file_matches_the_raw_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "hunter2-from-echo\r\n").unwrap();
        let mut s = spec("b");
        s.secrets = vec![Secret { name: "API".into(), from: SecretSource::File(file) }];
        let r = render(&s, &placement(), &SidecarOptions::default(), "tok").unwrap();
        let rendered = &r.files.iter().find(|f| f.path == SECRETS_PATH).unwrap().contents;
        assert_eq!(String::from_utf8_lossy(rendered), "API = \"hunter2-from-echo\"\n");
        let secrets = dir.path().join("secrets.toml");
        std::fs::write(&secrets, rendered).unwrap();
        let cfg = DlpConfig { secrets_file: Some(secrets), disable_builtin_patterns: true };
        let scanner = bottle_bundle::dlp::Scanner::from_config(&cfg).unwrap();
        let hit = scanner.scan(b"GET http://a.test/?token=hunter2-from-echo&x=1 HTTP/1.1\r\n\r\n");
        assert_eq!(hit.map(|f| f.rule).as_deref(), Some("dlp:secret:API"));
    }

    #[test]
    fn an_empty_secret_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty");
        std::fs::write(&file, "\n").unwrap();
        let mut s = spec("b");
        s.secrets = vec![Secret { name: "API".into(), from: SecretSource::File(file.clone()) }];
        let e = format!("{:#}", render(&s, &placement(), &SidecarOptions::default(), "t").unwrap_err());
        assert!(e.contains("\"API\"") && e.contains(&file.display().to_string()) && e.contains("empty"), "{e}");
    }

    #[test]
    fn an_api_credential_goes_to_the_bundle_only_and_the_agent_gets_a_fresh_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "sk-ant-real-value-123456\n").unwrap();
        let mut s = spec("b");
        s.apis = vec![crate::spec::ApiSpec {
            name: "anthropic".into(),
            upstream: "https://api.anthropic.com".into(),
            header: "x-api-key".into(),
            credential: SecretSource::File(key),
            key_env: "ANTHROPIC_API_KEY".into(),
            base_url_env: "ANTHROPIC_BASE_URL".into(),
        }];
        let r = render(&s, &placement(), &SidecarOptions::default(), "tok").unwrap();
        let config = String::from_utf8(r.files[0].contents.clone()).unwrap();
        assert!(!config.contains("sk-ant-real"), "{config}");
        let secrets = r.files.iter().find(|f| f.path == SECRETS_PATH).unwrap();
        assert!(
            String::from_utf8_lossy(&secrets.contents).contains("\"api.anthropic\" = \"sk-ant-real-value-123456\"")
        );
        let env: BTreeMap<_, _> = api_env(&s, &r.config).into_iter().collect();
        assert_eq!(env["ANTHROPIC_BASE_URL"], "http://10.213.0.2:9420/anthropic");
        assert_eq!(&env["ANTHROPIC_API_KEY"], r.config.apis[0].placeholder.get_ref());
        assert!(env["ANTHROPIC_API_KEY"].starts_with("bottle-placeholder-anthropic-"));
        let again = render(&s, &placement(), &SidecarOptions::default(), "tok").unwrap();
        assert_ne!(
            again.config.apis[0].placeholder.get_ref(),
            r.config.apis[0].placeholder.get_ref(),
            "random per bottle"
        );
        assert!(r.config.policy.allow.iter().all(|a| !a.get_ref().contains("anthropic")), "not on the allowlist");
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
