//! The plan of one host as it crosses the wire: the ordered desired state, each item with its
//! reason. The planner (`plan` in lvsctl) makes it; `lvsctl plan` prints it, templates render it,
//! the agent compares it with live state and the boot unit re-applies its runtime part.

pub mod keepalived;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ipvs::Protocol;
use crate::service::VirtualService;
use crate::vocab::Role;

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

/// A GUE receive port on a real server (`ip fou add port PORT gue [-6]`): the UDP packets of
/// TUN-over-GUE services are unwrapped there and their IP-in-IP inside handed to tunl0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuePortSpec {
    pub port: u16,
    /// An IPv6 socket (for IPv6 services' tunnels).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RouteSpec {
    /// CIDR notation: `192.168.188.100/32`.
    #[schemars(with = "String")]
    pub destination: ipnet::IpNet,
    pub gateway: Option<std::net::IpAddr>,
    pub dev: Option<String>,
    /// The MSS TCP advertises over the route (`advmss`): TUN real servers' routes back to
    /// clients, so that a client's segments still fit once the director wraps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
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
    /// TUN: how the packets are wrapped (left out for IP-in-IP and the other methods).
    #[serde(default, skip_serializing_if = "crate::ipvs::Encap::is_ipip")]
    pub encap: crate::ipvs::Encap,
}

impl DestSpec {
    /// The destination as the kernel keeps it.
    pub fn config(&self) -> crate::ipvs::DestConfig {
        crate::ipvs::DestConfig {
            fwd: self.forward.code(),
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
            tun: self.encap.raw(),
        }
    }
}

// A virtual service the director runs: the service, and its destinations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VirtualServiceSpec {
    /// The service's name in the inventory (metrics label it so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub ipvs: VirtualService,
    pub destinations: Vec<DestSpec>,
    pub reason: String,
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
    /// Real servers of TUN-over-GUE services: their GUE receive ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gue_ports: Vec<GuePortSpec>,
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
    /// Directors whose inventory sets `[ipvs] timeouts`: the connection timeouts (ipvsadm --set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<IpvsTimeoutsSpec>,
    /// Directors of a lab with `[metrics]` (or their own `metrics_listen`): lvsctl's agent serves
    /// Prometheus's `/metrics` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<ExporterSpec>,
}

/// lvsctl's agent as a Prometheus exporter (`lvsctl-agent agent metrics --lab LAB --listen A:P`):
/// started by `up` and at boot, stopped by `down`, reading the persisted plan at each scrape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExporterSpec {
    /// `ADDR:PORT` (`[ADDR]:PORT` for IPv6).
    #[schemars(with = "String")]
    pub listen: std::net::SocketAddr,
    pub reason: String,
}

/// IPVS's connection timeouts of a network namespace, in seconds (`ipvsadm -L --timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IpvsTimeouts {
    /// Established TCP connections (kernel default 900).
    pub tcp: u32,
    /// TCP connections after the client's FIN (default 120).
    pub tcp_fin: u32,
    /// UDP (default 300).
    pub udp: u32,
}

impl IpvsTimeouts {
    /// What a kernel starts with (include/net/ip_vs.h: 15 minutes, 2 minutes, 5 minutes).
    pub const KERNEL: IpvsTimeouts = IpvsTimeouts { tcp: 900, tcp_fin: 120, udp: 300 };
}

impl std::fmt::Display for IpvsTimeouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tcp {} tcp_fin {} udp {}", self.tcp, self.tcp_fin, self.udp)
    }
}

/// The timeouts the inventory sets; one left out is left as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IpvsTimeoutsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_fin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<u32>,
    pub reason: String,
}

impl IpvsTimeoutsSpec {
    /// `live` with the timeouts this spec sets.
    pub fn applied_to(&self, live: IpvsTimeouts) -> IpvsTimeouts {
        IpvsTimeouts {
            tcp: self.tcp.unwrap_or(live.tcp),
            tcp_fin: self.tcp_fin.unwrap_or(live.tcp_fin),
            udp: self.udp.unwrap_or(live.udp),
        }
    }

    /// `tcp 900 udp 300`: the timeouts set, in ipvsadm's order.
    pub fn describe(&self) -> String {
        [("tcp", self.tcp), ("tcp_fin", self.tcp_fin), ("udp", self.udp)]
            .iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n} {v}")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// lvsctl's own nftables table (`table inet lvsctl-LAB`): one chain at prerouting (priority
/// mangle, before IPVS sees the packets) with a rule per match of each firewall-mark service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NftTableSpec {
    pub name: String,
    pub rules: Vec<MarkRuleSpec>,
    /// One-armed NAT: the source NAT rules of its services (a chain of their own, postrouting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snat: Vec<SnatRuleSpec>,
    pub reason: String,
}

/// One-armed NAT: a request of the service (`vip`, `protocol`, `port`, as the client sent it) that
/// IPVS forwards to a real server — to `daddr` only, when the service's real servers need
/// different source addresses — leaves with the director's address `to` as its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SnatRuleSpec {
    pub vip: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daddr: Option<IpAddr>,
    pub to: IpAddr,
    /// The service's name or label, as the rule's comment.
    pub service: String,
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
    /// A plan that wants nothing (yet).
    pub fn empty(lab: &str, host: &str, role: Role) -> Self {
        HostPlan {
            lab: lab.to_string(),
            host: host.to_string(),
            role,
            modules: vec![],
            sysctls: vec![],
            links_up: vec![],
            gue_ports: vec![],
            addresses: vec![],
            routes: vec![],
            ipvs: vec![],
            files: vec![],
            boot_unit: None,
            keepalived: None,
            nftables: None,
            ipvs_timeouts: None,
            exporter: None,
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

/// The name of a lab's nftables table.
pub fn nft_table_name(lab: &str) -> String {
    format!("lvsctl-{lab}")
}
