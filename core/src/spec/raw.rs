//! The bottle.toml as written: serde shapes with source spans, before validation.
//!
//! Kept apart from the validated [`super::Spec`] so that the public type carries
//! plain values while every value here keeps the span its error must point at.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub image: Option<Spanned<RawImage>>,
    pub workspace: Spanned<String>,
    #[serde(default)]
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub backend: Option<Spanned<String>>,
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub egress: RawEgress,
    #[serde(default, rename = "secret")]
    pub secrets: Vec<RawSecret>,
    #[serde(default)]
    pub git: RawGit,
    #[serde(default)]
    pub resources: RawResources,
    #[serde(default, rename = "api")]
    pub apis: Vec<RawApi>,
}

/// One `[[api]]`: a model API the agent reaches through the bundle's API gate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub name: Spanned<String>,
    pub upstream: Spanned<String>,
    #[serde(default)]
    pub header: Option<Spanned<String>>,
    pub credential: Spanned<RawSource>,
    #[serde(default)]
    pub key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub base_url_env: Option<Spanned<String>>,
}

/// `image = "ref"`, `image = { build = "dir", dockerfile = "file" }` or `image = { agent = "name" }`.
#[derive(Debug)]
pub(super) enum RawImage {
    Reference(String),
    Table(RawImageTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImageTable {
    #[serde(default)]
    pub build: Option<Spanned<String>>,
    #[serde(default)]
    pub dockerfile: Option<Spanned<String>>,
    #[serde(default)]
    pub agent: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawImage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ImageVisitor;
        impl<'de> Visitor<'de> for ImageVisitor {
            type Value = RawImage;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an image reference string, { build = \"dir\", dockerfile = \"file\" } or { agent = \"claude-code\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawImage, E> {
                Ok(RawImage::Reference(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawImage, A::Error> {
                RawImageTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawImage::Table)
            }
        }
        d.deserialize_any(ImageVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    #[serde(default)]
    pub command: Vec<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub run_as_image_user: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEgress {
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub name: Spanned<String>,
    #[serde(default)]
    pub env: Option<Spanned<String>>,
    #[serde(default)]
    pub file: Option<Spanned<String>>,
    #[serde(default)]
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Accepted only to be refused with a reason; never read.
    #[serde(default)]
    pub value: Option<Spanned<toml::Value>>,
}

/// `{ env = "VAR" }`, `{ file = "path" }` or `{ command = ["program", "arg"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    #[serde(default)]
    pub env: Option<Spanned<String>>,
    #[serde(default)]
    pub file: Option<Spanned<String>>,
    #[serde(default)]
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Accepted only to be refused with a reason; never read.
    #[serde(default)]
    pub value: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGit {
    #[serde(default)]
    pub credentials: Option<Spanned<RawSource>>,
    #[serde(default, rename = "repo")]
    pub repos: Vec<RawRepo>,
}

/// A `[[git.repo]]` table has the very shape the bundle reads, so it is parsed with the bundle's own type.
pub(super) type RawRepo = bottle_protocol::config::GitRepo;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResources {
    /// Integer or float.
    #[serde(default)]
    pub cpus: Option<Spanned<toml::Value>>,
    /// Integer MiB or a string with a unit suffix.
    #[serde(default)]
    pub memory: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub pids: Option<Spanned<i64>>,
}
