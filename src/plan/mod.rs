//! The plan: a pure function from a validated lab to, per host, the ordered desired state.
//!
//! The same `HostPlan` is printed by `lvsctl plan`, rendered into templates, persisted on the host
//! for boot, and sent as JSON to the agent, which compares it with live state.

pub mod files;
pub mod keepalived;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::inventory::{Family, Host, Lab, Mode, Role, Service};
use crate::modes::Profile;
use crate::templates::{RenderError, Templates};

pub use crate::wire::plan::*;

/// How the planner fills a plan: each item once, with its reason.
trait Build {
    fn new(lab: &Lab, host: &Host) -> Self;
    fn module(&mut self, name: &str, reason: &str);
    fn sysctl(&mut self, key: &str, value: &str, reason: &str);
    fn link_up(&mut self, dev: &str, reason: &str);
    fn address(&mut self, dev: &str, address: IpNet, reason: String);
    fn vip(&mut self, dev: &str, vip: IpAddr, deprecated: bool, reason: String);
}

impl Build for HostPlan {
    fn new(lab: &Lab, host: &Host) -> Self {
        Self::empty(&lab.name, &host.name, host.role)
    }

    fn module(&mut self, name: &str, reason: &str) {
        if !self.modules.iter().any(|m| m.name == name) {
            self.modules.push(ModuleSpec { name: name.into(), reason: reason.into() });
        }
    }

    fn sysctl(&mut self, key: &str, value: &str, reason: &str) {
        if !self.sysctls.iter().any(|s| s.key == key) {
            self.sysctls.push(SysctlSpec { key: key.into(), value: value.into(), reason: reason.into() });
        }
    }

    fn link_up(&mut self, dev: &str, reason: &str) {
        if !self.links_up.iter().any(|l| l.dev == dev) {
            self.links_up.push(LinkSpec { dev: dev.into(), reason: reason.into() });
        }
    }

    fn address(&mut self, dev: &str, address: IpNet, reason: String) {
        if !self.addresses.iter().any(|a| a.address.addr() == address.addr()) {
            self.addresses.push(AddressSpec {
                dev: dev.into(),
                address,
                // The kernel keeps labels on IPv4 addresses only.
                label: if address.addr().is_ipv6() { None } else { label_for(dev) },
                // Tentative IPv6 addresses cannot be used for about a second; lvsctl's
                // addresses are unique in the lab by validation.
                nodad: address.addr().is_ipv6(),
                deprecated: false,
                reason,
            });
        }
    }

    /// A VIP as a host address (/32 or /128).
    fn vip(&mut self, dev: &str, vip: IpAddr, deprecated: bool, reason: String) {
        self.address(dev, IpNet::from(vip), reason);
        if deprecated && let Some(a) = self.addresses.iter_mut().find(|a| a.address.addr() == vip) {
            a.deprecated = true;
        }
    }
}

/// What the persistent files need to know beyond the lab itself.
pub struct Context<'a> {
    /// Where the agent binary lives on hosts (the boot unit runs it).
    pub agent_path: String,
    pub templates: &'a Templates,
}

/// The plan of every host of the lab, in host-name order.
pub fn plan(lab: &Lab, ctx: &Context) -> Result<Vec<HostPlan>, RenderError> {
    lab.hosts.iter().map(|h| plan_host(lab, h, ctx)).collect()
}

pub fn plan_host(lab: &Lab, host: &Host, ctx: &Context) -> Result<HostPlan, RenderError> {
    let mut p = runtime_plan(lab, host);
    let runtime = p.runtime();
    p.files = files::persistent_files(lab, &runtime, ctx)?;
    p.boot_unit = Some(crate::paths::unit_name(&lab.name));
    Ok(p)
}

fn runtime_plan(lab: &Lab, host: &Host) -> HostPlan {
    let mut p = HostPlan::new(lab, host);

    for iface in &host.interfaces {
        p.link_up(&iface.name, "interface from the inventory");
        for a in &iface.addresses {
            p.address(&iface.name, *a, "interface address from the inventory".into());
        }
    }

    match host.role {
        Role::Director => {
            plan_director(lab, host, &mut p);
            p.exporter = lab.metrics_listen(host).map(|listen| crate::wire::plan::ExporterSpec {
                listen,
                reason: match host.metrics_listen {
                    Some(_) => "metrics_listen from the inventory: Prometheus scrapes this director's /metrics".into(),
                    None => "[metrics] port from the inventory, on the director's SSH address: Prometheus scrapes its /metrics".into(),
                },
            });
        }
        Role::RealServer | Role::SorryServer => plan_real_server(lab, host, &mut p),
        Role::Router => plan_router(lab, host, &mut p),
        Role::Client => {}
    }

    for gw in &host.gateways {
        // A mode that routes replies through the director says why (and the gateway may be derived).
        let family = Family::of_addr(gw.via);
        let through_director = lab
            .services_of(&host.name)
            .filter(|s| s.family() == family)
            .find_map(|s| match s.profile().real_server.gateway {
                crate::modes::Gateway::ViaDirector { reason } => Some(reason),
                _ => None,
            })
            .filter(|_| matches!(host.role, Role::RealServer | Role::SorryServer));
        let floating = lab.ha.as_ref().is_some_and(|ha| ha.floating_gateway.iter().any(|f| f.addr() == gw.via));
        let reason = match (host.role, through_director) {
            (_, Some(why)) if floating => format!("{why}: the floating gateway, held by the master director"),
            (_, Some(why)) if gw.defaulted => format!("{why} (derived)"),
            (_, Some(why)) => why.to_string(),
            (Role::Client, _) => "client: gateway towards the router".to_string(),
            _ => "gateway from the inventory".to_string(),
        };
        let (advmss, reason) = match tun_advmss(lab, host, family) {
            Some((mss, why)) => (Some(mss), format!("{reason}; {why}")),
            None => (None, reason),
        };
        p.routes.push(RouteSpec {
            destination: default_route_of(family),
            gateway: Some(gw.via),
            dev: gw.dev.clone(),
            advmss,
            reason,
        });
    }
    p
}

/// The path between director and real servers that TUN's MSS is computed for: Ethernet's.
pub const TUN_PATH_MTU: u32 = 1500;

/// A TUN real server's MSS towards clients (its routes back to them: the default route of the
/// family), and why: the director adds its outer header to every client packet, so a client
/// whose segments fill a 1500-byte path sends packets the director cannot forward whole. The
/// kernel then answers with ICMP "fragmentation needed" (IPVS does, from the VIP), and the
/// client shrinks its segments — if that ICMP comes back. Measured on the lab kernel: with the
/// router dropping it, a 1 MB upload over IP-in-IP stalled (curl gave up after 10 s), and with
/// advmss on the real servers it took 0.3 s without a single ICMP. The largest tunnel of the
/// host's services of that family decides.
fn tun_advmss(lab: &Lab, host: &Host, family: Family) -> Option<(u32, String)> {
    if !matches!(host.role, Role::RealServer | Role::SorryServer) {
        return None;
    }
    let v6 = family == Family::Ipv6;
    let widest = lab
        .services_of(&host.name)
        .filter(|s| s.family() == family && s.mode == Mode::Tun)
        .max_by_key(|s| s.encap.overhead(v6))?;
    let overhead = widest.encap.overhead(v6);
    // IP and TCP headers inside: 20 + 20, or 40 + 20 for IPv6.
    let headers = if v6 { 60 } else { 40 };
    let mss = TUN_PATH_MTU - overhead - headers;
    let what = match widest.encap.tun_type {
        crate::ipvs::TunType::Ipip if v6 => "IPv6-in-IPv6",
        crate::ipvs::TunType::Ipip => "IP-in-IP",
        crate::ipvs::TunType::Gue => "GUE",
        crate::ipvs::TunType::Gre => "GRE",
    };
    Some((
        mss,
        format!(
            "advmss {mss}: clients send segments that still fit a {TUN_PATH_MTU}-byte path once the director adds {what}'s {overhead} bytes, without relying on ICMP \"fragmentation needed\" reaching them"
        ),
    ))
}

/// The IPv4 default route, 0.0.0.0/0.
pub fn default_route() -> IpNet {
    default_route_of(Family::Ipv4)
}

/// The default route of `family`: 0.0.0.0/0 or ::/0.
pub fn default_route_of(family: Family) -> IpNet {
    match family {
        Family::Ipv4 => "0.0.0.0/0".parse().expect("valid"),
        Family::Ipv6 => "::/0".parse().expect("valid"),
    }
}

fn vips(services: &[&Service]) -> Vec<IpAddr> {
    crate::inventory::unique_vips(services.iter().copied())
}

/// `[ipvs]`: the timeouts, and the `net.ipv4.vs.*` settings — where lvsctl derived one, the
/// inventory's value wins and its reason says what the derived one was for.
fn ipvs_settings(lab: &Lab, p: &mut HostPlan) {
    let t = &lab.ipvs.timeouts;
    if !t.is_empty() {
        p.ipvs_timeouts = Some(IpvsTimeoutsSpec {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
            reason: "[ipvs] timeouts from the inventory: how long IPVS keeps idle connections".into(),
        });
    }
    for (name, value) in &lab.ipvs.sysctl {
        let key = format!("net.ipv4.vs.{name}");
        let value = value.to_string();
        let set = "[ipvs] sysctl from the inventory";
        match p.sysctls.iter_mut().find(|s| s.key == key) {
            Some(derived) if derived.value == value => {
                derived.reason = format!("{set} (lvsctl derives it too: {})", derived.reason)
            }
            Some(derived) => {
                derived.reason = format!(
                    "{set}, instead of the {} lvsctl derives, which was for this: {}",
                    derived.value, derived.reason
                );
                derived.value = value;
            }
            None => {
                let reason = match cost(name, &value) {
                    Some(c) => format!("{set}; {c}"),
                    None => set.to_string(),
                };
                p.sysctls.push(SysctlSpec { key, value, reason })
            }
        }
    }
}

/// What an `[ipvs] sysctl` value takes away that a user may not expect.
fn cost(name: &str, value: &str) -> Option<&'static str> {
    match (name, value) {
        ("run_estimation", "0") => Some(
            "IPVS's counters stop on kernels before 6.2 (the estimator sums them): status and verify see no new connections",
        ),
        ("conn_reuse_mode", "0") => Some(
            "a client port reused towards a removed real server is not rescheduled: expire_nodest_conn no longer helps",
        ),
        _ => None,
    }
}

/// The director `host`'s nftables table: the marking rules of the lab's firewall-mark services
/// and the source NAT rules of its one-armed NAT services (None: it has neither).
pub fn nft_table(lab: &Lab, host: &Host) -> Option<NftTableSpec> {
    let rules: Vec<MarkRuleSpec> = lab
        .services
        .iter()
        .filter_map(|s| s.ipvs.fwmark.map(|mark| (s, mark)))
        .flat_map(|(s, mark)| {
            s.matches.iter().map(move |m| MarkRuleSpec {
                vip: m.vip,
                protocol: m.protocol,
                ports: m.ports.clone(),
                mark,
                service: s.name.clone().unwrap_or_else(|| format!("services[{}]", s.index)),
            })
        })
        .collect();
    let snat: Vec<SnatRuleSpec> = lab.services.iter().filter(|s| s.snat).flat_map(|s| snat_rules(s, host)).collect();
    if rules.is_empty() && snat.is_empty() {
        return None;
    }
    let marks: BTreeSet<u32> = rules.iter().map(|r| r.mark).collect();
    let marks: Vec<String> = marks.iter().map(|m| m.to_string()).collect();
    let mut why = Vec::new();
    if !rules.is_empty() {
        why.push(format!("marks the packets of firewall-mark service(s) {} before IPVS sees them", marks.join(", ")));
    }
    if !snat.is_empty() {
        let sources: BTreeSet<String> = snat.iter().map(|r| r.to.to_string()).collect();
        why.push(format!(
            "one-armed NAT: requests reach the real servers from {} (the director), so their replies come back to it by their own routes; the price: real servers see the director, not the client",
            sources.into_iter().collect::<Vec<_>>().join(" and ")
        ));
    }
    Some(NftTableSpec { name: nft_table_name(&lab.name), rules, snat, reason: why.join("; ") })
}

/// A one-armed service's source NAT on director `host`: one rule when every real server gets the
/// same source address, else one per real server.
fn snat_rules(s: &Service, host: &Host) -> Vec<SnatRuleSpec> {
    let label = s.name.clone().unwrap_or_else(|| format!("services[{}]", s.index));
    let to: Vec<(IpAddr, IpAddr)> =
        s.real_servers.iter().filter_map(|b| snat_address(host, b.address).map(|a| (b.address, a))).collect();
    let rule = |daddr: Option<IpAddr>, to: IpAddr| SnatRuleSpec {
        vip: s.ipvs.vip,
        protocol: s.ipvs.protocol,
        port: s.ipvs.port,
        daddr,
        to,
        service: label.clone(),
    };
    let one: BTreeSet<IpAddr> = to.iter().map(|(_, a)| *a).collect();
    if one.len() == 1 {
        return vec![rule(None, to[0].1)];
    }
    to.into_iter().map(|(rip, a)| rule(Some(rip), a)).collect()
}

/// The director's address a one-armed NAT request to `rip` leaves from: its address on `rip`'s
/// subnet, else the one on its gateway's subnet (the way to a real server behind a router),
/// else its first of the family (validation requires one).
pub fn snat_address(director: &Host, rip: IpAddr) -> Option<IpAddr> {
    let family = Family::of_addr(rip);
    let of_family = || director.all_addresses().filter(move |(_, a)| Family::of_addr(a.addr()) == family);
    director
        .interface_for(rip)
        .or_else(|| director.gateway(family).and_then(|g| director.interface_for(g.via)))
        .or_else(|| of_family().next())
        .map(|(_, a)| a.addr())
}

fn plan_director(lab: &Lab, host: &Host, p: &mut HostPlan) {
    p.module("ip_vs", "IPVS, the kernel's load balancer");
    for s in &lab.services {
        p.module(&format!("ip_vs_{}", s.ipvs.scheduler), &format!("scheduler {} of {}", s.ipvs.scheduler, s.label()));
    }
    for profile in modes_of(lab.services.iter().filter(|s| s.family() == Family::Ipv4)) {
        for (key, value, why) in profile.director_sysctls {
            p.sysctl(key, value, why);
        }
    }
    for profile in modes_of(lab.services.iter().filter(|s| s.family() == Family::Ipv6)) {
        for (key, value, why) in profile.ipv6.director_sysctls {
            p.sysctl(key, value, why);
        }
    }
    // A real server at weight 0 keeps its persistent clients while their templates live (the
    // persistence timeout, renewed by each connection): a drain would wait for them forever.
    if lab.services.iter().any(|s| s.ipvs.persistence > 0) {
        p.sysctl(
            "net.ipv4.vs.expire_quiescent_template",
            "1",
            "a real server at weight 0 (lvsctl drain, or a quiescing health check) also loses its persistent clients: their templates expire instead of sending them back to it",
        );
    }
    // A client that reuses a source port while the director still keeps the old connection's
    // entry (a DR or TUN director keeps a closed one for tcp_fin seconds) is sent where the entry
    // points, persistence or not: measured on 6.1, to a drained real server at weight 0, or into
    // a drop while the entry lives when its real server was taken out.
    p.sysctl(
        "net.ipv4.vs.expire_nodest_conn",
        "1",
        "a new connection on a client port an old entry still maps to a real server at weight 0 (drained, quiesced) or taken out (by lvsctl drain --remove, or keepalived's check) is scheduled afresh instead of reaching it or being dropped",
    );
    ipvs_settings(lab, p);
    p.keepalived = keepalived::spec(lab, host);
    p.nftables = nft_table(lab, host);
    // nftables would load its NAT expressions on demand when the source NAT rule arrives (checked
    // on 6.1: nft_ct, nft_nat, nft_chain_nat and nf_nat beside nf_tables), and they would then
    // hold nf_conntrack, which ip_vs brought: planned, so that down unloads them first.
    if lab.services.iter().any(|s| s.snat) {
        for (m, why) in [
            ("nft_ct", "one-armed NAT: the source NAT rule matches conntrack's original direction"),
            ("nft_nat", "one-armed NAT: the rule's snat statement"),
            ("nft_chain_nat", "one-armed NAT: the table's postrouting chain of type nat"),
        ] {
            p.module(m, why);
        }
    }
    let all: Vec<&Service> = lab.services.iter().collect();
    for vip in vips(&all) {
        if lab.ha.is_some() {
            // keepalived's VRRP adds the VIPs on whichever director is master.
            break;
        }
        if host.has_address(vip) {
            // The VIP is one of the director's own interface addresses: it is planned (or pre-existing) already.
            continue;
        }
        let dev = host
            .vip_device
            .clone()
            .or_else(|| host.interface_for(vip).map(|(d, _)| d.to_string()))
            .unwrap_or_else(|| "lo".to_string());
        let users: Vec<&Service> = lab.services.iter().filter(|s| s.vips().contains(&vip)).collect();
        let labels: Vec<String> = users.iter().map(|s| s.label()).collect();
        let deprecated = vip.is_ipv6() && users.iter().any(|s| s.profile().ipv6.director_vip_deprecated);
        let reason = if deprecated {
            format!(
                "VIP of {} (deprecated: never the source of the director's own IPv6-in-IPv6 packets)",
                labels.join(", ")
            )
        } else {
            format!("VIP of {}", labels.join(", "))
        };
        p.vip(&dev, vip, deprecated, reason);
    }
    // keepalived owns the IPVS entries of the services it checks.
    for s in lab.services.iter().filter(|s| !s.keepalived_managed()) {
        p.ipvs.push(VirtualServiceSpec {
            name: s.name.clone(),
            ipvs: s.ipvs.clone(),
            destinations: s
                .real_servers
                .iter()
                .map(|b| DestSpec {
                    host: b.host.clone(),
                    address: b.address,
                    port: b.port,
                    forward: s.profile().forward,
                    weight: b.weight,
                    u_threshold: b.u_threshold,
                    l_threshold: b.l_threshold,
                    encap: s.encap,
                })
                .collect(),
            reason: format!("service {} ({} mode)", s.label(), s.profile().name),
        });
    }
}

/// The profiles `services` use, in `modes::ALL` order.
fn modes_of<'a>(services: impl Iterator<Item = &'a Service>) -> Vec<&'static Profile> {
    let used: BTreeSet<&str> = services.map(|s| s.profile().name).collect();
    crate::modes::ALL.into_iter().filter(|p| used.contains(p.name)).collect()
}

/// What each mode a real server serves asks of it (see `modes/`), in `modes::ALL` order: a
/// requirement two modes share is planned once, with the first one's reason.
fn plan_real_server(lab: &Lab, host: &Host, p: &mut HostPlan) {
    let mine: Vec<&Service> = lab.services_of(&host.name).collect();
    let of = |family: Family| -> Vec<&Service> { mine.iter().copied().filter(|s| s.family() == family).collect() };
    let (v4, v6) = (of(Family::Ipv4), of(Family::Ipv6));
    for profile in modes_of(v4.iter().copied()) {
        let rs = &profile.real_server;
        for (dev, setting, value, why) in rs.sysctls {
            p.sysctl(&conf_key(dev, setting), value, why);
        }
        for (name, why) in rs.modules {
            p.module(name, why);
        }
        for (dev, why) in rs.links_up {
            p.link_up(dev, why);
        }
    }
    for profile in modes_of(v6.iter().copied()) {
        let rs = &profile.ipv6.real_server;
        for (name, why) in rs.modules {
            p.module(name, why);
        }
        for (dev, why) in rs.links_up {
            p.link_up(dev, why);
        }
    }
    gue_ports(&mine, p);
    for (served, v6) in [(&v4, false), (&v6, true)] {
        for profile in modes_of(served.iter().copied()) {
            let on = if v6 { &profile.ipv6.real_server.vip } else { &profile.real_server.vip };
            let Some(on) = on else { continue };
            let of_mode: Vec<&Service> = served.iter().copied().filter(|s| s.profile().name == profile.name).collect();
            for vip in vips(&of_mode) {
                p.vip(on.dev, vip, false, on.reason.replace("{vip}", &vip.to_string()));
            }
        }
    }
}

/// The GUE ports a real server opens: one per (port, family) its GUE services use.
fn gue_ports(mine: &[&Service], p: &mut HostPlan) {
    for s in mine.iter().filter(|s| s.encap.tun_type == crate::ipvs::TunType::Gue) {
        let ipv6 = s.family() == Family::Ipv6;
        let reason =
            format!("TUN over GUE: receives the director's UDP packets of {} on port {}", s.label(), s.encap.port);
        match p.gue_ports.iter_mut().find(|g| g.port == s.encap.port && g.ipv6 == ipv6) {
            Some(g) => {
                if !g.reason.contains(&s.label()) {
                    g.reason = g.reason.replacen(" on port", &format!(", {} on port", s.label()), 1);
                }
            }
            None => p.gue_ports.push(GuePortSpec { port: s.encap.port, ipv6, reason }),
        }
    }
}

fn plan_router(lab: &Lab, host: &Host, p: &mut HostPlan) {
    // IPv4 forwarding as before; IPv6 forwarding where the router has IPv6 subnets.
    if host.has_family(Family::Ipv4) || !host.has_family(Family::Ipv6) {
        p.sysctl("net.ipv4.ip_forward", "1", "router forwards between segments");
    }
    if host.has_family(Family::Ipv6) {
        p.sysctl("net.ipv6.conf.all.forwarding", "1", "router forwards IPv6 between segments");
    }
    let Some(director) = lab.director() else { return };
    let all: Vec<&Service> = lab.services.iter().collect();
    for vip in vips(&all) {
        if host.interface_for(vip).is_some() {
            continue;
        }
        let via = host
            .all_addresses()
            .filter(|(_, a)| a.addr().is_ipv6() == vip.is_ipv6())
            .find_map(|(_, a)| director.address_on_subnet_of(a))
            .map(|(_, a)| a.addr());
        if let Some(via) = via {
            p.routes.push(RouteSpec {
                destination: IpNet::from(vip),
                gateway: Some(via),
                dev: None,
                advmss: None,
                reason: format!("VIP {vip} is on no router segment: send it to director {}", director.name),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_respect_the_kernel_limit() {
        assert_eq!(label_for("lo").as_deref(), Some("lo:lvs"));
        assert_eq!(label_for("enp0s31f6").as_deref(), Some("enp0s31f6:lvs"));
        assert_eq!(label_for("enp0s31f6abc"), None);
    }

    #[test]
    fn file_modes_are_read_as_chmod_writes_them() {
        #[derive(Debug, serde::Deserialize)]
        struct M(#[serde(with = "octal_mode")] u32);
        let read = |v: serde_json::Value| serde_json::from_value::<M>(v).map(|m| m.0).map_err(|e| e.to_string());
        assert_eq!(read(serde_json::json!("0644")), Ok(0o644));
        assert_eq!(read(serde_json::json!(420)), Ok(0o644));
        assert_eq!(read(serde_json::json!("7777")), Ok(0o7777));
        assert_eq!(read(serde_json::json!("10000")), Err("mode 10000 has bits beyond 07777".into()));
        assert_eq!(read(serde_json::json!("0819")), Err("mode \"0819\" is not octal".into()));
    }

    #[test]
    fn dotted_interface_names_use_slash_in_sysctl_keys() {
        assert_eq!(conf_key("eth0.100", "rp_filter"), "net.ipv4.conf.eth0/100.rp_filter");
    }
}
