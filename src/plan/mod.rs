//! The plan: a pure function from a validated lab to, per host, the ordered desired state.
//!
//! The same `HostPlan` is printed by `lvsctl plan`, rendered into templates, persisted on the host
//! for boot, and sent as JSON to the agent, which compares it with live state.

pub mod files;
pub mod keepalived;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::inventory::{Family, Host, Lab, Mode, Netmask, Protocol, Role, SchedulerFlag, Service};
use crate::modes::Profile;
use crate::templates::{RenderError, Templates};

/// The kernel caps address labels at 15 bytes (IFNAMSIZ - 1).
const LABEL_MAX: usize = 15;
/// Suffix of the label lvsctl puts on every address it adds: its ownership mark.
pub const LABEL_SUFFIX: &str = ":lvs";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModuleSpec {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SysctlSpec {
    /// sysctl(8) notation; a '.' inside an interface name is written '/' (`net.ipv4.conf.eth0/100.rp_filter`).
    pub key: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinkSpec {
    pub dev: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AddressSpec {
    pub dev: String,
    /// CIDR notation: `192.168.188.100/32`.
    #[schemars(with = "String")]
    pub address: ipnet::IpNet,
    pub label: Option<String>,
    /// IPv6: usable at once, without duplicate address detection (`ip addr add … nodad`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodad: bool,
    /// IPv6: never chosen as a source address (`preferred_lft 0`), still accepting connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RouteSpec {
    /// CIDR notation: `192.168.188.100/32`.
    #[schemars(with = "String")]
    pub destination: ipnet::IpNet,
    pub gateway: Option<std::net::IpAddr>,
    pub dev: Option<String>,
    pub reason: String,
}

pub use crate::ipvs::Forward;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DestSpec {
    /// The inventory host behind this destination (for messages).
    pub host: String,
    pub address: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VirtualServiceSpec {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
    /// A firewall-mark service (`ipvsadm -f`) of the VIP's family; protocol and port are not
    /// part of it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    pub scheduler: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_flags: Vec<SchedulerFlag>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// Persistence timeout in seconds; 0 = off.
    pub persistence: u32,
    pub netmask: Option<Netmask>,
    pub destinations: Vec<DestSpec>,
    pub reason: String,
}

impl VirtualServiceSpec {
    /// Its identity in the IPVS table: the firewall mark and family, or protocol, VIP and port.
    pub fn key(&self) -> crate::ipvs::ServiceKey {
        crate::ipvs::ServiceKey::of(self.protocol, self.vip, self.port, self.fwmark)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileSpec {
    pub path: String,
    /// Octal, as chmod takes it: `"0644"`.
    #[serde(with = "octal_mode")]
    #[schemars(with = "String", regex(pattern = r"^0[0-7]{3}$"))]
    pub mode: u32,
    pub content: String,
    pub reason: String,
    /// A program that must accept the content before it replaces the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<FileCheck>,
    /// The file holds the runtime part of this very plan, which the boot unit re-applies.
    // Requests carry its content empty and the agent fills it in from the plan it received
    // (`HostPlan::strip_derived`, `fill_derived`): a plan crosses the wire once, not twice (at
    // 10,000 destinations, 2.7 MB of 4.1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runtime_plan: bool,
}

/// A file mode as chmod(1) writes it (`"0644"`), not as the decimal 420; a number is read too.
pub mod octal_mode {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Mode {
            Octal(String),
            Number(u32),
        }
        let m = match Mode::deserialize(d)? {
            Mode::Number(n) => n,
            Mode::Octal(s) => {
                u32::from_str_radix(&s, 8).map_err(|_| D::Error::custom(format!("mode {s:?} is not octal")))?
            }
        };
        if m > 0o7777 {
            return Err(D::Error::custom(format!("mode {m:o} has bits beyond 07777")));
        }
        Ok(m)
    }
}

/// How a file's content is checked on the host before it is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileCheck {
    /// `keepalived -t -f FILE`
    Keepalived,
}

/// Everything lvsctl ensures on one host, in the order the agent applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostPlan {
    pub lab: String,
    pub host: String,
    pub role: Role,
    pub modules: Vec<ModuleSpec>,
    pub sysctls: Vec<SysctlSpec>,
    pub links_up: Vec<LinkSpec>,
    pub addresses: Vec<AddressSpec>,
    pub routes: Vec<RouteSpec>,
    pub ipvs: Vec<VirtualServiceSpec>,
    pub files: Vec<FileSpec>,
    /// The systemd unit that re-applies the runtime state at boot (enabled when systemd runs).
    pub boot_unit: Option<String>,
    /// Directors of a lab that runs keepalived: what it runs (its config is one of `files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalived: Option<keepalived::KeepalivedSpec>,
    /// Directors of a lab with firewall-mark services: the nftables table that marks their packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables: Option<NftTableSpec>,
}

/// lvsctl's own nftables table (`table inet lvsctl-LAB`): one chain at prerouting (priority
/// mangle, before IPVS sees the packets) with a rule per match of each firewall-mark service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NftTableSpec {
    pub name: String,
    pub rules: Vec<MarkRuleSpec>,
    pub reason: String,
}

/// Packets to `vip` with `protocol` to one of `ports` get `mark`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MarkRuleSpec {
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub ports: Vec<u16>,
    pub mark: u32,
    /// The service's name or label, as the rule's comment.
    pub service: String,
}

impl HostPlan {
    fn new(lab: &Lab, host: &Host) -> Self {
        Self::empty(&lab.name, &host.name, host.role)
    }

    /// A plan that wants nothing (yet).
    pub fn empty(lab: &str, host: &str, role: Role) -> Self {
        HostPlan {
            lab: lab.to_string(),
            host: host.to_string(),
            role,
            modules: vec![],
            sysctls: vec![],
            links_up: vec![],
            addresses: vec![],
            routes: vec![],
            ipvs: vec![],
            files: vec![],
            boot_unit: None,
            keepalived: None,
            nftables: None,
        }
    }

    /// The runtime part only: what the boot unit re-applies (no files, no unit).
    pub fn runtime(&self) -> HostPlan {
        HostPlan { files: vec![], boot_unit: None, ..self.clone() }
    }

    /// The runtime part as the boot unit reads it: pretty JSON and a newline.
    pub fn runtime_json(&self) -> String {
        let runtime = self.runtime();
        let mut json = serde_json::to_string_pretty(&runtime).expect("plans serialize");
        json.push('\n');
        json
    }

    /// The plan as a request carries it: the content of files derived from the plan left out.
    pub fn strip_derived(&mut self) {
        for f in self.files.iter_mut().filter(|f| f.runtime_plan) {
            f.content = String::new();
        }
    }

    /// The plan as the controller made it, from one `strip_derived` left.
    pub fn fill_derived(&mut self) {
        if self.files.iter().any(|f| f.runtime_plan) {
            let json = self.runtime_json();
            for f in self.files.iter_mut().filter(|f| f.runtime_plan) {
                f.content = json.clone();
            }
        }
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

/// The label lvsctl gives addresses on `dev` (`lo:lvs`), if the kernel's 15-byte limit allows it.
pub fn label_for(dev: &str) -> Option<String> {
    let l = format!("{dev}{LABEL_SUFFIX}");
    (l.len() <= LABEL_MAX).then_some(l)
}

/// sysctl key for an interface setting, in sysctl(8) notation.
pub fn conf_key(dev: &str, setting: &str) -> String {
    format!("net.ipv4.conf.{}.{setting}", dev.replace('.', "/"))
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
        Role::Director => plan_director(lab, host, &mut p),
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
            .find_map(|s| match s.mode.profile().real_server.gateway {
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
        p.routes.push(RouteSpec {
            destination: default_route_of(family),
            gateway: Some(gw.via),
            dev: gw.dev.clone(),
            reason,
        });
    }
    p
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

/// The name of a lab's nftables table.
pub fn nft_table_name(lab: &str) -> String {
    format!("lvsctl-{lab}")
}

/// The marking rules of a lab's firewall-mark services (None: it has none).
pub fn nft_table(lab: &Lab) -> Option<NftTableSpec> {
    let rules: Vec<MarkRuleSpec> = lab
        .services
        .iter()
        .filter_map(|s| s.fwmark.as_ref().map(|f| (s, f)))
        .flat_map(|(s, f)| {
            f.matches.iter().map(move |m| MarkRuleSpec {
                vip: m.vip,
                protocol: m.protocol,
                ports: m.ports.clone(),
                mark: f.mark,
                service: s.name.clone().unwrap_or_else(|| format!("services[{}]", s.index)),
            })
        })
        .collect();
    if rules.is_empty() {
        return None;
    }
    let marks: BTreeSet<u32> = rules.iter().map(|r| r.mark).collect();
    let marks: Vec<String> = marks.iter().map(|m| m.to_string()).collect();
    Some(NftTableSpec {
        name: nft_table_name(&lab.name),
        rules,
        reason: format!("marks the packets of firewall-mark service(s) {} before IPVS sees them", marks.join(", ")),
    })
}

fn plan_director(lab: &Lab, host: &Host, p: &mut HostPlan) {
    p.module("ip_vs", "IPVS, the kernel's load balancer");
    for s in &lab.services {
        p.module(&format!("ip_vs_{}", s.scheduler), &format!("scheduler {} of {}", s.scheduler, s.label()));
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
    if lab.services.iter().any(|s| s.on_failure == crate::inventory::OnFailure::Quiesce && s.persistence > 0) {
        p.sysctl(
            "net.ipv4.vs.expire_quiescent_template",
            "1",
            "a quiesced real server also loses its persistent clients (their templates expire)",
        );
    }
    if lab.services.iter().any(|s| s.health_check.is_some() && s.on_failure == crate::inventory::OnFailure::Remove) {
        p.sysctl(
            "net.ipv4.vs.expire_nodest_conn",
            "1",
            "a client port still mapped to a real server keepalived took out is freed at once (the client's retry reaches a healthy one) instead of failing until the entry expires",
        );
    }
    p.keepalived = keepalived::spec(lab, host);
    p.nftables = nft_table(lab);
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
        let deprecated = vip.is_ipv6() && users.iter().any(|s| s.mode.profile().ipv6.director_vip_deprecated);
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
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
            fwmark: s.fwmark.as_ref().map(|f| f.mark),
            scheduler: s.scheduler.clone(),
            scheduler_flags: s.scheduler_flags.clone(),
            one_packet: s.one_packet,
            persistence: s.persistence,
            netmask: s.netmask,
            destinations: s
                .real_servers
                .iter()
                .map(|b| DestSpec {
                    host: b.host.clone(),
                    address: b.address,
                    port: b.port,
                    forward: s.mode.profile().forward,
                    weight: b.weight,
                    u_threshold: b.u_threshold,
                    l_threshold: b.l_threshold,
                })
                .collect(),
            reason: format!("service {} ({} mode)", s.label(), s.mode),
        });
    }
}

/// The profiles of the modes `services` use, in `modes::ALL` order.
fn modes_of<'a>(services: impl Iterator<Item = &'a Service>) -> Vec<&'static Profile> {
    let used: BTreeSet<Mode> = services.map(|s| s.mode).collect();
    crate::modes::ALL.into_iter().filter(|p| used.contains(&p.mode)).collect()
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
    for (served, v6) in [(&v4, false), (&v6, true)] {
        for profile in modes_of(served.iter().copied()) {
            let on = if v6 { &profile.ipv6.real_server.vip } else { &profile.real_server.vip };
            let Some(on) = on else { continue };
            let of_mode: Vec<&Service> = served.iter().copied().filter(|s| s.mode == profile.mode).collect();
            for vip in vips(&of_mode) {
                p.vip(on.dev, vip, false, on.reason.replace("{vip}", &vip.to_string()));
            }
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
