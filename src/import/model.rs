//! What an imported source holds that an inventory can say, whatever the source's format: its
//! services with their real servers and checks, an HA pair, the IPVS timeouts, the names it gives,
//! and what it holds that an inventory cannot say (each with its file and line).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::ipvs::{Forward, Netmask, ServiceKey};

/// Where something is in the source: its file (an include's, for keepalived) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // Line 0: a live host's, which has no lines.
        if self.line == 0 { write!(f, "{}", self.file) } else { write!(f, "{}:{}", self.file, self.line) }
    }
}

/// Something the source holds that the inventory does not say, where it is, and what was done
/// instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Loc,
    pub text: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.text)
    }
}

/// A virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Where it is defined.
    pub at: Loc,
    /// Its name in the source (a virtual server group's, or lvsctl's own label), when it has one.
    pub name: Option<String>,
    pub key: ServiceKey,
    pub scheduler: String,
    /// The scheduler's flags (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`, `flag-1`…).
    pub flags: Vec<String>,
    /// Persistence in seconds; 0 = none.
    pub persistence: u32,
    /// The persistence granularity, when given.
    pub netmask: Option<Netmask>,
    /// One-packet scheduling.
    pub one_packet: bool,
    pub dests: Vec<Dest>,
    /// How every real server is checked (keepalived, ldirectord).
    pub check: Option<Check>,
    /// A failed check sets the weight to 0 instead of removing the real server.
    pub quiesce: bool,
    /// Where clients go when no real server is up.
    pub sorry: Option<(IpAddr, u16)>,
    /// A firewall-mark service: the addresses whose packets are taken to carry the mark (guessed
    /// by the reader: the source holds marks, not the firewall rules that set them).
    pub mark_vips: Vec<IpAddr>,
}

impl Service {
    pub fn new(at: Loc, key: ServiceKey) -> Service {
        Service {
            at,
            name: None,
            key,
            scheduler: "wlc".into(),
            flags: vec![],
            persistence: 0,
            netmask: None,
            one_packet: false,
            dests: vec![],
            check: None,
            quiesce: false,
            sorry: None,
            mark_vips: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub at: Loc,
    pub address: IpAddr,
    /// 0 for a firewall-mark service (the packet's port is kept).
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// TUN: the encapsulation (IP-in-IP unless the source says GUE or GRE).
    pub encap: crate::ipvs::Encap,
}

/// A health check, as the inventory's `health_check` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub http: Option<HttpCheck>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    /// The port checked, when not the real server's.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub path: String,
    pub status: u16,
    /// Text the body must contain.
    pub expect: Option<String>,
}

/// A VRRP pair of directors, from one director's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub at: Loc,
    pub virtual_router_id: u8,
    pub advert_interval: u32,
    pub preempt: bool,
    /// This director's priority.
    pub priority: u8,
    /// `unicast_src_ip` and the peer: the two directors' addresses.
    pub unicast: Option<(IpAddr, IpAddr)>,
    /// IPVS connection sync between the two.
    pub sync: bool,
    /// Addresses the pair moves that are on a real servers' subnet: their gateway in NAT.
    pub floating: Vec<(IpAddr, u8)>,
}

/// IPVS's connection timeouts in seconds (`ipvsadm --set`, keepalived's `lvs_timeouts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: Option<u32>,
    pub tcp_fin: Option<u32>,
    pub udp: Option<u32>,
}

/// A host read live (`lvsctl import --from-host`): the inventory says it as it is, no guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    pub name: String,
    /// `director` or `real-server`.
    pub role: &'static str,
    /// How lvsctl reached it (the host part of `[user@]HOST`).
    pub ssh: String,
    /// Its interfaces and their global addresses, as the kernel has them.
    pub interfaces: Vec<(String, Vec<ipnet::IpNet>)>,
    /// Its default routes' gateways (IPv4, then IPv6).
    pub gateways: Vec<IpAddr>,
}

/// Everything read from a source.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub services: Vec<Service>,
    pub pair: Option<Pair>,
    pub timeouts: Option<Timeouts>,
    /// The director's name in the source (keepalived's router_id), when it is a valid host name.
    pub director: Option<String>,
    /// Real servers' names in the source, by address.
    pub names: BTreeMap<IpAddr, String>,
    /// What the inventory does not say.
    pub notes: Vec<Note>,
    /// Hosts read live: the director first, then the real servers asked for.
    pub known: Vec<KnownHost>,
    /// `net.ipv4.vs.*` settings to keep as they are (name without the prefix, value).
    pub ipvs_sysctls: Vec<(String, u32)>,
    /// The login user hosts were read with (`--from-host user@HOST`).
    pub ssh_user: Option<String>,
}

impl Setup {
    pub fn note(&mut self, at: &Loc, text: impl Into<String>) {
        self.notes.push(Note { at: at.clone(), text: text.into() });
    }
}

/// `s` as a host or service name of the inventory (1-20 of a-z 0-9 -, a letter first; `_` read as
/// `-`, capitals lowered); None when it cannot be one.
pub fn valid_name(s: &str) -> Option<String> {
    let n = s.to_ascii_lowercase().replace('_', "-");
    let ok = !n.is_empty()
        && n.len() <= 20
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(n)
}
