//! Plain-HTTP forwarding through the proxy with real curl: allowed and blocked
//! requests, keep-alive reuse, request and response body framings, header hygiene.

#[path = "../support/proxy/mod.rs"]
mod support;

use std::sync::atomic::Ordering;

use support::{Harness, header, raw_exchange, raw_header, status_and_headers};

fn text(out: &std::process::Output) -> String {
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn allowed_get_reaches_origin_and_host_is_rewritten() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    assert_eq!(text(&h.curl(&[&o.url("/")])), "hello from origin");
    // A spoofed Host header must not reach the origin: the URI's authority wins.
    let echo = text(&h.curl(&["-H", "Host: evil.test", &o.url("/echo")]));
    assert!(echo.contains(&format!("host=localhost:{}", o.addr.port())), "{echo}");
    assert!(h.blocks().is_empty());
}

#[test]
fn blocked_get_gets_403_with_rule_and_id_and_one_event() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let out = h.curl(&["-i", "http://blocked.test/very/secret/path?token=abc"]);
    let (status, headers) = status_and_headers(&out.stdout);
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "x-bottle-block"), Some("not-allowed"));
    let id = header(&headers, "x-bottle-request-id").expect("request id header").to_string();
    let blocks = h.blocks();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let b = &blocks[0];
    assert_eq!((b.rule.as_str(), b.method.as_str(), b.target.as_str()), ("not-allowed", "GET", "blocked.test:80"));
    assert_eq!(b.request_id, id);
    assert!(b.client.starts_with("127.0.0.1:"));
    let json = serde_json::to_string(&h.bundle.events.recent()).unwrap();
    assert!(!json.contains("secret") && !json.contains("token=abc"), "event echoes the URL: {json}");
    assert_eq!(h.bundle.stats.blocked_total.load(Ordering::Relaxed), 1);
}

#[test]
fn deny_wins_over_allow() {
    let h = Harness::start("[policy]\nallow = [\"localhost\", \"*.example.test\"]\ndeny = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let (status, headers) = status_and_headers(&h.curl(&["-i", &o.url("/")]).stdout);
    assert_eq!((status, header(&headers, "x-bottle-block")), (403, Some("denied")));
    assert_eq!(o.connections.load(Ordering::SeqCst), 0, "a denied request must not reach the origin");
}

#[test]
fn ip_literal_needs_a_cidr() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    let url = format!("http://127.0.0.1:{}/", o.addr.port());
    let (status, headers) = status_and_headers(&h.curl(&["-i", &url]).stdout);
    assert_eq!((status, header(&headers, "x-bottle-block")), (403, Some("ip-literal")));

    let h = Harness::start("[policy]\nallow = [\"127.0.0.0/8\"]\n");
    assert_eq!(text(&h.curl(&[&url])), "hello from origin");
}

#[test]
fn odd_host_spellings_are_refused() {
    let h = Harness::start("[policy]\nallow = [\"127.0.0.0/8\", \"localhost\"]\n");
    for host in ["0x7f.1", "2130706433", "127.1"] {
        let reply = raw_exchange(h.proxy, format!("GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert!(reply.starts_with("HTTP/1.1 403"), "{host}: {reply}");
        assert_eq!(raw_header(&reply, "x-bottle-block"), Some("odd-host"), "{host}");
    }
}

#[test]
fn keep_alive_reuses_both_connections() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let url = o.url("/conn");
    let out = text(&h.curl(&["-w", " connects=%{num_connects}\n", &url, &url, &url]));
    assert_eq!(out, "conn=1 connects=1\nconn=1 connects=0\nconn=1 connects=0\n");
    assert_eq!(o.connections.load(Ordering::SeqCst), 1);
}

/// Large bodies of known size are spliced socket to socket: every byte arrives
/// in order, and the kept connections carry the next request.
#[test]
fn large_responses_arrive_intact_and_both_connections_stay_usable() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let (first, second) = (h.dir.path().join("first.bin"), h.dir.path().join("second.bin"));
    let (first_arg, second_arg) = (first.display().to_string(), second.display().to_string());
    let big = o.url("/big");
    let out = h.curl(&["-w", "[%{num_connects}]", "-o", &first_arg, &big, "-o", &second_arg, &big, &o.url("/conn")]);
    assert_eq!(text(&out), "[1][0]conn=1[0]", "{}", String::from_utf8_lossy(&out.stderr));
    let want = support::big_body();
    assert!(std::fs::read(&first).unwrap() == want, "first body differs");
    assert!(std::fs::read(&second).unwrap() == want, "second body differs");
    assert_eq!(o.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn request_bodies_stream_with_both_framings() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    // 3 MiB: large enough that curl sends `Expect: 100-continue`, which the proxy answers itself.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let file = h.file("body.bin", &data);
    let at = format!("@{}", file.display());
    let sized = text(&h.curl(&["--data-binary", &at, &o.url("/echo")]));
    assert_eq!(
        sized,
        format!("method=POST len={} sum={sum} chunked=false host=localhost:{}", data.len(), o.addr.port())
    );
    let chunked = text(&h.curl(&["-H", "Transfer-Encoding: chunked", "--data-binary", &at, &o.url("/echo")]));
    assert_eq!(
        chunked,
        format!("method=POST len={} sum={sum} chunked=true host=localhost:{}", data.len(), o.addr.port())
    );
}

#[test]
fn chunked_responses_pass_through_and_are_decoded_for_http10() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let out = h.curl(&["-i", &o.url("/chunked")]);
    let (_, headers) = status_and_headers(&out.stdout);
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    assert!(text(&out).ends_with("first-second"));
    let old = h.curl(&["-i", "--http1.0", &o.url("/chunked")]);
    let (status, headers) = status_and_headers(&old.stdout);
    assert_eq!((status, header(&headers, "transfer-encoding")), (200, None));
    assert!(text(&old).ends_with("\r\n\r\nfirst-second"));
}

#[test]
fn smuggling_shapes_are_refused_before_any_upstream_contact() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let port = o.addr.port();
    let cl_te = format!(
        "POST http://localhost:{port}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let reply = raw_exchange(h.proxy, cl_te.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert_eq!(raw_header(&reply, "x-bottle-block"), Some("malformed-request"));
    let fold = format!("GET http://localhost:{port}/ HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n");
    assert!(raw_exchange(h.proxy, fold.as_bytes()).starts_with("HTTP/1.1 400"));
    assert_eq!(o.connections.load(Ordering::SeqCst), 0);
    assert_eq!(h.wait_block("malformed-request").method, "-");
}

#[test]
fn oversize_head_gets_431() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n[limits]\nmax_header_bytes = 4096\n");
    let req = format!("GET http://localhost:1/ HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(5000));
    let reply = raw_exchange(h.proxy, req.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(raw_header(&reply, "x-bottle-block"), Some("header-too-large"));
}

#[test]
fn live_policy_changes_apply_to_the_next_request() {
    let h = Harness::start("");
    let o = h.http_origin();
    let code = |h: &Harness| {
        String::from_utf8_lossy(&h.curl(&["-o", "/dev/null", "-w", "%{http_code}", &o.url("/")]).stdout).into_owned()
    };
    assert_eq!(code(&h), "403");
    let update =
        bottle_protocol::control::PolicyUpdate { allow: vec![format!("localhost:{}", o.addr.port())], deny: vec![] };
    assert_eq!(h.bundle.policy.replace(&update), Ok((1, 0)));
    assert_eq!(code(&h), "200");
    h.bundle.policy.replace(&bottle_protocol::control::PolicyUpdate { allow: vec![], deny: vec![] }).unwrap();
    h.bundle.policy.grant("req-1", "localhost", Some(o.addr.port()), None).unwrap();
    assert_eq!(code(&h), "200");
    assert!(h.bundle.policy.revoke("req-1"));
    assert_eq!(code(&h), "403");
}

#[test]
fn bodiless_responses_keep_the_connection_usable() {
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let url = o.url("/conn");
    // HEAD answers carry a Content-Length but no body; reading one would hang the next request.
    let out = text(&h.curl(&[
        "-I",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
        &url,
        &url,
    ]));
    assert_eq!(out, "200 1\n200 0\n");
    assert_eq!(text(&h.curl(&[&url])), "conn=2");
}

#[test]
fn origin_that_closes_a_kept_connection_is_redialled() {
    // A raw origin that answers exactly one request per connection, then closes without saying so.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for n in 1..=2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let k = s.read(&mut buf).unwrap();
                assert!(k > 0, "proxy closed before sending a request");
                got.extend_from_slice(&buf[..k]);
            }
            s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn={n}").as_bytes()).unwrap();
        }
    });
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    h.allow_port(port);
    let url = format!("http://localhost:{port}/");
    assert_eq!(text(&h.curl(&[&url, &url])), "conn=1conn=2");
    origin.join().unwrap();
}

#[test]
fn http10_keep_alive_clients_get_keep_alive_answers() {
    use std::io::{Read, Write};
    let h = Harness::start("[policy]\nallow = [\"localhost\"]\n");
    let o = h.http_origin();
    h.allow_port(o.addr.port());
    let mut s = std::net::TcpStream::connect(h.proxy).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let req = format!("GET {} HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", o.url("/conn"));
    for _ in 0..2 {
        // The way ab -k talks: HTTP/1.0, keep-alive asked for, the length read from the answer.
        s.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).ends_with("conn=1") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "proxy closed a keep-alive HTTP/1.0 connection: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let reply = String::from_utf8_lossy(&got);
        assert_eq!(raw_header(&reply, "connection"), Some("keep-alive"), "{reply}");
        assert_eq!(raw_header(&reply, "content-length"), Some("6"));
    }
}
