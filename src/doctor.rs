//! `lvsctl doctor`'s reasoning: live facts of every host checked against the rules of each mode.
//! A pure function (facts in, findings out), so each rule is tested with hand-made facts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::agent::facts::HostFacts;
use crate::inventory::{Family, Host, Lab, Role};
use crate::ipvs::fwd_name;
use crate::modes::Gateway;

/// The stable name of a finding's cause (`arp-ignore`, `vip-missing`, …): scripts match on it, so
/// a code never changes meaning. The README's table lists every one (a test checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    ArpIgnore,
    ArpAnnounce,
    VipOnInterface,
    VipMissing,
    IpipMissing,
    Tunl0Down,
    Ip6TunnelMissing,
    Ip6tnl0Down,
    GreMissing,
    Gre0Down,
    Ip6GreMissing,
    Ip6gre0Down,
    FouPortMissing,
    TunRpFilter,
    NatGateway,
    DrGatewayDirector,
    NatClientOnRsSubnet,
    ForwardingOff,
    IpvsMissing,
    ServiceMissing,
    DestMissing,
    DestWeightZero,
    DestForward,
    PortMapping,
    DirectorIsRealServer,
    FwmarkRulesMissing,
    SnatRulesMissing,
    NatConntrackOff,
    VipUnroutable,
    VipMisrouted,
    KeepalivedDown,
    KeepalivedConfig,
    SplitBrain,
    VipOnNoDirector,
    VipOnBothDirectors,
    VridClash,
    SyncDaemonDown,
    NatGatewayNotFloating,
    Drift,
    Unreachable,
}

impl Code {
    pub const ALL: [Code; 40] = [
        Code::ArpIgnore,
        Code::ArpAnnounce,
        Code::VipOnInterface,
        Code::VipMissing,
        Code::IpipMissing,
        Code::Tunl0Down,
        Code::Ip6TunnelMissing,
        Code::Ip6tnl0Down,
        Code::GreMissing,
        Code::Gre0Down,
        Code::Ip6GreMissing,
        Code::Ip6gre0Down,
        Code::FouPortMissing,
        Code::TunRpFilter,
        Code::NatGateway,
        Code::DrGatewayDirector,
        Code::NatClientOnRsSubnet,
        Code::ForwardingOff,
        Code::IpvsMissing,
        Code::ServiceMissing,
        Code::DestMissing,
        Code::DestWeightZero,
        Code::DestForward,
        Code::PortMapping,
        Code::DirectorIsRealServer,
        Code::FwmarkRulesMissing,
        Code::SnatRulesMissing,
        Code::NatConntrackOff,
        Code::VipUnroutable,
        Code::VipMisrouted,
        Code::KeepalivedDown,
        Code::KeepalivedConfig,
        Code::SplitBrain,
        Code::VipOnNoDirector,
        Code::VipOnBothDirectors,
        Code::VridClash,
        Code::SyncDaemonDown,
        Code::NatGatewayNotFloating,
        Code::Drift,
        Code::Unreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::ArpIgnore => "arp-ignore",
            Code::ArpAnnounce => "arp-announce",
            Code::VipOnInterface => "vip-on-interface",
            Code::VipMissing => "vip-missing",
            Code::IpipMissing => "ipip-missing",
            Code::Tunl0Down => "tunl0-down",
            Code::Ip6TunnelMissing => "ip6-tunnel-missing",
            Code::Ip6tnl0Down => "ip6tnl0-down",
            Code::GreMissing => "gre-missing",
            Code::Gre0Down => "gre0-down",
            Code::Ip6GreMissing => "ip6-gre-missing",
            Code::Ip6gre0Down => "ip6gre0-down",
            Code::FouPortMissing => "fou-port-missing",
            Code::TunRpFilter => "tun-rp-filter",
            Code::NatGateway => "nat-gateway",
            Code::DrGatewayDirector => "dr-gateway-director",
            Code::NatClientOnRsSubnet => "nat-client-on-rs-subnet",
            Code::ForwardingOff => "forwarding-off",
            Code::IpvsMissing => "ipvs-missing",
            Code::ServiceMissing => "service-missing",
            Code::DestMissing => "dest-missing",
            Code::DestWeightZero => "dest-weight-zero",
            Code::DestForward => "dest-forward",
            Code::PortMapping => "port-mapping",
            Code::DirectorIsRealServer => "director-is-real-server",
            Code::FwmarkRulesMissing => "fwmark-rules-missing",
            Code::SnatRulesMissing => "snat-rules-missing",
            Code::NatConntrackOff => "nat-conntrack-off",
            Code::VipUnroutable => "vip-unroutable",
            Code::VipMisrouted => "vip-misrouted",
            Code::KeepalivedDown => "keepalived-down",
            Code::KeepalivedConfig => "keepalived-config",
            Code::SplitBrain => "split-brain",
            Code::VipOnNoDirector => "vip-on-no-director",
            Code::VipOnBothDirectors => "vip-on-both-directors",
            Code::VridClash => "vrid-clash",
            Code::SyncDaemonDown => "sync-daemon-down",
            Code::NatGatewayNotFloating => "nat-gateway-not-floating",
            Code::Drift => "drift",
            Code::Unreachable => "unreachable",
        }
    }
}

impl Code {
    /// The code of this name (the modes' data names theirs).
    pub fn named(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub host: String,
    pub code: Code,
    pub cause: String,
    pub evidence: String,
    pub fix: String,
}

/// What doctor knows of a host: its facts, or why it could not get them.
pub type Facts = BTreeMap<String, Result<HostFacts, String>>;

struct Ctx<'a> {
    lab: &'a Lab,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn add(&mut self, host: &str, code: Code, cause: String, evidence: String, fix: String) {
        self.out.push(Finding { host: host.to_string(), code, cause, evidence, fix });
    }
}

fn eff(f: &HostFacts, dev: &str, pick: fn(&crate::agent::facts::Conf) -> Option<u32>) -> (u32, String) {
    let all = pick(&f.conf("all")).unwrap_or(0);
    let own = pick(&f.conf(dev)).unwrap_or(0);
    (all.max(own), format!("all={all}, {dev}={own}"))
}

fn holds(f: &HostFacts, ip: IpAddr) -> Vec<(String, String)> {
    f.addresses.iter().filter(|a| a.address.addr() == ip).map(|a| (a.dev.clone(), a.address.to_string())).collect()
}

/// The inventory interfaces of a host that face other machines (where ARP happens).
fn data_interfaces(h: &Host) -> Vec<&str> {
    h.interfaces.iter().map(|i| i.name.as_str()).filter(|n| *n != "lo").collect()
}

/// The director's address on the subnet of `rs_addr` (a NAT real server's gateway).
fn director_address_for(lab: &Lab, rs: &Host, rs_addr: IpAddr) -> Option<IpAddr> {
    let d = lab.director()?;
    let net = rs.interface_for(rs_addr).map(|(_, n)| n).or_else(|| d.interface_for(rs_addr).map(|(_, n)| n))?;
    d.address_on_subnet_of(net).map(|(_, a)| a.addr())
}

pub fn diagnose(lab: &Lab, facts: &Facts) -> Vec<Finding> {
    let mut c = Ctx { lab, out: vec![] };
    keepalived(&mut c, facts);
    for h in &lab.hosts {
        match facts.get(&h.name) {
            None => {}
            Some(Err(e)) => c.add(
                &h.name,
                Code::Unreachable,
                format!("{} could not be examined", h.name),
                e.clone(),
                "check that the host is up and reachable over SSH (see the error)".into(),
            ),
            Some(Ok(f)) => {
                match h.role {
                    Role::Director => director(&mut c, h, f),
                    Role::RealServer | Role::SorryServer => real_server(&mut c, h, f),
                    Role::Router => router(&mut c, h, f),
                    Role::Client => client(&mut c, h, f),
                }
                if !f.drift.is_empty() {
                    let items: Vec<String> = f
                        .drift
                        .iter()
                        .map(|d| format!("{} ({} where the plan wants {})", d.object, d.before, d.after))
                        .collect();
                    c.add(
                        &h.name,
                        Code::Drift,
                        format!("{} differs from the plan in {} place(s)", h.name, f.drift.len()),
                        items.join("; "),
                        "run `lvsctl up` to restore the plan (or change the inventory if the change is wanted)".into(),
                    );
                }
            }
        }
    }
    c.out
}

/// What keepalived does on the directors, per director and for the pair.
fn keepalived(c: &mut Ctx, facts: &Facts) {
    let lab = c.lab;
    let mut views = Vec::new();
    for d in lab.directors() {
        let Some(Ok(f)) = facts.get(&d.name) else { continue };
        let Some(k) = &f.keepalived else { continue };
        views.push((d, f, k));
        let log_path = crate::resource::daemon::log_path(&lab.name);
        if let Some(e) = &k.config_error {
            c.add(
                &d.name,
                Code::KeepalivedConfig,
                format!("keepalived refuses its configuration on {}", d.name),
                e.clone(),
                "lvsctl up checks its keepalived.conf with keepalived -t before writing it: someone changed it since, or the host lacks what it names (an interface); run lvsctl up".into(),
            );
        }
        let Some(p) = &k.running else {
            let tail = k.log.iter().rev().take(3).rev().cloned().collect::<Vec<_>>().join(" | ");
            c.add(
                &d.name,
                Code::KeepalivedDown,
                format!("keepalived is not running on director {}", d.name),
                if tail.is_empty() {
                    "no keepalived process (its pid file names none)".into()
                } else {
                    format!("its log ends: {tail}")
                },
                format!("run lvsctl up (it starts keepalived again); its output is in {log_path}"),
            );
            continue;
        };
        if lab.ha.as_ref().is_some_and(|ha| ha.sync) && !k.instances.is_empty() && k.sync.is_empty() {
            c.add(
                &d.name,
                Code::SyncDaemonDown,
                format!("IPVS connection sync does not run on {}: connections break on a failover", d.name),
                format!("keepalived pid {} runs, but the kernel has no sync daemon (ipvsadm -L --daemon is empty)", p.pid),
                "keepalived starts it from lvs_sync_daemon in global_defs: restart keepalived (lvsctl down, then up), and check its log".into(),
            );
        }
        let clash: Vec<&String> =
            k.log.iter().filter(|l| l.contains("associated with VRID") || l.contains("bogus VRRP packet")).collect();
        if let Some(line) = clash.last() {
            c.add(
                &d.name,
                Code::VridClash,
                format!(
                    "another VRRP router on {}'s segment uses virtual_router_id {}",
                    d.name,
                    lab.ha.as_ref().map_or(0, |h| h.virtual_router_id)
                ),
                line.to_string(),
                "give [ha] a virtual_router_id no other VRRP router on the segment uses (1 to 255), then lvsctl up"
                    .into(),
            );
        }
    }
    if lab.ha.is_none() || views.len() < 2 {
        return;
    }
    let masters: Vec<&str> = views
        .iter()
        .filter(|(_, _, k)| k.instances.iter().any(|i| i.state == crate::agent::ha::VrrpState::Master))
        .map(|(d, _, _)| d.name.as_str())
        .collect();
    if masters.len() == 2 {
        let iface = views[0].2.instances.first().map(|i| i.instance.clone()).unwrap_or_default();
        let unicast = lab.ha.as_ref().is_some_and(|h| h.unicast);
        c.add(
            masters[0],
            Code::SplitBrain,
            format!("both directors are VRRP master (split brain): {} and {} do not hear each other's adverts", masters[0], masters[1]),
            format!("VRRP instance {iface}: MASTER on {} and on {}", masters[0], masters[1]),
            if unicast {
                "check that each director reaches the other's address on the VRRP interface (IP protocol 112)".into()
            } else {
                "check that VRRP adverts (IP protocol 112 to 224.0.0.18) cross the segment between them, or set unicast = true in [ha]".into()
            },
        );
    }
    for vip in lab.vips() {
        let on: Vec<&str> =
            views.iter().filter(|(_, f, _)| !holds(f, vip).is_empty()).map(|(d, _, _)| d.name.as_str()).collect();
        match on.as_slice() {
            [] => c.add(
                &views[0].0.name,
                Code::VipOnNoDirector,
                format!("VIP {vip} is on neither director: clients get no answer"),
                format!("no address {vip} on {} or {}", views[0].0.name, views[1].0.name),
                "keepalived's master holds it: start keepalived (lvsctl up) and see the other findings".into(),
            ),
            [a, b] if masters.len() < 2 => c.add(
                a,
                Code::VipOnBothDirectors,
                format!("VIP {vip} is on both directors: the router's ARP entry picks one at random"),
                format!("{vip} on {a} and on {b}"),
                "only keepalived's master may hold it: remove it where keepalived is backup (or restart keepalived there)".into(),
            ),
            _ => {}
        }
    }
}

fn director(c: &mut Ctx, h: &Host, f: &HostFacts) {
    let lab = c.lab;
    let forwarding = crate::modes::ALL.into_iter().find(|p| {
        lab.services.iter().any(|s| s.mode == p.mode && s.family() == Family::Ipv4)
            && p.director_sysctls.iter().any(|(k, _, _)| *k == "net.ipv4.ip_forward")
    });
    if let Some(p) = forwarding
        && f.ip_forward != Some(1)
    {
        let mode = p.mode.as_str().to_uppercase();
        c.add(
            &h.name,
            Code::ForwardingOff,
            format!("{mode} director {} does not forward packets", h.name),
            format!("net.ipv4.ip_forward={}", f.ip_forward.map(|v| v.to_string()).unwrap_or("?".into())),
            format!(
                "set net.ipv4.ip_forward=1 (lvsctl up does): replies of {mode} real servers go through the director"
            ),
        );
    }
    // The IPv6 side: the modes whose IPv6 services need the director to route.
    let forwarding6 = crate::modes::ALL.into_iter().find(|p| {
        lab.services.iter().any(|s| s.mode == p.mode && s.family() == Family::Ipv6)
            && p.ipv6.director_sysctls.iter().any(|(k, _, _)| *k == "net.ipv6.conf.all.forwarding")
    });
    if let Some(p) = forwarding6
        && f.ip6_forward != Some(1)
    {
        let mode = p.mode.as_str().to_uppercase();
        c.add(
            &h.name,
            Code::ForwardingOff,
            format!("{mode} director {} does not forward IPv6 packets", h.name),
            format!(
                "net.ipv6.conf.all.forwarding={}",
                f.ip6_forward.map(|v| v.to_string()).unwrap_or("?".into())
            ),
            format!(
                "set net.ipv6.conf.all.forwarding=1 (lvsctl up does): IPv6 replies of {mode} real servers go through the director"
            ),
        );
    }
    // An HA pair's VIPs are keepalived's: checked for the pair (see `pair`), not per director.
    for vip in lab.vips() {
        if lab.ha.is_none() && holds(f, vip).is_empty() {
            c.add(
                &h.name,
                Code::VipMissing,
                format!("director {} does not hold the VIP {vip}", h.name),
                format!("no address {vip} on any interface of {}", h.name),
                "add the VIP on the director (lvsctl up does)".into(),
            );
        }
    }
    if let Some(n) = &f.nft {
        marks(c, h, n);
    }
    one_armed(c, h, f);
    let Some(table) = &f.ipvs else {
        c.add(
            &h.name,
            Code::IpvsMissing,
            format!("IPVS is not loaded on director {}", h.name),
            format!(
                "/proc/net/ip_vs is absent; loaded modules: {}",
                if f.modules.is_empty() {
                    "none".to_string()
                } else {
                    f.modules.iter().filter(|m| m.starts_with("ip_vs")).cloned().collect::<Vec<_>>().join(" ")
                }
            ),
            "load ip_vs and add the services (lvsctl up does)".into(),
        );
        return;
    };
    let own: Vec<IpAddr> = f.addresses.iter().map(|a| a.address.addr()).collect();
    let keepalived_down = f.keepalived.as_ref().is_some_and(|k| k.running.is_none());
    for s in &lab.services {
        if s.keepalived_managed() && keepalived_down {
            // keepalived-down says why its services are missing.
            continue;
        }
        let Some(svc) = table.iter().find(|x| x.entry.key == s.key()) else {
            c.add(
                &h.name,
                Code::ServiceMissing,
                format!("IPVS has no service {}", s.label()),
                format!("the director's IPVS table has {} service(s), none for {}", table.len(), s.key()),
                "add the service (lvsctl up does)".into(),
            );
            continue;
        };
        let want_fwd = s.profile().forward.code();
        // A checked real server out of the table (or at weight 0) is keepalived doing its job; a
        // drained one (`lvsctl drain`) is the operator's.
        let drained =
            |b: &&crate::inventory::Backend| f.drained.get(&b.host).is_some_and(|d| d.services.contains(&s.key()));
        for b in s.real_servers.iter().filter(|_| !s.keepalived_managed()) {
            let Some(d) = svc.dests.iter().find(|d| d.key.addr == b.address && d.key.port == b.port) else {
                if drained(&b) {
                    continue;
                }
                c.add(
                    &h.name,
                    Code::DestMissing,
                    format!("real server {} ({}:{}) is not a destination of {}", b.host, b.address, b.port, s.label()),
                    format!(
                        "destinations: {}",
                        if svc.dests.is_empty() {
                            "none".to_string()
                        } else {
                            svc.dests.iter().map(|d| d.key.to_string()).collect::<Vec<_>>().join(", ")
                        }
                    ),
                    format!("add it (lvsctl up does): ipvsadm -a ... -r {}:{}", b.address, b.port),
                );
                continue;
            };
            if d.config.weight == 0 && b.weight > 0 && !drained(&b) {
                c.add(
                    &h.name,
                    Code::DestWeightZero,
                    format!("real server {} gets no new connections of {}: its weight is 0", b.host, s.label()),
                    format!("{} weight 0 (inventory: {})", d.key, b.weight),
                    "restore the weight (lvsctl up does); weight 0 quiesces a real server".into(),
                );
            }
            if d.config.fwd != want_fwd {
                c.add(
                    &h.name,
                    Code::DestForward,
                    format!(
                        "real server {} of {} uses forwarding method {} instead of {}",
                        b.host,
                        s.label(),
                        fwd_name(d.config.fwd),
                        fwd_name(want_fwd)
                    ),
                    format!("{} {}", d.key, d.config.describe()),
                    format!("set the method to {} for {} mode (lvsctl up does)", fwd_name(want_fwd), s.mode),
                );
            }
        }
        for d in &svc.dests {
            if d.key.port != s.ipvs.port && d.config.fwd != crate::ipvs::FWD_MASQ {
                c.add(
                    &h.name,
                    Code::PortMapping,
                    format!(
                        "destination {} of {} maps port {} to {}, which only NAT can do",
                        d.key,
                        s.label(),
                        s.ipvs.port,
                        d.key.port
                    ),
                    format!("forwarding method {}", fwd_name(d.config.fwd)),
                    format!(
                        "with {} the real server receives the packet unchanged: use port {} or NAT",
                        fwd_name(d.config.fwd),
                        s.ipvs.port
                    ),
                );
            }
            if own.contains(&d.key.addr) {
                c.add(
                    &h.name,
                    Code::DirectorIsRealServer,
                    format!("director {} is a destination of its own service {}", h.name, s.label()),
                    format!("{} is the director's own address", d.key.addr),
                    "list only real servers as destinations; a director serving locally needs care this lab does not model".into(),
                );
            }
        }
    }
}

/// A firewall-mark service sees only the packets lvsctl's nftables table marks, and a one-armed
/// NAT service's requests keep the client's source without its source NAT rules: without the
/// table (or with other rules in it) the first are never seen by IPVS and the second are answered
/// past the director, and nothing else says why.
fn marks(c: &mut Ctx, h: &Host, n: &crate::agent::facts::NftFact) {
    let of = |pick: fn(&crate::inventory::Service) -> bool| {
        c.lab.services.iter().filter(|s| pick(s)).map(|s| s.label()).collect::<Vec<_>>().join(", ")
    };
    let (marked, snat) = (of(|s| s.ipvs.fwmark.is_some()), of(|s| s.snat));
    let table = format!("table inet {}", n.table);
    let (evidence, fix) = if let Some(e) = &n.error {
        (e.clone(), "install nftables on the director (apt-get install nftables, or dnf install nftables)".to_string())
    } else {
        let evidence = match n.rules {
            None => format!("no {table} (nft list tables)"),
            Some(_) if n.as_planned => return,
            Some(r) => format!(
                "{table} holds {} where the plan has {}, or other objects",
                crate::plural(r, "rule"),
                crate::plural(n.planned_rules, "rule")
            ),
        };
        (
            evidence,
            format!("run `lvsctl up --host {}`: it puts {table} back as planned and touches no other table", h.name),
        )
    };
    let unread = n.error.is_some();
    if !marked.is_empty() {
        let cause = if unread {
            format!("the marking rules of {marked} could not be read on director {}", h.name)
        } else {
            format!("the packets of {marked} are not marked as planned on director {}: IPVS does not see them", h.name)
        };
        c.add(&h.name, Code::FwmarkRulesMissing, cause, evidence.clone(), fix.clone());
    }
    if !snat.is_empty() {
        let cause = if unread {
            format!("the source NAT rules of {snat} could not be read on director {}", h.name)
        } else {
            format!(
                "the requests of {snat} do not get the director's address as planned on director {}: real servers answer the clients' addresses by their own routes, past the director",
                h.name
            )
        };
        c.add(&h.name, Code::SnatRulesMissing, cause, evidence, fix);
    }
}

/// One-armed NAT's source NAT acts on the conntrack entries IPVS keeps only with
/// `net.ipv4.vs.conntrack = 1`.
fn one_armed(c: &mut Ctx, h: &Host, f: &HostFacts) {
    let Some(s) = c.lab.services.iter().find(|s| s.snat) else { return };
    let key = "net.ipv4.vs.conntrack";
    let have = f.sysctls.get(key).map(|v| v.trim().to_string());
    if have.as_deref() == Some("1") || f.ipvs.is_none() {
        // Without IPVS, ipvs-missing says what is wrong.
        return;
    }
    c.add(
        &h.name,
        Code::NatConntrackOff,
        format!(
            "one-armed NAT director {} keeps no conntrack entries for IPVS: the source NAT of {} never acts, and real servers answer the clients' addresses past the director",
            h.name,
            s.label()
        ),
        format!("{key}={}", have.unwrap_or_else(|| "?".into())),
        format!("set {key}=1 (lvsctl up does)"),
    );
}

fn real_server(c: &mut Ctx, h: &Host, f: &HostFacts) {
    let lab = c.lab;
    let services: Vec<_> = lab.services_of(&h.name).collect();
    for s in &services {
        let v6 = s.family() == Family::Ipv6;
        let p = s.profile();
        let Some(on) = (if v6 { &p.ipv6.real_server.vip } else { &p.real_server.vip }) else { continue };
        let (dev, why) = (on.dev, on.why);
        // Devices where some mode holds the VIP: holding it there answers no ARP (no neighbour
        // solicitation for IPv6).
        let vip_devices: Vec<&str> = crate::modes::ALL
            .iter()
            .filter_map(|p| if v6 { p.ipv6.real_server.vip.as_ref() } else { p.real_server.vip.as_ref() })
            .map(|v| v.dev)
            .collect();
        for vip in s.vips() {
            let held = holds(f, vip);
            let answers = if v6 { "neighbour solicitations" } else { "ARP" };
            if let Some((other, cidr)) = held.iter().find(|(d, _)| d != dev && !vip_devices.contains(&d.as_str())) {
                c.add(
                &h.name,
                Code::VipOnInterface,
                format!("{} holds the VIP {} on {other}, a real interface: it answers {answers} for it and steals the director's traffic", h.name, vip),
                format!("{cidr} on {other}"),
                format!("remove it from {other}; {why}"),
            );
            } else if !held.iter().any(|(d, _)| d == dev) {
                c.add(
                    &h.name,
                    Code::VipMissing,
                    format!("{} does not hold the VIP {} on {dev}: it drops the service's packets", h.name, vip),
                    format!("no {} on {dev}", vip),
                    format!("add {} on {dev} (lvsctl up does); {why}", ipnet::IpNet::from(vip)),
                );
            }
        }
    }
    // ARP and IP-in-IP are IPv4's: only IPv4 services need them.
    let ipv4: Vec<_> = services.iter().copied().filter(|s| s.family() == Family::Ipv4).collect();
    if let Some(vip) = ipv4.iter().find(|s| s.profile().real_server.quiet_arp).map(|s| s.ipvs.vip) {
        for dev in data_interfaces(h) {
            let (ig, ig_ev) = eff(f, dev, |c| c.arp_ignore);
            if ig < 1 {
                c.add(
                    &h.name,
                    Code::ArpIgnore,
                    format!("{} answers ARP requests for the VIP {vip} on {dev}", h.name),
                    format!("arp_ignore {ig_ev}: effective {ig} (the kernel uses the larger of all and {dev})"),
                    "set net.ipv4.conf.all.arp_ignore=1 (lvsctl up does): only the director may answer ARP for the VIP"
                        .into(),
                );
            }
            let (an, an_ev) = eff(f, dev, |c| c.arp_announce);
            if an < 2 {
                c.add(
                    &h.name,
                    Code::ArpAnnounce,
                    format!("{} may use the VIP {vip} as source of its ARP requests on {dev}, teaching neighbours the wrong MAC for it", h.name),
                    format!("arp_announce {an_ev}: effective {an}"),
                    "set net.ipv4.conf.all.arp_announce=2 (lvsctl up does)".into(),
                );
            }
        }
    }
    // Each tunnel the real server's services arrive in: its module, its device, and (IPv4) no
    // reverse-path filter there.
    let mut decaps: Vec<(&crate::modes::Decap, bool)> = Vec::new();
    for s in &services {
        let v6 = s.family() == Family::Ipv6;
        let p = s.profile();
        let d = if v6 { p.ipv6.real_server.decap.as_ref() } else { p.real_server.decap.as_ref() };
        if let Some(d) = d.filter(|d| !decaps.iter().any(|(x, _)| x.dev == d.dev)) {
            decaps.push((d, v6));
        }
    }
    for (d, v6) in decaps {
        let code = |name: &str| Code::named(name).unwrap_or_else(|| panic!("modes name doctor code {name}"));
        let loaded = f.modules.iter().any(|m| m == d.module) || f.link_up(d.dev).is_some();
        match f.link_up(d.dev) {
            _ if !loaded => c.add(
                &h.name,
                code(d.missing_code),
                format!("{} cannot decapsulate the director's {} packets: {} is not loaded", h.name, d.what, d.module),
                format!("no module {}, no {}", d.module, d.dev),
                format!("load {} and bring {} up (lvsctl up does)", d.module, d.dev),
            ),
            Some(false) => c.add(
                &h.name,
                code(d.down_code),
                format!("{} is down on {}: tunnelled packets are dropped", d.dev, h.name),
                format!("{} is administratively down", d.dev),
                format!("bring {} up (lvsctl up does)", d.dev),
            ),
            _ => {}
        }
        if loaded && !v6 {
            let (rp, ev) = eff(f, d.dev, |c| c.rp_filter);
            if rp != 0 {
                c.add(
                    &h.name,
                    Code::TunRpFilter,
                    format!("reverse-path filtering on {} drops the decapsulated packets (their client source routes via another interface)", h.name),
                    format!("rp_filter {ev}: effective {rp}"),
                    format!("set rp_filter=0 on {} and all (lvsctl up does)", d.dev),
                );
            }
        }
    }
    // GUE arrives on a UDP port: without it the director's packets are answered with ICMP.
    let mut gue: Vec<(u16, bool, String)> = Vec::new();
    for s in services.iter().filter(|s| s.encap.tun_type == crate::ipvs::TunType::Gue) {
        let v6 = s.family() == Family::Ipv6;
        if !gue.iter().any(|(p, six, _)| *p == s.encap.port && *six == v6) {
            gue.push((s.encap.port, v6, s.label()));
        }
    }
    for (port, v6, label) in gue {
        if !f.gue_ports.contains(&(port, v6)) {
            let six = if v6 { " -6" } else { "" };
            c.add(
                &h.name,
                Code::FouPortMissing,
                format!("{} has no GUE port {port}: the director's GUE packets of {label} are refused", h.name),
                format!("`ip fou show` lists no port {port}{}", if v6 { " (IPv6)" } else { "" }),
                format!("open it: ip fou add port {port} gue{six} (lvsctl up does)"),
            );
        }
    }
    for family in Family::BOTH {
        let Some(b) = services
            .iter()
            .filter(|s| s.family() == family)
            .find(|s| s.profile().real_server.gateway.is_via_director())
            .and_then(|s| s.real_servers.iter().find(|b| b.host == h.name))
        else {
            continue;
        };
        let gw = f.default_route_of(family == Family::Ipv6).and_then(|r| r.gateway);
        let floating = lab
            .ha
            .as_ref()
            .and_then(|ha| ha.floating_gateway.iter().find(|n| Family::of_addr(n.addr()) == family))
            .map(|n| n.addr());
        let default = if family == Family::Ipv6 { "default (IPv6)" } else { "default" };
        if let (Some(want), Some(g)) = (floating, gw)
            && g != want
            && let Some(d) = lab.directors().find(|d| d.has_address(g))
        {
            c.add(
                &h.name,
                Code::NatGatewayNotFloating,
                format!("NAT real server {}'s gateway is director {}'s own address, not the floating one", h.name, d.name),
                format!("{default} via {g} ({}'s address); the floating gateway is {want}", d.name),
                format!(
                    "route default via {want} (lvsctl up does): the master holds it, so replies follow a failover; through {g} they stop when {} is backup or down",
                    d.name
                ),
            );
        } else if let Some(want) = floating.or_else(|| director_address_for(lab, h, b.address))
            && gw != Some(want)
        {
            c.add(
                &h.name,
                Code::NatGateway,
                format!("NAT real server {}'s {family} replies do not return through the director", h.name),
                match gw {
                    Some(g) => format!("{default} via {g}"),
                    None => format!("no {family} default route"),
                },
                format!(
                    "route default via {want} (lvsctl up does): NAT needs the director to translate the replies back"
                ),
            );
        }
    }
    if let Some(s) = services.iter().find(|s| s.profile().real_server.gateway == Gateway::NotDirector)
        && let Some(g) = [false, true]
            .into_iter()
            .filter_map(|v6| f.default_route_of(v6).and_then(|r| r.gateway))
            .find(|g| lab.directors().any(|d| d.has_address(*g)))
        && let Some(d) = lab.directors().find(|d| d.has_address(g))
    {
        let mode = s.mode.as_str().to_uppercase();
        c.add(
            &h.name,
            Code::DrGatewayDirector,
            format!("{mode} real server {} routes its replies through the director, which drops them", h.name),
            format!("default via {g} ({}'s address)", d.name),
            format!(
                "route replies through the router (the inventory's gateway); {mode} replies go straight to the client"
            ),
        );
    }
}

fn router(c: &mut Ctx, h: &Host, f: &HostFacts) {
    if h.has_family(Family::Ipv6) && f.ip6_forward != Some(1) {
        c.add(
            &h.name,
            Code::ForwardingOff,
            format!("router {} does not forward IPv6 packets: clients cannot reach the IPv6 VIPs", h.name),
            format!("net.ipv6.conf.all.forwarding={}", f.ip6_forward.map(|v| v.to_string()).unwrap_or("?".into())),
            "set net.ipv6.conf.all.forwarding=1 (lvsctl up does)".into(),
        );
    }
    if (h.has_family(Family::Ipv4) || !h.has_family(Family::Ipv6)) && f.ip_forward != Some(1) {
        c.add(
            &h.name,
            Code::ForwardingOff,
            format!("router {} does not forward packets: clients cannot reach the VIP", h.name),
            format!("net.ipv4.ip_forward={}", f.ip_forward.map(|v| v.to_string()).unwrap_or("?".into())),
            "set net.ipv4.ip_forward=1 (lvsctl up does)".into(),
        );
    }
    routable(c, h, f);
}

fn client(c: &mut Ctx, h: &Host, f: &HostFacts) {
    routable(c, h, f);
    let lab = c.lab;
    for s in lab.services.iter().filter(|s| s.profile().clients_off_real_server_subnets) {
        for b in &s.real_servers {
            let Some(rs) = lab.host(&b.host) else { continue };
            let Some((_, net)) = rs.interface_for(b.address) else { continue };
            if let Some(a) = f.addresses.iter().find(|a| a.address.trunc() == net.trunc()) {
                c.add(
                    &h.name,
                    Code::NatClientOnRsSubnet,
                    format!("client {} is on real server {}'s subnet {}: the real server answers it directly, bypassing the director's translation", h.name, b.host, net.trunc()),
                    format!("{} on {}", a.address, a.dev),
                    "put the client on another subnet, behind the router".into(),
                );
            }
        }
    }
}

/// The VIPs must be reachable from this host: a route, through a next hop that leads to them.
fn routable(c: &mut Ctx, h: &Host, f: &HostFacts) {
    let lab = c.lab;
    for vip in lab.vips() {
        match f.lookup(vip) {
            Some(l) if l.route.is_none() => c.add(
                &h.name,
                Code::VipUnroutable,
                format!("{} has no route to the VIP {vip}", h.name),
                format!("`ip route get {vip}` finds no route"),
                match h.role {
                    Role::Client => "give the client a gateway towards the router (inventory `gateway`)".to_string(),
                    _ => format!("route {vip} to the director (lvsctl up adds the route when the VIP is on none of the router's segments)"),
                },
            ),
            Some(l) => {
                let r = l.route.as_ref().expect("checked");
                if h.role == Role::Router
                    && let (Some(g), Some(d)) = (r.gateway, lab.director())
                    && !d.has_address(g)
                {
                    c.add(
                        &h.name,
                        Code::VipMisrouted,
                        format!("router {} sends the VIP {vip} to {g}, not to the director", h.name),
                        format!("`ip route get {vip}`: via {g}"),
                        format!("route {vip} via the director {} (lvsctl up does)", d.name),
                    );
                }
            }
            None => {}
        }
    }
}

pub fn render_text(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.host.len()).max().unwrap_or(4);
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!("{:<width$}  {}: {}\n", f.host, f.code, f.cause));
        s.push_str(&format!("{:<width$}    evidence: {}\n", "", f.evidence));
        s.push_str(&format!("{:<width$}    fix: {}\n", "", f.fix));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::facts::Conf;
    use crate::host::{AddrFact, IpvsService, Lookup, LookupRoute, RouteFact};
    use crate::ipvs::*;
    use std::path::Path;

    fn lab(inv: &str) -> Lab {
        crate::inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(inv)).unwrap()
    }

    fn addr(dev: &str, cidr: &str) -> AddrFact {
        AddrFact { dev: dev.into(), address: cidr.parse().unwrap(), label: None, nodad: false, deprecated: false }
    }

    fn conf(ig: u32, an: u32, rp: u32) -> Conf {
        Conf { arp_ignore: Some(ig), arp_announce: Some(an), rp_filter: Some(rp), forwarding: Some(0) }
    }

    fn default_via(g: &str) -> RouteFact {
        RouteFact {
            destination: if g.contains(':') { "::/0" } else { "0.0.0.0/0" }.parse().unwrap(),
            gateway: Some(g.parse().unwrap()),
            dev: None,
            metric: 0,
            protocol: 76,
            scope: 0,
            prefsrc: None,
            advmss: None,
        }
    }

    /// Facts of the DR example as `lvsctl up` leaves it.
    fn healthy_dr() -> Facts {
        healthy_of("inventories/dr.toml")
    }

    /// Facts of a DR lab on the 192.168.188.0/24 of the examples, every director holding the VIP.
    fn healthy_of(inv: &str) -> Facts {
        let l = lab(inv);
        let vip: std::net::Ipv4Addr = "192.168.188.100".parse().unwrap();
        let lookup = |gw: Option<&str>| {
            vec![Lookup {
                destination: vip.into(),
                route: Some(LookupRoute {
                    gateway: gw.map(|g| g.parse().unwrap()),
                    dev: Some("eth0".into()),
                    local: false,
                }),
            }]
        };
        let mut m = Facts::new();
        for h in &l.hosts {
            let mut f = HostFacts { ip_forward: Some(0), ..Default::default() };
            f.links = vec![("lo".into(), true), ("eth0".into(), true)];
            for (dev, a) in h.all_addresses() {
                f.addresses.push(addr(dev, &a.to_string()));
            }
            f.conf.insert("all".into(), conf(0, 0, 0));
            f.conf.insert("eth0".into(), conf(0, 0, 0));
            match h.role {
                Role::Director => {
                    f.addresses.push(addr("eth0", "192.168.188.100/32"));
                    f.modules = vec!["ip_vs".into(), "ip_vs_wrr".into()];
                    let key = ServiceKey::addr(crate::inventory::Protocol::Tcp, vip, 80);
                    let dest = |a: &str, w| DestEntry {
                        key: DestKey { addr: a.parse().unwrap(), port: 80 },
                        config: DestConfig::plain(FWD_ROUTE, w),
                        active_conns: 0,
                        inact_conns: 0,
                        persist_conns: 0,
                        stats: Stats::default(),
                    };
                    f.ipvs = Some(vec![IpvsService {
                        entry: ServiceEntry {
                            key,
                            config: ServiceConfig::persistent("wrr", 0, None),
                            stats: Stats::default(),
                        },
                        dests: vec![dest("192.168.188.81", 3), dest("192.168.188.82", 1)],
                    }]);
                }
                Role::RealServer | Role::SorryServer => {
                    f.addresses.push(addr("lo", "192.168.188.100/32"));
                    f.conf.insert("all".into(), conf(1, 2, 0));
                    f.routes.push(default_via("192.168.188.200"));
                }
                Role::Router => {
                    f.ip_forward = Some(1);
                    f.lookups = lookup(None);
                }
                Role::Client => f.lookups = lookup(Some("192.168.10.200")),
            }
            m.insert(h.name.clone(), Ok(f));
        }
        m
    }

    fn with(f: &mut Facts, host: &str, change: impl FnOnce(&mut HostFacts)) {
        change(f.get_mut(host).unwrap().as_mut().unwrap());
    }

    fn codes(l: &Lab, f: &Facts) -> Vec<(String, &'static str)> {
        diagnose(l, f).into_iter().map(|x| (x.host, x.code.as_str())).collect()
    }

    /// The marking table on the director: a finding when it is absent, changed or unreadable,
    /// none when it is as planned.
    #[test]
    fn missing_marking_rules_are_a_cause() {
        let l = lab("inventories/dr-fwmark.toml");
        let marks = |nft: Option<crate::agent::facts::NftFact>| {
            let mut f = healthy_of("inventories/dr-fwmark.toml");
            with(&mut f, "lvs", |f| f.nft = nft);
            let found: Vec<Finding> =
                diagnose(&l, &f).into_iter().filter(|x| x.code == Code::FwmarkRulesMissing).collect();
            found
        };
        let planned = crate::agent::facts::NftFact {
            table: "lvsctl-dr-fwmark".into(),
            planned_rules: 3,
            rules: Some(3),
            as_planned: true,
            error: None,
        };
        assert_eq!(marks(None), vec![], "a lab without the fact (no table planned)");
        assert_eq!(marks(Some(planned.clone())), vec![]);
        let gone = marks(Some(crate::agent::facts::NftFact { rules: None, as_planned: false, ..planned.clone() }));
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert_eq!(gone[0].host, "lvs");
        assert!(gone[0].cause.contains("fwmark 10"), "{}", gone[0].cause);
        assert!(gone[0].evidence.contains("no table inet lvsctl-dr-fwmark"), "{}", gone[0].evidence);
        assert!(gone[0].fix.contains("lvsctl up --host lvs"), "{}", gone[0].fix);
        let changed =
            marks(Some(crate::agent::facts::NftFact { rules: Some(1), as_planned: false, ..planned.clone() }));
        assert!(changed[0].evidence.contains("holds 1 rule where the plan has 3 rules"), "{}", changed[0].evidence);
        let unread =
            marks(Some(crate::agent::facts::NftFact { error: Some("nft: not found".into()), ..planned.clone() }));
        assert!(unread[0].fix.contains("apt-get install nftables"), "{}", unread[0].fix);
    }

    /// nat.toml with web2 on a second private subnet of the director's: each real server must
    /// route back through the director's address on its own subnet.
    fn nat_two_subnets() -> (tempfile::TempDir, Lab) {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/nat.toml"))
            .unwrap()
            .replace(r#"eth1 = ["10.10.0.1/24"] }"#, r#"eth1 = ["10.10.0.1/24"], eth2 = ["10.20.0.1/24"] }"#)
            .replace(
                r#"gateway = "10.10.0.1"
interfaces = { eth0 = ["10.10.0.82/24"] }"#,
                r#"gateway = "10.20.0.1"
interfaces = { eth0 = ["10.20.0.82/24"] }"#,
            )
            .replace(
                r#""lvs:eth1", "web1:eth0", "web2:eth0"] }"#,
                r#""lvs:eth1", "web1:eth0"], private2 = ["lvs:eth2", "web2:eth0"] }"#,
            );
        assert!(text.contains("10.20.0.82/24") && text.contains("private2"), "nat.toml changed: update this test");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nat2.toml");
        std::fs::write(&file, text).unwrap();
        let l = crate::inventory::load(&file).unwrap();
        (dir, l)
    }

    #[test]
    fn nat_directors_forward_and_real_servers_route_back_through_them() {
        let (dir, l) = nat_two_subnets();
        let mut f = healthy_of(dir.path().join("nat2.toml").to_str().unwrap());
        with(&mut f, "lvs", |h| {
            h.ip_forward = Some(1);
            h.ip6_forward = Some(0);
        });
        with(&mut f, "web1", |h| h.routes = vec![default_via("10.10.0.1")]);
        with(&mut f, "web2", |h| h.routes = vec![default_via("10.20.0.1")]);
        let nat = |f: &Facts| -> Vec<(String, &'static str)> {
            codes(&l, f).into_iter().filter(|(_, c)| ["forwarding-off", "nat-gateway"].contains(c)).collect()
        };
        // An IPv4-only NAT lab needs no IPv6 forwarding; each real server's own gateway is right.
        assert_eq!(nat(&f), vec![]);
        with(&mut f, "lvs", |h| h.ip_forward = Some(0));
        with(&mut f, "web1", |h| h.routes = vec![default_via("10.10.0.99")]);
        assert_eq!(nat(&f), vec![("lvs".to_string(), "forwarding-off"), ("web1".to_string(), "nat-gateway")]);
    }

    /// ip6_tunnel loaded makes ip6tnl0 in the namespace it is loaded from; a host that has the
    /// module but not the device is not told to load it.
    #[test]
    fn ip6_tunnel_missing_only_when_the_module_is_not_loaded() {
        let l = lab("inventories/tun6.toml");
        let missing = |modules: Vec<String>| {
            let mut f = healthy_of("inventories/tun6.toml");
            with(&mut f, "web1", |h| h.modules = modules);
            diagnose(&l, &f)
                .into_iter()
                .filter(|x| x.code == Code::Ip6TunnelMissing)
                .map(|x| x.host)
                .collect::<Vec<_>>()
        };
        assert!(missing(vec![]).contains(&"web1".to_string()));
        assert!(!missing(vec!["ip6_tunnel".into()]).contains(&"web1".to_string()));
    }

    #[test]
    fn a_healthy_dr_lab_has_no_findings() {
        assert_eq!(codes(&lab("inventories/dr.toml"), &healthy_dr()), vec![]);
    }

    #[test]
    fn arp_settings_are_judged_by_the_larger_of_all_and_the_interface() {
        let l = lab("inventories/dr.toml");
        let mut f = healthy_dr();
        with(&mut f, "web1", |h| {
            h.conf.insert("all".into(), conf(0, 2, 0));
        });
        assert_eq!(codes(&l, &f), vec![("web1".to_string(), "arp-ignore")]);
        // The interface's own value counts too: all=0 but eth0=1 is fine.
        with(&mut f, "web1", |h| {
            h.conf.insert("eth0".into(), conf(1, 0, 0));
        });
        assert_eq!(codes(&l, &f), vec![]);
    }

    #[test]
    fn vip_missing_or_on_a_real_interface() {
        let l = lab("inventories/dr.toml");
        let mut f = healthy_dr();
        with(&mut f, "web2", |h| h.addresses.retain(|a| a.dev != "lo"));
        assert_eq!(codes(&l, &f), vec![("web2".to_string(), "vip-missing")]);
        with(&mut f, "web2", |h| h.addresses.push(addr("eth0", "192.168.188.100/32")));
        assert_eq!(codes(&l, &f), vec![("web2".to_string(), "vip-on-interface")]);
    }

    #[test]
    fn gateways_forwarding_and_routes() {
        let l = lab("inventories/dr.toml");
        let mut f = healthy_dr();
        with(&mut f, "web1", |h| h.routes = vec![default_via("192.168.188.8")]);
        with(&mut f, "router", |h| h.ip_forward = Some(0));
        with(&mut f, "client", |h| h.lookups[0].route = None);
        assert_eq!(
            codes(&l, &f),
            vec![
                ("client".to_string(), "vip-unroutable"),
                ("router".to_string(), "forwarding-off"),
                ("web1".to_string(), "dr-gateway-director")
            ]
        );
    }

    #[test]
    fn ipvs_table_problems() {
        let l = lab("inventories/dr.toml");
        let mut f = healthy_dr();
        with(&mut f, "lvs", |h| {
            let t = h.ipvs.as_mut().unwrap();
            t[0].dests.remove(1);
            t[0].dests[0].config.weight = 0;
            t[0].dests[0].config.fwd = FWD_MASQ;
        });
        let got: Vec<&str> = diagnose(&l, &f).iter().map(|x| x.code.as_str()).collect();
        assert_eq!(got, vec!["dest-weight-zero", "dest-forward", "dest-missing"]);
        // Drained (`lvsctl drain`): weight 0, or out of the table, is no problem.
        let key = l.services[0].key();
        with(&mut f, "lvs", |h| {
            for rs in ["web1", "web2"] {
                let d = crate::agent::protocol::Drained { since: 1, services: vec![key], removed: false };
                h.drained.insert(rs.into(), d);
            }
        });
        let got: Vec<&str> = diagnose(&l, &f).iter().map(|x| x.code.as_str()).collect();
        assert_eq!(got, vec!["dest-forward"], "drained real servers: only the wrong method is a problem");
        with(&mut f, "lvs", |h| h.ipvs = None);
        assert_eq!(codes(&l, &f), vec![("lvs".to_string(), "ipvs-missing")]);
    }

    #[test]
    fn tun_real_servers_need_ipip_tunl0_up_and_no_rp_filter() {
        let l = lab("inventories/tun.toml");
        let mut f = healthy_dr();
        with(&mut f, "lvs", |h| {
            for d in &mut h.ipvs.as_mut().unwrap()[0].dests {
                d.config.fwd = FWD_TUNNEL;
                d.config.weight = 1;
            }
            h.ipvs.as_mut().unwrap()[0].entry.config.scheduler = "rr".into();
        });
        with(&mut f, "web1", |h| {
            h.addresses.retain(|a| a.dev != "lo");
            h.addresses.push(addr("tunl0", "192.168.188.100/32"));
            h.links.push(("tunl0".into(), true));
            h.modules.push("ipip".into());
            h.conf.insert("tunl0".into(), conf(1, 2, 1));
        });
        assert!(codes(&l, &f).contains(&("web1".to_string(), "tun-rp-filter")));
        with(&mut f, "web1", |h| {
            h.conf.insert("tunl0".into(), conf(1, 2, 0));
            h.links.retain(|(n, _)| n != "tunl0");
            h.links.push(("tunl0".into(), false));
        });
        assert!(codes(&l, &f).contains(&("web1".to_string(), "tunl0-down")));
        // web2 never got ipip at all.
        assert!(codes(&l, &f).contains(&("web2".to_string(), "ipip-missing")));
    }

    #[test]
    fn an_ipv6_nat_director_needs_ipv6_forwarding_only() {
        let l = lab("inventories/nat6.toml");
        let mut f = Facts::new();
        f.insert("lvs".into(), Ok(HostFacts { ip_forward: Some(0), ip6_forward: Some(1), ..Default::default() }));
        let got = codes(&l, &f);
        assert!(!got.iter().any(|(h, c)| h == "lvs" && *c == "forwarding-off"), "{got:?}");
        with(&mut f, "lvs", |h| h.ip6_forward = Some(0));
        assert!(codes(&l, &f).contains(&("lvs".to_string(), "forwarding-off")));
    }

    #[test]
    fn tun6_real_servers_need_ip6_tunnel_and_ip6tnl0_up() {
        let l = lab("inventories/tun6.toml");
        let mut f = Facts::new();
        f.insert("web1".into(), Ok(HostFacts::default()));
        let mut up_but_down = HostFacts::default();
        up_but_down.modules.push("ip6_tunnel".into());
        up_but_down.links.push(("ip6tnl0".into(), false));
        f.insert("web2".into(), Ok(up_but_down));
        let got = codes(&l, &f);
        assert!(got.contains(&("web1".to_string(), "ip6-tunnel-missing")), "{got:?}");
        assert!(got.contains(&("web2".to_string(), "ip6tnl0-down")), "{got:?}");
        // IPv4's tunnel is not asked of an IPv6-only lab.
        assert!(!got.iter().any(|(_, c)| *c == "ipip-missing" || *c == "tunl0-down"), "{got:?}");
        with(&mut f, "web2", |h| {
            h.links = vec![("ip6tnl0".into(), true)];
        });
        let got = codes(&l, &f);
        assert!(!got.iter().any(|(h, c)| h == "web2" && c.starts_with("ip6")), "{got:?}");
    }

    #[test]
    fn nat_gateway_and_client_placement() {
        let l = lab("inventories/nat.toml");
        let mut f = Facts::new();
        let mut rs = HostFacts { ip_forward: Some(0), ..Default::default() };
        rs.addresses.push(addr("eth0", "10.10.0.81/24"));
        rs.routes.push(default_via("10.10.0.254"));
        f.insert("web1".into(), Ok(rs));
        let mut cl = HostFacts::default();
        cl.addresses.push(addr("eth0", "10.10.0.6/24"));
        f.insert("client".into(), Ok(cl));
        let got = codes(&l, &f);
        assert!(got.contains(&("web1".to_string(), "nat-gateway")), "{got:?}");
        assert!(got.contains(&("client".to_string(), "nat-client-on-rs-subnet")), "{got:?}");
    }

    #[test]
    fn unreachable_hosts_and_drift_are_findings() {
        let l = lab("inventories/dr.toml");
        let mut f = healthy_dr();
        f.insert("web2".into(), Err("unreachable: ssh …".into()));
        with(&mut f, "web1", |h| {
            h.drift.push(crate::agent::protocol::ChangeEvent {
                object: "sysctl net.ipv4.conf.lo.arp_ignore".into(),
                before: "0".into(),
                after: "1".into(),
                reason: String::new(),
                status: crate::agent::protocol::Status::Drift,
                error: None,
                kind: None,
            })
        });
        assert_eq!(codes(&l, &f), vec![("web1".to_string(), "drift"), ("web2".to_string(), "unreachable")]);
    }

    /// The README's table of causes names exactly the codes doctor can report.
    #[test]
    fn the_readme_lists_every_code() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("| code | host | cause |").expect("the table of doctor's codes");
        let table: String =
            readme[start..].lines().take_while(|l| l.starts_with('|')).skip(2).collect::<Vec<_>>().join("\n");
        let mut listed = std::collections::BTreeSet::new();
        for row in table.lines() {
            let first = row.split('|').nth(1).unwrap();
            listed.extend(first.split(',').map(|c| c.trim().trim_matches('`').to_string()));
        }
        let known: std::collections::BTreeSet<String> = Code::ALL.iter().map(|c| c.to_string()).collect();
        assert_eq!(listed, known);
    }

    /// The DR pair as `lvsctl up` leaves it: lvs1 master with the VIP, lvs2 backup.
    fn healthy_dr_ha() -> Facts {
        use crate::agent::ha::{KeepalivedStatus, VrrpState, VrrpStatus};
        let mut f = healthy_of("inventories/dr-ha.toml");
        for (d, state, pid) in [("lvs1", VrrpState::Master, 10), ("lvs2", VrrpState::Backup, 20)] {
            with(&mut f, d, |h| {
                if state == VrrpState::Backup {
                    h.addresses.retain(|a| a.address.to_string() != "192.168.188.100/32");
                }
                let holds = if state == VrrpState::Master { vec!["192.168.188.100".to_string()] } else { vec![] };
                h.keepalived = Some(KeepalivedStatus {
                    running: Some(crate::host::ProcFact { pid, start_time: 1, exe: "/usr/sbin/keepalived".into() }),
                    instances: vec![VrrpStatus { instance: "dr-ha-eth0".into(), state, holds }],
                    source: "keepalived".into(),
                    log: vec![],
                    sync: vec![SyncDaemon {
                        state: if state == VrrpState::Master { SYNC_MASTER } else { SYNC_BACKUP },
                        interface: "eth0".into(),
                        sync_id: 51,
                    }],
                    config_error: None,
                });
                // keepalived took web1 out: its business, not a finding.
                if let Some(t) = h.ipvs.as_mut() {
                    t[0].dests.retain(|d| d.key.addr.to_string() != "192.168.188.81");
                }
            });
        }
        f
    }

    #[test]
    fn a_healthy_pair_has_no_findings() {
        assert_eq!(codes(&lab("inventories/dr-ha.toml"), &healthy_dr_ha()), vec![]);
    }

    #[test]
    fn ha_failures_have_named_causes() {
        use crate::agent::ha::VrrpState;
        let l = lab("inventories/dr-ha.toml");
        // Both masters, both with the VIP: adverts do not cross.
        let mut f = healthy_dr_ha();
        with(&mut f, "lvs2", |h| {
            h.addresses.push(addr("eth0", "192.168.188.100/32"));
            h.keepalived.as_mut().unwrap().instances[0].state = VrrpState::Master;
        });
        assert_eq!(codes(&l, &f), vec![("lvs1".into(), "split-brain")]);
        // keepalived stopped on the master, the backup did not take over: two causes.
        let mut f = healthy_dr_ha();
        with(&mut f, "lvs1", |h| {
            h.addresses.retain(|a| a.address.to_string() != "192.168.188.100/32");
            let k = h.keepalived.as_mut().unwrap();
            k.running = None;
            k.instances[0].state = VrrpState::Stopped;
            k.log = vec!["Stopped Keepalived".into()];
        });
        assert_eq!(codes(&l, &f), vec![("lvs1".into(), "keepalived-down"), ("lvs1".into(), "vip-on-no-director")]);
        // A config keepalived refuses, no sync daemon, another router on the VRID.
        let mut f = healthy_dr_ha();
        with(&mut f, "lvs2", |h| {
            let k = h.keepalived.as_mut().unwrap();
            k.config_error = Some("(keepalived.conf: Line 3) Unknown keyword 'bogus'".into());
            k.sync.clear();
            k.log
                .push("(dr-ha-eth0) ip address associated with VRID 51 not present in MASTER advert : 10.0.0.1".into());
        });
        assert_eq!(
            codes(&l, &f),
            vec![
                ("lvs2".into(), "keepalived-config"),
                ("lvs2".into(), "sync-daemon-down"),
                ("lvs2".into(), "vrid-clash")
            ]
        );
    }

    #[test]
    fn a_nat_real_server_behind_one_director_is_found() {
        let l = lab("inventories/nat-ha.toml");
        let web1 = l.host("web1").unwrap();
        let mut f = Facts::new();
        let mut h = HostFacts { ip_forward: Some(0), ..Default::default() };
        h.links = vec![("lo".into(), true), ("eth0".into(), true)];
        for (dev, a) in web1.all_addresses() {
            h.addresses.push(addr(dev, &a.to_string()));
        }
        h.routes.push(default_via("10.10.0.2"));
        h.routes.push(default_via("fd00:10::1"));
        f.insert("web1".into(), Ok(h));
        assert_eq!(codes(&l, &f), vec![("web1".into(), "nat-gateway-not-floating")]);
    }
}
