//! The live state `lvsctl doctor` reasons about, as a host reports it in one go (the agent
//! reads it: `agent::facts`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::event::ChangeEvent;
use crate::host::{AddrFact, IpvsService, Lookup, RouteFact};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsRequest {
    /// Where would this host send packets for these addresses (`ip route get`)?
    #[serde(default)]
    pub lookups: Vec<IpAddr>,
    /// Is each of these programs installed (`up` asks before it changes any host)?
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// Before reading, wait until the IPVS counters account for traffic just sent (verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_counted: Option<CountedWait>,
    /// Read these sysctls too, by dotted name (`lvsctl import --from-host`): `net.*` settings
    /// and `kernel.hostname`; any other name is refused by the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<String>,
    /// Read IPVS's connection timeouts (when IPVS is loaded).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipvs_timeouts: bool,
    /// Is anything but this lab's exporter listening on this TCP address (`up` asks before it
    /// changes any host)?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_listen: Option<std::net::SocketAddr>,
    /// Which of these kernel modules can the host not load (neither loaded, built in, nor
    /// installed for its kernel)? `up` asks before it changes any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// Which client ports does IPVS hold connection entries for, to each of these addresses
    /// (`ServiceKey::Addr`: protocol, VIP, port)? verify sends from other ports: a request
    /// from a held port goes where that entry points, whatever the table says now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_ports: Vec<crate::ipvs::ServiceKey>,
}

/// Whether a host reads sysctl `name` for a facts request: `net.*` and `kernel.hostname`, named
/// by dotted words of letters, digits, `_` and `-` (nothing that leaves /proc/sys/net).
pub fn readable_sysctl(name: &str) -> bool {
    let words_ok =
        name.split('.').all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    words_ok && (name.starts_with("net.") || name == "kernel.hostname")
}

/// IPVS adds up its per-CPU counters about every two seconds (later on a loaded machine), so a
/// table read right after some traffic may not count it yet. The host waits until each service
/// has counted at least `inpkts` packets in total, checking every `POLL`, or until `max_ms` has
/// passed (traffic that bypassed the director is never counted: the caller judges that).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedWait {
    pub inpkts: Vec<(crate::ipvs::ServiceKey, u64)>,
    pub max_ms: u64,
}

/// Whether `table` counts at least the packets `want` names, per service (its destinations'
/// sum).
pub fn counted(table: &[IpvsService], want: &[(crate::ipvs::ServiceKey, u64)]) -> bool {
    want.iter().all(|(key, n)| {
        table
            .iter()
            .find(|s| s.entry.key == *key)
            .is_some_and(|s| s.dests.iter().map(|d| d.stats.inpkts).sum::<u64>() >= *n)
    })
}

/// Per-interface IPv4 settings (`net.ipv4.conf.DEV.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conf {
    pub arp_ignore: Option<u32>,
    pub arp_announce: Option<u32>,
    pub rp_filter: Option<u32>,
    pub forwarding: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    /// (name, administratively up)
    pub links: Vec<(String, bool)>,
    pub addresses: Vec<AddrFact>,
    pub routes: Vec<RouteFact>,
    /// Keyed by device, plus `all` and `default`.
    pub conf: BTreeMap<String, Conf>,
    pub ip_forward: Option<u32>,
    /// `net.ipv6.conf.all.forwarding`.
    #[serde(default)]
    pub ip6_forward: Option<u32>,
    pub modules: Vec<String>,
    /// Open GUE (fou) ports: (port, IPv6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gue_ports: Vec<(u16, bool)>,
    /// None: IPVS is not loaded.
    pub ipvs: Option<Vec<IpvsService>>,
    pub lookups: Vec<Lookup>,
    /// How the host differs from its plan (what `status` reports).
    pub drift: Vec<ChangeEvent>,
    /// A director of a keepalived lab: what keepalived does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalived: Option<crate::ha::KeepalivedStatus>,
    /// Each program asked for: its path, None when it is not installed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub programs: BTreeMap<String, Option<String>>,
    /// A director of a lab with firewall-mark services: lvsctl's nftables table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft: Option<NftFact>,
    /// A director: the real servers `lvsctl drain` keeps drained here, by host name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drained: BTreeMap<String, crate::drain::Drained>,
    /// The sysctls asked for (`FactsRequest::sysctls`) that exist, with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// IPVS's connection timeouts, when asked for and IPVS is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<crate::plan::IpvsTimeouts>,
    /// `FactsRequest::exporter_listen`: what else listens there, None when the address is free
    /// (or this lab's exporter holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_busy: Option<String>,
    /// `FactsRequest::modules` the host cannot load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules_missing: Vec<String>,
    /// `FactsRequest::held_ports`: each address asked for, with the client ports IPVS holds
    /// entries for (from any client address), ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_ports: Vec<(crate::ipvs::ServiceKey, Vec<u16>)>,
}

impl HostFacts {
    pub fn conf(&self, dev: &str) -> Conf {
        self.conf.get(dev).cloned().unwrap_or_default()
    }
    pub fn link_up(&self, dev: &str) -> Option<bool> {
        self.links.iter().find(|(n, _)| n == dev).map(|(_, up)| *up)
    }
    /// The IPv4 default route the kernel uses (the lowest metric).
    pub fn default_route(&self) -> Option<&RouteFact> {
        self.default_route_of(false)
    }
    pub fn default_route_of(&self, ipv6: bool) -> Option<&RouteFact> {
        self.routes
            .iter()
            .filter(|r| r.destination.prefix_len() == 0 && r.destination.addr().is_ipv6() == ipv6)
            .min_by_key(|r| r.metric)
    }
    /// IPv4 addresses of this host, on any device.
    pub fn ipv4_addresses(&self) -> impl Iterator<Item = (&str, ipnet::Ipv4Net)> {
        self.addresses.iter().filter_map(|a| match a.address {
            ipnet::IpNet::V4(n) => Some((a.dev.as_str(), n)),
            ipnet::IpNet::V6(_) => None,
        })
    }
    pub fn lookup(&self, dst: IpAddr) -> Option<&Lookup> {
        self.lookups.iter().find(|l| l.destination == dst)
    }
}

/// lvsctl's nftables table on a director, against its plan (doctor's fact).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftFact {
    /// `lvsctl-LAB` (family inet).
    pub table: String,
    pub planned_rules: usize,
    /// The rules the table holds; None: there is no such table.
    pub rules: Option<usize>,
    /// It holds the planned chain and rules, and nothing else.
    pub as_planned: bool,
    /// Why it could not be read (nft missing, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
