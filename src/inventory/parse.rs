//! Field-level parsing: TOML tree → drafts. Cross-field rules live in `validate.rs`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::diag::one_of_help;
use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table, join};
pub use crate::wire::names::{interface_name_problem, is_link_local};

/// keepalived's defaults are made for production (a check a minute); a lab wants to see a
/// failure within seconds.
pub const DEFAULT_CHECK_INTERVAL: u32 = 3;
pub const DEFAULT_CHECK_TIMEOUT: u32 = 2;
pub const DEFAULT_CHECK_RETRIES: u32 = 2;
pub const DEFAULT_VRID: u8 = 51;
/// Longest persistence ipvsadm and the kernel accept: 31 days, in seconds.
pub const MAX_PERSISTENCE: i128 = 31 * 24 * 3600;

pub struct Draft {
    /// False when `hosts` is missing or not a table: references to hosts are then not checked.
    pub hosts_ok: bool,
    pub name: Option<String>,
    pub mode: Option<Mode>,
    pub hosts: Vec<DraftHost>,
    pub services: Vec<DraftService>,
    pub lab: Option<DraftLab>,
    pub ha: Option<DraftHa>,
}

pub struct DraftHa {
    pub path: String,
    pub virtual_router_id: u8,
    pub advert_interval: u32,
    pub sync: bool,
    pub preempt: bool,
    pub unicast: bool,
    pub floating_gateway: Vec<IpNet>,
}

/// `sorry_server`: a host of the inventory with a port, or `"ADDRESS:PORT"` outside it.
#[derive(Clone)]
pub struct DraftSorry {
    pub path: String,
    pub host: Option<String>,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
}

pub struct DraftHost {
    pub name: String,
    pub path: String,
    pub role: Option<Role>,
    pub ssh: Option<SshSettings>,
    /// At most one per family (`defaulted` is false: these were written).
    pub gateways: Vec<Gateway>,
    pub interfaces: Vec<Interface>,
    pub vip_device: Option<String>,
    /// At most one per family.
    pub address: Vec<IpAddr>,
    pub priority: Option<u8>,
    /// An interface or address of this host failed to parse (and was reported): checks that
    /// need all of its subnets are skipped, so they add no follow-on error.
    pub incomplete: bool,
}

#[derive(Clone)]
pub struct DraftBackend {
    pub path: String,
    pub host: Option<String>,
    pub weight: u32,
    pub port: Option<u16>,
    pub u_threshold: u32,
    pub l_threshold: u32,
}

#[derive(Clone)]
pub struct DraftService {
    pub index: usize,
    pub path: String,
    pub name: Option<String>,
    /// A firewall-mark service's VIP is its first match's (of its family, once split per family).
    pub vip: Option<IpAddr>,
    /// `fwmark`: the mark the director's nftables rules set on the packets of `matches`.
    pub fwmark: Option<u32>,
    pub matches: Vec<DraftMatch>,
    pub port: Option<u16>,
    pub protocol: Protocol,
    pub scheduler: String,
    pub scheduler_flags: Vec<SchedulerFlag>,
    pub one_packet: bool,
    pub persistence: u32,
    pub netmask: Option<Netmask>,
    pub mode: Option<Mode>,
    /// None: every real-server host, weight 1.
    pub real_servers: Option<Vec<DraftBackend>>,
    pub health_check: Option<HealthCheck>,
    pub on_failure: OnFailure,
    pub sorry_server: Option<DraftSorry>,
}

/// One `match = [{ vip, protocol, ports }]` item of a firewall-mark service.
#[derive(Clone)]
pub struct DraftMatch {
    pub path: String,
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub ports: Vec<u16>,
}

/// A `host:iface` member of a lab segment, with the key path of its item.
pub struct DraftMember {
    pub host: String,
    pub iface: String,
    pub path: String,
}

pub struct DraftSegment {
    pub name: String,
    pub members: Vec<DraftMember>,
}

pub struct DraftLab {
    pub path: String,
    pub segments: Vec<DraftSegment>,
    pub management: Option<IpNet>,
}

/// Defaults from the top-level `[ssh]` table, before a host's own settings override them.
#[derive(Clone)]
struct SshDefaults {
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

pub fn parse_document(r: &mut Reader, root: Table) -> Draft {
    let name = root
        .require(r, "name", "add `name = \"mylab\"` (lowercase letters, digits and '-'; used in file and unit names)")
        .and_then(|i| {
            let s = i.str(r)?;
            check_lab_name(s).map_err(|(m, h)| r.error(i.span(), &i.path, m, Some(h))).ok()?;
            Some(s.to_string())
        });
    if let Some(i) = root.get(r, "description") {
        i.text(r);
    }
    let mode = root
        .require(r, "mode", "add `mode = \"dr\"` (one of nat, dr, tun)")
        .and_then(|i| parse_enum(r, &i, &Mode::NAMES, Mode::parse, "mode"));

    let defaults = match root.get(r, "ssh") {
        Some(i) => match i.table(r) {
            Some(t) => parse_ssh_defaults(r, t, SshDefaults::default()),
            None => SshDefaults::default(),
        },
        None => SshDefaults::default(),
    };

    let mut hosts = Vec::new();
    let mut hosts_ok = false;
    if let Some(item) = root.require(r, "hosts", "add one table per host, e.g. `[hosts.web1]` with `role` and `ssh`")
        && let Some(t) = item.table(r)
    {
        hosts_ok = true;
        for (name, key_span, hi) in t.entries(r) {
            if let Err((m, h)) = check_host_name(&name) {
                r.error(key_span, &hi.path, m, Some(h));
                continue;
            }
            if let Some(ht) = hi.table(r) {
                hosts.push(parse_host(r, name, ht, &defaults));
            }
        }
        t.finish(r, &[]);
    }

    let mut services = Vec::new();
    if let Some(item) = root.get(r, "services")
        && let Some(items) = item.array(r)
    {
        for (index, si) in items.into_iter().enumerate() {
            if let Some(st) = si.table(r) {
                services.push(parse_service(r, index, st));
            }
        }
    }

    let lab = root.get(r, "lab").and_then(|i| i.table(r)).map(|t| parse_lab(r, t));
    let ha = root.get(r, "ha").and_then(|i| i.table(r)).map(|t| parse_ha(r, t));
    root.finish(r, &keys::TOP.names());
    Draft { hosts_ok, name, mode, hosts, services, lab, ha }
}

fn parse_enum<T: Copy>(
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

fn check_host_name(s: &str) -> Result<(), (String, String)> {
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

const IFNAME_HELP: &str = "use up to 15 letters, digits, '.', '-' or '_', like eth0 or ens3";

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

fn next_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn next_host6(net: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()) + 1)
}

fn parse_ip_item(r: &mut Reader, i: &Item) -> Option<IpAddr> {
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
fn parse_host_ip_item(r: &mut Reader, i: &Item, what: &str) -> Option<IpAddr> {
    let a = parse_ip_item(r, i)?;
    if let Some(why) = special_ip(a) {
        r.error(i.span(), &i.path, format!("{a} is {why}"), Some(format!("give a unicast address as {what}")));
        return None;
    }
    Some(a)
}

/// A VIP: a unicast address, and a global one for IPv6 (a link-local VIP is reachable on one
/// link only, and the kernel ties it to a device).
fn parse_vip_item(r: &mut Reader, i: &Item) -> Option<IpAddr> {
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
fn parse_per_family<T>(
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

/// A next hop: a unicast address on one of the host's subnets, or a link-local IPv6 one with
/// its device (`fe80::1%eth0`).
fn parse_gateway_item(r: &mut Reader, i: &Item) -> Option<Gateway> {
    let s = i.str(r)?;
    let (addr, dev) = match s.split_once('%') {
        Some((a, d)) if a.contains(':') => (a, Some(d)),
        _ => (s, None),
    };
    let via = match parse_ip(addr) {
        Ok(a) => a,
        Err((m, h)) => {
            r.error(i.span(), &i.path, m, Some(h));
            return None;
        }
    };
    if let Some(why) = special_ip(via) {
        r.error(i.span(), &i.path, format!("{via} is {why}"), Some("give a unicast address as the gateway".into()));
        return None;
    }
    match (is_link_local(via), dev) {
        (true, None) => {
            r.error(
                i.span(),
                &i.path,
                format!("link-local gateway {via} has no device"),
                Some(format!("a link-local next hop is on one link: name its device, like \"{via}%eth0\"")),
            );
            None
        }
        (false, Some(_)) => {
            r.error(
                i.span(),
                &i.path,
                format!("gateway \"{}\" has a device, but {via} is not link-local", s.escape_debug()),
                Some(format!("only a link-local (fe80::) next hop names its device: write \"{via}\"")),
            );
            None
        }
        (true, Some(d)) => {
            if let Some(problem) = interface_name_problem(d) {
                r.error(
                    i.span(),
                    &i.path,
                    format!("interface name \"{}\" {problem}", d.escape_debug()),
                    Some(IFNAME_HELP.into()),
                );
                return None;
            }
            Some(Gateway { via, dev: Some(d.to_string()), defaulted: false })
        }
        (false, None) => Some(Gateway { via, dev: None, defaulted: false }),
    }
}

/// `netmask`: a dotted netmask for an IPv4 service, a prefix length for an IPv6 one.
fn parse_netmask(r: &mut Reader, i: &Item, vip: Option<IpAddr>) -> Option<Netmask> {
    let v6 = vip.is_some_and(|v| v.is_ipv6());
    if i.is_str() {
        let a = parse_ip_item(r, i)?;
        let IpAddr::V4(m) = a else {
            r.error(
                i.span(),
                &i.path,
                format!("\"{a}\" is not a netmask"),
                Some("an IPv6 service's netmask is a prefix length, like netmask = 64".into()),
            );
            return None;
        };
        if v6 {
            r.error(
                i.span(),
                &i.path,
                format!("netmask \"{m}\" is an IPv4 netmask, but the VIP is IPv6"),
                Some("an IPv6 service's netmask is a prefix length, like netmask = 64".into()),
            );
            return None;
        }
        if ipnet::ipv4_mask_to_prefix(m).is_err() {
            r.error(
                i.span(),
                &i.path,
                format!("\"{m}\" is not a netmask"),
                Some("a netmask is contiguous ones then zeros, like 255.255.255.0".into()),
            );
            return None;
        }
        return Some(Netmask::V4(m));
    }
    if !v6 && i.int(r).is_some() {
        r.error(
            i.span(),
            &i.path,
            "an IPv4 service's netmask is written as a netmask",
            Some("write it dotted, like netmask = \"255.255.255.0\" (a prefix length is for IPv6 services)".into()),
        );
        return None;
    }
    i.int_in(r, 1, 128, "netmask").map(|p| Netmask::V6(p as u8))
}

/// `scheduler_flags`: each known, once, and of the service's scheduler.
fn parse_scheduler_flags(r: &mut Reader, i: &Item, scheduler: &str) -> Vec<SchedulerFlag> {
    let mut out = Vec::new();
    for f in i.array(r).unwrap_or_default() {
        let Some(flag) = parse_enum(r, &f, &SchedulerFlag::NAMES, SchedulerFlag::parse, "scheduler flag") else {
            continue;
        };
        if flag.scheduler() != scheduler {
            r.error(
                f.span(),
                &f.path,
                format!(
                    "{} is a flag of the {} scheduler, but this service uses {scheduler}",
                    flag.as_str(),
                    flag.scheduler()
                ),
                Some(format!("set scheduler = \"{}\", or remove the flag", flag.scheduler())),
            );
            continue;
        }
        if out.contains(&flag) {
            r.error(
                f.span(),
                &f.path,
                format!("{} is listed twice", flag.as_str()),
                Some("list each flag once".into()),
            );
            continue;
        }
        out.push(flag);
    }
    out
}

fn parse_path_item(r: &mut Reader, i: &Item) -> Option<PathBuf> {
    let s = i.str(r)?;
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        r.error(i.span(), &i.path, "invalid path", Some("give a file path, like ~/.ssh/id_ed25519".into()));
        return None;
    }
    Some(PathBuf::from(s))
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

fn ssh_field(r: &mut Reader, t: &Table, d: &mut SshDefaults) {
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

fn parse_ssh_defaults(r: &mut Reader, t: Table, mut d: SshDefaults) -> SshDefaults {
    ssh_field(r, &t, &mut d);
    t.finish(r, &keys::SSH.names());
    d
}

fn parse_ssh_target(r: &mut Reader, i: &Item) -> Option<SshTarget> {
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
fn ssh_ipv6(s: &str) -> Option<Ipv6Addr> {
    s.parse::<Ipv6Addr>().ok().filter(|a| special_address6(*a).is_none() && !a.is_unicast_link_local())
}

/// Every dot-separated part is a number as inet_aton(3) reads it (decimal, 0-octal, 0x-hex):
/// the resolver takes such a name as an address, whatever DNS says.
fn looks_numeric(s: &str) -> bool {
    s.split('.').all(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("0x") {
            Some(h) => h.chars().all(|c| c.is_ascii_hexdigit()),
            None => !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()),
        }
    })
}

/// What inet_aton(3) (and so ssh's resolver) makes of a numeric-looking name, to show the user.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
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

fn parse_host(r: &mut Reader, name: String, t: Table, defaults: &SshDefaults) -> DraftHost {
    let path = t.path.clone();
    let role = t
        .require(r, "role", "add `role = \"real-server\"` (one of client, router, director, real-server, sorry-server)")
        .and_then(|i| parse_enum(r, &i, &Role::NAMES, Role::parse, "role"));
    let ssh = match t.require(r, "ssh", "add `ssh = \"10.250.0.81\"` (address, host name, or \"local\")") {
        Some(i) if i.is_table() => {
            let st = i.table(r).expect("is a table");
            let mut d = defaults.clone();
            ssh_field(r, &st, &mut d);
            let target = st
                .require(r, "address", "add `address = \"10.250.0.81\"` to this host's ssh table")
                .and_then(|a| parse_ssh_target(r, &a));
            st.finish(r, &keys::HOST_SSH.names());
            target.map(|target| settings(target, d))
        }
        Some(i) => parse_ssh_target(r, &i).map(|target| settings(target, defaults.clone())),
        None => None,
    };
    let gateways = t
        .get(r, "gateway")
        .map(|i| parse_per_family(r, &i, "gateway", parse_gateway_item, |g: &Gateway| Family::of_addr(g.via)))
        .unwrap_or_default();
    let mut interfaces = Vec::new();
    let mut incomplete = false;
    if let Some(i) = t.get(r, "interfaces")
        && let Some(it) = i.table(r)
    {
        for (ifname, key_span, ai) in it.entries(r) {
            if let Some(problem) = interface_name_problem(&ifname) {
                r.error(
                    key_span,
                    &ai.path,
                    format!("interface name \"{}\" {problem}", ifname.escape_debug()),
                    Some(IFNAME_HELP.into()),
                );
                incomplete = true;
                continue;
            }
            let mut addresses = Vec::new();
            if let Some(items) = ai.array(r) {
                for a in items {
                    if let Some(s) = a.str(r) {
                        match parse_interface_cidr(s) {
                            Ok(n) => addresses.push(n),
                            Err((m, h)) => {
                                r.error(a.span(), &a.path, m, Some(h));
                                incomplete = true;
                            }
                        }
                    } else {
                        incomplete = true;
                    }
                }
            }
            interfaces.push(Interface { name: ifname, addresses });
        }
        it.finish(r, &[]);
    }
    let vip_device = t.get(r, "vip_device").and_then(|i| {
        let s = i.str(r)?;
        if let Some(problem) = interface_name_problem(s) {
            r.error(
                i.span(),
                &i.path,
                format!("interface name \"{}\" {problem}", s.escape_debug()),
                Some(IFNAME_HELP.into()),
            );
            return None;
        }
        Some(s.to_string())
    });
    let address = t
        .get(r, "address")
        .map(|i| {
            let one = |r: &mut Reader, i: &Item| {
                let a = parse_host_ip_item(r, i, "the real server's address")?;
                if is_link_local(a) {
                    r.error(
                        i.span(),
                        &i.path,
                        format!("{a} is a link-local address"),
                        Some("give one of the real server's global addresses from its interfaces table".into()),
                    );
                    return None;
                }
                Some(a)
            };
            parse_per_family(r, &i, "address", one, |a: &IpAddr| Family::of_addr(*a))
        })
        .unwrap_or_default();
    let priority = t.get(r, "priority").and_then(|i| i.int_in(r, 1, 254, "priority")).map(|p| p as u8);
    t.finish(r, &keys::HOST.names());
    DraftHost { name, path, role, ssh, gateways, interfaces, vip_device, address, priority, incomplete }
}

fn settings(target: SshTarget, d: SshDefaults) -> SshSettings {
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

fn parse_service(r: &mut Reader, index: usize, t: Table) -> DraftService {
    let path = t.path.clone();
    let name = t.get(r, "name").and_then(|i| i.text(r).map(str::to_string));
    if let Some(i) = t.get(r, "description") {
        i.text(r);
    }
    // A firewall-mark service takes the packets its match list marks: no vip, port or protocol.
    let fwmark = t.get(r, "fwmark").and_then(|i| i.int_in(r, 1, u32::MAX as i128, "fwmark")).map(|m| m as u32);
    let has_fwmark = t.get(r, "fwmark").is_some();
    let (vip, port, protocol, matches) = if has_fwmark {
        for key in ["vip", "port", "protocol"] {
            if let Some(i) = t.get(r, key) {
                r.error(
                    i.span(),
                    &i.path,
                    format!("a firewall-mark service has no {key}: its `match` list says which packets it takes"),
                    Some(format!(
                        "remove {key}, and list {{ vip, protocol, ports }} in match = [...]; or remove fwmark for a plain service"
                    )),
                );
            }
        }
        let matches = t
            .require(
                r,
                "match",
                "add match = [{ vip = \"192.168.188.100\", protocol = \"tcp\", ports = [80, 443] }]: the packets marked for this service",
            )
            .map(|i| parse_matches(r, &i))
            .unwrap_or_default();
        let protocol = matches.first().map(|m| m.protocol).unwrap_or(Protocol::Tcp);
        (matches.first().map(|m| m.vip), Some(0), protocol, matches)
    } else {
        if let Some(i) = t.get(r, "match") {
            r.error(
                i.span(),
                &i.path,
                "match is for firewall-mark services",
                Some(
                    "add `fwmark = 10` (any mark 1-4294967295) to mark these packets for the service, or remove match"
                        .into(),
                ),
            );
        }
        let vip = t
            .require(r, "vip", "add `vip = \"192.168.188.100\"`, the address clients connect to")
            .and_then(|i| parse_vip_item(r, &i));
        let port = t
            .require(r, "port", "add `port = 80`, the port clients connect to")
            .and_then(|i| i.int_in(r, 1, 65535, "port"))
            .map(|p| p as u16);
        let protocol = match t.get(r, "protocol") {
            Some(i) => parse_enum(r, &i, &Protocol::NAMES, Protocol::parse, "protocol").unwrap_or(Protocol::Tcp),
            None => Protocol::Tcp,
        };
        (vip, port, protocol, vec![])
    };
    let scheduler = match t.get(r, "scheduler") {
        Some(i) => match i.str(r) {
            Some(s) if SCHEDULERS.contains(&s) => s.to_string(),
            Some(s) => {
                r.error(
                    i.span(),
                    &i.path,
                    format!("unknown scheduler \"{}\"", s.escape_debug()),
                    Some(one_of_help(s, &SCHEDULERS)),
                );
                DEFAULT_SCHEDULER.into()
            }
            None => DEFAULT_SCHEDULER.into(),
        },
        None => DEFAULT_SCHEDULER.into(),
    };
    // ipvsadm and the kernel take at most 31 days (ipvsadm's MAX_TIMEOUT).
    let persistence =
        t.get(r, "persistence").and_then(|i| i.int_in(r, 0, MAX_PERSISTENCE, "persistence")).unwrap_or(0) as u32;
    let scheduler_flags =
        t.get(r, "scheduler_flags").map(|i| parse_scheduler_flags(r, &i, &scheduler)).unwrap_or_default();
    let one_packet = match t.get(r, "one_packet") {
        Some(i) => {
            let v = i.bool(r).unwrap_or(false);
            if v && protocol != Protocol::Udp {
                r.error(
                    i.span(),
                    &i.path,
                    format!("one_packet is for UDP services, and this one is {protocol}"),
                    Some("remove one_packet, or set protocol = \"udp\"".into()),
                );
            }
            v
        }
        None => false,
    };
    let netmask = t.get(r, "netmask").and_then(|i| {
        let families: BTreeSet<Family> = matches.iter().map(|m| Family::of_addr(m.vip)).collect();
        if families.len() > 1 {
            r.error(
                i.span(),
                &i.path,
                "netmask is per family, and this firewall-mark service matches IPv4 and IPv6 VIPs",
                Some(
                    "split it into one firewall-mark service per family, each with its netmask, or remove netmask"
                        .into(),
                ),
            );
            return None;
        }
        let m = parse_netmask(r, &i, vip)?;
        if persistence == 0 {
            r.error(
                i.span(),
                &i.path,
                "netmask has no effect without persistence",
                Some("set `persistence = 300` (seconds) or remove netmask".into()),
            );
            return None;
        }
        Some(m)
    });
    let mode = t.get(r, "mode").and_then(|i| parse_enum(r, &i, &Mode::NAMES, Mode::parse, "mode"));
    let real_servers = t.get(r, "real_servers").and_then(|i| i.array(r)).map(|items| {
        items
            .into_iter()
            .filter_map(|bi| {
                let bt = bi.table(r)?;
                let host = bt
                    .require(r, "host", "add `host = \"web1\"`, the name of a [hosts.web1] table")
                    .and_then(|h| h.str(r).map(str::to_string));
                let weight = bt.get(r, "weight").and_then(|w| w.int_in(r, 0, 65535, "weight")).unwrap_or(1) as u32;
                let port = bt.get(r, "port").and_then(|p| {
                    if has_fwmark {
                        r.error(
                            p.span(),
                            &p.path,
                            "a real server of a firewall-mark service has no port: each packet keeps the port it was sent to",
                            Some("remove port (IPVS forwards marked packets to port 0, the packet's own)".into()),
                        );
                        return None;
                    }
                    p.int_in(r, 1, 65535, "port")
                });
                let port = port.map(|p| p as u16);
                // ipvsadm reads thresholds as C ints.
                // Err: already reported (no follow-on error is built on a value that failed).
                let threshold = |r: &mut Reader, key: &str| match bt.get(r, key) {
                    None => Ok(0),
                    Some(p) => p.int_in(r, 0, i32::MAX as i128, key).map(|v| v as u32).ok_or(()),
                };
                let (u, l) = (threshold(r, "u_threshold"), threshold(r, "l_threshold"));
                let (u_threshold, l_threshold) = (u.unwrap_or(0), l.unwrap_or(0));
                // The kernel refuses a lower threshold above the upper one (0 = no upper limit
                // counts as 0), and would fail at `up` instead of here.
                if u.is_ok() && l.is_ok() && l_threshold > u_threshold {
                    let at = join(&bt.path, "l_threshold");
                    let help = if u_threshold == 0 {
                        format!("l_threshold only works with an upper limit: set u_threshold above {l_threshold}, or remove l_threshold")
                    } else {
                        format!("use an l_threshold of at most {u_threshold} (connections at which the server takes new ones again)")
                    };
                    r.error_at(&at, format!("l_threshold {l_threshold} is above u_threshold {u_threshold}"), Some(help));
                }
                let path = bt.path.clone();
                bt.finish(r, &keys::BACKEND.names());
                Some(DraftBackend { path, host, weight, port, u_threshold, l_threshold })
            })
            .collect()
    });
    if let Some(i) = t.get(r, "sorry_server").filter(|_| has_fwmark) {
        r.error(
            i.span(),
            &i.path,
            "sorry_server is not supported on firewall-mark services yet",
            Some("remove sorry_server (health_check works), or use one plain service (vip, port) per port to have a sorry server".into()),
        );
    }
    let health_check = t.get(r, "health_check").and_then(|i| parse_health_check(r, &i));
    let on_failure = match t.get(r, "on_failure") {
        Some(i) => parse_enum(r, &i, &["remove", "quiesce"], parse_on_failure, "on_failure").unwrap_or_default(),
        None => OnFailure::Remove,
    };
    let sorry_server = t.get(r, "sorry_server").filter(|_| !has_fwmark).and_then(|i| parse_sorry(r, &i));
    t.finish(r, &keys::SERVICE.names());
    DraftService {
        index,
        path,
        name,
        vip,
        fwmark,
        matches,
        port,
        protocol,
        scheduler,
        scheduler_flags,
        one_packet,
        persistence,
        netmask,
        mode,
        real_servers,
        health_check,
        on_failure,
        sorry_server,
    }
}

/// `match = [{ vip, protocol, ports }, …]`: what a firewall-mark service's rules mark.
fn parse_matches(r: &mut Reader, i: &Item) -> Vec<DraftMatch> {
    let Some(items) = i.array(r) else { return vec![] };
    if items.is_empty() {
        r.error(
            i.span(),
            &i.path,
            "match is an empty list",
            Some("list the packets to mark: match = [{ vip = \"192.168.188.100\", protocol = \"tcp\", ports = [80, 443] }]".into()),
        );
    }
    let mut out: Vec<DraftMatch> = Vec::new();
    for item in items {
        let Some(t) = item.table(r) else { continue };
        let path = t.path.clone();
        let vip = t.require(r, "vip", "add `vip = \"192.168.188.100\"`, the address whose packets are marked");
        let vip = vip.and_then(|v| parse_vip_item(r, &v));
        let protocol = match t.get(r, "protocol") {
            Some(p) => parse_enum(r, &p, &Protocol::NAMES, Protocol::parse, "protocol").unwrap_or(Protocol::Tcp),
            None => Protocol::Tcp,
        };
        let mut ports: Vec<u16> = Vec::new();
        if let Some(pi) =
            t.require(r, "ports", "add `ports = [80, 443]`, the destination ports whose packets are marked")
            && let Some(list) = pi.array(r)
        {
            if list.is_empty() {
                r.error(
                    pi.span(),
                    &pi.path,
                    "ports is an empty list",
                    Some("list at least one port: ports = [80, 443]".into()),
                );
            }
            for p in list {
                let Some(v) = p.int_in(r, 1, 65535, "port") else { continue };
                if ports.contains(&(v as u16)) {
                    r.error(p.span(), &p.path, format!("port {v} is listed twice"), Some("list each port once".into()));
                    continue;
                }
                ports.push(v as u16);
            }
        }
        t.finish(r, &keys::MATCH.names());
        let Some(vip) = vip else { continue };
        if let Some(first) = out.iter().find(|m| m.vip == vip && m.protocol == protocol) {
            r.error_at(
                &join(&path, "vip"),
                format!("{protocol} to {vip} is already matched by {}", first.path),
                Some("put all the ports of one VIP and protocol in one item's ports".into()),
            );
            continue;
        }
        out.push(DraftMatch { path, vip, protocol, ports });
    }
    out
}

fn parse_on_failure(s: &str) -> Option<OnFailure> {
    match s {
        "remove" => Some(OnFailure::Remove),
        "quiesce" => Some(OnFailure::Quiesce),
        _ => None,
    }
}

/// A URL path keepalived's config takes as one word: `/`, then URL characters only.
pub fn check_url_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("health check path \"{}\" does not start with '/'", s.escape_debug()));
    }
    if s.len() > 1024 {
        return Err("health check path is longer than 1024 bytes".into());
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._~/%?=&+,;:@".contains(*c))) {
        return Err(format!("health check path \"{}\" contains {c:?}", s.escape_debug()));
    }
    Ok(())
}

fn parse_health_check(r: &mut Reader, i: &Item) -> Option<HealthCheck> {
    let t = i.table(r)?;
    let kind_item = t.require(r, "type", "add `type = \"http\"` (one of http, tcp, none)");
    #[derive(Clone, Copy)]
    enum Type {
        Http,
        Tcp,
        None,
    }
    let parse_type = |s: &str| match s {
        "http" => Some(Type::Http),
        "tcp" => Some(Type::Tcp),
        "none" => Some(Type::None),
        _ => None,
    };
    let kind =
        kind_item.as_ref().and_then(|k| parse_enum(r, k, &["http", "tcp", "none"], parse_type, "health check type"));
    let path = t.get(r, "path").and_then(|p| {
        let s = p.str(r)?;
        match check_url_path(s) {
            Ok(()) => Some(s.to_string()),
            Err(m) => {
                r.error(
                    p.span(),
                    &p.path,
                    m,
                    Some("write the path of the URL to check, like \"/\" or \"/health\"".into()),
                );
                None
            }
        }
    });
    let status = t.get(r, "status").and_then(|x| x.int_in(r, 100, 599, "status")).map(|v| v as u16);
    let expect = t.get(r, "expect").and_then(|x| {
        let s = x.text(r)?;
        if s.is_empty() || s.len() > 256 || s.contains(['"', '\\']) {
            r.error(
                x.span(),
                &x.path,
                "expect must be 1 to 256 characters without '\"' or '\\'",
                Some("give a word the healthy answer's body contains, like \"OK\"".into()),
            );
            return None;
        }
        Some(s.to_string())
    });
    let interval = t
        .get(r, "interval")
        .and_then(|x| x.int_in(r, 1, 3600, "interval"))
        .map_or(DEFAULT_CHECK_INTERVAL, |v| v as u32);
    let timeout =
        t.get(r, "timeout").and_then(|x| x.int_in(r, 1, 3600, "timeout")).map_or(DEFAULT_CHECK_TIMEOUT, |v| v as u32);
    let retries =
        t.get(r, "retries").and_then(|x| x.int_in(r, 0, 100, "retries")).map_or(DEFAULT_CHECK_RETRIES, |v| v as u32);
    let port = t.get(r, "port").and_then(|x| x.int_in(r, 1, 65535, "port")).map(|v| v as u16);
    let kind = match kind? {
        Type::None => {
            t.finish(r, &["type"]);
            return None;
        }
        Type::Tcp => {
            for k in ["path", "status", "expect"] {
                if t.get(r, k).is_some() {
                    let at = join(&t.path, k);
                    r.error_at(
                        &at,
                        format!("{k} is for type = \"http\" checks"),
                        Some(format!("remove {k}, or use type = \"http\"")),
                    );
                }
            }
            CheckKind::Tcp
        }
        Type::Http => {
            CheckKind::Http { path: path.unwrap_or_else(|| "/".into()), status: status.unwrap_or(200), expect }
        }
    };
    if timeout > interval {
        let at = join(&t.path, "timeout");
        r.error_at(
            &at,
            format!("timeout {timeout} is longer than interval {interval}"),
            Some("a check must end before the next one starts: use a timeout of at most the interval".into()),
        );
    }
    t.finish(r, &keys::HEALTH_CHECK.names());
    Some(HealthCheck { kind, interval, timeout, retries, port })
}

fn parse_sorry(r: &mut Reader, i: &Item) -> Option<DraftSorry> {
    if i.is_table() {
        let t = i.table(r)?;
        let host = t
            .require(r, "host", "add `host = \"sorry\"`, a host with role = \"sorry-server\" or a director")
            .and_then(|h| h.str(r).map(str::to_string));
        let port = t.get(r, "port").and_then(|p| p.int_in(r, 1, 65535, "port")).map(|p| p as u16);
        let path = t.path.clone();
        t.finish(r, &keys::SORRY_SERVER.names());
        return Some(DraftSorry { path, host, address: None, port });
    }
    let s = i.str(r)?;
    let help = "write `sorry_server = { host = \"sorry\", port = 80 }` for a host of the inventory, or \"ADDRESS:PORT\" for a machine outside it";
    let Some((a, p)) = s.rsplit_once(':') else {
        r.error(i.span(), &i.path, format!("\"{}\" is not ADDRESS:PORT", s.escape_debug()), Some(help.into()));
        return None;
    };
    // An IPv6 address is written in brackets: "[2001:db8::9]:80".
    let a = match a.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        Some(inner) => inner,
        None if a.contains(':') => {
            r.error(
                i.span(),
                &i.path,
                format!("\"{}\": an IPv6 address needs brackets before the port", s.escape_debug()),
                Some(format!("write \"[{a}]:{p}\"")),
            );
            return None;
        }
        None => a,
    };
    let address = match parse_ip(a) {
        Ok(a) => a,
        Err((m, h)) => {
            r.error(i.span(), &i.path, m, Some(h));
            return None;
        }
    };
    if let Some(why) = special_ip(address) {
        r.error(
            i.span(),
            &i.path,
            format!("{address} is {why}"),
            Some("give the sorry server's unicast address".into()),
        );
        return None;
    }
    let port = match p.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            r.error(
                i.span(),
                &i.path,
                format!("\"{}\": port \"{p}\" is not 1 to 65535", s.escape_debug()),
                Some(help.into()),
            );
            return None;
        }
    };
    Some(DraftSorry { path: i.path.clone(), host: None, address: Some(address), port: Some(port) })
}

fn parse_ha(r: &mut Reader, t: Table) -> DraftHa {
    let path = t.path.clone();
    let virtual_router_id = t
        .get(r, "virtual_router_id")
        .and_then(|i| i.int_in(r, 1, 255, "virtual_router_id"))
        .map_or(DEFAULT_VRID, |v| v as u8);
    let advert_interval =
        t.get(r, "advert_interval").and_then(|i| i.int_in(r, 1, 255, "advert_interval")).map_or(1, |v| v as u32);
    let flag = |r: &mut Reader, k: &str, d: bool| t.get(r, k).and_then(|i| i.bool(r)).unwrap_or(d);
    let sync = flag(r, "sync", true);
    let preempt = flag(r, "preempt", true);
    let unicast = flag(r, "unicast", false);
    let one = |r: &mut Reader, i: &Item| {
        let s = i.str(r)?;
        match parse_interface_cidr(s) {
            Ok(n) => Some(n),
            Err((m, h)) => {
                r.error(i.span(), &i.path, m, Some(h));
                None
            }
        }
    };
    let floating_gateway = t
        .get(r, "floating_gateway")
        .map(|i| parse_per_family(r, &i, "floating gateway", one, |n: &IpNet| Family::of_addr(n.addr())))
        .unwrap_or_default();
    t.finish(r, &keys::HA.names());
    DraftHa { path, virtual_router_id, advert_interval, sync, preempt, unicast, floating_gateway }
}

fn parse_lab(r: &mut Reader, t: Table) -> DraftLab {
    let path = t.path.clone();
    let mut segments = Vec::new();
    if let Some(i) = t.require(
        r,
        "segments",
        "add `segments = { lan = [\"client:eth0\", \"router:eth1\"] }`: which host interfaces share a link",
    ) && let Some(st) = i.table(r)
    {
        for (name, key_span, si) in st.entries(r) {
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || name.len() > 32
            {
                r.error(
                    key_span,
                    &si.path,
                    format!("invalid segment name \"{}\"", name.escape_debug()),
                    Some("use up to 32 letters, digits, '-' or '_'".into()),
                );
                continue;
            }
            let mut members = Vec::new();
            if let Some(items) = si.array(r) {
                for m in items {
                    let Some(s) = m.str(r) else { continue };
                    match s.split_once(':') {
                        Some((h, ifn)) if !h.is_empty() && !ifn.is_empty() => members.push(DraftMember {
                            host: h.to_string(),
                            iface: ifn.to_string(),
                            path: m.path.clone(),
                        }),
                        _ => r.error(
                            m.span(),
                            &m.path,
                            format!("\"{}\" is not HOST:INTERFACE", s.escape_debug()),
                            Some("write the host name and one of its interfaces, like \"web1:eth0\"".into()),
                        ),
                    }
                }
            }
            segments.push(DraftSegment { name, members });
        }
        st.finish(r, &[]);
    }
    let management = t.get(r, "management").and_then(|i| {
        let s = i.str(r)?;
        match s.parse::<IpNet>() {
            Ok(IpNet::V4(n)) if n.prefix_len() <= 30 => Some(IpNet::V4(n.trunc())),
            Ok(IpNet::V6(n)) if n.prefix_len() <= 126 => Some(IpNet::V6(n.trunc())),
            _ => {
                r.error(
                    i.span(),
                    &i.path,
                    format!(
                        "\"{}\" is not an IPv4 subnet of at most /30 or an IPv6 one of at most /126",
                        s.escape_debug()
                    ),
                    Some("write NETWORK/PREFIX, like 10.250.0.0/24 or fd00:250::/64".into()),
                );
                None
            }
        }
    });
    t.finish(r, &keys::LAB.names());
    DraftLab { path, segments, management }
}
