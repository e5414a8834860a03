//! The gate's validated view of `[[api]]` and `[api_gate]`: each API's
//! upstream, which header carries its credential, the credential itself (read
//! from the never-leave secrets file, so DLP guards it everywhere by
//! construction) and the placeholder the agent holds instead.
//!
//! Checked once at startup, so a typo stops the bundle with a `file:line:col`
//! error. Credential values never enter an error or a `Debug`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bottle_protocol::config::{ApiEntry, BundleConfig, ConfigError};
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::pool::Pool;
use crate::gitgate::config::{Secret, Upstream, parse_upstream, tls_config};

/// Placeholders shorter than this could turn up in ordinary text and be mistaken for one.
pub const MIN_PLACEHOLDER_LEN: usize = 16;

/// How an API takes its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialHeader {
    /// `x-api-key: <key>` (Anthropic API keys).
    XApiKey,
    /// `Authorization: Bearer <token>` (OAuth tokens such as `CLAUDE_CODE_OAUTH_TOKEN`).
    Bearer,
}

impl CredentialHeader {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "x-api-key" => Some(Self::XApiKey),
            "bearer" => Some(Self::Bearer),
            _ => None,
        }
    }

    /// What the agent presented in this header, if anything.
    pub fn presented(self, headers: &HeaderMap) -> Option<&[u8]> {
        match self {
            Self::XApiKey => headers.get("x-api-key").map(HeaderValue::as_bytes),
            Self::Bearer => headers.get(AUTHORIZATION).and_then(|v| {
                let v = v.as_bytes();
                (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| &v[7..])
            }),
        }
    }

    /// The header the upstream gets, marked sensitive so hyper never logs it.
    pub fn upstream(self, credential: &Secret) -> (HeaderName, HeaderValue) {
        let (name, value) = match self {
            Self::XApiKey => (HeaderName::from_static("x-api-key"), credential.expose().to_string()),
            Self::Bearer => (AUTHORIZATION, format!("Bearer {}", credential.expose())),
        };
        let mut v = HeaderValue::from_str(&value).expect("credential checked to be a header value at startup");
        v.set_sensitive(true);
        (name, v)
    }
}

pub struct Api {
    pub name: String,
    pub upstream: Upstream,
    pub header: CredentialHeader,
    pub credential: Secret,
    pub placeholder: String,
    /// Idle upstream connections, so a call does not pay for a TLS handshake each time.
    pub pool: Pool,
}

/// Every configured API by name, plus the upstream TLS roots they share.
pub struct Apis {
    apis: BTreeMap<String, Arc<Api>>,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Apis {
    /// Validates `[[api]]`. `file` and `text` are the bundle config, for error positions.
    pub fn from_config(file: &Path, text: &str, cfg: &BundleConfig) -> anyhow::Result<Self> {
        let tls = Arc::new(tls_config("api_gate.ca_file", cfg.api_gate.ca_file.as_deref())?);
        if cfg.apis.is_empty() {
            return Ok(Self { apis: BTreeMap::new(), tls });
        }
        let Some(secrets_file) = &cfg.dlp.secrets_file else {
            let first = &cfg.apis[0].credential;
            return Err(
                ConfigError::at(file, text, "api.credential", first, "needs dlp.secrets_file to hold it").into()
            );
        };
        let secrets = load_secrets(secrets_file)?;
        let mut apis = BTreeMap::new();
        for entry in &cfg.apis {
            let api = parse_api(file, text, entry, &secrets)?;
            if apis.contains_key(&api.name) {
                return Err(ConfigError::at(file, text, "api.name", &entry.name, "duplicate API name").into());
            }
            if apis.values().any(|a: &Arc<Api>| a.placeholder == api.placeholder) {
                return Err(
                    ConfigError::at(file, text, "api.placeholder", &entry.placeholder, "placeholder reused").into()
                );
            }
            apis.insert(api.name.clone(), Arc::new(api));
        }
        Ok(Self { apis, tls })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Api>> {
        self.apis.get(name).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.apis.is_empty()
    }

    /// The API whose placeholder `presented` is, if any (to name it in a refusal).
    pub fn owner_of(&self, presented: &[u8]) -> Option<&str> {
        self.apis.values().find(|a| a.placeholder.as_bytes() == presented).map(|a| a.name.as_str())
    }
}

fn parse_api(file: &Path, text: &str, e: &ApiEntry, secrets: &BTreeMap<String, Secret>) -> Result<Api, ConfigError> {
    let err = |key: &str, v: &toml::Spanned<String>, msg: &str| ConfigError::at(file, text, key, v, msg);
    let name = e.name.get_ref();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)) {
        return Err(err("api.name", &e.name, "a name is one URL path segment of letters, digits, '_' or '-'"));
    }
    let upstream = parse_upstream(e.upstream.get_ref()).map_err(|m| err("api.upstream", &e.upstream, m))?;
    if !upstream.tls {
        return Err(err(
            "api.upstream",
            &e.upstream,
            "must be https: the credential never crosses the network in clear",
        ));
    }
    let header = CredentialHeader::parse(e.header.get_ref())
        .ok_or_else(|| err("api.header", &e.header, "expected `x-api-key` or `bearer`"))?;
    let credential = secrets
        .get(e.credential.get_ref())
        .ok_or_else(|| err("api.credential", &e.credential, "names no secret in dlp.secrets_file"))?;
    if HeaderValue::from_str(credential.expose()).is_err() {
        // Shown by name only: the value is the credential.
        return Err(err("api.credential", &e.credential, "the secret is not a valid HTTP header value"));
    }
    let placeholder = e.placeholder.get_ref();
    if placeholder.len() < MIN_PLACEHOLDER_LEN || !placeholder.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            "api.placeholder",
            &e.placeholder,
            &format!("must be at least {MIN_PLACEHOLDER_LEN} printable ASCII characters"),
        ));
    }
    if placeholder == credential.expose() {
        return Err(err("api.placeholder", &e.placeholder, "equals the credential it stands for"));
    }
    Ok(Api {
        name: name.clone(),
        upstream,
        header,
        credential: Secret::new(credential.expose().to_string()),
        placeholder: placeholder.clone(),
        pool: Pool::default(),
    })
}

/// Reads `NAME = "value"` lines of the never-leave secrets file. DLP validates the same file at
/// startup; here only the values the gate needs are taken, and errors never quote the text.
fn load_secrets(path: &Path) -> anyhow::Result<BTreeMap<String, Secret>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("dlp.secrets_file {}: cannot read: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|_| anyhow::anyhow!("dlp.secrets_file {}: not a TOML table (content not shown)", path.display()))?;
    Ok(table.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, Secret::new(v.to_string())))).collect())
}
