//! `[[api]]` checks: model APIs the agent reaches through the bundle's API
//! gate. The credential is named by where it lives on the host, like a
//! `[[secret]]`, and never enters the agent; the agent gets a placeholder and
//! the gate's URL in the variables named here.
//!
//! `image = { agent = "claude-code" }` implies the Anthropic entry when none
//! is written, so the one-line spec gives a working, keyless agent.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::raw::RawApi;
use super::validate::{Checked, Checker, REDACTED, is_env_name};
use super::{AgentKind, ApiSpec, ImageSource, SecretSource};

/// The Anthropic API, as Claude Code calls it.
pub const ANTHROPIC: &str = "anthropic";
pub const ANTHROPIC_UPSTREAM: &str = "https://api.anthropic.com";
/// Claude Code reads its API key here, and sends it as `x-api-key`.
pub const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// Claude Code reads an OAuth token here, and sends it as `Authorization: Bearer`.
pub const ANTHROPIC_OAUTH_ENV: &str = "CLAUDE_CODE_OAUTH_TOKEN";
pub const ANTHROPIC_BASE_URL_ENV: &str = "ANTHROPIC_BASE_URL";

impl Checker<'_> {
    pub(super) fn apis(
        &self,
        raw: &[RawApi],
        image: &ImageSource,
        env: &BTreeMap<String, String>,
    ) -> Checked<Vec<ApiSpec>> {
        let mut names = BTreeSet::new();
        let mut vars = BTreeSet::new();
        let mut out = Vec::new();
        for (i, a) in raw.iter().enumerate() {
            let key = format!("api[{i}]");
            let name = a.name.get_ref();
            if name.is_empty()
                || name.len() > 40
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
            {
                return Err(self.bad(
                    &format!("{key}.name"),
                    &a.name,
                    "a name is 1-40 of [A-Za-z0-9_-] (it is a URL path segment)",
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.bad(&format!("{key}.name"), &a.name, "an API with this name is already defined"));
            }
            self.api_upstream(&format!("{key}.upstream"), &a.upstream)?;
            let header = match &a.header {
                None => "x-api-key".to_string(),
                Some(h) if ["x-api-key", "bearer"].contains(&h.get_ref().as_str()) => h.get_ref().clone(),
                Some(h) => return Err(self.bad(&format!("{key}.header"), h, "expected `x-api-key` or `bearer`")),
            };
            let credential = self.source(&format!("{key}.credential"), a.credential.span(), a.credential.get_ref())?;
            let default_key = if header == "bearer" { ANTHROPIC_OAUTH_ENV } else { ANTHROPIC_KEY_ENV };
            let key_env = self.agent_var(&format!("{key}.key_env"), a.key_env.as_ref(), default_key, env, &mut vars)?;
            let base_url_env = self.agent_var(
                &format!("{key}.base_url_env"),
                a.base_url_env.as_ref(),
                ANTHROPIC_BASE_URL_ENV,
                env,
                &mut vars,
            )?;
            out.push(ApiSpec {
                name: name.clone(),
                upstream: a.upstream.get_ref().clone(),
                header,
                credential,
                key_env,
                base_url_env,
            });
        }
        if *image == ImageSource::Agent(AgentKind::ClaudeCode) && !names.contains(ANTHROPIC) {
            out.push(ApiSpec {
                name: ANTHROPIC.into(),
                upstream: ANTHROPIC_UPSTREAM.into(),
                header: "x-api-key".into(),
                credential: SecretSource::Env(ANTHROPIC_KEY_ENV.into()),
                key_env: ANTHROPIC_KEY_ENV.into(),
                base_url_env: ANTHROPIC_BASE_URL_ENV.into(),
            });
        }
        Ok(out)
    }

    /// An agent variable bottle sets for an API: a valid name, not also set in `[agent.env]`
    /// (which would put a value, maybe the real key, beside the placeholder), used once.
    fn agent_var(
        &self,
        key: &str,
        given: Option<&Spanned<String>>,
        default: &str,
        env: &BTreeMap<String, String>,
        used: &mut BTreeSet<String>,
    ) -> Checked<String> {
        let (value, at) = match given {
            Some(v) => (v.get_ref().clone(), Some(v)),
            None => (default.to_string(), None),
        };
        let fail = |msg: String| match at {
            Some(v) => self.bad(key, v, msg),
            None => self.err(0..0, key, &value, msg),
        };
        if !is_env_name(&value) {
            return Err(fail("not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into()));
        }
        if env.contains_key(&value) {
            return Err(fail(format!("bottle sets {value} for the API gate; remove it from [agent.env]")));
        }
        if !used.insert(value.clone()) {
            return Err(fail(format!("{value} is already set for another [[api]]")));
        }
        Ok(value)
    }

    /// `https://host[:port][/path]`: the credential only ever crosses the network over TLS.
    fn api_upstream(&self, key: &str, v: &Spanned<String>) -> Checked<()> {
        let s = v.get_ref();
        let Some(rest) = s.strip_prefix("https://") else {
            return Err(self.bad(key, v, "expected an https:// URL (the gate sends the credential only over TLS)"));
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err(self.err(
                v.span(),
                key,
                REDACTED,
                "credentials never go in the URL; use credential = { env = ... }",
            ));
        }
        let ok = !authority.is_empty()
            && !s.contains(['?', '#'])
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
        if !ok {
            return Err(self.bad(key, v, "expected https://host[:port][/path] without query or fragment"));
        }
        Ok(())
    }
}
