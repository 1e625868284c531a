//! The rules across tables, checked before any host is touched: `validate` applies every rule,
//! each a named function — the director count, the services across each other, real servers'
//! gateways per mode, NAT clients, the router reaching the VIPs — and assembles the `Lab`. A
//! table's own rules live with its parsing (`hosts`, `services`, `ha`, `lab`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

use super::ha::{check_directors, check_pair};
use super::hosts::DraftHost;
use super::lab::{check_lab, check_lab_l2};
use super::model::*;
use super::parse::Draft;
use super::reader::{Reader, join};
use super::services::{DraftService, check_service, service_vips, split_by_family};
use crate::modes::Gateway as ModeGateway;

pub fn validate(r: &mut Reader, d: Draft, file: &Path) -> Option<Lab> {
    let Draft { hosts_ok, name, mode, mut hosts, services, lab, ha, ipvs, metrics } = d;
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
    super::snat::check_conntrack(r, &checked.services, &ipvs);
    if let Some(ha) = &ha
        && let Some((a, b)) = pair
    {
        check_pair(r, ha, a, b, &hosts, &checked.services);
    }
    if let Some(director) = director.filter(|_| pair.is_none()) {
        check_router_reaches_vips(r, &hosts, director, &checked.services);
    }
    super::metrics::check_metrics(r, &hosts, metrics.as_ref());
    let lab_spec = lab.and_then(|l| check_lab(r, l, &hosts, &by_name, &names));
    if let Some(spec) = &lab_spec {
        for director in directors.iter().take(2) {
            check_lab_l2(r, spec, &checked.services, director, &by_name);
        }
    }

    if !r.diags.is_empty() {
        return None;
    }
    let metrics = metrics.map(|(m, _)| m);
    Some(assemble(name, mode, file, hosts, gateways, checked.services, lab_spec, ha, (ipvs, metrics)))
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
            // A one-armed NAT service asks nothing of its real servers' routes (nor one whose
            // snat was refused: its error is enough).
            for b in svc.real_servers.iter().filter(|_| s.snat.is_none()) {
                rs_modes.entry(b.host.clone()).or_default().entry(svc.mode).or_insert_with(|| svc.label());
            }
            if let Some(h) = svc.sorry_server.as_ref().and_then(|x| x.host.as_ref())
                && by_name.get(h.as_str()).is_some_and(|d| d.role == Some(Role::SorryServer))
                && s.snat.is_none()
            {
                rs_modes.entry(h.clone()).or_default().entry(svc.mode).or_insert_with(|| svc.label());
            }
            out_services.push(svc);
        }
    }
    let paths: BTreeMap<usize, String> = services.iter().map(|s| (s.index, s.path.clone())).collect();
    super::tunnel::check_gue_ports(r, &out_services, &paths);
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
    for s in out_services.iter().filter(|s| s.profile().clients_off_real_server_subnets) {
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
    (ipvs, metrics): (IpvsSettings, Option<MetricsSettings>),
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
                metrics_listen: h.metrics_listen.map(|(a, _)| a),
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
        ipvs,
        metrics,
    }
}
