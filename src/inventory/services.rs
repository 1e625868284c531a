//! `[[services]]`: a virtual service (VIP and port, or a firewall mark and its matches), its
//! scheduler and persistence, its real servers, health check and sorry server; and the rules of
//! one service (`check_service`: its real servers, mode, sorry server and health check).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::diag::{did_you_mean, one_of_help};
use super::hosts::DraftHost;
use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table, join};
use super::value::{parse_enum, parse_ip, parse_ip_item, parse_vip_item, special_ip};

/// keepalived's defaults are made for production (a check a minute); a lab wants to see a
/// failure within seconds.
pub const DEFAULT_CHECK_INTERVAL: u32 = 3;

pub const DEFAULT_CHECK_TIMEOUT: u32 = 2;

pub const DEFAULT_CHECK_RETRIES: u32 = 2;

/// Longest persistence ipvsadm and the kernel accept: 31 days, in seconds.
pub const MAX_PERSISTENCE: i128 = 31 * 24 * 3600;

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
    /// tun_type, tun_port, tun_checksum as written (checked once the mode is known).
    pub tunnel: super::tunnel::DraftTunnel,
    /// `snat = true`: the key's path (one-armed NAT, checked once the mode is known).
    pub snat: Option<String>,
    /// None: every real-server host, weight 1.
    pub real_servers: Option<Vec<DraftBackend>>,
    pub health_check: Option<HealthCheck>,
    pub on_failure: OnFailure,
    pub sorry_server: Option<DraftSorry>,
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

/// One `match = [{ vip, protocol, ports }]` item of a firewall-mark service.
#[derive(Clone)]
pub struct DraftMatch {
    pub path: String,
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub ports: Vec<u16>,
}

/// `sorry_server`: a host of the inventory with a port, or `"ADDRESS:PORT"` outside it.
#[derive(Clone)]
pub struct DraftSorry {
    pub path: String,
    pub host: Option<String>,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
}

/// `netmask`: a dotted netmask for an IPv4 service, a prefix length for an IPv6 one.
pub(super) fn parse_netmask(r: &mut Reader, i: &Item, vip: Option<IpAddr>) -> Option<Netmask> {
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
pub(super) fn parse_scheduler_flags(r: &mut Reader, i: &Item, scheduler: &str) -> Vec<SchedulerFlag> {
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

pub(super) fn parse_service(r: &mut Reader, index: usize, t: Table) -> DraftService {
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
    let tunnel = super::tunnel::parse_tunnel(r, &t);
    let snat = super::snat::parse_snat(r, &t);
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
        tunnel,
        snat,
        real_servers,
        health_check,
        on_failure,
        sorry_server,
    }
}

/// `match = [{ vip, protocol, ports }, …]`: what a firewall-mark service's rules mark.
pub(super) fn parse_matches(r: &mut Reader, i: &Item) -> Vec<DraftMatch> {
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

pub(super) fn parse_on_failure(s: &str) -> Option<OnFailure> {
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

pub(super) fn parse_health_check(r: &mut Reader, i: &Item) -> Option<HealthCheck> {
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

pub(super) fn parse_sorry(r: &mut Reader, i: &Item) -> Option<DraftSorry> {
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

/// A sorry-server host is named by a service.
pub(super) fn check_sorry_servers_named(r: &mut Reader, hosts: &[DraftHost], services: &[DraftService]) {
    for h in hosts.iter().filter(|h| h.role == Some(Role::SorryServer)) {
        let named = services.iter().any(|s| s.sorry_server.as_ref().is_some_and(|x| x.host.as_ref() == Some(&h.name)));
        if !named {
            r.error_at(
                &join(&h.path, "role"),
                format!("{} is a sorry-server that no service names", h.name),
                Some(format!("add `sorry_server = {{ host = \"{}\" }}` to a service, or remove the host", h.name)),
            );
        }
    }
}

/// An inventory has a service.
pub(super) fn check_some_service(r: &mut Reader, services: &[DraftService]) {
    if services.is_empty() {
        r.error_at(
            "services",
            "the inventory has no [[services]]",
            Some("add at least one [[services]] table with vip and port".into()),
        );
    }
}

/// How messages name a draft service: its name, else `protocol vip:port`.
/// A firewall-mark service is one service per family of its matches (the same mark in each);
/// any other service is itself.
pub(super) fn split_by_family(s: &DraftService) -> Vec<DraftService> {
    if s.fwmark.is_none() {
        return vec![s.clone()];
    }
    let mut families: Vec<Family> = Vec::new();
    for m in &s.matches {
        let f = Family::of_addr(m.vip);
        if !families.contains(&f) {
            families.push(f);
        }
    }
    families
        .into_iter()
        .map(|f| {
            let matches: Vec<_> = s.matches.iter().filter(|m| Family::of_addr(m.vip) == f).cloned().collect();
            DraftService { vip: matches.first().map(|m| m.vip), matches, ..s.clone() }
        })
        .collect()
}

/// Each VIP of a validated service with the key that gave it (a firewall-mark service's `match`).
pub(super) fn service_vips(s: &Service) -> Vec<(IpAddr, String)> {
    let key = if s.ipvs.fwmark.is_some() { "match" } else { "vip" };
    s.vips().into_iter().map(|v| (v, join(&format!("services[{}]", s.index), key))).collect()
}

/// Each VIP of a service with the key path that gave it.
pub(super) fn vips_of(s: &DraftService) -> Vec<(IpAddr, String)> {
    if s.fwmark.is_some() {
        s.matches.iter().map(|m| (m.vip, join(&m.path, "vip"))).collect()
    } else {
        s.vip.map(|v| (v, join(&s.path, "vip"))).into_iter().collect()
    }
}

pub(super) fn label_of(s: &DraftService) -> String {
    let at = match (s.vip, s.port, s.fwmark) {
        (Some(v), _, Some(mark)) if v.is_ipv6() => format!("fwmark {mark} ipv6"),
        (_, _, Some(mark)) => format!("fwmark {mark}"),
        (Some(v), Some(p), None) => format!("{} {}", s.protocol, std::net::SocketAddr::new(v, p)),
        _ => format!("services[{}]", s.index),
    };
    match &s.name {
        Some(n) => format!("{n} ({at})"),
        None => at,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_service(
    r: &mut Reader,
    s: &DraftService,
    mode: Option<Mode>,
    hosts_ok: bool,
    by_name: &BTreeMap<&str, &DraftHost>,
    names: &[&str],
    rs_hosts: &[&str],
    directors: &[&DraftHost],
    reported: &mut BTreeSet<(String, Mode, Family)>,
) -> Option<Service> {
    let director = directors.first().copied();
    for (vip, vip_path) in vips_of(s) {
        for h in by_name.values().filter(|h| h.role != Some(Role::Director) || directors.len() > 1) {
            if h.addresses().any(|(_, _, a)| a.addr() == vip) {
                r.error_at(
                    &vip_path,
                    format!("VIP {vip} is {}'s own address", h.name),
                    Some("choose an address no host but the director holds; lvsctl puts the VIP where each mode needs it".into()),
                );
            }
        }
        // The VIP moves between hosts' lo, tunl0 and the director: it cannot also be where
        // lvsctl connects to a host, or a next hop.
        for h in by_name.values() {
            if let Some(ssh) = &h.ssh
                && matches!(&ssh.target, crate::inventory::SshTarget::Remote(a) if a.parse::<IpAddr>() == Ok(vip))
            {
                r.error_at(
                    &vip_path,
                    format!("VIP {vip} is the ssh address of host {}", h.name),
                    Some("lvsctl would reach whichever host holds the VIP: give the VIP an address of its own".into()),
                );
            }
            if h.gateways.iter().any(|g| g.via == vip) {
                r.error_at(
                    &vip_path,
                    format!("VIP {vip} is host {}'s gateway", h.name),
                    Some(
                        "a gateway is a router's or the director's own address: give the VIP an address of its own"
                            .into(),
                    ),
                );
            }
        }
    }
    let mut backends = Vec::new();
    let explicit = s.real_servers.is_some();
    let list: Vec<(String, String, u32, Option<u16>, u32, u32)> = match &s.real_servers {
        Some(list) => {
            if list.is_empty() {
                r.error_at(&join(&s.path, "real_servers"), "real_servers is empty", Some("list at least one real server, or remove the key to use every host with role = \"real-server\"".into()));
            }
            list.iter()
                .filter_map(|b| {
                    let host = b.host.clone()?;
                    Some((host, b.path.clone(), b.weight, b.port, b.u_threshold, b.l_threshold))
                })
                .collect()
        }
        None => {
            if rs_hosts.is_empty() && by_name.values().all(|h| h.role.is_some()) {
                r.error_at(
                    &s.path,
                    "this service has no real servers",
                    Some("add a host with role = \"real-server\" or list real_servers".into()),
                );
            }
            rs_hosts.iter().map(|h| (h.to_string(), format!("hosts.{h}"), 1, None, 0, 0)).collect()
        }
    };
    let mut seen = BTreeSet::new();
    // One-armed NAT's real servers answer the director through their own routes: anywhere it
    // can reach (whether snat is allowed here is checked with the service's other keys).
    let one_arm = s.snat.is_some() && mode == Some(Mode::Nat);
    for (host, bpath, weight, port, u_threshold, l_threshold) in list {
        let hp = if explicit { join(&bpath, "host") } else { bpath.clone() };
        let Some(h) = by_name.get(host.as_str()).copied() else {
            if !hosts_ok {
                // The hosts table itself is broken (already reported): naming it again helps nobody.
                continue;
            }
            let help = match did_you_mean(&host, names) {
                Some(n) => format!("did you mean \"{n}\"? hosts are: {}", super::diag::some_of(names)),
                None => format!("hosts are: {}", super::diag::some_of(names)),
            };
            r.error_at(&hp, format!("unknown host \"{host}\""), Some(help));
            continue;
        };
        if h.role.is_some_and(|role| role != Role::RealServer) {
            r.error_at(
                &hp,
                format!("{host} is a {}, not a real-server", h.role.expect("checked")),
                Some("list only hosts with role = \"real-server\"".into()),
            );
            continue;
        }
        if !seen.insert(host.clone()) {
            r.error_at(
                &hp,
                format!("{host} is listed twice in this service"),
                Some("list each real server once; use weight to give it a bigger share".into()),
            );
            continue;
        }
        let (Some(mode), Some(sport), Some(vip)) = (mode, s.port, s.vip) else { continue };
        let family = Family::of_addr(vip);
        let address = resolve_rs_address(r, h, director, (mode, one_arm), family, &label_of(s), reported);
        // The other director of a pair must reach it the same way.
        if let Some(other) = directors.get(1)
            && address.is_some()
        {
            resolve_rs_address(r, h, Some(other), (mode, one_arm), family, &label_of(s), reported);
        }
        if let Some(p) = port
            && p != sport
            && !mode.profile().port_mapping
        {
            r.error_at(
                &join(&bpath, "port"),
                format!("port mapping ({sport} → {p}) needs NAT, but this service uses {} mode", mode.as_str().to_uppercase()),
                Some(format!("in {} mode the real server receives the packet unchanged, so it must listen on port {sport}: remove `port`, or set mode = \"nat\" on the service", mode.as_str().to_uppercase())),
            );
        }
        let Some(address) = address else {
            continue;
        };
        backends.push(Backend { host, address, port: port.unwrap_or(sport), weight, u_threshold, l_threshold });
    }
    // A service with some bad backends is still returned (with the good ones), so that the
    // rules that follow report their own problems in the same run; the reader's diagnostics
    // decide whether the lab is valid.
    if backends.is_empty() {
        return None;
    }
    let sorry_server = s
        .sorry_server
        .as_ref()
        .and_then(|x| check_sorry(r, s, x, mode?, by_name, names, directors, &backends, reported));
    check_health(r, s, mode?);
    let encap = super::tunnel::check_tunnel(r, &s.path, &s.tunnel, mode?);
    let family = Family::of_addr(s.vip?);
    let snat = super::snat::check_snat(r, s.snat.as_ref(), (mode?, family), s.fwmark, directors);
    Some(Service {
        index: s.index,
        name: s.name.clone(),
        ipvs: VirtualService {
            protocol: s.protocol,
            vip: s.vip?,
            port: s.port?,
            fwmark: s.fwmark,
            scheduler: s.scheduler.clone(),
            scheduler_flags: s.scheduler_flags.clone(),
            one_packet: s.one_packet,
            persistence: s.persistence,
            netmask: s.netmask,
        },
        matches: s
            .matches
            .iter()
            .map(|m| MarkMatch { vip: m.vip, protocol: m.protocol, ports: m.ports.clone() })
            .collect(),
        mode: mode?,
        encap,
        snat,
        real_servers: backends,
        health_check: s.health_check.clone(),
        on_failure: s.on_failure,
        sorry_server,
    })
}

/// `sorry_server`: a sorry-server host or a director of the inventory, or an outside address;
/// in DR and TUN it receives the packet unchanged, so it serves the service's port.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_sorry(
    r: &mut Reader,
    s: &DraftService,
    x: &super::services::DraftSorry,
    mode: Mode,
    by_name: &BTreeMap<&str, &DraftHost>,
    names: &[&str],
    directors: &[&DraftHost],
    backends: &[Backend],
    reported: &mut BTreeSet<(String, Mode, Family)>,
) -> Option<SorryServer> {
    let sport = s.port?;
    let port = x.port.unwrap_or(sport);
    let port_path = if x.host.is_some() { join(&x.path, "port") } else { x.path.clone() };
    if port != sport && !mode.profile().port_mapping {
        r.error_at(
            &port_path,
            format!("the sorry server's port {port} differs from the service's {sport}, which needs NAT"),
            Some(format!("in {} mode the sorry server receives the packet unchanged: give it port {sport}, or set mode = \"nat\"", mode.as_str().to_uppercase())),
        );
        return None;
    }
    let family = Family::of_addr(s.vip?);
    let Some(host) = &x.host else {
        let address = x.address?;
        if Family::of_addr(address) != family {
            r.error_at(
                &x.path,
                format!("sorry server {address} is {}, but the service's VIP is {family}", Family::of_addr(address)),
                Some(format!("give the sorry server's {family} address: one service does not mix families")),
            );
            return None;
        }
        return Some(SorryServer { host: None, address, port });
    };
    let hp = join(&x.path, "host");
    let Some(h) = by_name.get(host.as_str()).copied() else {
        let help = match did_you_mean(host, names) {
            Some(n) => format!("did you mean \"{n}\"? hosts are: {}", super::diag::some_of(names)),
            None => format!("hosts are: {}", super::diag::some_of(names)),
        };
        r.error_at(&hp, format!("unknown host \"{host}\""), Some(help));
        return None;
    };
    match h.role? {
        Role::Director => {
            if directors.len() > 1 {
                r.error_at(
                    &hp,
                    format!("{host} is a director of the HA pair: the backup would send the sorry traffic to itself"),
                    Some("use a host with role = \"sorry-server\" for an HA pair".into()),
                );
                return None;
            }
            // The LVS tutorials' fallback web server on the director: IPVS delivers locally.
            let local: IpAddr = match family {
                Family::Ipv4 => std::net::Ipv4Addr::LOCALHOST.into(),
                Family::Ipv6 => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            Some(SorryServer { host: Some(host.clone()), address: local, port })
        }
        Role::SorryServer => {
            if backends.iter().any(|b| &b.host == host) {
                r.error_at(
                    &hp,
                    format!("{host} is also a real server of this service"),
                    Some("use a host of its own as the sorry server".into()),
                );
                return None;
            }
            let address =
                resolve_rs_address(r, h, directors.first().copied(), (mode, false), family, &label_of(s), reported)?;
            Some(SorryServer { host: Some(host.clone()), address, port })
        }
        other => {
            r.error_at(
                &hp,
                format!("{host} is a {other}, not a sorry-server or a director"),
                Some(
                    "give the host role = \"sorry-server\", or name the director to serve the sorry page itself".into(),
                ),
            );
            None
        }
    }
}

/// `health_check` and `on_failure` fit the service.
pub(super) fn check_health(r: &mut Reader, s: &DraftService, _mode: Mode) {
    if s.on_failure == OnFailure::Quiesce && s.health_check.is_none() {
        r.error_at(
            &join(&s.path, "on_failure"),
            "on_failure = \"quiesce\" needs a health check",
            Some("add `health_check = { type = \"http\" }` (or \"tcp\"), or remove on_failure".into()),
        );
    }
    if let Some(hc) = &s.health_check
        && hc.port.is_none()
        && s.protocol != Protocol::Tcp
    {
        r.error_at(
            &join(&s.path, "health_check"),
            format!("a {} service's health check needs a TCP port to check", s.protocol),
            Some("add `port = N` to health_check: the TCP port on each real server that tells it is healthy".into()),
        );
    }
}

/// The address of `family` the director forwards to for real server `h` (serving `service`).
pub(super) fn resolve_rs_address(
    r: &mut Reader,
    h: &DraftHost,
    director: Option<&DraftHost>,
    (mode, one_arm): (Mode, bool),
    family: Family,
    service: &str,
    reported: &mut BTreeSet<(String, Mode, Family)>,
) -> Option<IpAddr> {
    let of_family = |a: &IpNet| Family::of_addr(a.addr()) == family;
    let director_nets: Vec<IpNet> =
        director.map(|d| d.addresses().map(|(_, _, a)| a).filter(of_family).collect()).unwrap_or_default();
    let same_l2 = crate::modes::profile_of(mode, Default::default(), one_arm).real_server.same_l2;
    // Subnets that failed to parse were reported: deciding without them would only add
    // follow-on errors.
    if h.incomplete || director.is_some_and(|d| d.incomplete) {
        return None;
    }
    let mut report = |r: &mut Reader, key: String, msg: String, help: String| {
        if reported.insert((h.name.clone(), mode, family)) {
            r.error_at(&key, msg, Some(help));
        }
    };
    let explicit = h.address.iter().position(|a| Family::of_addr(*a) == family);
    if let Some(n) = explicit {
        let a = h.address[n];
        let key =
            if h.address.len() > 1 { format!("{}[{n}]", join(&h.path, "address")) } else { join(&h.path, "address") };
        if !h.interfaces.is_empty() && !h.addresses().any(|(_, _, x)| x.addr() == a) {
            report(
                r,
                key,
                format!("{a} is not one of {}'s interface addresses", h.name),
                "use an address from its interfaces table".into(),
            );
            return None;
        }
        if same_l2 && !director_nets.is_empty() && !director_nets.iter().any(|n| n.contains(&a)) {
            report(
                r,
                key,
                format!(
                    "{a} is on no subnet of the director: {} mode needs the director and {} on one L2 segment",
                    mode.as_str().to_uppercase(),
                    h.name
                ),
                "use the real server's address on the director's subnet, or use TUN mode across routers".into(),
            );
            return None;
        }
        return Some(a);
    }
    let own: Vec<IpNet> = h.addresses().map(|(_, _, a)| a).filter(of_family).collect();
    if own.is_empty() && !h.interfaces.is_empty() {
        // One service does not mix families: its real servers need an address of the VIP's.
        report(
            r,
            h.key_path(),
            format!("{} has no {family} address, and serves the {family} service {service}", h.name),
            format!("give {} an {family} address on the director's subnet, or use an {} VIP", h.name, other(family)),
        );
        return None;
    }
    if let Some(a) = own.iter().find(|a| director_nets.iter().any(|n| n.trunc() == a.trunc())) {
        return Some(a.addr());
    }
    // Across routers, a real server with one address can only be reached there.
    if !same_l2 && own.len() == 1 {
        return Some(own[0].addr());
    }
    let dname = director.map(|d| d.name.as_str()).unwrap_or("the director");
    if same_l2 {
        let subnets: Vec<String> = director_nets.iter().map(|n| n.trunc().to_string()).collect();
        let want = if subnets.is_empty() {
            format!("give the director and the real server {family} addresses on one subnet")
        } else {
            format!("give {} an address on {}", h.name, subnets.join(" or "))
        };
        report(
            r,
            h.key_path(),
            format!(
                "{} shares no {family} subnet with director {dname}: {} mode forwards on one L2 segment",
                h.name,
                mode.as_str().to_uppercase()
            ),
            want,
        );
    } else {
        report(
            r,
            h.path.clone(),
            format!("cannot tell which {family} address of {} the director should tunnel to", h.name),
            format!("set `address = \"...\"` in [{}]", h.path),
        );
    }
    None
}

pub(super) fn other(f: Family) -> Family {
    match f {
        Family::Ipv4 => Family::Ipv6,
        Family::Ipv6 => Family::Ipv4,
    }
}
