//! `[hosts.NAME]`: a host's role, interfaces and addresses, gateways, VIP device and priority.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table, join};
use super::ssh::{SshDefaults, parse_ssh_target, settings, ssh_field};
use super::value::{
    IFNAME_HELP, parse_enum, parse_host_ip_item, parse_interface_cidr, parse_ip, parse_per_family, special_ip,
};
use crate::wire::names::{interface_name_problem, is_link_local};

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
    /// `metrics_listen`, with its key path.
    pub metrics_listen: Option<(std::net::SocketAddr, String)>,
    /// An interface or address of this host failed to parse (and was reported): checks that
    /// need all of its subnets are skipped, so they add no follow-on error.
    pub incomplete: bool,
}

/// A next hop: a unicast address on one of the host's subnets, or a link-local IPv6 one with
/// its device (`fe80::1%eth0`).
pub(super) fn parse_gateway_item(r: &mut Reader, i: &Item) -> Option<Gateway> {
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

pub(super) fn parse_host(r: &mut Reader, name: String, t: Table, defaults: &SshDefaults) -> DraftHost {
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
    let metrics_listen = t.get(r, "metrics_listen").and_then(|i| {
        let s = i.str(r)?;
        match s.parse::<std::net::SocketAddr>() {
            Ok(a) if a.port() != 0 => Some((a, i.path.clone())),
            Ok(_) => {
                r.error(
                    i.span(),
                    &i.path,
                    "metrics_listen with port 0",
                    Some("give the port Prometheus scrapes, e.g. \"10.250.0.8:9382\"".into()),
                );
                None
            }
            Err(_) => {
                r.error(
                    i.span(),
                    &i.path,
                    format!("metrics_listen \"{}\" is not ADDRESS:PORT", s.escape_debug()),
                    Some("write \"10.250.0.8:9382\", or \"[2001:db8::8]:9382\" for IPv6".into()),
                );
                None
            }
        }
    });
    t.finish(r, &keys::HOST.names());
    DraftHost { name, path, role, ssh, gateways, interfaces, vip_device, address, priority, metrics_listen, incomplete }
}

impl DraftHost {
    /// Every interface address: (interface, index in its list, address).
    pub fn addresses(&self) -> impl Iterator<Item = (&str, usize, IpNet)> {
        self.interfaces.iter().flat_map(|i| i.addresses.iter().enumerate().map(move |(n, a)| (i.name.as_str(), n, *a)))
    }

    /// Its address on subnet `net`.
    pub fn address_on_subnet(&self, net: IpNet) -> Option<IpNet> {
        self.addresses().map(|(_, _, a)| a).find(|a| a.trunc() == net.trunc())
    }

    /// Its address whose subnet holds `ip`.
    pub fn net_containing(&self, ip: IpAddr) -> Option<IpNet> {
        self.addresses().map(|(_, _, a)| a).find(|a| a.contains(&ip))
    }

    /// The key path of one interface address.
    pub fn addr_path(&self, ifname: &str, idx: usize) -> String {
        format!("{}[{idx}]", join(&join(&self.path, "interfaces"), ifname))
    }

    /// The key path of its gateway of `family`: `gateway`, or its item in a list.
    pub fn gateway_path(&self, family: Family) -> String {
        let key = join(&self.path, "gateway");
        match self.gateways.iter().position(|g| Family::of_addr(g.via) == family) {
            Some(n) if self.gateways.len() > 1 => format!("{key}[{n}]"),
            _ => key,
        }
    }

    /// Where a problem with the whole host is reported: its interfaces, else the host.
    pub fn key_path(&self) -> String {
        if self.interfaces.is_empty() { self.path.clone() } else { join(&self.path, "interfaces") }
    }
}

/// Keys that only make sense for one role.
pub(super) fn check_role_keys(r: &mut Reader, hosts: &[DraftHost]) {
    for h in hosts {
        if h.vip_device.is_some() && h.role.is_some_and(|r| r != Role::Director) {
            r.error_at(
                &join(&h.path, "vip_device"),
                "vip_device is only for the director",
                Some("remove it: real servers hold VIPs on lo (DR) or tunl0 (TUN)".into()),
            );
        }
        if !h.address.is_empty() && h.role.is_some_and(|r| r != Role::RealServer) {
            r.error_at(
                &join(&h.path, "address"),
                "address is only for real servers",
                Some("remove it; other hosts are reached through their interfaces".into()),
            );
        }
    }
}

/// Interface addresses are unique in the lab; a gateway is on a subnet of its host and is
/// neither the host's own address nor a reserved one.
pub(super) fn check_addresses_and_gateways(r: &mut Reader, hosts: &[DraftHost]) {
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    for h in hosts {
        for (ifname, idx, a) in h.addresses() {
            let p = h.addr_path(ifname, idx);
            if let Some(first) = seen.get(&a.addr()) {
                r.error_at(
                    &p,
                    format!("address {} is also at {first}", a.addr()),
                    Some("every interface address must be unique in the lab".into()),
                );
            } else {
                seen.insert(a.addr(), p);
            }
        }
        for g in &h.gateways {
            let gw = g.via;
            let gp = h.gateway_path(Family::of_addr(gw));
            if let Some(dev) = &g.dev {
                // A link-local next hop: on the link of the device it names.
                if !h.interfaces.is_empty() && !h.interfaces.iter().any(|i| &i.name == dev) {
                    let known: Vec<&str> = h.interfaces.iter().map(|i| i.name.as_str()).collect();
                    r.error_at(
                        &gp,
                        format!("gateway {gw}%{dev}: {} has no interface {dev}", h.name),
                        Some(format!("name one of its interfaces: {}", known.join(", "))),
                    );
                }
                continue;
            }
            if h.addresses().any(|(_, _, a)| a.addr() == gw) {
                r.error_at(
                    &gp,
                    format!("gateway {gw} is {}'s own address", h.name),
                    Some("the gateway is the next hop: a router's or the director's address".into()),
                );
            } else if let Some(net) = h.net_containing(gw)
                && let Some(which) = reserved_in_subnet(net, gw)
            {
                r.error_at(
                    &gp,
                    format!("gateway {gw} is the {which} address of {}", net.trunc()),
                    Some("the gateway is a router's or the director's own address on that subnet".into()),
                );
            } else if !h.interfaces.is_empty() && !h.incomplete && h.net_containing(gw).is_none() {
                let family = Family::of_addr(gw);
                let subnets: Vec<String> = h
                    .addresses()
                    .filter(|(_, _, a)| Family::of_addr(a.addr()) == family)
                    .map(|(_, _, a)| a.trunc().to_string())
                    .collect();
                if subnets.is_empty() {
                    r.error_at(
                        &gp,
                        format!("gateway {gw} is {family}, but {} has no {family} address", h.name),
                        Some(format!(
                            "give {} an {family} address on the gateway's subnet, or remove this gateway",
                            h.name
                        )),
                    );
                } else {
                    r.error_at(
                        &gp,
                        format!("gateway {gw} is on none of {}'s subnets ({})", h.name, subnets.join(", ")),
                        Some(
                            "a gateway must be directly reachable: use an address on one of the host's subnets".into(),
                        ),
                    );
                }
            }
        }
    }
}

/// Each host is a machine of its own: no two hosts share an ssh endpoint.
pub(super) fn check_unique_endpoints(r: &mut Reader, hosts: &[DraftHost]) {
    let mut endpoints: HashMap<(SshTarget, u16), &str> = HashMap::new();
    for h in hosts {
        if let Some(ssh) = &h.ssh {
            // Host names are case-insensitive: WEB1 and web1 are one machine.
            let target = match &ssh.target {
                SshTarget::Remote(a) => SshTarget::Remote(a.to_ascii_lowercase()),
                t => t.clone(),
            };
            let key = (target, if ssh.target == SshTarget::Local { 0 } else { ssh.port });
            if let Some(first) = endpoints.get(&key) {
                let shown = match &ssh.target {
                    SshTarget::Local => "local".to_string(),
                    SshTarget::Remote(a) => format!("{a} port {}", ssh.port),
                };
                r.error_at(
                    &join(&h.path, "ssh"),
                    format!("same ssh endpoint as host {first} ({shown})"),
                    Some("each host needs its own machine: give it its own address".into()),
                );
            } else {
                endpoints.insert(key, &h.name);
            }
        }
    }
}

/// The network or broadcast address of an IPv4 subnet, or an IPv6 subnet's subnet-router
/// anycast address: reserved, so never a next hop.
fn reserved_in_subnet(net: IpNet, ip: IpAddr) -> Option<&'static str> {
    match net {
        IpNet::V4(n) if n.prefix_len() < 31 && ip == n.network() => Some("network"),
        IpNet::V4(n) if n.prefix_len() < 31 && ip == n.broadcast() => Some("broadcast"),
        IpNet::V6(n) if n.prefix_len() < 127 && ip == n.network() => Some("subnet-router anycast"),
        _ => None,
    }
}
