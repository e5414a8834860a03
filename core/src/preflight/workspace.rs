//! The workspace check: it still exists, and the agent's user can write it.
//!
//! The Docker agent runs with no capabilities, so not even a uid 0 agent passes a
//! permission check by privilege: it writes the workspace only as its owner, its group or
//! through the mode's bits for others. Who the agent is follows `images::agent_ids` (the
//! workspace's owner, or bottle's agent user for a root-owned workspace) or, with `[agent]
//! run_as_image_user`, the image's `USER` when that is a number or root. Only a Linux host
//! shares its uids with the engine's containers this way; elsewhere (Docker Desktop's file
//! sharing, a smolmachines VM) ownership is mapped, and only existence is checked.

use std::os::unix::fs::MetadataExt;

use bollard::Docker;

use super::{Item, Outcome, item};
use crate::backend::BackendKind;
use crate::spec::{ImageSource, Spec};

pub(super) async fn check(spec: &Spec, engine: Option<&Docker>, backend: BackendKind) -> Item {
    let ws = spec.workspace.display().to_string();
    let mut it = item(spec, "workspace", "workspace", "workspace", &ws);
    let meta = match std::fs::metadata(&spec.workspace) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return failed(it, format!("{ws} is no longer a directory")),
        Err(e) => return failed(it, format!("{ws}: {} (bottle never creates it)", e.kind())),
    };
    it.detail = format!("{ws} exists");
    if backend != BackendKind::Docker || !cfg!(target_os = "linux") {
        return it;
    }
    let Some((uid, gid, who)) = agent_user(spec, engine, meta.uid()).await else {
        it.detail = format!("{ws} exists; which uid the image's user is cannot be told before it runs");
        return it;
    };
    if writable(meta.uid(), meta.gid(), meta.mode(), uid, gid) {
        it.detail = format!("{ws} exists and {who} (uid {uid}) can write it");
        return it;
    }
    it.outcome = Outcome::Warning;
    it.detail = format!(
        "{who} (uid {uid}) cannot write {ws} (owner uid {}, mode {:o}): the agent's work there will fail",
        meta.uid(),
        meta.mode() & 0o7777
    );
    it.fix = if spec.run_as_image_user {
        format!(
            "let uid {uid} write it (`sudo chown -R {uid} {ws}`), or drop `[agent] run_as_image_user` so the agent runs as the workspace's owner"
        )
    } else if meta.uid() == 0 {
        format!("make it yours (`sudo chown -R $(id -u):$(id -g) {ws}`): the agent then runs as you")
    } else {
        format!("give its owner write access (`chmod u+w {ws}`)")
    };
    it
}

fn failed(mut it: Item, detail: String) -> Item {
    it.outcome = Outcome::Failed;
    it.detail = detail;
    it.fix = "create the directory, or point `workspace` at an existing one".into();
    it
}

/// The agent's uid, gid and who that is, in words; `None` when the image's user is a name
/// only its own `/etc/passwd` resolves, or its image is not there to ask.
async fn agent_user(spec: &Spec, engine: Option<&Docker>, owner: u32) -> Option<(u32, u32, String)> {
    if !spec.run_as_image_user {
        let (uid, gid) = crate::images::agent_ids(spec);
        let who = if owner == 0 { "bottle's agent user" } else { "the agent, as the workspace's owner," };
        return Some((uid, gid, who.into()));
    }
    let ImageSource::Reference(r) = &spec.image else { return None };
    let user = engine?.inspect_image(r).await.ok()?.config?.user.unwrap_or_default();
    let (uid, gid) = parse_user(&user)?;
    Some((uid, gid, format!("the image's user {:?}", if user.is_empty() { "root" } else { &user })))
}

/// An image `USER` as uid and gid: empty or `root` is 0, `N` or `N:M` numbers; a name is unknown.
fn parse_user(user: &str) -> Option<(u32, u32)> {
    let (u, g) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
    let uid = match u {
        "" | "root" => 0,
        n => n.parse().ok()?,
    };
    let gid = match g {
        None => uid,
        Some("root") => 0,
        Some(n) => n.parse().ok()?,
    };
    Some((uid, gid))
}

/// The mode's verdict for a process with no capabilities: owner bits, else group, else other.
fn writable(owner: u32, group: u32, mode: u32, uid: u32, gid: u32) -> bool {
    let bit = if uid == owner {
        0o200
    } else if gid == group {
        0o020
    } else {
        0o002
    };
    mode & bit != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_matching_class_of_bits_counts() {
        assert!(writable(1000, 1000, 0o755, 1000, 1000));
        assert!(!writable(0, 0, 0o755, 1000, 1000), "a root-owned 755 dir is read-only for uid 1000");
        assert!(writable(0, 0, 0o777, 1000, 1000));
        assert!(!writable(1000, 1000, 0o557, 1000, 1000), "the owner's bits win over other's");
        assert!(!writable(1000, 1000, 0o755, 0, 0), "root without capabilities is only 'other'");
        assert!(writable(1000, 50, 0o775, 2000, 50));
    }

    #[test]
    fn image_users_parse_as_numbers_or_root_only() {
        assert_eq!(parse_user(""), Some((0, 0)));
        assert_eq!(parse_user("root"), Some((0, 0)));
        assert_eq!(parse_user("1001:50"), Some((1001, 50)));
        assert_eq!(parse_user("node"), None);
    }
}
