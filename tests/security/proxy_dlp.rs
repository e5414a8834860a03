//! DLP on the proxy path: secrets in a URL, a header, a CONNECT target or a
//! streamed body are refused, and the event names the rule, never the secret.
//! These need the real `dlp::Scanner`; against the stub they would fail.

#[path = "../support/proxy/mod.rs"]
mod support;

use std::sync::atomic::Ordering;

use support::{Harness, header, status_and_headers};

const AWS_KEY: &str = "AKIAQWERTYUIOPASDFGH";
const NAMED_SECRET: &str = "hunter2-never-leaves-0xC0FFEE";

fn harness() -> Harness {
    // The scanner reads the secrets file once, at start; the file need not outlive that.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, format!("DEPLOY_TOKEN = \"{NAMED_SECRET}\"\n")).unwrap();
    Harness::start(&format!(
        "[policy]\nallow = [\"localhost\"]\n[dlp]\nsecrets_file = {:?}\n",
        secrets.display().to_string()
    ))
}

fn assert_no_secret_in_events(h: &Harness) {
    let json = serde_json::to_string(&h.bundle.events.recent()).unwrap();
    assert!(!json.contains(AWS_KEY) && !json.contains(NAMED_SECRET), "an event echoes a secret: {json}");
}

#[test]
fn secret_in_url_or_header_is_blocked() {
    let h = harness();
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let out = h.curl(&["-i", &o.url(&format!("/?k={AWS_KEY}"))]);
    let (status, headers) = status_and_headers(&out.stdout);
    assert_eq!(status, 403);
    assert!(header(&headers, "x-bottle-block").is_some_and(|r| r.starts_with("dlp:")), "{headers:?}");
    let out = h.curl(&["-i", "-H", &format!("X-Token: {NAMED_SECRET}"), &o.url("/")]);
    assert_eq!(status_and_headers(&out.stdout).0, 403);
    assert_eq!(o.connections.load(Ordering::SeqCst), 0);
    assert_no_secret_in_events(&h);
}

#[test]
fn secret_in_streamed_body_is_blocked() {
    let h = harness();
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let mut body = vec![b'x'; 200_000];
    body.extend_from_slice(NAMED_SECRET.as_bytes());
    let file = h.file("body.bin", &body);
    let at = format!("@{}", file.display());
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["-i", "--data-binary", &at];
        args.extend_from_slice(extra);
        let url = o.url("/echo");
        args.push(&url);
        let out = h.curl(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(status_and_headers(&out.stdout).0, 403, "{text}");
        assert!(!text.contains("method=POST"), "the origin answered a request carrying a secret");
    }
    assert_no_secret_in_events(&h);
}

#[test]
fn secret_in_connect_target_is_blocked_and_redacted() {
    let h = harness();
    let out = h.curl(&["-i", &format!("https://{AWS_KEY}.localhost/")]);
    assert_eq!(status_and_headers(&out.stdout).0, 403);
    assert_no_secret_in_events(&h);
}

/// Chunk extensions and trailers reach the origin byte for byte, so a secret
/// there is refused like one in the payload.
#[test]
fn secret_in_a_chunk_extension_or_trailer_is_blocked() {
    let h = harness();
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        o.url("/echo")
    );
    for body in [
        format!("5;note=\"{NAMED_SECRET}\"\r\nhello\r\n0\r\n\r\n"),
        format!("5\r\nhello\r\n0\r\nX-Checksum: {NAMED_SECRET}\r\n\r\n"),
        format!("5\r\nhello\r\n0;k={AWS_KEY}\r\n\r\n"),
    ] {
        let reply = support::raw_exchange(h.proxy, format!("{head}{body}").as_bytes());
        assert!(reply.starts_with("HTTP/1.1 403"), "{body}: {reply}");
        assert!(support::raw_header(&reply, "x-bottle-block").is_some_and(|r| r.starts_with("dlp:")), "{reply}");
        assert!(!reply.contains("method=POST"), "the origin answered a request carrying a secret");
    }
    assert_no_secret_in_events(&h);
}

/// The scan cap counts what is forwarded, not what is decoded: chunk framing
/// and extensions cannot carry bytes past it.
#[test]
fn chunk_framing_counts_toward_the_body_scan_cap() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n[limits]\nmax_body_scan_bytes = 1000\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        o.url("/echo")
    );
    // 300 payload bytes, about 6 KB on the wire.
    let body: String = (0..300).map(|i| format!("1;pad={i:012}\r\nZ\r\n")).collect::<String>() + "0\r\n\r\n";
    let reply = support::raw_exchange(h.proxy, format!("{head}{body}").as_bytes());
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert_eq!(support::raw_header(&reply, "x-bottle-block"), Some("body-too-large"));
    let small: String = (0..20).map(|_| "1\r\nZ\r\n").collect::<String>() + "0\r\n\r\n";
    let reply = support::raw_exchange(h.proxy, format!("{head}{small}").as_bytes());
    assert!(reply.contains("method=POST len=20"), "{reply}");
}
