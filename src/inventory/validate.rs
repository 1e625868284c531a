//! Cross-field rules: the things that make a lab work or not, checked before any host is touched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::diag::did_you_mean;
use super::hosts::DraftHost;
use super::model::*;
use super::parse::Draft;
use super::reader::{Reader, join};
use super::services::DraftService;
use crate::modes::Gateway as ModeGateway;

/// The name of the management interface `lvsctl lab create` gives every host.
pub const LAB_MGMT_IFNAME: &str = "mgmt0";

pub fn validate(r: &mut Reader, d: Draft, file: &Path) -> Option<Lab> {
    let Draft { hosts_ok, name, mode, mut hosts, services, lab, ha } = d;
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let by_name: BTreeMap<&str, &DraftHost> = hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let names: Vec<&str> = by_name.keys().copied().collect();

    super::hosts::check_role_keys(r, &hosts);
    let directors = directors(r, &hosts);
    check_directors(r, &hosts, &directors, ha.as_ref());
    let director = directors.first().copied();
    let pair: Option<(&DraftHost, &DraftHost)> =
        if directors.len() == 2 && ha.is_some() { Some((directors[0], directors[1])) } else { None };
    super::hosts::check_unique_endpoints(r, &hosts);
    super::hosts::check_addresses_and_gateways(r, &hosts);

    let mut checked = check_services(r, &services, mode, hosts_ok, &hosts, &by_name, &directors);
    super::services::check_sorry_servers_named(r, &hosts, &services);
    super::services::check_some_service(r, &services);
    let gateways = real_server_gateways(r, &hosts, &by_name, &mut checked, &directors, pair, ha.as_ref());
    check_nat_clients(r, &hosts, &by_name, &checked.services);
    if let Some(ha) = &ha
        && let Some((a, b)) = pair
    {
        check_pair(r, ha, a, b, &hosts, &checked.services);
    }
    if let Some(director) = director.filter(|_| pair.is_none()) {
        check_router_reaches_vips(r, &hosts, director, &checked.services);
    }
    let lab_spec = lab.and_then(|l| check_lab(r, l, &hosts, &by_name, &names));
    if let Some(spec) = &lab_spec {
        for director in directors.iter().take(2) {
            check_lab_l2(r, spec, &checked.services, director, &by_name);
        }
    }

    if !r.diags.is_empty() {
        return None;
    }
    Some(assemble(name, mode, file, hosts, gateways, checked.services, lab_spec, ha))
}

/// The director, or the two of an HA pair: one at least, two at most.
fn directors<'a>(r: &mut Reader, hosts: &'a [DraftHost]) -> Vec<&'a DraftHost> {
    let directors: Vec<&DraftHost> = hosts.iter().filter(|h| h.role == Some(Role::Director)).collect();
    let all_roles_known = hosts.iter().all(|h| h.role.is_some());
    if directors.is_empty() && all_roles_known && !hosts.is_empty() {
        r.error_at(
            "hosts",
            "no host has role = \"director\"",
            Some("make one host the director (or two, an HA pair): it holds the VIPs and the IPVS rules".into()),
        );
    }
    for extra in directors.iter().skip(2) {
        r.error_at(
            &join(&extra.path, "role"),
            format!("a third director (the pair is {} and {})", directors[0].name, directors[1].name),
            Some("lvsctl runs one director or an HA pair of two: make this host a real-server or remove it".into()),
        );
    }
    directors
}

/// The services as validated, and what the rules after them need.
struct Checked {
    services: Vec<Service>,
    /// Per real server (and sorry server): the modes it serves, each with a service of it.
    rs_modes: BTreeMap<String, BTreeMap<Mode, String>>,
    /// (real server, mode, family) already reported as unroutable: reported once.
    reported_rs: BTreeSet<(String, Mode, Family)>,
}

/// Each service on its own (`check_service`), then across services: one service per
/// (vip, port, protocol), one firewall-mark service per mark and family.
fn check_services(
    r: &mut Reader,
    services: &[DraftService],
    mode: Option<Mode>,
    hosts_ok: bool,
    hosts: &[DraftHost],
    by_name: &BTreeMap<&str, &DraftHost>,
    directors: &[&DraftHost],
) -> Checked {
    let names: Vec<&str> = by_name.keys().copied().collect();
    let lab_mode = mode;
    let mut out_services = Vec::new();
    let mut service_keys: HashMap<(IpAddr, u16, Protocol), usize> = HashMap::new();
    let mut rs_modes: BTreeMap<String, BTreeMap<Mode, String>> = BTreeMap::new();
    let mut reported_rs: BTreeSet<(String, Mode, Family)> = BTreeSet::new();
    let rs_hosts: Vec<&str> =
        hosts.iter().filter(|h| h.role == Some(Role::RealServer)).map(|h| h.name.as_str()).collect();
    let mut marks: HashMap<(u32, Family), usize> = HashMap::new();
    for s in services.iter().flat_map(split_by_family) {
        let s = &s;
        let smode = s.mode.or(lab_mode);
        if let (Some(mark), Some(vip)) = (s.fwmark, s.vip) {
            let family = Family::of_addr(vip);
            if let Some(first) = marks.get(&(mark, family)).filter(|i| **i != s.index) {
                r.error_at(
                    &join(&s.path, "fwmark"),
                    format!("fwmark {mark} ({family}) is already services[{first}]"),
                    Some(
                        "give each firewall-mark service a mark of its own, or list these matches in the first one"
                            .into(),
                    ),
                );
                continue;
            }
            marks.insert((mark, family), s.index);
        }
        if let Some(svc) = check_service(r, s, smode, hosts_ok, by_name, &names, &rs_hosts, directors, &mut reported_rs)
        {
            if let (Some(vip), Some(port), None) = (s.vip, s.port, s.fwmark) {
                if let Some(first) = service_keys.get(&(vip, port, s.protocol)) {
                    r.error_at(
                        &join(&s.path, "vip"),
                        format!("{} {} is already services[{first}]", s.protocol, std::net::SocketAddr::new(vip, port)),
                        Some("each (vip, port, protocol) may appear once; add real servers to the first one".into()),
                    );
                } else {
                    service_keys.insert((vip, port, s.protocol), s.index);
                }
            }
            for b in &svc.real_servers {
                rs_modes.entry(b.host.clone()).or_default().entry(svc.mode).or_insert_with(|| svc.label());
            }
            if let Some(h) = svc.sorry_server.as_ref().and_then(|x| x.host.as_ref())
                && by_name.get(h.as_str()).is_some_and(|d| d.role == Some(Role::SorryServer))
            {
                rs_modes.entry(h.clone()).or_default().entry(svc.mode).or_insert_with(|| svc.label());
            }
            out_services.push(svc);
        }
    }
    Checked { services: out_services, rs_modes, reported_rs }
}

/// A real server serves one kind of forwarding, since its default route depends on it: through
/// the director (NAT: the gateway is derived when not written) or not (DR, TUN). Returns every
/// host's gateways with the derived ones.
fn real_server_gateways(
    r: &mut Reader,
    hosts: &[DraftHost],
    by_name: &BTreeMap<&str, &DraftHost>,
    checked: &mut Checked,
    directors: &[&DraftHost],
    pair: Option<(&DraftHost, &DraftHost)>,
    ha: Option<&super::ha::DraftHa>,
) -> HashMap<String, Vec<Gateway>> {
    let director = directors.first().copied();
    let Checked { services: out_services, rs_modes, reported_rs } = checked;
    let mut gateways: HashMap<String, Vec<Gateway>> =
        hosts.iter().map(|h| (h.name.clone(), h.gateways.clone())).collect();
    for (rs, modes) in rs_modes.iter() {
        let h = by_name[rs.as_str()];
        // What the modes it serves ask of its default route (see modes/).
        let rule = |g: fn(ModeGateway) -> bool| modes.keys().copied().find(|m| g(m.profile().real_server.gateway));
        if let Some(via) = rule(ModeGateway::is_via_director)
            && modes.len() > 1
        {
            let other = modes.iter().find(|(m, _)| **m != via).expect("more than one mode");
            r.error_at(
                &h.path,
                format!("{rs} serves {} service {} and {} service {}", via.as_str().to_uppercase(), modes[&via], other.0.as_str().to_uppercase(), other.1),
                Some("NAT needs the real server's gateway to be the director and DR/TUN need it not to be: give each real server one forwarding mode".into()),
            );
            continue;
        }
        let Some(director) = director else { continue };
        if let Some(via) = rule(ModeGateway::is_via_director) {
            // Replies must come back through the director so it can undo the address
            // translation: per family its services use.
            for family in Family::BOTH {
                let Some(rs_addr) = out_services
                    .iter()
                    .filter(|s| s.mode == via && s.family() == family)
                    .find_map(|s| s.address_of(rs))
                else {
                    continue;
                };
                let gp = h.gateway_path(family);
                let written = h.gateways.iter().find(|g| Family::of_addr(g.via) == family).map(|g| g.via);
                let rs_net = h.net_containing(rs_addr).or_else(|| director.net_containing(rs_addr));
                // An HA pair's real servers route through the address the master holds.
                let floating = ha
                    .as_ref()
                    .filter(|_| pair.is_some())
                    .and_then(|ha| ha.floating_gateway.iter().copied().find(|f| Family::of_addr(f.addr()) == family));
                let expected = match floating {
                    Some(f) if rs_net.is_some_and(|n| n.trunc() == f.trunc()) => Some(f.addr()),
                    Some(f) => {
                        // A floating gateway on no real server's subnet is reported as such; one
                        // on the others' subnet but not this one's leaves it without a way back.
                        let serves_others = hosts
                            .iter()
                            .filter(|x| rs_modes.contains_key(&x.name))
                            .any(|x| x.addresses().any(|(_, _, a)| f.trunc().contains(&a.addr())));
                        if let Some(n) = rs_net.filter(|_| serves_others) {
                            r.error_at(
                                &h.key_path(),
                                format!("{rs}'s {} {family} replies cannot return through the pair: {rs} is on {}, the floating gateway {} on {}", via.as_str().to_uppercase(), n.trunc(), f.addr(), f.trunc()),
                                Some(format!("an HA pair's NAT real servers reply through its one floating gateway: put {rs} on {}", f.trunc())),
                            );
                            continue;
                        }
                        None
                    }
                    None if pair.is_some() => continue,
                    None => rs_net.and_then(|n| director.address_on_subnet(n)).map(|a| a.addr()),
                };
                if let (Some(g), Some(f), Some((a, b))) = (written, floating, pair)
                    && let Some(d) = [a, b].into_iter().find(|d| d.addresses().any(|(_, _, x)| x.addr() == g))
                {
                    r.error_at(
                        &gp,
                        format!("{rs}'s gateway {g} is director {}'s own address: its replies would stop when {} fails", d.name, d.name),
                        Some(format!("use the floating gateway {} (held by whichever director is master), or remove the key to let lvsctl derive it", f.addr())),
                    );
                    continue;
                }
                match (written, expected) {
                    (None, Some(e)) => {
                        gateways.get_mut(rs).expect("every host").push(Gateway { via: e, dev: None, defaulted: true });
                    }
                    (Some(g), Some(e)) if g != e => r.error_at(
                        &gp,
                        format!("in {} mode {rs}'s replies must return through the director, but its {family} gateway is {g}", via.as_str().to_uppercase()),
                        Some(format!("set its {family} gateway to \"{e}\" ({}'s address on {rs}'s subnet) or remove it to let lvsctl derive it", director.name)),
                    ),
                    (_, None) if floating.is_some() => {}
                    (_, None) if reported_rs.insert((rs.clone(), via, family)) => {
                        r.error_at(&h.key_path(), format!("cannot route {rs}'s {} {family} replies through the director: {} has no {family} address on {rs}'s subnet", via.as_str().to_uppercase(), director.name), Some("give the director an interface on the real servers' subnet".into()));
                    }
                    _ => {}
                }
            }
        } else if let Some(not) = rule(|g| g == ModeGateway::NotDirector) {
            for g in h.gateways.iter().map(|g| g.via) {
                if !directors.iter().any(|d| d.addresses().any(|(_, _, a)| a.addr() == g)) {
                    continue;
                }
                let router_hint = hosts
                    .iter()
                    .filter(|x| x.role == Some(Role::Router))
                    .find_map(|x| h.net_containing(g).and_then(|n| x.address_on_subnet(n)))
                    .map(|a| format!("set gateway to the router's address ({})", a.addr()))
                    .unwrap_or_else(|| "set gateway to a router's address".into());
                r.error_at(
                    &h.gateway_path(Family::of_addr(g)),
                    format!("{rs}'s gateway {g} is the director: in {} mode replies go straight to the client, not back through the director", not.as_str().to_uppercase()),
                    Some(router_hint),
                );
            }
        }
    }
    gateways
}

/// NAT: a client on a real server's subnet would get replies straight from the real server.
fn check_nat_clients(
    r: &mut Reader,
    hosts: &[DraftHost],
    by_name: &BTreeMap<&str, &DraftHost>,
    out_services: &[Service],
) {
    for s in out_services.iter().filter(|s| s.mode.profile().clients_off_real_server_subnets) {
        for b in &s.real_servers {
            let Some(rs_net) = by_name[b.host.as_str()].net_containing(b.address) else { continue };
            for c in hosts.iter().filter(|h| h.role == Some(Role::Client)) {
                for (ifname, idx, a) in c.addresses() {
                    if a.trunc() == rs_net.trunc() {
                        r.error_at(
                            &c.addr_path(ifname, idx),
                            format!("{} is on real server {}'s subnet {}", c.name, b.host, rs_net.trunc()),
                            Some("in NAT mode the real server would answer the client directly and bypass the director's translation: put the client on another subnet".into()),
                        );
                    }
                }
            }
        }
    }
}

/// The router must be able to send VIP traffic to the director.
fn check_router_reaches_vips(r: &mut Reader, hosts: &[DraftHost], director: &DraftHost, out_services: &[Service]) {
    for router in hosts.iter().filter(|h| h.role == Some(Role::Router) && !h.interfaces.is_empty()) {
        for (vip, at) in out_services.iter().flat_map(service_vips) {
            let on_router_segment = router.net_containing(vip).is_some();
            let shared = router.addresses().any(|(_, _, a)| director.address_on_subnet(a).is_some());
            if !on_router_segment && !shared && !director.interfaces.is_empty() {
                r.error_at(
                    &at,
                    format!("VIP {vip} is on none of {}'s subnets, and {} shares no subnet with director {}: clients behind it cannot reach the VIP", router.name, router.name, director.name),
                    Some("connect the router and the director on one subnet, or choose a VIP on a router subnet".into()),
                );
            }
        }
    }
}

/// The validated lab, from drafts every rule accepted.
#[allow(clippy::too_many_arguments)]
fn assemble(
    name: Option<String>,
    mode: Option<Mode>,
    file: &Path,
    hosts: Vec<DraftHost>,
    mut gateways: HashMap<String, Vec<Gateway>>,
    services: Vec<Service>,
    lab: Option<LabSpec>,
    ha: Option<super::ha::DraftHa>,
) -> Lab {
    let hosts = hosts
        .into_iter()
        .map(|h| {
            let mut gateways = gateways.remove(&h.name).unwrap_or_default();
            gateways.sort_by_key(|g| Family::of_addr(g.via));
            Host {
                name: h.name,
                role: h.role.expect("validated"),
                ssh: h.ssh.expect("validated"),
                gateways,
                interfaces: h.interfaces,
                vip_device: h.vip_device,
                address: h.address,
                priority: h.priority,
            }
        })
        .collect();
    Lab {
        name: name.expect("validated"),
        mode: mode.expect("validated"),
        file: file.to_path_buf(),
        hosts,
        services,
        lab,
        ha: ha.map(|h| Ha {
            virtual_router_id: h.virtual_router_id,
            advert_interval: h.advert_interval,
            sync: h.sync,
            preempt: h.preempt,
            unicast: h.unicast,
            floating_gateway: h.floating_gateway,
        }),
    }
}

/// How messages name a draft service: its name, else `protocol vip:port`.
/// A firewall-mark service is one service per family of its matches (the same mark in each);
/// any other service is itself.
fn split_by_family(s: &DraftService) -> Vec<DraftService> {
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
fn service_vips(s: &Service) -> Vec<(IpAddr, String)> {
    let key = if s.fwmark.is_some() { "match" } else { "vip" };
    s.vips().into_iter().map(|v| (v, join(&format!("services[{}]", s.index), key))).collect()
}

/// Each VIP of a service with the key path that gave it.
fn vips_of(s: &DraftService) -> Vec<(IpAddr, String)> {
    if s.fwmark.is_some() {
        s.matches.iter().map(|m| (m.vip, join(&m.path, "vip"))).collect()
    } else {
        s.vip.map(|v| (v, join(&s.path, "vip"))).into_iter().collect()
    }
}

fn label_of(s: &DraftService) -> String {
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
fn check_service(
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
        let address = resolve_rs_address(r, h, director, mode, family, &label_of(s), reported);
        // The other director of a pair must reach it the same way.
        if let Some(other) = directors.get(1)
            && address.is_some()
        {
            resolve_rs_address(r, h, Some(other), mode, family, &label_of(s), reported);
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
    Some(Service {
        index: s.index,
        name: s.name.clone(),
        vip: s.vip?,
        port: s.port?,
        protocol: s.protocol,
        fwmark: s.fwmark.map(|mark| Fwmark {
            mark,
            matches: s
                .matches
                .iter()
                .map(|m| MarkMatch { vip: m.vip, protocol: m.protocol, ports: m.ports.clone() })
                .collect(),
        }),
        scheduler: s.scheduler.clone(),
        scheduler_flags: s.scheduler_flags.clone(),
        one_packet: s.one_packet,
        persistence: s.persistence,
        netmask: s.netmask,
        mode: mode?,
        real_servers: backends,
        health_check: s.health_check.clone(),
        on_failure: s.on_failure,
        sorry_server,
    })
}

/// What the director pair needs: `[ha]`, a priority each, different ones.
fn check_directors(r: &mut Reader, hosts: &[DraftHost], directors: &[&DraftHost], ha: Option<&super::ha::DraftHa>) {
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
fn check_pair(
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
    let nat: Vec<&Service> =
        services.iter().filter(|s| s.mode.profile().real_server.gateway.is_via_director()).collect();
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
fn check_floating(
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

/// `sorry_server`: a sorry-server host or a director of the inventory, or an outside address;
/// in DR and TUN it receives the packet unchanged, so it serves the service's port.
#[allow(clippy::too_many_arguments)]
fn check_sorry(
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
            let address = resolve_rs_address(r, h, directors.first().copied(), mode, family, &label_of(s), reported)?;
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
fn check_health(r: &mut Reader, s: &DraftService, _mode: Mode) {
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
fn resolve_rs_address(
    r: &mut Reader,
    h: &DraftHost,
    director: Option<&DraftHost>,
    mode: Mode,
    family: Family,
    service: &str,
    reported: &mut BTreeSet<(String, Mode, Family)>,
) -> Option<IpAddr> {
    let of_family = |a: &IpNet| Family::of_addr(a.addr()) == family;
    let director_nets: Vec<IpNet> =
        director.map(|d| d.addresses().map(|(_, _, a)| a).filter(of_family).collect()).unwrap_or_default();
    let same_l2 = mode.profile().real_server.same_l2;
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

fn other(f: Family) -> Family {
    match f {
        Family::Ipv4 => Family::Ipv6,
        Family::Ipv6 => Family::Ipv4,
    }
}

/// In a lab, NAT and DR real servers must share an L2 segment with the director on the subnet
/// they share (DR reaches them by MAC; NAT's replies come back on that link). TUN real servers
/// may sit behind routers.
fn check_lab_l2(
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
    for svc in services.iter().filter(|s| s.mode.profile().real_server.same_l2) {
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

fn check_lab(
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
