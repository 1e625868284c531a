//! `[lab]`: the lab's segments (which host interfaces share a link) and management network, for
//! `lvsctl lab create`; and its rules (`check_lab`, and `check_lab_l2`: a director shares a
//! segment with what it forwards to).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::diag::did_you_mean;
use super::hosts::DraftHost;
use super::keys;
use super::model::*;
use super::reader::{Reader, Table, join};

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

pub(super) fn parse_lab(r: &mut Reader, t: Table) -> DraftLab {
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

/// The name of the management interface `lvsctl lab create` gives every host.
pub const LAB_MGMT_IFNAME: &str = "mgmt0";

/// In a lab, NAT and DR real servers must share an L2 segment with the director on the subnet
/// they share (DR reaches them by MAC; NAT's replies come back on that link). TUN real servers
/// may sit behind routers.
pub(super) fn check_lab_l2(
    r: &mut Reader,
    spec: &LabSpec,
    services: &[Service],
    director: &DraftHost,
    by_name: &BTreeMap<&str, &DraftHost>,
) {
    let segment_of = |host: &str, ifname: &str| {
        spec.segments.iter().find(|s| s.members.iter().any(|(h, i)| h == host && i == ifname)).map(|s| s.name.as_str())
    };
    let mut reported = BTreeSet::new();
    for svc in services.iter().filter(|s| s.profile().real_server.same_l2) {
        for b in &svc.real_servers {
            let Some(rs) = by_name.get(b.host.as_str()) else { continue };
            let shared: Vec<(&str, &str)> = rs
                .addresses()
                .flat_map(|(ri, _, ra)| {
                    director
                        .addresses()
                        .filter(move |(_, _, da)| da.trunc() == ra.trunc())
                        .map(move |(di, _, _)| (ri, di))
                })
                .collect();
            let linked = shared
                .iter()
                .any(|(ri, di)| segment_of(&rs.name, ri).is_some_and(|s| Some(s) == segment_of(&director.name, di)));
            if !shared.is_empty() && !linked && reported.insert(rs.name.clone()) {
                let (ri, di) = shared[0];
                r.error_at(
                    "lab.segments",
                    format!(
                        "{}:{ri} and {}:{di} share a subnet but no [lab] segment: {} real servers need an L2 path to the director",
                        rs.name,
                        director.name,
                        svc.mode.as_str().to_uppercase()
                    ),
                    Some(format!("put \"{}:{ri}\" on the segment of \"{}:{di}\"", rs.name, director.name)),
                );
            }
        }
    }
}

pub(super) fn check_lab(
    r: &mut Reader,
    l: super::lab::DraftLab,
    hosts: &[DraftHost],
    by_name: &BTreeMap<&str, &DraftHost>,
    names: &[&str],
) -> Option<LabSpec> {
    let mut ok = true;
    let mut placed: HashMap<(String, String), String> = HashMap::new();
    let mut segments = Vec::new();
    for seg in l.segments {
        let name = seg.name;
        let mut ms = Vec::new();
        for m in seg.members {
            let (host, ifname, mpath) = (m.host, m.iface, m.path);
            let Some(h) = by_name.get(host.as_str()) else {
                let help = match did_you_mean(&host, names) {
                    Some(n) => format!("did you mean \"{n}\"? hosts are: {}", super::diag::some_of(names)),
                    None => format!("hosts are: {}", super::diag::some_of(names)),
                };
                r.error_at(&mpath, format!("unknown host \"{host}\""), Some(help));
                ok = false;
                continue;
            };
            if !h.interfaces.iter().any(|i| i.name == ifname) {
                let known: Vec<&str> = h.interfaces.iter().map(|i| i.name.as_str()).collect();
                r.error_at(
                    &mpath,
                    format!("{host} has no interface \"{ifname}\" in its interfaces table"),
                    Some(format!(
                        "{host}'s interfaces: {}",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    )),
                );
                ok = false;
                continue;
            }
            if let Some(first) = placed.get(&(host.clone(), ifname.clone())) {
                r.error_at(
                    &mpath,
                    format!("{host}:{ifname} is already on segment {first}"),
                    Some("an interface is plugged into one segment".into()),
                );
                ok = false;
                continue;
            }
            placed.insert((host.clone(), ifname.clone()), name.clone());
            ms.push((host, ifname));
        }
        segments.push(Segment { name, members: ms });
    }
    for h in hosts {
        for i in &h.interfaces {
            if i.name == LAB_MGMT_IFNAME {
                r.error_at(
                    &join(&join(&h.path, "interfaces"), &i.name),
                    format!("{LAB_MGMT_IFNAME} is the lab's management interface"),
                    Some("rename this interface (lab hosts get mgmt0 for SSH)".into()),
                );
                ok = false;
            } else if !placed.contains_key(&(h.name.clone(), i.name.clone())) {
                r.error_at(
                    &join(&join(&h.path, "interfaces"), &i.name),
                    format!("{}:{} is on no [lab] segment", h.name, i.name),
                    Some(format!(
                        "add \"{}:{}\" to one of lab.segments, or the lab would leave it unplugged",
                        h.name, i.name
                    )),
                );
                ok = false;
            }
        }
    }
    // Management network: every host's ssh address, IPv4 or IPv6 (one family for the lab).
    let mut ssh_addrs: Vec<(&DraftHost, IpAddr)> = Vec::new();
    for h in hosts {
        match h.ssh.as_ref().map(|s| &s.target) {
            Some(SshTarget::Remote(a)) => match a.parse::<IpAddr>() {
                Ok(ip) => ssh_addrs.push((h, ip)),
                Err(_) => {
                    r.error_at(
                        &join(&h.path, "ssh"),
                        format!("lab hosts need an IP address as ssh, not \"{a}\""),
                        Some("the lab gives each host its ssh address on the management network".into()),
                    );
                    ok = false;
                }
            },
            Some(SshTarget::Local) => {
                r.error_at(
                    &join(&h.path, "ssh"),
                    "a lab host cannot be \"local\"",
                    Some("give it an address on the management network".into()),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    // The lab gives each host its ssh address on the management network: one address, one host
    // (other ports would not make two machines of one address here).
    let mut by_addr: HashMap<IpAddr, (&str, u16)> = HashMap::new();
    for (h, ip) in &ssh_addrs {
        let port = h.ssh.as_ref().map_or(22, |s| s.port);
        // The same port is the same endpoint, reported as such above.
        if let Some((first, _)) = by_addr.get(ip).filter(|(_, p)| *p != port) {
            r.error_at(
                &join(&h.path, "ssh"),
                format!("{ip} is also host {first}'s ssh address"),
                Some("a lab host is a machine of its own: give each host its own ssh address".into()),
            );
        }
        by_addr.entry(*ip).or_insert((&h.name, port));
    }
    let management = l.management.or_else(|| {
        ssh_addrs.first().map(|(_, ip)| IpNet::new(*ip, if ip.is_ipv6() { 64 } else { 24 }).expect("valid").trunc())
    });
    let management = management?;
    for (h, ip) in &ssh_addrs {
        let broadcast = matches!(management, IpNet::V4(_)) && *ip == management.broadcast();
        if !management.contains(ip) || *ip == management.network() || broadcast {
            r.error_at(
                &join(&h.path, "ssh"),
                format!("{ip} is not a host address of the management network {management}"),
                Some("put every host's ssh address in one subnet of one family, or set lab.management".into()),
            );
            ok = false;
        }
    }
    for x in hosts {
        for (ifname, idx, a) in x.addresses() {
            if a.trunc().contains(&management.network()) || management.contains(&a.addr()) {
                r.error_at(
                    &x.addr_path(ifname, idx),
                    format!("{a} overlaps the management network {management}"),
                    Some("keep lab subnets apart from the network used for SSH".into()),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    Some(LabSpec { segments, management })
}
