//! The `proxy` category: the proxy refuses every disguise of a host it should not reach, with
//! an event for each, and lets the allowed one through.

use super::events::refused_with_event;
use super::probing::{args, no_contact, probe, proxy_addr, seen};
use crate::verify::world::Contact;
use crate::verify::{ALLOWED_HOST, Category, Finding, Suite};

pub(super) async fn run(s: &Suite) -> Vec<Finding> {
    let px = proxy_addr(s);
    let o = s.world.outside.ip.octets();
    let decimal = u32::from(s.world.outside.ip).to_string();
    let hex = format!("0x{:08x}", u32::from(s.world.outside.ip));
    let octal = o.iter().map(|b| format!("0{b:o}")).collect::<Vec<_>>().join(".");
    let ip_target = format!("{}:443", s.world.outside.ip);
    let cases: Vec<(String, Vec<String>)> = vec![
        ("denied domain".into(), args(&["http", &px, "GET", "http://denied.verify.invalid/"])),
        ("CONNECT to an IP literal".into(), args(&["connect", &px, &ip_target])),
        ("userinfo allowed.test@evil.invalid".into(), args(&["http", &px, "GET", "http://allowed.test@evil.invalid/"])),
        ("percent-encoded host".into(), args(&["http", &px, "GET", "http://evil%2Einvalid/"])),
        (format!("decimal IPv4 host {decimal}"), args(&["http", &px, "GET", &format!("http://{decimal}/")])),
        (format!("hex IPv4 host {hex}"), args(&["http", &px, "GET", &format!("http://{hex}/")])),
        (format!("octal IPv4 host {octal}"), args(&["http", &px, "GET", &format!("http://{octal}/")])),
    ];
    let mut out = Vec::new();
    let before = s.world.outside_contacts().await.len();
    for (name, a) in &cases {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        out.push(refused_with_event(s, Category::Proxy, name, &a).await);
    }
    if s.allowed {
        let sni = ["connect", px.as_str(), "allowed.test:443", "evil.invalid"];
        out.push(refused_with_event(s, Category::Proxy, "SNI evil.invalid under CONNECT allowed.test:443", &sni).await);
    } else {
        out.push(Finding::not_run(
            Category::Proxy,
            "SNI differs from CONNECT host",
            "refused",
            "no allowed canary host in NAME mode (run with -f)",
        ));
    }
    let leaked: Vec<Contact> = s
        .world
        .outside_contacts()
        .await
        .into_iter()
        .skip(before)
        .filter(|c| c.proto != "tcp" || c.port != 443)
        .collect();
    out.push(no_contact(Category::Proxy, "outside canary log", "no request of a refused probe arrived", &leaked));
    if s.allowed {
        let before = s.world.outside_contacts().await.len();
        let r = probe(s, &["http", &px, "GET", &format!("http://{ALLOWED_HOST}/")]).await;
        let arrived = s.world.outside_contacts().await.into_iter().skip(before).any(|c| c.proto == "http");
        let ok = r.as_ref().is_ok_and(|r| r.outcome == "status:200") && arrived;
        out.push(Finding::new(
            Category::Proxy,
            "allowed host (positive control)",
            "status:200 and the canary saw it",
            format!("{}; canary saw it: {arrived}", seen(&r)),
            ok,
        ));
    }
    out
}
