//! `[ha]`: an HA pair of directors running keepalived (VRRP, sync daemon, floating gateway), and
//! the rules of a pair (`check_directors`, `check_pair`, `check_floating`).

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::hosts::DraftHost;
use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table, join};
use super::services::service_vips;
use super::value::{parse_interface_cidr, parse_per_family};

pub const DEFAULT_VRID: u8 = 51;

pub struct DraftHa {
    pub path: String,
    pub virtual_router_id: u8,
    pub advert_interval: u32,
    pub sync: bool,
    pub preempt: bool,
    pub unicast: bool,
    pub floating_gateway: Vec<IpNet>,
}

pub(super) fn parse_ha(r: &mut Reader, t: Table) -> DraftHa {
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

/// What the director pair needs: `[ha]`, a priority each, different ones.
pub(super) fn check_directors(
    r: &mut Reader,
    hosts: &[DraftHost],
    directors: &[&DraftHost],
    ha: Option<&super::ha::DraftHa>,
) {
    for h in hosts.iter().filter(|h| h.priority.is_some() && h.role.is_some_and(|r| r != Role::Director)) {
        r.error_at(
            &join(&h.path, "priority"),
            "priority is only for directors",
            Some("remove it: it is the VRRP priority of a director of an HA pair".into()),
        );
    }
    match (directors.len(), ha) {
        (0, _) => {}
        (1, Some(ha)) => r.error_at(
            &ha.path,
            format!("[ha] needs two directors, but {} is the only one", directors[0].name),
            Some("add a second host with role = \"director\" and a priority each, or remove [ha]".into()),
        ),
        (1, None) => {
            if directors[0].priority.is_some() {
                r.error_at(
                    &join(&directors[0].path, "priority"),
                    "priority is for the two directors of an HA pair",
                    Some("remove it, or add a second director and an [ha] table".into()),
                );
            }
        }
        (_, None) => r.error_at(
            &join(&directors[1].path, "role"),
            format!("a second director ({} is the first) without an [ha] table", directors[0].name),
            Some("add `[ha]` (keepalived then runs VRRP between the two: see virtual_router_id, unicast, floating_gateway), or make this host a real-server".into()),
        ),
        (_, Some(_)) => {
            let (a, b) = (directors[0], directors[1]);
            for d in [a, b] {
                if d.priority.is_none() {
                    r.error_at(
                        &d.path,
                        format!("director {} of the HA pair has no priority", d.name),
                        Some("add `priority = 150` (1 to 254; the higher one is master while both run)".into()),
                    );
                }
            }
            if let (Some(pa), Some(pb)) = (a.priority, b.priority)
                && pa == pb
            {
                r.error_at(
                    &join(&b.path, "priority"),
                    format!("{} and {} both have priority {pa}", a.name, b.name),
                    Some("give the directors different priorities: the higher one is master while both run".into()),
                );
            }
        }
    }
}

/// An HA pair: each VIP on a subnet both directors (and the router) share, the floating gateway
/// where NAT needs it and nowhere else.
pub(super) fn check_pair(
    r: &mut Reader,
    ha: &super::ha::DraftHa,
    a: &DraftHost,
    b: &DraftHost,
    hosts: &[DraftHost],
    services: &[Service],
) {
    if a.incomplete || b.incomplete {
        return;
    }
    for d in [a, b] {
        if d.vip_device.is_some() {
            r.error_at(
                &join(&d.path, "vip_device"),
                "vip_device is for a single director",
                Some("remove it: keepalived holds an HA pair's VIPs on the interface of their subnet".into()),
            );
        }
    }
    let routers: Vec<&DraftHost> =
        hosts.iter().filter(|h| h.role == Some(Role::Router) && !h.interfaces.is_empty()).collect();
    let mut reported = BTreeSet::new();
    for (vip, at) in services.iter().flat_map(service_vips) {
        if !reported.insert(vip) {
            continue;
        }
        for d in [a, b] {
            if d.addresses().any(|(_, _, x)| x.addr() == vip) {
                r.error_at(
                    &at,
                    format!("VIP {vip} is director {}'s own address", d.name),
                    Some("an HA pair's VIP moves between the directors: give it an address of its own on their shared subnet".into()),
                );
            }
        }
        let (na, nb) = (a.net_containing(vip), b.net_containing(vip));
        match (na, nb) {
            (Some(x), Some(y)) if x.trunc() == y.trunc() => {
                if let Some(router) = routers.iter().find(|rt| rt.net_containing(vip).is_none()) {
                    r.error_at(
                        &at,
                        format!("VIP {} is on no subnet of router {}: with two directors the router must reach the VIP on a subnet it shares with them", vip, router.name),
                        Some(format!("choose a VIP on {} (a subnet of {}, {} and {}), or connect the router to it", x.trunc(), a.name, b.name, router.name)),
                    );
                }
            }
            _ => r.error_at(
                &at,
                format!("VIP {} is not on a subnet both directors {} and {} have", vip, a.name, b.name),
                Some("an HA pair's VIP is held by whichever director is master: give both directors an interface on the VIP's subnet (a VIP routed through one director would need a floating next hop, which lvsctl does not build)".into()),
            ),
        }
    }
    let nat: Vec<&Service> = services.iter().filter(|s| s.profile().real_server.gateway.is_via_director()).collect();
    let fg_path = join(&ha.path, "floating_gateway");
    for family in Family::BOTH {
        let nat: Vec<&Service> = nat.iter().copied().filter(|s| s.family() == family).collect();
        let n = ha.floating_gateway.iter().position(|f| Family::of_addr(f.addr()) == family);
        let fg_path = match n {
            Some(n) if ha.floating_gateway.len() > 1 => format!("{fg_path}[{n}]"),
            _ => fg_path.clone(),
        };
        check_floating(r, ha, n.map(|n| ha.floating_gateway[n]), &fg_path, family, &nat, a, b, hosts, services);
    }
}

/// The floating gateway of one family: there exactly when that family has NAT services, on the
/// directors' real-server subnet, and nobody's address.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_floating(
    r: &mut Reader,
    ha: &super::ha::DraftHa,
    fg: Option<IpNet>,
    fg_path: &str,
    family: Family,
    nat: &[&Service],
    a: &DraftHost,
    b: &DraftHost,
    hosts: &[DraftHost],
    services: &[Service],
) {
    match (fg, nat.first()) {
        (None, Some(s)) => r.error_at(
            &ha.path,
            format!("{} is a NAT service of an HA pair, but [ha] has no {family} floating_gateway", s.label()),
            Some(format!("add floating_gateway = \"ADDRESS/PREFIX\" ({family}, or one per family in a list) on the directors' real-server subnet: the real servers route their replies through whichever director is master")),
        ),
        (Some(_), None) => r.error_at(
            fg_path,
            format!("floating_gateway is for NAT services, and no {family} service is NAT"),
            Some("remove it: in DR and TUN the real servers answer clients through the router, not the directors".into()),
        ),
        (Some(fg), Some(_)) => {
            let rs_nets: BTreeSet<IpNet> = nat
                .iter()
                .flat_map(|s| &s.real_servers)
                .filter_map(|bk| a.net_containing(bk.address).map(|n| n.trunc()))
                .collect();
            let on_a = a.net_containing(fg.addr()).map(|n| n.trunc());
            let on_b = b.net_containing(fg.addr()).map(|n| n.trunc());
            match on_a.filter(|n| on_a == on_b && rs_nets.contains(n)) {
                None => {
                    let want: Vec<String> = rs_nets.iter().map(|n| n.to_string()).collect();
                    r.error_at(
                        fg_path,
                        format!("floating gateway {fg} is not on the directors' real-server subnet"),
                        Some(if want.is_empty() {
                            "give both directors an interface on the real servers' subnet, and the floating gateway an address there".into()
                        } else {
                            format!("use a free address of {} (both directors and the real servers are there)", want.join(" or "))
                        }),
                    );
                }
                Some(net) if fg.trunc() != net => r.error_at(
                    fg_path,
                    format!("floating gateway {fg} has another prefix than the subnet {net} it is on"),
                    Some(format!("write it as {}/{}", fg.addr(), net.prefix_len())),
                ),
                Some(_) => {}
            }
            if let Some(h) = hosts.iter().find(|h| h.addresses().any(|(_, _, x)| x.addr() == fg.addr())) {
                r.error_at(
                    fg_path,
                    format!("floating gateway {} is {}'s own address", fg.addr(), h.name),
                    Some("give it an address no host holds: the master director adds it".into()),
                );
            }
            if services.iter().any(|s| s.vips().contains(&fg.addr())) {
                r.error_at(fg_path, format!("floating gateway {} is also a VIP", fg.addr()), Some("give it an address of its own".into()));
            }
        }
        (None, None) => {}
    }
}
