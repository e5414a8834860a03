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
const CURL_NO_RESOLVE: i64 = 6;
const CURL_REFUSED: i64 = 7;
const CURL_TIMEOUT: i64 = 28;
/// Connected, then the peer closed (52) or reset (56) before answering: the SYN got through.
const CURL_CONNECTED_THEN_CLOSED: [i64; 2] = [52, 56];

/// The network backend smolvm runs the VM on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetBackend {
    /// Enforces `allow_cidrs` (a blocked SYN is answered with a reset).
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
                "smolvm {} {} egress policy (allow_cidrs) + DNS filter (allow_hosts) + bundle proxy",
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

/// curl's options shared by every probe, bounded by its own timeouts.
fn curl() -> Vec<String> {
    let mut argv: Vec<String> =
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"].iter().map(|s| s.to_string()).collect();
    argv.extend(["--connect-timeout".into(), PROBE_CONNECT_SECS.to_string()]);
    argv.extend(["--max-time".into(), (PROBE_CONNECT_SECS * 2).to_string()]);
    argv
}

/// A direct probe, deaf to the VM's `HTTP_PROXY` (smolvm merges the Smolfile's `env`
/// into every exec, and a proxied request would never test the policy). `--noproxy`
/// also overrides `-x`, so the proxy probe does without it.
fn direct(url: String) -> Vec<String> {
    let mut argv = curl();
    argv.extend(["--noproxy".into(), "*".into(), url]);
    argv
}

/// The argv of a probe: one TCP connect + HTTP request, ignoring the proxy.
pub fn probe_command(target: SocketAddr) -> Vec<String> {
    direct(format!("http://{target}/"))
}

/// The bundle probe: a request for a name no allowlist holds, through the bundle's proxy. Only
/// the bottle's proxy answers it with its own 403, so a 403 shows the VM reached the bundle and
/// not something else at that address.
pub fn proxy_probe_command(proxy: SocketAddr) -> Vec<String> {
    let mut argv = curl();
    argv.extend(["-x".into(), format!("http://{proxy}"), PROXY_PROBE_URL.into()]);
    argv
}

/// The DNS probe: a lookup of `name` through the VM's own resolver (smolvm's gateway).
pub fn dns_probe_command(name: &str) -> Vec<String> {
    direct(format!("http://{name}/"))
}

/// What the bundle probe asks the proxy for (RFC 2606 `.invalid`: refused without dialing).
pub const PROXY_PROBE_URL: &str = "http://bottle-start-check.invalid/";

/// What a VM's connect to a canary outside the allowlist came to, as the verdict sees it;
/// read from curl's exit code (start check) or from `bottle-probe`'s outcome (`verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    /// The handshake completed.
    Connected,
    /// The handshake completed, then the peer closed or reset before answering.
    ConnectedThenClosed,
    /// No connection: refused or no route (curl exit 7 covers both).
    NotConnected,
    /// No answer before the connect timeout.
    TimedOut,
    /// Anything else, as the prober described it.
    Other(String),
}

impl Connect {
    pub fn from_curl(code: i64, stderr: &str) -> Self {
        match code {
            CURL_OK => Self::Connected,
            CURL_REFUSED => Self::NotConnected,
            CURL_TIMEOUT => Self::TimedOut,
            c if CURL_CONNECTED_THEN_CLOSED.contains(&c) => Self::ConnectedThenClosed,
            c => Self::Other(format!("curl exit {c} (expected 7, refused, or 28, a timeout): {stderr}")),
        }
    }
}

/// The verdict on one connect the policy must have stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// Stopped, and how (`refused`, `timed out`).
    Yes(&'static str),
    /// The SYN got through: the policy is not enforced.
    Reached(String),
    /// The canary does not answer the host either, so a failed connect proves nothing.
    NoWitness(String),
    /// An outcome that proves neither: fail closed.
    Unproven(String),
}

/// The one rule for a VM's blocked connect, shared by the start check and `verify`:
/// smolvm's virtio-net stack answers a denied SYN itself (smoltcp replies RST to a SYN no
/// socket takes: crates/smolvm-network/src/tcp_relay.rs `create_tcp_socket`, v1.1.3 to
/// v1.9.3), so the guest sees "refused" at once, and a timeout is a drop somewhere else.
/// Either is blocked, but only when the host reached the same canary (`host_reached`): a
/// canary nobody answers on is refused or times out with or without a policy. Anything that
/// connected, even if closed at once, means the SYN got through.
pub fn judge(host_reached: bool, seen: &Connect, canary: impl std::fmt::Display) -> Blocked {
    match seen {
        Connect::Connected => Blocked::Reached(format!(
            "the VM reached {canary}, which is outside the allowlist: the egress policy is not enforced"
        )),
        Connect::ConnectedThenClosed => Blocked::Reached(format!(
            "the VM connected to {canary}, which is outside the allowlist (then the connection closed): the egress policy is not enforced"
        )),
        _ if !host_reached => Blocked::NoWitness(unproven_detail(canary)),
        Connect::NotConnected => Blocked::Yes("refused"),
        Connect::TimedOut => Blocked::Yes("timed out"),
        Connect::Other(what) => Blocked::Unproven(format!("the probe of {canary} ended with {what}")),
    }
}

fn unproven_detail(canary: impl std::fmt::Display) -> String {
    format!("the canary {canary} does not accept connections from the host, so a blocked probe would prove nothing")
}

/// Whether the host itself connects to `canary` (the witness [`judge`] wants).
pub async fn host_reaches(canary: SocketAddr) -> bool {
    matches!(tokio::time::timeout(PREFLIGHT_CONNECT_TIMEOUT, TcpStream::connect(canary)).await, Ok(Ok(_)))
}

/// Runs the start check in a started VM (before the agent's command starts):
/// - the host reaches `canary` (outside the allowlist), so only the policy can stop the VM;
/// - the bundle's proxy answers the VM with its own 403;
/// - the VM's connect to `canary` is blocked as [`judge`] decides (refused or timed out;
///   anything that connected is failed);
/// - a lookup of a fresh `.invalid` name fails in the VM;
/// - on smolvm 1.8.1+, smolvm itself recorded both denials (`connect` to the canary and
///   `resolve` of the name): the refusal came from its policy and its DNS filter is on.
///
/// Every other outcome, including a probe that did not run, is not-verified: fail closed.
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
    let host_reached = host_reaches(canary).await;
    if !host_reached {
        return verdict(Verdict::NotVerified, unproven_detail(canary));
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
    let seen = Connect::from_curl(out.exit_code, out.stderr.trim());
    let blocked = match judge(host_reached, &seen, canary) {
        Blocked::Yes(how) => how,
        Blocked::Reached(why) => return verdict(Verdict::Failed, why),
        Blocked::Unproven(why) | Blocked::NoWitness(why) => return verdict(Verdict::NotVerified, why),
    };
    let dns_name = format!("x{:08x}.{DNS_PROBE_DOMAIN}", rand::random::<u32>());
    match smolvm.exec(name, &dns_probe_command(&dns_name), PROBE_TIMEOUT).await {
        Ok(o) if o.exit_code == CURL_NO_RESOLVE => {}
        Ok(o) => {
            return verdict(
                Verdict::NotVerified,
                format!("a lookup of {dns_name} in the VM did not fail as a lookup (curl exit {})", o.exit_code),
            );
        }
        Err(e) => return verdict(Verdict::NotVerified, format!("the DNS probe did not run: {e}")),
    }
    let held = format!("bundle proxy {proxy} reached; {canary} {blocked}; {dns_name} did not resolve");
    match smolvm.egress_events(name).await {
        Ok(None) => verdict(
            Verdict::Verified,
            format!("{held} (smolvm {} keeps no denial log, so neither is corroborated by smolvm)", smolvm.version()),
        ),
        Ok(Some(events)) => {
            match (recorded(&events, "connect", &canary.to_string()), recorded(&events, "resolve", &dns_name)) {
                (true, true) => verdict(Verdict::Verified, format!("{held}; smolvm recorded both denials")),
                (false, _) => verdict(
                    Verdict::NotVerified,
                    format!(
                        "{canary} was {blocked} but smolvm recorded no denial for it: something other than its egress policy stopped it"
                    ),
                ),
                (true, false) => verdict(
                    Verdict::NotVerified,
                    format!(
                        "smolvm recorded no `resolve` denial for {dns_name}: its DNS filter is not on, so DNS is a way out"
                    ),
                ),
            }
        }
        Err(e) => verdict(Verdict::NotVerified, format!("reading smolvm's denials failed: {e}")),
    }
}

/// Parent of the start check's DNS probe names (RFC 2606: never resolves anywhere).
pub const DNS_PROBE_DOMAIN: &str = "bottle-start-check.invalid";

fn recorded(events: &[EgressDenial], operation: &str, dest: &str) -> bool {
    events.iter().any(|e| e.operation == operation && e.dest.eq_ignore_ascii_case(dest))
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
    fn a_refusal_is_blocked_only_with_the_host_as_witness_and_a_connect_never_is() {
        let c = "10.0.0.9:9090";
        assert_eq!(judge(true, &Connect::from_curl(7, ""), c), Blocked::Yes("refused"));
        assert_eq!(judge(true, &Connect::from_curl(28, ""), c), Blocked::Yes("timed out"));
        assert!(matches!(judge(false, &Connect::NotConnected, c), Blocked::NoWitness(w) if w.contains(c)));
        for seen in [Connect::from_curl(0, ""), Connect::from_curl(52, ""), Connect::from_curl(56, "")] {
            for host in [true, false] {
                assert!(matches!(judge(host, &seen, c), Blocked::Reached(_)), "{seen:?}, host reached: {host}");
            }
        }
        assert!(
            matches!(judge(true, &Connect::from_curl(35, "tls"), c), Blocked::Unproven(w) if w.contains("curl exit 35"))
        );
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
