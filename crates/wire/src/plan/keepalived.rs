//! What keepalived runs on a director, as the plan carries it: VRRP instances, the sync daemon,
//! a virtual server per checked service (the planner builds it: `plan::keepalived`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ipvs::{Forward, Netmask, Protocol, ServiceKey};
use crate::vocab::CheckKind;

/// Where keepalived reads its configuration (Debian's and RHEL's packages agree).
pub const CONFIG: &str = "/etc/keepalived/keepalived.conf";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeepalivedSpec {
    /// The configuration file the daemon is started with.
    pub config: String,
    /// `router_id` in global_defs: the host's name.
    pub router_id: String,
    /// `lvs_sync_daemon INTERFACE INSTANCE`: IPVS connection sync between the directors.
    pub sync_daemon: Option<(String, String)>,
    pub instances: Vec<VrrpInstance>,
    /// Instances that move together (NAT: the VIPs and the floating gateway).
    pub sync_group: Option<String>,
    pub virtual_servers: Vec<KaVirtualServer>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: u8,
    pub priority: u8,
    pub advert_interval: u32,
    pub preempt: bool,
    /// Unicast VRRP: this director's address and its peer's, on `interface`'s subnet.
    pub unicast: Option<(IpAddr, IpAddr)>,
    pub addresses: Vec<VrrpAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VrrpAddress {
    /// CIDR notation: `192.168.188.100/32`.
    #[schemars(with = "String")]
    pub address: IpNet,
    pub dev: String,
    /// VIP of …, the real servers' gateway.
    pub what: String,
    /// An IPv6 VIP the director holds deprecated (`preferred_lft 0`): never the source of its
    /// own packets (TUN's IPv6-in-IPv6).
    #[serde(default)]
    pub deprecated: bool,
    /// Of the other family than the instance's adverts: in `virtual_ipaddress_excluded`, held
    /// and moved with the instance but not named in its adverts.
    #[serde(default)]
    pub excluded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KaVirtualServer {
    pub label: String,
    /// The service's name in the inventory (metrics label it so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
    /// `virtual_server fwmark N` instead of an address and a port (its real servers have no
    /// port: the packet's is kept).
    #[serde(default)]
    pub fwmark: Option<u32>,
    /// The family of a firewall-mark service (keepalived's `ip_family`).
    #[serde(default)]
    pub ipv6: bool,
    pub scheduler: String,
    /// The scheduler's flags, in keepalived's words (`sh-fallback`, `mh-port`).
    #[serde(default)]
    pub scheduler_flags: Vec<String>,
    /// One-packet scheduling (keepalived's `ops`, ipvsadm's `-o`).
    #[serde(default)]
    pub one_packet: bool,
    pub forward: Forward,
    /// TUN over GUE or GRE: keepalived's words after `lb_kind TUN` (`type gue port 6080 csum`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tun_options: String,
    pub persistence: u32,
    /// keepalived's `persistence_granularity`: a netmask, or an IPv6 prefix length.
    pub netmask: Option<Netmask>,
    /// Seconds between checks (`delay_loop`).
    pub interval: u32,
    /// keepalived sets a failed real server's weight to 0 instead of removing it.
    pub quiesce: bool,
    pub sorry_server: Option<(IpAddr, u16)>,
    /// The sorry server's host in the inventory (named in keepalived.conf's comment above it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_host: Option<String>,
    pub real_servers: Vec<KaRealServer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KaRealServer {
    pub host: String,
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// The keepalived parameter that holds its weight (`LVSCTL_WEIGHT_1_2`, written
    /// `$LVSCTL_WEIGHT_1_2=3` in keepalived.conf and used as `weight $LVSCTL_WEIGHT_1_2`):
    /// where `lvsctl drain` sets a drained real server's weight to 0, keepalived owning the table.
    #[serde(default)]
    pub weight_param: String,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub check: Option<KaCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KaCheck {
    pub kind: CheckKind,
    pub timeout: u32,
    pub retries: u32,
    /// The port checked when it is not the real server's.
    pub port: Option<u16>,
}

/// The name of the keepalived parameter holding the weight of real server `rs` of virtual
/// server `vs` (both counted from 0 in the plan's order).
pub fn weight_param(vs: usize, rs: usize) -> String {
    format!("LVSCTL_WEIGHT_{}_{}", vs + 1, rs + 1)
}

impl KaVirtualServer {
    /// The IPVS service keepalived makes of it.
    pub fn key(&self) -> ServiceKey {
        match self.fwmark {
            Some(fwmark) => ServiceKey::Mark { fwmark, ipv6: self.ipv6 },
            None => ServiceKey::addr(self.protocol, self.vip, self.port),
        }
    }

    /// keepalived's `lb_kind`.
    pub fn lb_kind(&self) -> &'static str {
        match self.forward {
            Forward::Masq => "NAT",
            Forward::Route => "DR",
            Forward::Tunnel => "TUN",
        }
    }
}
