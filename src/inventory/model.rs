//! The validated lab: what the rest of lvsctl works from. Every value here passed validation.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use crate::wire::ipvs::Encap;

/// IPVS services are TCP, UDP or SCTP (the IPVS codec owns the type); an address family; a
/// persistence granularity (a netmask for IPv4, a prefix length for IPv6).
pub use crate::ipvs::{Family, Netmask, Protocol};
/// The forwarding modes (their requirements are in `modes/`).
pub use crate::modes::Mode;
/// The roles, scheduler flags and health-check kinds plans carry.
pub use crate::wire::service::VirtualService;
pub use crate::wire::vocab::{CheckKind, Role, SchedulerFlag};

/// IPVS schedulers shipped with Linux (each is the module `ip_vs_<name>`).
pub const SCHEDULERS: [&str; 13] =
    ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"];
pub const DEFAULT_SCHEDULER: &str = "wlc";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// The host key must already be in known_hosts.
    #[default]
    Strict,
    /// Unknown hosts are added on first contact; changed keys are still refused.
    AcceptNew,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SshTarget {
    /// Apply on this machine, without SSH.
    Local,
    /// An address or host name (resolved by ssh, so ssh_config aliases work).
    Remote(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSettings {
    pub target: SshTarget,
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
    pub host_key: HostKeyPolicy,
    pub known_hosts: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub connect_timeout: u32,
    /// How the agent gets root when the login user is not root (`become`).
    #[serde(rename = "become", default, skip_serializing_if = "Become::is_none")]
    pub become_: Become,
}

/// `become`: how lvsctl's agent runs as root after logging in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Become {
    /// The login user runs the agent itself (root logins).
    #[default]
    None,
    /// `sudo -n`: never prompts; a password requirement is an error that says so.
    Sudo,
}

impl Become {
    pub fn is_none(&self) -> bool {
        *self == Become::None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub addresses: Vec<IpNet>,
}

/// A default route lvsctl ensures: one per family at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub via: IpAddr,
    /// The device a link-local next hop is reached through (`fe80::1%eth0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Not written but derived (NAT real servers route through the director).
    #[serde(default)]
    pub defaulted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub role: Role,
    pub ssh: SshSettings,
    /// The default routes lvsctl ensures, at most one per family.
    pub gateways: Vec<Gateway>,
    pub interfaces: Vec<Interface>,
    /// Director: the device that holds VIPs (None: the interface on the VIP's subnet, else `lo`).
    pub vip_device: Option<String>,
    /// Real server: the addresses the director sends to (TUN across routers, or to pick one of
    /// several), at most one per family.
    pub address: Vec<IpAddr>,
    /// Director of an HA pair: its VRRP priority (the higher one is master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Director: where its exporter listens, instead of `[metrics] port` on its SSH address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Host {
    pub fn all_addresses(&self) -> impl Iterator<Item = (&str, IpNet)> {
        self.interfaces.iter().flat_map(|i| i.addresses.iter().map(move |a| (i.name.as_str(), *a)))
    }

    /// This host's address on the subnet of `other`, with the interface holding it.
    pub fn address_on_subnet_of(&self, other: IpNet) -> Option<(&str, IpNet)> {
        self.all_addresses().find(|(_, a)| a.trunc() == other.trunc())
    }

    /// The interface whose subnet contains `ip`.
    pub fn interface_for(&self, ip: IpAddr) -> Option<(&str, IpNet)> {
        self.all_addresses().find(|(_, a)| a.contains(&ip))
    }

    pub fn has_address(&self, ip: IpAddr) -> bool {
        self.all_addresses().any(|(_, a)| a.addr() == ip)
    }

    /// The default route of `family` lvsctl ensures.
    pub fn gateway(&self, family: Family) -> Option<&Gateway> {
        self.gateways.iter().find(|g| Family::of_addr(g.via) == family)
    }

    /// Whether one of its interfaces has an address of `family`.
    pub fn has_family(&self, family: Family) -> bool {
        self.all_addresses().any(|(_, a)| Family::of_addr(a.addr()) == family)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub host: String,
    /// The address in the IPVS rule (of the service's family).
    pub address: IpAddr,
    /// The port in the IPVS rule (differs from the service port only with NAT port mapping).
    pub port: u16,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Position in the inventory's `[[services]]` list.
    pub index: usize,
    pub name: Option<String>,
    /// What IPVS runs: protocol, VIP (a firewall-mark service's is its first match's; its family
    /// is the service's) and port (0 for a firewall-mark service), or the mark; the scheduler
    /// and persistence.
    pub ipvs: VirtualService,
    /// A firewall-mark service's packets, all of its family (a dual-stack one is one `Service`
    /// per family, with the same mark): the director's nftables rules set the mark on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MarkMatch>,
    pub mode: Mode,
    /// TUN: how the director wraps the packets (IP-in-IP unless the inventory says GUE or GRE).
    #[serde(default, skip_serializing_if = "Encap::is_ipip")]
    pub encap: Encap,
    /// NAT: one-armed (`snat = true`): the director also puts its own address as the requests'
    /// source, so the real servers' replies come back to it through their own routes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snat: bool,
    pub real_servers: Vec<Backend>,
    /// How keepalived checks each real server (None: no checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
}

/// Packets to `vip` with `protocol`, to any of `ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkMatch {
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub ports: Vec<u16>,
}

/// `health_check`: what keepalived's checker does for each real server of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Seconds between two checks (keepalived's delay_loop, ldirectord's checkinterval).
    pub interval: u32,
    /// Seconds a check may take (connect_timeout, checktimeout).
    pub timeout: u32,
    /// Failed checks in a row before the real server counts as down.
    pub retries: u32,
    /// The port to check (None: the real server's port).
    pub port: Option<u16>,
}

/// What happens to a real server that fails its health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// It leaves the IPVS table.
    #[default]
    Remove,
    /// Weight 0: no new connections, established ones finish (ldirectord's quiescent).
    Quiesce,
}

/// Where a service's clients go when no real server is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SorryServer {
    /// The inventory host (a sorry-server or a director), None for a machine outside the inventory.
    pub host: Option<String>,
    /// The address in the IPVS rule (for a director serving itself: 127.0.0.1 or ::1, local delivery).
    pub address: IpAddr,
    pub port: u16,
}

/// `[ipvs]`: the directors' IPVS settings; what is left out stays as the kernel has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsSettings {
    pub timeouts: IpvsTimeoutSettings,
    /// `net.ipv4.vs.NAME` = value, in the order of `keys::IPVS_SETTINGS`.
    pub sysctl: Vec<(String, i64)>,
}

/// `[ipvs] timeouts`, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsTimeoutSettings {
    pub tcp: Option<u32>,
    pub tcp_fin: Option<u32>,
    pub udp: Option<u32>,
}

impl IpvsTimeoutSettings {
    pub fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.tcp_fin.is_none() && self.udp.is_none()
    }
}

/// `[ha]`: the director pair's VRRP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ha {
    pub virtual_router_id: u8,
    /// Seconds between VRRP adverts.
    pub advert_interval: u32,
    /// IPVS connection sync between the directors.
    pub sync: bool,
    pub preempt: bool,
    /// VRRP to the other director's address instead of multicast.
    pub unicast: bool,
    /// NAT: the real servers' gateways, held by the master on the real-server side (one per family).
    pub floating_gateway: Vec<IpNet>,
}

impl Service {
    /// What the service's mode (and, for TUN, its tunnel) requires: see `modes/`.
    pub fn profile(&self) -> &'static crate::modes::Profile {
        crate::modes::profile_of(self.mode, self.encap.tun_type, self.snat)
    }

    /// The address the director sends `host`'s share of this service to (real server or sorry server).
    pub fn address_of(&self, host: &str) -> Option<IpAddr> {
        self.real_servers
            .iter()
            .find(|b| b.host == host)
            .map(|b| b.address)
            .or_else(|| self.sorry_server.as_ref().filter(|x| x.host.as_deref() == Some(host)).map(|x| x.address))
    }

    /// The port `host` serves this service on: its real-server port, or the sorry server's.
    pub fn port_of(&self, host: &str) -> Option<u16> {
        self.real_servers
            .iter()
            .find(|b| b.host == host)
            .map(|b| b.port)
            .or_else(|| self.sorry_server.as_ref().filter(|x| x.host.as_deref() == Some(host)).map(|x| x.port))
    }

    /// Whether keepalived owns this service's IPVS entries (it checks its real servers or has a
    /// sorry server); lvsctl programs the others itself.
    pub fn keepalived_managed(&self) -> bool {
        self.health_check.is_some() || self.sorry_server.is_some()
    }

    /// A short name for messages: `tcp 192.168.188.100:80`.
    /// `192.168.188.100:80`, `[2001:db8::100]:80`.
    pub fn endpoint(&self) -> String {
        std::net::SocketAddr::new(self.ipvs.vip, self.ipvs.port).to_string()
    }

    /// Its IPVS service.
    pub fn key(&self) -> crate::ipvs::ServiceKey {
        self.ipvs.key()
    }

    /// Every VIP it takes packets for: one, or each of a firewall-mark service's matches.
    pub fn vips(&self) -> Vec<IpAddr> {
        match self.ipvs.fwmark {
            Some(_) => {
                let mut v: Vec<IpAddr> = Vec::new();
                for m in &self.matches {
                    if !v.contains(&m.vip) {
                        v.push(m.vip);
                    }
                }
                v
            }
            None => vec![self.ipvs.vip],
        }
    }

    /// Where clients send requests: (protocol, address, port), each port of each match for a
    /// firewall-mark service.
    pub fn targets(&self) -> Vec<(Protocol, IpAddr, u16)> {
        match self.ipvs.fwmark {
            Some(_) => self.matches.iter().flat_map(|m| m.ports.iter().map(move |p| (m.protocol, m.vip, *p))).collect(),
            None => vec![(self.ipvs.protocol, self.ipvs.vip, self.ipvs.port)],
        }
    }

    pub fn family(&self) -> Family {
        Family::of_addr(self.ipvs.vip)
    }

    pub fn label(&self) -> String {
        let what = match self.ipvs.fwmark {
            // One port of it, as verify probes it.
            Some(mark) if self.ipvs.port != 0 => format!("fwmark {mark}: {} {}", self.ipvs.protocol, self.endpoint()),
            Some(mark) if self.family() == Family::Ipv6 => format!("fwmark {mark} ipv6"),
            Some(mark) => format!("fwmark {mark}"),
            None => format!("{} {}", self.ipvs.protocol, self.endpoint()),
        };
        match &self.name {
            Some(n) => format!("{n} ({what})"),
            None => what,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    /// (host, interface) pairs joined on this L2 segment.
    pub members: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    pub segments: Vec<Segment>,
    /// The management network carrying every host's `ssh` address (IPv4 or IPv6).
    pub management: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub mode: Mode,
    pub file: PathBuf,
    /// Sorted by name.
    pub hosts: Vec<Host>,
    pub services: Vec<Service>,
    pub lab: Option<LabSpec>,
    /// Two directors: their VRRP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<Ha>,
    /// `[ipvs]`: the directors' IPVS settings.
    #[serde(default)]
    pub ipvs: IpvsSettings,
    /// `[metrics]`: every director serves Prometheus's /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSettings>,
}

/// `[metrics]`: the port lvsctl's exporter listens on, on each director's SSH address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSettings {
    pub port: u16,
}

/// Every VIP of `services`, each once, in the order the services name them.
pub fn unique_vips<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<IpAddr> {
    let mut all: Vec<IpAddr> = Vec::new();
    for v in services.into_iter().flat_map(|s| s.vips()) {
        if !all.contains(&v) {
            all.push(v);
        }
    }
    all
}

impl Lab {
    /// Every VIP of the lab, each once, in the order the services name them.
    pub fn vips(&self) -> Vec<IpAddr> {
        unique_vips(&self.services)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The host with `ip`, of either family, on one of its interfaces.
    pub fn host_with_ip(&self, ip: IpAddr) -> Option<&Host> {
        self.hosts.iter().find(|h| h.has_address(ip))
    }

    /// The director, or with an HA pair the one of higher priority (the master while both run).
    pub fn director(&self) -> Option<&Host> {
        self.directors().max_by_key(|h| h.priority.unwrap_or(0))
    }

    /// One director, or the two of an HA pair (in name order).
    pub fn directors(&self) -> impl Iterator<Item = &Host> {
        self.hosts_with_role(Role::Director)
    }

    /// Where `director`'s exporter listens: its own `metrics_listen`, else `[metrics] port` on its
    /// SSH address (validation made sure that is an address); None without either.
    pub fn metrics_listen(&self, director: &Host) -> Option<std::net::SocketAddr> {
        if let Some(a) = director.metrics_listen {
            return Some(a);
        }
        let port = self.metrics?.port;
        match &director.ssh.target {
            SshTarget::Remote(s) => s.parse::<IpAddr>().ok().map(|ip| std::net::SocketAddr::new(ip, port)),
            SshTarget::Local => None,
        }
    }

    /// Whether the directors run keepalived: an HA pair, or a service it manages.
    pub fn uses_keepalived(&self) -> bool {
        self.ha.is_some() || self.services.iter().any(Service::keepalived_managed)
    }

    pub fn hosts_with_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    /// Services that `host` is a real server (or the sorry server) of.
    pub fn services_of(&self, host: &str) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(move |s| {
            s.real_servers.iter().any(|b| b.host == host)
                || s.sorry_server.as_ref().is_some_and(|x| x.host.as_deref() == Some(host))
        })
    }
}
