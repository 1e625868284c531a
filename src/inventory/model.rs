//! The validated lab: what the rest of lvsctl works from. Every value here passed validation.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// IPVS services are TCP, UDP or SCTP (the IPVS codec owns the type).
pub use crate::ipvs::Protocol;
/// The forwarding modes (their requirements are in `modes/`).
pub use crate::modes::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Client,
    Router,
    Director,
    RealServer,
    /// Answers a service's clients when every real server failed its health check (keepalived's
    /// `sorry_server`): provisioned like a real server of that service.
    SorryServer,
}

impl Role {
    pub const NAMES: [&'static str; 5] = ["client", "router", "director", "real-server", "sorry-server"];
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "client" => Some(Role::Client),
            "router" => Some(Role::Router),
            "director" => Some(Role::Director),
            "real-server" => Some(Role::RealServer),
            "sorry-server" => Some(Role::SorryServer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Router => "router",
            Role::Director => "director",
            Role::RealServer => "real-server",
            Role::SorryServer => "sorry-server",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub addresses: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub role: Role,
    pub ssh: SshSettings,
    /// The default route lvsctl ensures.
    pub gateway: Option<Ipv4Addr>,
    /// True when `gateway` was not written but derived (NAT real servers route through the director).
    pub gateway_defaulted: bool,
    pub interfaces: Vec<Interface>,
    /// Director: the device that holds VIPs (None: the interface on the VIP's subnet, else `lo`).
    pub vip_device: Option<String>,
    /// Real server: the address the director sends to (TUN across routers, or to pick one of several).
    pub address: Option<Ipv4Addr>,
    /// Director of an HA pair: its VRRP priority (the higher one is master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

impl Host {
    pub fn all_addresses(&self) -> impl Iterator<Item = (&str, Ipv4Net)> {
        self.interfaces.iter().flat_map(|i| i.addresses.iter().map(move |a| (i.name.as_str(), *a)))
    }

    /// This host's address on the subnet of `other`, with the interface holding it.
    pub fn address_on_subnet_of(&self, other: Ipv4Net) -> Option<(&str, Ipv4Net)> {
        self.all_addresses().find(|(_, a)| a.trunc() == other.trunc())
    }

    /// The interface whose subnet contains `ip`.
    pub fn interface_for(&self, ip: Ipv4Addr) -> Option<(&str, Ipv4Net)> {
        self.all_addresses().find(|(_, a)| a.contains(&ip))
    }

    pub fn has_address(&self, ip: Ipv4Addr) -> bool {
        self.all_addresses().any(|(_, a)| a.addr() == ip)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub host: String,
    /// The address in the IPVS rule.
    pub address: Ipv4Addr,
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
    pub vip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    pub scheduler: String,
    /// Persistence timeout in seconds; 0 = off.
    pub persistence: u32,
    pub netmask: Option<Ipv4Addr>,
    pub mode: Mode,
    pub real_servers: Vec<Backend>,
    /// How keepalived checks each real server (None: no checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connection opens.
    Tcp,
    /// `GET path` answers `status` (and, with `expect`, a body that contains it).
    Http { path: String, status: u16, expect: Option<String> },
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
    /// The address in the IPVS rule (for a director serving itself: 127.0.0.1, local delivery).
    pub address: Ipv4Addr,
    pub port: u16,
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
    /// NAT: the real servers' gateway, held by the master on the real-server side.
    pub floating_gateway: Option<Ipv4Net>,
}

impl Service {
    /// The address the director sends `host`'s share of this service to (real server or sorry server).
    pub fn address_of(&self, host: &str) -> Option<Ipv4Addr> {
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
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({} {}:{})", self.protocol, self.vip, self.port),
            None => format!("{} {}:{}", self.protocol, self.vip, self.port),
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
    /// The management network carrying every host's `ssh` address.
    pub management: Ipv4Net,
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
}

impl Lab {
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The director, or with an HA pair the one of higher priority (the master while both run).
    /// The host with `ip` on one of its interfaces.
    /// The host with this address, of either family.
    pub fn host_with_ip(&self, ip: std::net::IpAddr) -> Option<&Host> {
        match ip {
            std::net::IpAddr::V4(a) => self.host_with_address(a),
            std::net::IpAddr::V6(_) => None,
        }
    }

    pub fn host_with_address(&self, ip: Ipv4Addr) -> Option<&Host> {
        self.hosts.iter().find(|h| h.has_address(ip))
    }

    pub fn director(&self) -> Option<&Host> {
        self.directors().max_by_key(|h| h.priority.unwrap_or(0))
    }

    /// One director, or the two of an HA pair (in name order).
    pub fn directors(&self) -> impl Iterator<Item = &Host> {
        self.hosts_with_role(Role::Director)
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
