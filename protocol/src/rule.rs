//! The rule ids that name why a destination was allowed or refused.
//!
//! The bundle sends them in `X-Bottle-Block`, in `EgressBlocked` events and in
//! policy checks; the core and the menu-bar app explain them to a person. A
//! rule id spelt twice is one that can be renamed on one side only, and the
//! explanation would quietly stop matching, so every side names them from here.

/// Allowed by an allow entry of the policy.
pub const ALLOW: &str = "allow";
/// Allowed by a live grant (an approved access request or a host's grant).
pub const GRANT: &str = "grant";
/// The kill switch is engaged: nothing leaves.
pub const KILL_SWITCH: &str = "kill-switch";
/// A deny entry matched (deny wins over allow).
pub const DENIED: &str = "denied";
/// No allow entry or live grant matches the destination.
pub const NOT_ALLOWED: &str = "not-allowed";
/// An IP-literal target that no CIDR allow entry covers.
pub const IP_LITERAL: &str = "ip-literal";
/// A target that is neither a host name nor an IP address the proxy accepts.
pub const ODD_HOST: &str = "odd-host";

/// Rules the proxy raises about a connection's bytes rather than its destination.
pub mod proxy {
    pub const SNI_MISMATCH: &str = "sni-mismatch";
    pub const SNI_MISSING: &str = "sni-missing";
    pub const ORIGIN_NOT_TLS: &str = "tunnel-origin-not-tls";
    pub const TUNNEL_NOT_TLS: &str = "tunnel-not-tls";
    pub const TLS_HELLO_MALFORMED: &str = "tls-hello-malformed";
    pub const BODY_TOO_LARGE: &str = "body-too-large";
    pub const BAD_BODY: &str = "malformed-body";
}

/// egress's network-class refusals: whatever a name resolved to is not inside.
pub mod egress {
    /// A name with no usable answer (NXDOMAIN, no records, DNS failure).
    pub const UNRESOLVABLE: &str = "egress:unresolvable";
    pub const UNSPECIFIED: &str = "egress:unspecified";
    pub const LOOPBACK: &str = "egress:loopback";
    pub const METADATA: &str = "egress:metadata";
    pub const LINK_LOCAL: &str = "egress:link-local";
    pub const PRIVATE: &str = "egress:private";
    pub const MULTICAST: &str = "egress:multicast";
    pub const BROADCAST: &str = "egress:broadcast";
    pub const RESERVED: &str = "egress:reserved";
}

/// DLP findings: every one starts with [`dlp::PREFIX`].
pub mod dlp {
    pub const PREFIX: &str = "dlp:";
    pub const GITHUB_TOKEN: &str = "dlp:github-token";
    pub const SLACK_TOKEN: &str = "dlp:slack-token";
    pub const SLACK_WEBHOOK: &str = "dlp:slack-webhook";
    pub const AWS_ACCESS_KEY: &str = "dlp:aws-access-key";
    pub const ANTHROPIC_KEY: &str = "dlp:anthropic-key";
    pub const OPENAI_KEY: &str = "dlp:openai-key";
    pub const PRIVATE_KEY: &str = "dlp:private-key";
    pub const JWT: &str = "dlp:jwt";

    /// The rule of a named never-leave secret from the DLP secrets file.
    pub fn secret(name: &str) -> String {
        format!("{PREFIX}secret:{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dlp_rule_carries_the_prefix() {
        let all = [
            dlp::GITHUB_TOKEN,
            dlp::SLACK_TOKEN,
            dlp::SLACK_WEBHOOK,
            dlp::AWS_ACCESS_KEY,
            dlp::ANTHROPIC_KEY,
            dlp::OPENAI_KEY,
            dlp::PRIVATE_KEY,
            dlp::JWT,
        ];
        assert!(all.iter().all(|r| r.starts_with(dlp::PREFIX)), "{all:?}");
        assert_eq!(dlp::secret("API"), "dlp:secret:API");
    }
}
