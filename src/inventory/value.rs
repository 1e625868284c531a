//! The value syntax of inventories: names, addresses of either family, interface CIDRs, paths,
//! per-family values, enums; each parser reports a problem at its item and returns None.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::diag::one_of_help;
use super::model::*;
use super::reader::{Item, Reader};
use crate::wire::names::is_link_local;

pub(super) fn parse_enum<T: Copy>(
    r: &mut Reader,
    i: &Item,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Option<T> {
    let s = i.str(r)?;
    match parse(s) {
        Some(v) => Some(v),
        None => {
            r.error(i.span(), &i.path, format!("unknown {what} \"{s}\""), Some(one_of_help(s, names)));
            None
        }
    }
}

pub fn check_lab_name(s: &str) -> Result<(), (String, String)> {
    let ok = !s.is_empty()
        && s.len() <= 20
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err((
            format!("invalid lab name \"{}\"", s.escape_debug()),
            "use 1 to 20 characters: lowercase letters, digits and '-', not starting with '-' (it becomes part of file, unit and namespace names)".into(),
        ))
    }
}

pub(super) fn check_host_name(s: &str) -> Result<(), (String, String)> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err((
            format!("invalid host name \"{}\"", s.escape_debug()),
            "use 1 to 32 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit".into(),
        ))
    }
}

pub(super) const IFNAME_HELP: &str = "use up to 15 letters, digits, '.', '-' or '_', like eth0 or ens3";

/// An address of either family, as written: IPv4 dotted quads or IPv6 (RFC 4291 text, no zone).
pub fn parse_ip(s: &str) -> Result<IpAddr, (String, String)> {
    if s.contains(':') {
        return parse_ipv6(s).map(IpAddr::V6);
    }
    parse_ipv4(s).map(IpAddr::V4)
}

pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, (String, String)> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(a);
    }
    let shown = s.escape_debug();
    if s.contains('/') {
        return Err((format!("\"{shown}\" has a prefix length"), "write the address alone, without /PREFIX".into()));
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() == 4
        && let Some(p) = parts.iter().find(|p| p.parse::<u32>().is_ok_and(|n| n > 255))
    {
        return Err((
            format!("\"{shown}\" is not an IPv4 address: {p} is more than 255"),
            "each of the four numbers is 0 to 255".into(),
        ));
    }
    Err((
        format!("\"{shown}\" is not an IP address"),
        "write four numbers from 0 to 255 separated by dots, like 192.168.10.6, or an IPv6 address, like 2001:db8::6"
            .into(),
    ))
}

pub fn parse_ipv6(s: &str) -> Result<Ipv6Addr, (String, String)> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Ok(a);
    }
    let shown = s.escape_debug();
    if s.contains('/') {
        return Err((format!("\"{shown}\" has a prefix length"), "write the address alone, without /PREFIX".into()));
    }
    if s.contains('%') {
        return Err((
            format!("\"{shown}\" has a zone (%DEVICE)"),
            "only a link-local gateway names its device (\"fe80::1%eth0\"): write this address without it".into(),
        ));
    }
    if s.starts_with('[') {
        return Err((format!("\"{shown}\" is in brackets"), "write the IPv6 address without [ ]".into()));
    }
    Err((
        format!("\"{shown}\" is not an IPv6 address"),
        "write up to eight groups of 1-4 hex digits separated by ':', with '::' once for a run of zero groups, like 2001:db8:188::81".into(),
    ))
}

/// An interface address `ADDR/PREFIX` (a host address, not the network or broadcast address).
pub fn parse_interface_cidr(s: &str) -> Result<IpNet, (String, String)> {
    let shown = s.escape_debug();
    let Some((addr, prefix)) = s.split_once('/') else {
        let example = if s.contains(':') { "64" } else { "24" };
        return Err((
            format!("\"{shown}\" has no prefix length"),
            format!("write ADDRESS/PREFIX, like {s}/{example}, so lvsctl knows the subnet"),
        ));
    };
    let ip = parse_ip(addr)?;
    let max = if ip.is_ipv6() { 128 } else { 32 };
    let prefix: u8 = match prefix.parse() {
        Ok(p) if p <= max => p,
        _ => {
            let example = if ip.is_ipv6() { "2001:db8:188::81/64" } else { "192.168.10.6/24" };
            return Err((
                format!("\"{shown}\": prefix length \"{prefix}\" is not 0 to {max}"),
                format!("write ADDRESS/PREFIX, like {example}"),
            ));
        }
    };
    if let Some(why) = special_ip(ip) {
        return Err((format!("\"{shown}\": {ip} is {why}"), "give the host's own unicast address".into()));
    }
    if is_link_local(ip) {
        return Err((
            format!("\"{shown}\": {ip} is a link-local address"),
            "the kernel gives every interface its own fe80:: address: list the host's global (or unique-local) address"
                .into(),
        ));
    }
    if prefix == 0 {
        return Err((
            format!("\"{shown}\": a /0 prefix makes every address of the internet on-link"),
            format!("write the prefix of the host's subnet, like /{}", if ip.is_ipv6() { 64 } else { 24 }),
        ));
    }
    let net = IpNet::new(ip, prefix).expect("prefix checked");
    match net {
        IpNet::V4(n) if prefix < 31 && n.addr() == n.network() => Err((
            format!("\"{shown}\" is the network address of its subnet"),
            format!("give the host's own address, like {}/{prefix}", next_host(n)),
        )),
        IpNet::V4(n) if prefix < 31 && n.addr() == n.broadcast() => Err((
            format!("\"{shown}\" is the broadcast address of its subnet"),
            "give the host's own address within the subnet".into(),
        )),
        IpNet::V6(n) if prefix < 127 && n.addr() == n.network() => Err((
            format!("\"{shown}\" is the subnet-router anycast address of its subnet"),
            format!("give the host's own address, like {}/{prefix}", next_host6(n)),
        )),
        _ => Ok(net),
    }
}

pub(super) fn next_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

pub(super) fn next_host6(net: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()) + 1)
}

pub(super) fn parse_ip_item(r: &mut Reader, i: &Item) -> Option<IpAddr> {
    let s = i.str(r)?;
    match parse_ip(s) {
        Ok(a) => Some(a),
        Err((m, h)) => {
            r.error(i.span(), &i.path, m, Some(h));
            None
        }
    }
}

/// Why an address cannot be a host's, a VIP or a next hop: the kernel gives it another meaning.
pub fn special_address(a: Ipv4Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address (0.0.0.0 means \"any\")")
    } else if a.is_broadcast() {
        Some("the limited broadcast address")
    } else if a.is_loopback() {
        Some("a loopback address (127.0.0.0/8 never leaves a host)")
    } else if a.is_multicast() {
        Some("a multicast address (224.0.0.0/4)")
    } else {
        None
    }
}

/// The IPv6 counterparts of `special_address`.
pub fn special_address6(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address (:: means \"any\")")
    } else if a.is_loopback() {
        Some("the loopback address (::1 never leaves a host)")
    } else if a.is_multicast() {
        Some("a multicast address (ff00::/8)")
    } else if a.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address (::ffff:0:0/96 stands for an IPv4 address)")
    } else {
        None
    }
}

pub fn special_ip(a: IpAddr) -> Option<&'static str> {
    match a {
        IpAddr::V4(a) => special_address(a),
        IpAddr::V6(a) => special_address6(a),
    }
}

/// An address that must belong to one host (a VIP, a gateway, a real server's address).
pub(super) fn parse_host_ip_item(r: &mut Reader, i: &Item, what: &str) -> Option<IpAddr> {
    let a = parse_ip_item(r, i)?;
    if let Some(why) = special_ip(a) {
        r.error(i.span(), &i.path, format!("{a} is {why}"), Some(format!("give a unicast address as {what}")));
        return None;
    }
    Some(a)
}

/// A VIP: a unicast address, and a global one for IPv6 (a link-local VIP is reachable on one
/// link only, and the kernel ties it to a device).
pub(super) fn parse_vip_item(r: &mut Reader, i: &Item) -> Option<IpAddr> {
    let a = parse_host_ip_item(r, i, "the VIP")?;
    if is_link_local(a) {
        r.error(
            i.span(),
            &i.path,
            format!("VIP {a} is a link-local address"),
            Some("a VIP is reached from other subnets: give a global (or unique-local, fd00::/8) IPv6 address".into()),
        );
        return None;
    }
    Some(a)
}

/// One string, or a list with at most one per family (a dual-stack host): each item parsed by
/// `one`, which reports its own errors.
pub(super) fn parse_per_family<T>(
    r: &mut Reader,
    i: &Item,
    what: &str,
    mut one: impl FnMut(&mut Reader, &Item) -> Option<T>,
    family: impl Fn(&T) -> Family,
) -> Vec<T> {
    let items = if i.is_array() {
        let Some(items) = i.array(r) else { return vec![] };
        if items.is_empty() {
            r.error(
                i.span(),
                &i.path,
                format!("{what} is an empty list"),
                Some("give one address, or one per family: [\"192.168.188.200\", \"2001:db8:188::200\"]".into()),
            );
        }
        items
    } else {
        vec![i.clone()]
    };
    let mut out: Vec<T> = Vec::new();
    for item in items {
        let Some(v) = one(r, &item) else { continue };
        let f = family(&v);
        if out.iter().any(|o| family(o) == f) {
            r.error(
                item.span(),
                &item.path,
                format!("a second {f} {what}"),
                Some(format!("give at most one {what} per family (one IPv4, one IPv6)")),
            );
            continue;
        }
        out.push(v);
    }
    out
}

pub(super) fn parse_path_item(r: &mut Reader, i: &Item) -> Option<PathBuf> {
    let s = i.str(r)?;
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        r.error(i.span(), &i.path, "invalid path", Some("give a file path, like ~/.ssh/id_ed25519".into()));
        return None;
    }
    Some(PathBuf::from(s))
}
