//! What a host is, as facts: its addresses, routes, files, processes and IPVS table as the agent
//! reads them and reports them (the effects that read and change them: `host`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ipvs::{DestEntry, ServiceEntry};

/// The route protocol number that marks routes lvsctl added (`ip route … proto 76`).
/// Any number unused by routing daemons works; 76 is 'L'.
pub const RTPROT_LVSCTL: u8 = 76;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrFact {
    pub dev: String,
    pub address: IpNet,
    pub label: Option<String>,
    /// IPv6: added without duplicate address detection (usable at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodad: bool,
    /// IPv6: preferred lifetime 0, so never chosen as a source address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
}

/// A unicast route of the main table, IPv4 or IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFact {
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub metric: u32,
    pub protocol: u8,
    pub scope: u8,
    pub prefsrc: Option<IpAddr>,
    /// The MSS TCP advertises for connections over it (`ip route … advmss N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
}

/// `default` (`default ipv6`) or the destination network.
pub fn route_destination(d: IpNet) -> String {
    match d {
        IpNet::V4(_) if d.prefix_len() == 0 => "default".into(),
        IpNet::V6(_) if d.prefix_len() == 0 => "default ipv6".into(),
        _ => d.to_string(),
    }
}

impl RouteFact {
    pub fn describe(&self) -> String {
        let mut s = route_destination(self.destination);
        if let Some(g) = self.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if let Some(d) = &self.dev {
            s.push_str(&format!(" dev {d}"));
        }
        if self.protocol != 0 {
            s.push_str(&format!(" proto {}", proto_name(self.protocol)));
        }
        if self.metric != 0 {
            s.push_str(&format!(" metric {}", self.metric));
        }
        if let Some(m) = self.advmss {
            s.push_str(&format!(" advmss {m}"));
        }
        s
    }
}

pub fn proto_name(p: u8) -> String {
    match p {
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        16 => "dhcp".into(),
        RTPROT_LVSCTL => "lvsctl".into(),
        n => n.to_string(),
    }
}

/// Where the kernel would send a packet to some address (`ip route get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub destination: IpAddr,
    /// None when there is no route (unreachable).
    pub route: Option<LookupRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRoute {
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    /// The destination is one of this host's own addresses.
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFact {
    pub content: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsService {
    pub entry: ServiceEntry,
    pub dests: Vec<DestEntry>,
}

/// One process, named so that a pid the kernel reuses later is never taken for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcFact {
    pub pid: u32,
    /// When it started, in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// Its executable (`/proc/PID/exe`).
    pub exe: String,
}

impl ProcFact {
    /// Whether `other` is this very process (same pid, start time and executable).
    pub fn same(&self, other: &ProcFact) -> bool {
        self == other
    }
}

/// The family of lvsctl's nftables table: one table for IPv4 and IPv6.
pub const NFT_FAMILY: &str = "inet";
/// A table's objects (chains, rules, sets, …), each as `nft -j` lists it, without its handle.
pub type NftObjects = Vec<serde_json::Value>;
