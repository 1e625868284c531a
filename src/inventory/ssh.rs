//! `[ssh]` and a host's `ssh`: how lvsctl reaches each host (user, port, identity, host keys,
//! `become`), the defaults and a host's own settings over them, and their rules.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::diag::one_of_help;
use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table};
use super::value::{parse_ipv6, parse_path_item, special_address6};

/// Defaults from the top-level `[ssh]` table, before a host's own settings override them.
#[derive(Clone)]
pub(super) struct SshDefaults {
    user: String,
    port: u16,
    identity: Option<PathBuf>,
    host_key: HostKeyPolicy,
    known_hosts: Option<PathBuf>,
    config: Option<PathBuf>,
    connect_timeout: u32,
    become_: Become,
}

impl Default for SshDefaults {
    fn default() -> Self {
        SshDefaults {
            user: "root".into(),
            port: 22,
            identity: None,
            host_key: HostKeyPolicy::Strict,
            known_hosts: None,
            config: None,
            connect_timeout: 10,
            become_: Become::None,
        }
    }
}

/// A login name ssh takes as one (no option, no shell or ssh_config syntax).
pub fn valid_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A destination ssh takes as a host (an address, a name or an alias; never an option).
pub fn valid_ssh_destination(s: &str) -> bool {
    ssh_ipv6(s).is_some()
        || !s.is_empty()
            && !s.starts_with('-')
            && s.len() <= 253
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !(looks_numeric(s) && s.parse::<Ipv4Addr>().is_err())
}

/// Settings read back from a file lvsctl wrote (the controller's state): held to the rules the
/// inventory's are, since they become ssh's arguments.
pub fn check_ssh_settings(s: &SshSettings) -> Result<(), String> {
    if let SshTarget::Remote(d) = &s.target
        && !valid_ssh_destination(d)
    {
        return Err(format!("ssh destination {d:?} is not one an inventory can give"));
    }
    if !valid_user(&s.user) {
        return Err(format!("ssh user {:?} is not a login name", s.user));
    }
    let bad_path = |p: &Option<PathBuf>| {
        p.as_ref().is_some_and(|p| p.as_os_str().is_empty() || p.to_string_lossy().chars().any(|c| c.is_control()))
    };
    if s.port == 0 || bad_path(&s.identity) || bad_path(&s.known_hosts) || bad_path(&s.config) {
        return Err("ssh port or file paths are not ones an inventory can give".into());
    }
    Ok(())
}

pub(super) fn ssh_field(r: &mut Reader, t: &Table, d: &mut SshDefaults) {
    if let Some(i) = t.get(r, "user")
        && let Some(s) = i.str(r)
    {
        if valid_user(s) {
            d.user = s.to_string();
        } else {
            r.error(
                i.span(),
                &i.path,
                format!("invalid user name \"{}\"", s.escape_debug()),
                Some("use a login name like root (letters, digits, '_', '-', '.')".into()),
            );
        }
    }
    if let Some(i) = t.get(r, "port")
        && let Some(p) = i.int_in(r, 1, 65535, "port")
    {
        d.port = p as u16;
    }
    if let Some(i) = t.get(r, "identity") {
        d.identity = parse_path_item(r, &i);
    }
    if let Some(i) = t.get(r, "known_hosts") {
        d.known_hosts = parse_path_item(r, &i);
    }
    if let Some(i) = t.get(r, "config") {
        d.config = parse_path_item(r, &i);
    }
    if let Some(i) = t.get(r, "host_key")
        && let Some(s) = i.str(r)
    {
        match s {
            "strict" => d.host_key = HostKeyPolicy::Strict,
            "accept-new" => d.host_key = HostKeyPolicy::AcceptNew,
            _ => r.error(
                i.span(),
                &i.path,
                format!("unknown host key policy \"{}\"", s.escape_debug()),
                Some(one_of_help(s, &["strict", "accept-new"])),
            ),
        }
    }
    if let Some(i) = t.get(r, "connect_timeout")
        && let Some(v) = i.int_in(r, 1, 3600, "connect_timeout")
    {
        d.connect_timeout = v as u32;
    }
    if let Some(i) = t.get(r, "become")
        && let Some(s) = i.str(r)
    {
        match s {
            "sudo" => d.become_ = Become::Sudo,
            "none" => d.become_ = Become::None,
            _ => r.error(
                i.span(),
                &i.path,
                format!("unknown become method \"{}\"", s.escape_debug()),
                Some(one_of_help(s, &["sudo", "none"])),
            ),
        }
    }
}

pub(super) fn parse_ssh_defaults(r: &mut Reader, t: Table, mut d: SshDefaults) -> SshDefaults {
    ssh_field(r, &t, &mut d);
    t.finish(r, &keys::SSH.names());
    d
}

pub(super) fn parse_ssh_target(r: &mut Reader, i: &Item) -> Option<SshTarget> {
    let s = i.str(r)?;
    if s == "local" {
        return Some(SshTarget::Local);
    }
    if s.contains(':') {
        return match parse_ipv6(s) {
            Ok(a) if special_address6(a).is_some() || a.is_unicast_link_local() => {
                let why = special_address6(a).unwrap_or("a link-local address (ssh would need its device)");
                r.error(
                    i.span(),
                    &i.path,
                    format!("ssh destination {a} is {why}"),
                    Some("give the host's global IPv6 address, an IPv4 address or a host name".into()),
                );
                None
            }
            Ok(_) => Some(SshTarget::Remote(s.to_string())),
            Err((m, h)) => {
                r.error(i.span(), &i.path, format!("invalid ssh destination: {m}"), Some(h));
                None
            }
        };
    }
    let ok = !s.is_empty()
        && !s.starts_with('-')
        && s.len() <= 253
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        r.error(
            i.span(),
            &i.path,
            format!("invalid ssh destination \"{}\"", s.escape_debug()),
            Some("give an IPv4 or IPv6 address, a host name or an ssh_config alias (letters, digits, '.', '-', '_'), or \"local\" for this machine; put user and port in [ssh]".into()),
        );
        return None;
    }
    if looks_numeric(s) && s.parse::<Ipv4Addr>().is_err() {
        r.error(
            i.span(),
            &i.path,
            format!("ssh destination \"{s}\" looks like an IPv4 address but is not written as one"),
            Some(format!(
                "the resolver reads 0-prefixed parts as octal and 0x as hexadecimal, and fills in missing parts ({s} may be another machine{}): write four decimal numbers without leading zeros",
                inet_aton(s).map(|a| format!(", {a}")).unwrap_or_default()
            )),
        );
        return None;
    }
    Some(SshTarget::Remote(s.to_string()))
}

/// An IPv6 literal ssh can connect to (global or unique-local, no zone).
pub(super) fn ssh_ipv6(s: &str) -> Option<Ipv6Addr> {
    s.parse::<Ipv6Addr>().ok().filter(|a| special_address6(*a).is_none() && !a.is_unicast_link_local())
}

/// Every dot-separated part is a number as inet_aton(3) reads it (decimal, 0-octal, 0x-hex):
/// the resolver takes such a name as an address, whatever DNS says.
pub(super) fn looks_numeric(s: &str) -> bool {
    s.split('.').all(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("0x") {
            Some(h) => h.chars().all(|c| c.is_ascii_hexdigit()),
            None => !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()),
        }
    })
}

/// What inet_aton(3) (and so ssh's resolver) makes of a numeric-looking name, to show the user.
pub(super) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u64> = s
        .split('.')
        .map(|p| {
            let p = p.to_ascii_lowercase();
            if let Some(h) = p.strip_prefix("0x") {
                if h.is_empty() { Some(0) } else { u64::from_str_radix(h, 16).ok() }
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(&p[1..], 8).ok()
            } else {
                p.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|&p| p > 255) || *last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, p) in head.iter().enumerate() {
        v |= p << (24 - 8 * i);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

impl SshSettings {
    /// How lvsctl reaches `target` when the inventory says nothing more (root, port 22, strict
    /// host keys, a 10-second connect timeout).
    pub fn defaults_for(target: SshTarget) -> SshSettings {
        settings(target, SshDefaults::default())
    }
}

pub(super) fn settings(target: SshTarget, d: SshDefaults) -> SshSettings {
    SshSettings {
        target,
        user: d.user,
        port: d.port,
        identity: d.identity,
        host_key: d.host_key,
        known_hosts: d.known_hosts,
        config: d.config,
        connect_timeout: d.connect_timeout,
        become_: d.become_,
    }
}
