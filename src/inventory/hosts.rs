//! `[hosts.NAME]`: a host's role, interfaces and addresses, gateways, VIP device and priority.

use std::net::IpAddr;

use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table};
use super::ssh::*;
use super::value::*;
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
    t.finish(r, &keys::HOST.names());
    DraftHost { name, path, role, ssh, gateways, interfaces, vip_device, address, priority, incomplete }
}
