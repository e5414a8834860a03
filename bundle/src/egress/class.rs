//! Destination classes: which IP addresses egress refuses to dial, and why.
//!
//! The agent must not reach the bundle's own loopback services, the host's
//! network, cloud metadata endpoints or anything else that is not the public
//! internet. Classification is a pure function of the address so it can be
//! tested exhaustively without sending a packet. IPv6 forms that carry an IPv4
//! address (mapped, compatible, SIIT, NAT64, 6to4) are unwrapped first: a
//! refused IPv4 address must not become reachable by writing it as IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bottle_protocol::rule::egress as rule;

/// What kind of network an address belongs to. Everything but `Public` is refused
/// unless `egress.allow_cidrs` exempts the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Public,
    Unspecified,
    Loopback,
    /// Cloud instance metadata and similar host-agent endpoints.
    Metadata,
    LinkLocal,
    /// RFC 1918, CGNAT (100.64/10), ULA (fc00::/7), site-local (fec0::/10).
    Private,
    Multicast,
    Broadcast,
    /// Documentation, benchmarking, IETF-reserved and other never-public ranges.
    Reserved,
}

impl Class {
    /// The `X-Bottle-Block` rule for a refused class; `None` for a public address.
    pub fn rule(self) -> Option<&'static str> {
        match self {
            Class::Public => None,
            Class::Unspecified => Some(rule::UNSPECIFIED),
            Class::Loopback => Some(rule::LOOPBACK),
            Class::Metadata => Some(rule::METADATA),
            Class::LinkLocal => Some(rule::LINK_LOCAL),
            Class::Private => Some(rule::PRIVATE),
            Class::Multicast => Some(rule::MULTICAST),
            Class::Broadcast => Some(rule::BROADCAST),
            Class::Reserved => Some(rule::RESERVED),
        }
    }
}

/// Well-known metadata endpoints that are not already link-local: Azure's
/// wireserver and Alibaba's metadata service. (169.254.169.254 and
/// 169.254.170.2 are listed too so they get the sharper rule name.)
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(100, 100, 100, 200),
];

/// `(network, prefix length, class)` for IPv4, checked in order.
const V4_RANGES: [([u8; 4], u8, Class); 15] = [
    ([0, 0, 0, 0], 8, Class::Unspecified),
    ([127, 0, 0, 0], 8, Class::Loopback),
    ([169, 254, 0, 0], 16, Class::LinkLocal),
    ([10, 0, 0, 0], 8, Class::Private),
    ([172, 16, 0, 0], 12, Class::Private),
    ([192, 168, 0, 0], 16, Class::Private),
    ([100, 64, 0, 0], 10, Class::Private),
    ([224, 0, 0, 0], 4, Class::Multicast),
    ([255, 255, 255, 255], 32, Class::Broadcast),
    ([240, 0, 0, 0], 4, Class::Reserved),
    ([192, 0, 0, 0], 24, Class::Reserved),
    ([192, 0, 2, 0], 24, Class::Reserved),
    ([198, 18, 0, 0], 15, Class::Reserved),
    ([198, 51, 100, 0], 24, Class::Reserved),
    ([203, 0, 113, 0], 24, Class::Reserved),
];

/// `(network, prefix length, class)` for IPv6 after IPv4 unwrapping, checked in order.
/// Anything outside 2000::/3 that is not listed is `Reserved`.
const V6_RANGES: [(u128, u8, Class); 10] = [
    (0xfd00_0ec2 << 96, 32, Class::Metadata),
    (0xfc00 << 112, 7, Class::Private),
    (0xfe80 << 112, 10, Class::LinkLocal),
    (0xfec0 << 112, 10, Class::Private),
    (0xff00 << 112, 8, Class::Multicast),
    (0x2001_0db8 << 96, 32, Class::Reserved),
    (0x3fff << 112, 20, Class::Reserved),
    // Teredo hides an obfuscated IPv4 client address; nothing legitimate dials it.
    (0x2001_0000 << 96, 32, Class::Reserved),
    (0x2001_0002 << 96, 48, Class::Reserved),
    (0x0064_ff9b_0001 << 80, 48, Class::Reserved),
];

pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    if METADATA_V4.contains(&ip) {
        return Class::Metadata;
    }
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| bits & mask32(*len) == u32::from_be_bytes(*net))
        .map_or(Class::Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip.is_unspecified() {
        return Class::Unspecified;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let bits = u128::from(ip);
    if let Some((_, _, class)) = V6_RANGES.iter().find(|(net, len, _)| bits & mask128(*len) == *net) {
        return *class;
    }
    // Only 2000::/3 is global unicast; the rest of the space is unassigned or special.
    if bits >> 125 == 1 { Class::Public } else { Class::Reserved }
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that
/// carries one: IPv4-mapped `::ffff:a.b.c.d`, SIIT `::ffff:0:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let high96 = bits >> 32;
    match high96 {
        0xffff | 0xffff_0000 | 0 | 0x0064_ff9b_0000_0000_0000_0000 => Some(low),
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32)),
        _ => None,
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Class {
        classify(s.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        for (ip, class) in [
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("127.0.0.1", Class::Loopback),
            ("127.255.255.254", Class::Loopback),
            ("169.254.169.254", Class::Metadata),
            ("169.254.170.2", Class::Metadata),
            ("168.63.129.16", Class::Metadata),
            ("100.100.100.200", Class::Metadata),
            ("169.254.1.1", Class::LinkLocal),
            ("10.0.0.1", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("100.127.255.255", Class::Private),
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.250", Class::Multicast),
            ("255.255.255.255", Class::Broadcast),
            ("240.0.0.1", Class::Reserved),
            ("192.0.0.170", Class::Reserved),
            ("192.0.2.1", Class::Reserved),
            ("198.18.0.1", Class::Reserved),
            ("198.19.255.255", Class::Reserved),
            ("198.51.100.7", Class::Reserved),
            ("203.0.113.9", Class::Reserved),
            ("1.1.1.1", Class::Public),
            ("172.32.0.1", Class::Public),
            ("100.128.0.1", Class::Public),
            ("198.20.0.1", Class::Public),
            ("223.255.255.255", Class::Public),
        ] {
            assert_eq!(c(ip), class, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes() {
        for (ip, class) in [
            ("::", Class::Unspecified),
            ("::1", Class::Loopback),
            ("fe80::1", Class::LinkLocal),
            ("fd00:ec2::254", Class::Metadata),
            ("fd12:3456::1", Class::Private),
            ("fc00::1", Class::Private),
            ("fec0::1", Class::Private),
            ("ff02::1", Class::Multicast),
            ("2001:db8::1", Class::Reserved),
            ("3fff::1", Class::Reserved),
            ("2001::1", Class::Reserved),
            ("2001:2::1", Class::Reserved),
            ("64:ff9b:1::1", Class::Reserved),
            ("100::1", Class::Reserved),
            ("4000::1", Class::Reserved),
            ("2606:4700::1111", Class::Public),
            ("2a00:1450::1", Class::Public),
        ] {
            assert_eq!(c(ip), class, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_unwrapped() {
        for (ip, class) in [
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:10.1.2.3", Class::Private),
            ("::ffff:169.254.169.254", Class::Metadata),
            ("::ffff:0:192.168.0.1", Class::Private),
            ("::127.0.0.1", Class::Loopback),
            ("::0.0.0.2", Class::Unspecified),
            ("64:ff9b::a9fe:a9fe", Class::Metadata),
            ("64:ff9b::10.0.0.1", Class::Private),
            ("2002:7f00:1::", Class::Loopback),
            ("2002:a00:1:1234::1", Class::Private),
            ("2002:c0a8:101::", Class::Private),
            ("::ffff:1.1.1.1", Class::Public),
            ("64:ff9b::1.1.1.1", Class::Public),
            ("2002:101:101::1", Class::Public),
        ] {
            assert_eq!(c(ip), class, "{ip}");
        }
    }

    #[test]
    fn every_refused_class_has_a_rule() {
        assert_eq!(Class::Public.rule(), None);
        assert_eq!(c("10.0.0.1").rule(), Some("egress:private"));
        assert_eq!(c("127.0.0.1").rule(), Some("egress:loopback"));
        assert_eq!(c("fe80::1").rule(), Some("egress:link-local"));
        assert_eq!(c("169.254.169.254").rule(), Some("egress:metadata"));
        assert_eq!(c("ff02::1").rule(), Some("egress:multicast"));
    }
}
