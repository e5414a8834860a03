//! What this backend can say about its allowlist, and the start check that
//! decides whether it may say "verified".
//!
//! smolvm's status JSON does not show the policy or the network backend, and
//! smolvm 0.8.0 showed that an accepted policy can be a no-op. So the verdict is
//! never read from configuration: it comes from watching the VM itself fail to
//! reach an address outside the allowlist while reaching the bundle.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use super::driver::Smolvm;
use super::egress::EgressDenial;
use super::name::MachineName;
use super::preflight::PREFLIGHT_CONNECT_TIMEOUT;
use super::smolfile::{AllowList, BundleAddr};
use super::version::Version;
use crate::backend::{AllowlistStatus, Verdict, VmmFacts};

/// Bound on one probe inside the VM (curl's own limits are below it).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// curl's connect timeout for a probe; a dropped SYN shows up as this.
pub const PROBE_CONNECT_SECS: u32 = 5;

/// curl exit codes the verdict depends on.
const CURL_OK: i64 = 0;
const CURL_REFUSED: i64 = 7;
const CURL_TIMEOUT: i64 = 28;

/// The network backend smolvm runs the VM on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetBackend {
    /// Enforces `allow_cidrs` (blocked SYNs are dropped).
    VirtioNet,
    /// libkrun's socket interception; ignored `allow_cidrs` before smolvm 1.1.3.
    Tsi,
}

impl NetBackend {
    /// From 1.1.3 a policy selects virtio-net (and bottle always sets one and
    /// asks for virtio-net explicitly); before, TSI was the default.
    pub fn for_version(version: Version, has_policy: bool) -> Self {
        if has_policy && version >= Version::MIN_ENFORCING { Self::VirtioNet } else { Self::Tsi }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VirtioNet => "virtio-net",
            Self::Tsi => "tsi",
        }
    }
}

/// The outcome of one start check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartCheck {
    pub verdict: Verdict,
    /// RFC 3339 UTC.
    pub checked_at: String,
    pub detail: String,
}

/// This backend's allowlist status, with the facts the shared type has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmolAllowlistStatus {
    pub allowlist: Vec<String>,
    pub net_backend: NetBackend,
    pub smolvm_version: String,
    /// `None` until a start check has run for this VM.
    pub check: Option<StartCheck>,
}

impl SmolAllowlistStatus {
    pub fn new(allow: &AllowList, version: Version, check: Option<StartCheck>) -> Self {
        Self {
            allowlist: allow.entries(),
            net_backend: NetBackend::for_version(version, true),
            smolvm_version: version.to_string(),
            check,
        }
    }

    pub fn to_status(&self) -> AllowlistStatus {
        let (verdict, checked_at, detail) = match &self.check {
            Some(c) => (c.verdict, Some(c.checked_at.clone()), c.detail.clone()),
            None => (Verdict::NotVerified, None, "no start check has completed for this VM".into()),
        };
        AllowlistStatus {
            verdict,
            allowlist: self.allowlist.clone(),
            mechanism: format!(
                "smolvm {} {} egress policy (allow_cidrs) + bundle proxy; DNS via the VM gateway is not gated",
                self.smolvm_version,
                self.net_backend.as_str()
            ),
            checked_at,
            detail,
            vmm: Some(VmmFacts {
                runtime: "smolvm".into(),
                version: self.smolvm_version.clone(),
                net_backend: self.net_backend.as_str().into(),
            }),
        }
    }
}

/// The argv of a probe: one TCP connect + HTTP request, bounded by curl's own timeouts.
pub fn probe_command(target: SocketAddr) -> Vec<String> {
    let mut argv: Vec<String> = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend([PROBE_CONNECT_SECS.to_string(), "--max-time".into(), (PROBE_CONNECT_SECS * 2).to_string()]);
    argv.push(format!("http://{target}/"));
    argv
}

/// The bundle probe: a request for a name no allowlist holds, through the bundle's proxy. Only
/// the bottle's proxy answers it with its own 403, so a 403 shows the VM reached the bundle and
/// not something else at that address.
pub fn proxy_probe_command(proxy: SocketAddr) -> Vec<String> {
    let mut argv = probe_command(proxy);
    argv.pop();
    argv.extend(["-x".into(), format!("http://{proxy}"), PROXY_PROBE_URL.into()]);
    argv
}

/// What the bundle probe asks the proxy for (RFC 2606 `.invalid`: refused without dialing).
pub const PROXY_PROBE_URL: &str = "http://bottle-start-check.invalid/";

/// Runs the start check in a started VM: the bundle's proxy must answer, and
/// `canary` (outside the allowlist, answering on the host) must time out. On a
/// smolvm with `egress-events`, the canary's denial must also be on record.
pub async fn run_start_check(
    smolvm: &Smolvm,
    name: &MachineName,
    bundle: BundleAddr,
    canary: SocketAddr,
) -> StartCheck {
    let verdict = |v: Verdict, detail: String| StartCheck {
        verdict: v,
        checked_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        detail,
    };
    // A canary nobody answers on would time out with or without a policy.
    let host_probe = tokio::time::timeout(PREFLIGHT_CONNECT_TIMEOUT, TcpStream::connect(canary)).await;
    if !matches!(host_probe, Ok(Ok(_))) {
        return verdict(
            Verdict::NotVerified,
            format!(
                "the canary {canary} does not accept connections from the host, so a blocked probe would prove nothing"
            ),
        );
    }
    let proxy = SocketAddr::new(bundle.ip, bundle.proxy_port);
    match smolvm.exec(name, &proxy_probe_command(proxy), PROBE_TIMEOUT).await {
        Ok(o) if o.exit_code == CURL_OK && o.stdout.trim() == "403" => {}
        Ok(o) if o.exit_code == CURL_OK => {
            return verdict(
                Verdict::NotVerified,
                format!(
                    "something at {proxy} answered the VM with HTTP {}, not the bundle proxy's 403 for {PROXY_PROBE_URL}",
                    o.stdout.trim()
                ),
            );
        }
        Ok(o) => {
            return verdict(
                Verdict::NotVerified,
                format!(
                    "the VM could not reach the bundle proxy at {proxy} (curl exit {}): {}",
                    o.exit_code,
                    o.stderr.trim()
                ),
            );
        }
        Err(e) => {
            return verdict(Verdict::NotVerified, format!("probe of the bundle proxy did not run: {e}"));
        }
    }
    let out = match smolvm.exec(name, &probe_command(canary), PROBE_TIMEOUT).await {
        Ok(o) => o,
        Err(e) => {
            return verdict(Verdict::NotVerified, format!("probe of the canary did not run: {e}"));
        }
    };
    match out.exit_code {
        CURL_TIMEOUT => {}
        CURL_OK => {
            return verdict(
                Verdict::Failed,
                format!("the VM reached {canary}, which is outside the allowlist: the egress policy is not enforced"),
            );
        }
        CURL_REFUSED => {
            return verdict(
                Verdict::Failed,
                format!(
                    "a connection to {canary} was refused rather than dropped: the SYN left the VM, so the egress policy is not enforced"
                ),
            );
        }
        code => {
            return verdict(
                Verdict::NotVerified,
                format!("the canary probe ended with curl exit {code} (expected 28, a timeout): {}", out.stderr.trim()),
            );
        }
    }
    match smolvm.egress_events(name).await {
        Ok(None) => verdict(
            Verdict::Verified,
            format!(
                "bundle proxy {proxy} reached; {canary} dropped (smolvm {} keeps no denial log to corroborate)",
                smolvm.version()
            ),
        ),
        Ok(Some(events)) if recorded(&events, canary) => {
            verdict(Verdict::Verified, format!("bundle proxy {proxy} reached; {canary} dropped and recorded by smolvm"))
        }
        Ok(Some(_)) => verdict(
            Verdict::NotVerified,
            format!(
                "{canary} timed out but smolvm recorded no denial for it: something other than the egress policy dropped it"
            ),
        ),
        Err(e) => verdict(Verdict::NotVerified, format!("reading smolvm's denials failed: {e}")),
    }
}

fn recorded(events: &[EgressDenial], canary: SocketAddr) -> bool {
    let dest = canary.to_string();
    events.iter().any(|e| e.operation == "connect" && e.dest == dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_version_and_policy() {
        assert_eq!(NetBackend::for_version(Version::new(1, 1, 3), true), NetBackend::VirtioNet);
        assert_eq!(NetBackend::for_version(Version::new(1, 1, 2), true), NetBackend::Tsi);
        assert_eq!(NetBackend::for_version(Version::new(1, 9, 3), false), NetBackend::Tsi);
    }

    #[test]
    fn status_without_a_check_is_not_verified() {
        let s =
            SmolAllowlistStatus::new(&AllowList::bundle_only("10.9.0.2".parse().unwrap()), Version::new(1, 9, 3), None);
        let a = s.to_status();
        assert_eq!(a.verdict, Verdict::NotVerified);
        assert_eq!(a.allowlist, ["10.9.0.2/32"]);
        assert!(a.mechanism.contains("smolvm 1.9.3 virtio-net"), "{}", a.mechanism);
        assert!(a.checked_at.is_none());
        let vmm = a.vmm.unwrap();
        assert_eq!((vmm.version.as_str(), vmm.net_backend.as_str()), ("1.9.3", "virtio-net"));
    }
}
