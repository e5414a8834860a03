//! STUB (to be replaced by the spec owner): the parsed `bottle.toml`.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub source: PathBuf,
}
