//! The `privileges` category: no Docker socket, no capabilities, no writable host mount but the workspace.

use super::probing::{args, probes, seen, vm};
use crate::verify::{Category, Finding, Suite};

pub(super) async fn run(s: &Suite) -> Vec<Finding> {
    let r = probes(s, &[args(&["docker-socket"]), args(&["caps"]), args(&["mounts"])]).await;
    let rw_ok = r[2].as_ref().is_ok_and(|m| {
        m.outcome == "none" || m.outcome.strip_prefix("rw:").is_some_and(|l| l.split(',').all(|p| p == s.workdir))
    });
    vec![
        Finding::new(
            Category::Privileges,
            "docker socket",
            "absent",
            seen(&r[0]),
            r[0].as_ref().is_ok_and(|x| x.outcome == "absent"),
        ),
        if vm(s) {
            // What bounds a VM is the VMM: root in the guest can rewrite the guest's routes, never
            // smolvm's policy, which runs in the host process outside the guest kernel.
            Finding::not_run(
                Category::Privileges,
                "capabilities",
                "none of NET_ADMIN, NET_RAW, SYS_ADMIN, ...",
                format!("{} (a VM's own kernel: its capabilities reach no host resource)", seen(&r[1])),
            )
        } else {
            Finding::new(
                Category::Privileges,
                "capabilities",
                "none of NET_ADMIN, NET_RAW, SYS_ADMIN, ...",
                seen(&r[1]),
                r[1].as_ref().is_ok_and(|x| x.outcome == "none"),
            )
        },
        Finding::new(Category::Privileges, "writable host mounts", &format!("only {}", s.workdir), seen(&r[2]), rw_ok),
    ]
}
