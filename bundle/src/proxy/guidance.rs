//! What a refusal tells the agent about what to do next, in its body and one header.
//!
//! An agent that only reads "blocked" gives up or retries blindly; one that reads the
//! call to make can ask the human. So a refusal the human can lift names the supervise
//! request to send, as a command an agent can run. It carries only the agent's own
//! destination and the supervise address the agent already has (`BOTTLE_SUPERVISE_URL`):
//! nothing of the policy's contents, the host or the bundle's other services.

use std::net::{IpAddr, SocketAddr};

use bottle_protocol::rule;

use crate::supervise::{api, names};

/// `X-Bottle-Ask`: where to `POST` an access request, on refusals an access request can lift.
pub const ASK_HEADER: &str = "X-Bottle-Ask";
/// Longest long-poll the wait command in a refusal asks for.
const WAIT_SECS: u64 = api::MAX_WAIT_SECS;

/// One refusal, as the agent's guidance needs it.
pub struct Refusal<'a> {
    pub rule: &'a str,
    /// The block's id.
    pub id: &'a str,
    /// `host:port` as recorded (`-` or redacted when unknown or not to be echoed).
    pub target: &'a str,
    /// The agent's open access request for this destination.
    pub access_request: Option<&'a str>,
}

pub struct Guidance {
    /// The value of [`ASK_HEADER`], when asking can help.
    pub ask: Option<String>,
    pub body: String,
}

/// The supervise base URL as the agent reaches it: the configured address, or, when it
/// listens on every interface, the address this agent connection came in on.
pub fn supervise_url(listen: Option<SocketAddr>, arrived_on: Option<IpAddr>) -> Option<String> {
    let listen = listen?;
    let ip = if listen.ip().is_unspecified() { arrived_on? } else { listen.ip() };
    Some(match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{}", listen.port()),
        IpAddr::V6(v6) => format!("http://[{v6}]:{}", listen.port()),
    })
}

pub fn for_refusal(r: &Refusal<'_>, supervise: Option<&str>) -> Guidance {
    let mut body = format!("bottle blocked this request: {} (block {})\n", r.rule, r.id);
    let mut ask = None;
    match (r.rule, supervise) {
        (rule::NOT_ALLOWED, Some(url)) => {
            let requests = format!("{url}{}", api::REQUESTS);
            body.push_str(&ask_text(&requests, r));
            ask = Some(requests);
        }
        (rule::NOT_ALLOWED, None) => body.push_str("This destination is not on the bottle's allowlist.\n"),
        (rule::IP_LITERAL, _) => body.push_str(
            "IP addresses are refused unless the bottle's policy lists them. Use the host name; \
             if that is refused too, the refusal says how to ask for it.\n",
        ),
        (rule::DENIED, _) => {
            body.push_str("The bottle's policy denies this destination; asking for access will not change that.\n")
        }
        (rule::KILL_SWITCH, _) => body
            .push_str("The human has cut all of this bottle's egress; nothing can be reached until they restore it.\n"),
        _ => {}
    }
    Guidance { ask, body }
}

fn ask_text(requests: &str, r: &Refusal<'_>) -> String {
    let wait = |id: &str| format!("curl -s '{requests}/{id}?wait={WAIT_SECS}'");
    if let Some(id) = r.access_request {
        return format!(
            "Your access request {id} for this destination is open. Wait for the human's verdict, \
             then retry once its \"status\" is \"approved\":\n  {}\n",
            wait(id)
        );
    }
    let (host, port) = destination(r.target);
    let port = port.map(|p| format!(",\"port\":{p}")).unwrap_or_default();
    format!(
        "This destination is not on the bottle's allowlist. A human can allow it: ask, saying why you need it, \
         then wait for the verdict and retry once its \"status\" is \"approved\".\n\
         Ask:  curl -s -X POST {requests} -H 'Content-Type: application/json' \
         -d '{{\"host\":\"{host}\"{port},\"reason\":\"<why you need it>\"}}'\n\
         Wait: {}\n",
        wait("<id from the reply>")
    )
}

/// The host and port to put in the ask: the refused one when it is a name supervise
/// accepts, otherwise a placeholder (a redacted or odd target is never echoed).
fn destination(target: &str) -> (String, Option<u16>) {
    let Some((host, port)) = target.rsplit_once(':') else { return ("HOST".into(), None) };
    match names::host(host) {
        Ok(name) => (name, port.parse().ok()),
        Err(_) => ("HOST".into(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(rule: &'a str, target: &'a str, access_request: Option<&'a str>) -> Refusal<'a> {
        Refusal { rule, id: "blk-00000000000000aa", target, access_request }
    }

    #[test]
    fn a_not_allowed_refusal_names_the_ask_and_the_wait() {
        let g = for_refusal(&refusal("not-allowed", "api.example.com:443", None), Some("http://10.0.0.2:9100"));
        assert_eq!(g.ask.as_deref(), Some("http://10.0.0.2:9100/v1/requests"));
        assert!(g.body.starts_with("bottle blocked this request: not-allowed (block blk-00000000000000aa)\n"));
        assert!(
            g.body.contains(r#"-d '{"host":"api.example.com","port":443,"reason":"<why you need it>"}'"#),
            "{}",
            g.body
        );
        assert!(
            g.body.contains("curl -s 'http://10.0.0.2:9100/v1/requests/<id from the reply>?wait=30'"),
            "{}",
            g.body
        );
    }

    #[test]
    fn an_open_request_is_waited_on_not_asked_again() {
        let g = for_refusal(&refusal("not-allowed", "a.test:80", Some("abc")), Some("http://10.0.0.2:9100"));
        assert!(g.body.contains("access request abc") && g.body.contains("/v1/requests/abc?wait=30"), "{}", g.body);
        assert!(!g.body.contains("-X POST"), "{}", g.body);
    }

    #[test]
    fn odd_or_redacted_targets_are_not_echoed_and_unliftable_refusals_offer_no_ask() {
        for target in ["[redacted]", "-", "localhost:80", "x_y.test:443"] {
            let g = for_refusal(&refusal("not-allowed", target, None), Some("http://10.0.0.2:9100"));
            assert!(g.body.contains(r#""host":"HOST""#), "{target}: {}", g.body);
        }
        for rule in ["denied", "kill-switch", "ip-literal", "dlp:aws-key"] {
            let g = for_refusal(&refusal(rule, "a.test:443", None), Some("http://10.0.0.2:9100"));
            assert!(g.ask.is_none() && !g.body.contains("/v1/requests"), "{rule}: {}", g.body);
        }
        assert!(for_refusal(&refusal("not-allowed", "a.test:443", None), None).ask.is_none());
    }

    #[test]
    fn the_supervise_url_is_the_address_the_agent_came_in_on_when_it_listens_everywhere() {
        let arrived = Some("10.9.0.2".parse().unwrap());
        assert_eq!(supervise_url(Some("0.0.0.0:9100".parse().unwrap()), arrived).unwrap(), "http://10.9.0.2:9100");
        assert_eq!(supervise_url(Some("10.1.0.2:9100".parse().unwrap()), arrived).unwrap(), "http://10.1.0.2:9100");
        assert_eq!(
            supervise_url(Some("[::]:9100".parse().unwrap()), Some("fd00::2".parse().unwrap())).unwrap(),
            "http://[fd00::2]:9100"
        );
        assert!(supervise_url(None, arrived).is_none());
    }
}
