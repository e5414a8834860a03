//! The proxy's whole decision for one request head, as `proxy::session::judge`
//! makes it: parse the head, normalize the host, DLP-scan the head with the
//! full pattern set plus named secrets, and ask the allowlist. Goal: ≤ 2 µs
//! median for the decision on a parsed head. Baseline in the same run:
//! parsing the head alone.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use bottle_bundle::dlp::Scanner;
use bottle_bundle::http::parse_request;
use bottle_bundle::policy::{Host, PolicyStore, Verdict};
use bottle_protocol::config::{DlpConfig, PolicyConfig};
use criterion::{Criterion, criterion_group, criterion_main};

/// A typical agent request: an API call with auth-free headers, about 600 bytes.
const HEAD: &[u8] = b"GET http://api.github.com/repos/acme/widgets/pulls?state=open&per_page=50 HTTP/1.1\r\n\
Host: api.github.com\r\nUser-Agent: claude-code/2.1 (linux; x64) node/22.11.0\r\n\
Accept: application/vnd.github+json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n\
X-GitHub-Api-Version: 2022-11-28\r\nX-Request-Id: 7b1f6c2e-4f0a-4d8e-9d3c-2a6b5e8f1c90\r\n\
Cache-Control: no-cache\r\nConnection: keep-alive\r\nCookie: _octo=GH1.1.123456789.1700000000; logged_in=no\r\n\
Referer: http://api.github.com/repos/acme/widgets\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";

const POLICY: &str = r#"
allow = ["api.github.com:443", "api.github.com", "*.githubusercontent.com", "pypi.org", "files.pythonhosted.org",
  "registry.npmjs.org", "*.crates.io", "static.crates.io", "index.crates.io", "api.anthropic.com:443",
  "statsig.anthropic.com", "sentry.io", "*.docker.io", "deb.debian.org", "security.debian.org", "proxy.golang.org",
  "sum.golang.org", "*.s3.amazonaws.com", "10.20.0.0/16", "2001:db8::/32"]
deny = ["gist.github.com", "*.ngrok.io", "pastebin.com", "transfer.sh", "uploads.github.com"]
"#;

const SECRETS: &str = r#"
DB_PASSWORD = "Tr0ub4dor&3-horse/staple"
STRIPE = "rk_live_51Hx9QzLkPq8W2mN4bV7c"
SESSION_KEY = "8f14e45fceea167a5a36dedd4bea2543"
SMTP = "mail-pass w0rd!"
INTERNAL_API = "int-api-7Gx2LpQ9sVw4"
VAULT_TOKEN = "hvs.CAESIJ4vGxk2T0mQn8Zb"
SIGNING = "sig:Zm9vYmFyYmF6cXV4MTIz"
LEGACY = "p@ssw0rd-2019-prod"
"#;

fn decision(c: &mut Criterion) {
    let cfg: PolicyConfig = toml::from_str(POLICY).unwrap();
    let policy = PolicyStore::from_config(Path::new("bench.toml"), POLICY, &cfg).unwrap();
    let mut secrets = tempfile::NamedTempFile::new().unwrap();
    secrets.write_all(SECRETS.as_bytes()).unwrap();
    let dlp = Scanner::from_config(&DlpConfig {
        secrets_file: Some(secrets.path().to_path_buf()),
        disable_builtin_patterns: false,
    })
    .unwrap();

    let decide = |head: &[u8]| {
        let req = parse_request(head, 32 * 1024).unwrap().unwrap();
        let host = Host::parse(req.target.host()).unwrap();
        if let Some(f) = dlp.scan(&head[..req.len]) {
            return Verdict::Deny { rule: f.rule };
        }
        policy.decide_host(&host, req.target.port())
    };
    assert_eq!(decide(HEAD), Verdict::Allow, "the benchmarked head must take the full allow path");

    let mut g = c.benchmark_group("request-head decision");
    g.bench_function("parse only (baseline)", |b| {
        b.iter(|| black_box(parse_request(black_box(HEAD), 32 * 1024).unwrap().unwrap().len))
    });
    g.bench_function("parse + host + DLP + allowlist", |b| b.iter(|| black_box(decide(black_box(HEAD)))));
    // The decision proper, on an already parsed head (what the 2 µs goal names).
    let req = parse_request(HEAD, 32 * 1024).unwrap().unwrap();
    let (target, port, len) = (req.target.host(), req.target.port(), req.len);
    g.bench_function("host + DLP + allowlist (parsed head)", |b| {
        b.iter(|| {
            let host = Host::parse(black_box(target)).unwrap();
            let dlp_hit = dlp.scan(black_box(&HEAD[..len])).is_some();
            black_box((dlp_hit, policy.decide_host(&host, port)))
        })
    });
    g.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
