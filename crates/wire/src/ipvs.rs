//! IPVS's objects as lvsctl names them — protocols, forwarding methods, service and destination
//! keys and configurations, counters, the sync daemon — independent of how netlink encodes them
//! (the codec: `ipvs/mod.rs`).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Address families as IPVS messages carry them.
pub const AF_INET: u16 = libc::AF_INET as u16;
pub const AF_INET6: u16 = libc::AF_INET6 as u16;

/// The sync daemon states (`IP_VS_STATE_MASTER`, `IP_VS_STATE_BACKUP`).
pub const SYNC_MASTER: u32 = 1;
pub const SYNC_BACKUP: u32 = 2;

pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `-o`: one packet is one connection (UDP).
pub const SVC_F_ONEPACKET: u32 = 0x0004;
/// The scheduler's first and second flags: `sh-fallback`/`mh-fallback`, `sh-port`/`mh-port`.
pub const SVC_F_SCHED1: u32 = 0x0008;
pub const SVC_F_SCHED2: u32 = 0x0010;
/// Flags a user can set (persistent, one-packet, scheduler flags); HASHED is the kernel's own.
pub const SVC_F_USER_MASK: u32 = 0x0001 | 0x0004 | 0x0008 | 0x0010 | 0x0020;

pub const FWD_MASQ: u32 = 0;
pub const FWD_LOCAL: u32 = 1;
pub const FWD_TUNNEL: u32 = 2;
pub const FWD_ROUTE: u32 = 3;

pub fn fwd_name(f: u32) -> &'static str {
    match f {
        FWD_MASQ => "masq",
        FWD_LOCAL => "local",
        FWD_TUNNEL => "tunnel",
        FWD_ROUTE => "route",
        _ => "unknown",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const NAMES: [&'static str; 3] = ["tcp", "udp", "sctp"];
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
    /// IP protocol number, as IPVS wants it.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    pub fn from_number(n: u16) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// NAT (ipvsadm -m)
    Masq,
    /// Direct routing (ipvsadm -g)
    Route,
    /// IP-in-IP (ipvsadm -i)
    Tunnel,
}

impl Forward {
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Masq => "masq",
            Forward::Route => "route",
            Forward::Tunnel => "tunnel",
        }
    }
    /// IP_VS_CONN_F_* as the kernel numbers it (`FWD_*`).
    pub fn code(self) -> u32 {
        match self {
            Forward::Masq => FWD_MASQ,
            Forward::Route => FWD_ROUTE,
            Forward::Tunnel => FWD_TUNNEL,
        }
    }
    /// The ipvsadm flag for this forwarding method.
    pub fn ipvsadm_flag(self) -> &'static str {
        match self {
            Forward::Masq => "-m",
            Forward::Route => "-g",
            Forward::Tunnel => "-i",
        }
    }
}

/// How the director wraps a TUN destination's packets (`ipvsadm --tun-type`; the kernel's
/// IPVS_DEST_ATTR_TUN_TYPE, since Linux 5.3): IP-in-IP, GUE (IP in UDP) or GRE.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TunType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunType {
    pub const NAMES: [&'static str; 3] = ["ipip", "gue", "gre"];
    pub fn parse(s: &str) -> Option<TunType> {
        match s {
            "ipip" => Some(TunType::Ipip),
            "gue" => Some(TunType::Gue),
            "gre" => Some(TunType::Gre),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }
    /// IP_VS_CONN_F_TUNNEL_TYPE_*.
    pub fn code(self) -> u8 {
        match self {
            TunType::Ipip => 0,
            TunType::Gue => 1,
            TunType::Gre => 2,
        }
    }
    pub fn from_code(c: u8) -> Option<TunType> {
        [TunType::Ipip, TunType::Gue, TunType::Gre].into_iter().find(|t| t.code() == c)
    }
}

/// The checksum of a GUE or GRE tunnel (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TunChecksum {
    #[default]
    None,
    /// A checksum over the outer header (UDP's for GUE, GRE's own).
    Csum,
    /// GUE's remote checksum offload: the receiver completes the inner checksum.
    Remcsum,
}

impl TunChecksum {
    pub const NAMES: [&'static str; 3] = ["none", "csum", "remcsum"];
    pub fn parse(s: &str) -> Option<TunChecksum> {
        match s {
            "none" => Some(TunChecksum::None),
            "csum" => Some(TunChecksum::Csum),
            "remcsum" => Some(TunChecksum::Remcsum),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TunChecksum::None => "none",
            TunChecksum::Csum => "csum",
            TunChecksum::Remcsum => "remcsum",
        }
    }
    /// IP_VS_TUNNEL_ENCAP_FLAG_*.
    pub fn flags(self) -> u16 {
        match self {
            TunChecksum::None => 0,
            TunChecksum::Csum => 1,
            TunChecksum::Remcsum => 2,
        }
    }
    pub fn from_flags(f: u16) -> Option<TunChecksum> {
        [TunChecksum::None, TunChecksum::Csum, TunChecksum::Remcsum].into_iter().find(|c| c.flags() == f)
    }
}

/// A TUN destination's encapsulation: type, GUE's UDP port, checksum.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Encap {
    #[serde(rename = "type")]
    pub tun_type: TunType,
    /// GUE: the UDP port the real servers receive on; 0 for the others.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "is_no_checksum")]
    pub checksum: TunChecksum,
}

fn is_zero(p: &u16) -> bool {
    *p == 0
}

fn is_no_checksum(c: &TunChecksum) -> bool {
    *c == TunChecksum::None
}

impl Encap {
    pub const IPIP: Encap = Encap { tun_type: TunType::Ipip, port: 0, checksum: TunChecksum::None };

    pub fn is_ipip(&self) -> bool {
        *self == Encap::IPIP
    }

    /// Bytes the director adds in front of a packet: the outer IP header (20, or 40 for IPv6)
    /// and the tunnel's own — GRE 4 (8 with a checksum), GUE 8 of UDP and 4 of GUE (8 more
    /// for remote checksum offload's option).
    pub fn overhead(&self, ipv6: bool) -> u32 {
        let outer = if ipv6 { 40 } else { 20 };
        outer
            + match (self.tun_type, self.checksum) {
                (TunType::Ipip, _) => 0,
                (TunType::Gre, TunChecksum::None) => 4,
                (TunType::Gre, _) => 8,
                (TunType::Gue, TunChecksum::Remcsum) => 20,
                (TunType::Gue, _) => 12,
            }
    }

    /// What `ipvsadm-save` writes after a tunnelled destination's weight: `--tun-type ipip`, or
    /// the type with GUE's port and the checksum option (`--tun-type gue --tun-port 6080
    /// --tun-nocsum`); `ipvsadm -R` reads it back.
    pub fn ipvsadm_save_args(&self) -> String {
        let mut s = format!(" --tun-type {}", self.tun_type.as_str());
        if self.tun_type == TunType::Gue {
            s.push_str(&format!(" --tun-port {}", self.port));
        }
        if self.tun_type != TunType::Ipip {
            s.push_str(match self.checksum {
                TunChecksum::None => " --tun-nocsum",
                TunChecksum::Csum => " --tun-csum",
                TunChecksum::Remcsum => " --tun-remcsum",
            });
        }
        s
    }

    /// keepalived's words after `lvs_method TUN` (empty for plain IP-in-IP).
    pub fn keepalived_words(&self) -> String {
        if self.is_ipip() {
            return String::new();
        }
        let mut s = format!(" type {}", self.tun_type.as_str());
        if self.tun_type == TunType::Gue {
            s.push_str(&format!(" port {}", self.port));
        }
        if self.checksum != TunChecksum::None {
            s.push_str(&format!(" {}", self.checksum.as_str()));
        }
        s
    }

    /// As the kernel carries it: (type, port, flags).
    pub fn raw(&self) -> (u8, u16, u16) {
        (self.tun_type.code(), self.port, self.checksum.flags())
    }

    /// `gue port 6080 csum`, `gre`, `ipip`.
    pub fn describe(&self) -> String {
        let mut s = self.tun_type.as_str().to_string();
        if self.tun_type == TunType::Gue {
            s.push_str(&format!(" port {}", self.port));
        }
        if self.checksum != TunChecksum::None {
            s.push_str(&format!(" {}", self.checksum.as_str()));
        }
        s
    }
}

/// What identifies a virtual service: its protocol, address and port, or a firewall mark and
/// an address family (`ipvsadm -f MARK`, with `-6` for IPv6).
///
/// In JSON (the journal) an addressed service is `{"protocol", "addr", "port"}`, as every
/// release wrote it, and a mark service `{"fwmark", "ipv6"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServiceKey {
    Addr { protocol: Protocol, addr: IpAddr, port: u16 },
    Mark { fwmark: u32, ipv6: bool },
}

impl ServiceKey {
    pub fn addr(protocol: Protocol, addr: impl Into<IpAddr>, port: u16) -> ServiceKey {
        ServiceKey::Addr { protocol, addr: addr.into(), port }
    }

    /// A service as inventories and plans describe it: by firewall mark (of the VIP's family)
    /// when it has one, by protocol, VIP and port otherwise.
    pub fn of(protocol: Protocol, vip: IpAddr, port: u16, fwmark: Option<u32>) -> ServiceKey {
        match fwmark {
            Some(fwmark) => ServiceKey::Mark { fwmark, ipv6: vip.is_ipv6() },
            None => ServiceKey::addr(protocol, vip, port),
        }
    }

    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Mark { ipv6, .. } => *ipv6,
        }
    }

    /// The address family as netlink carries it.
    pub fn af(&self) -> u16 {
        if self.is_ipv6() { AF_INET6 } else { AF_INET }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr, port } => write!(f, "{protocol} {}", SocketAddr(*addr, *port)),
            ServiceKey::Mark { fwmark, ipv6: false } => write!(f, "fwmark {fwmark}"),
            ServiceKey::Mark { fwmark, ipv6: true } => write!(f, "fwmark {fwmark} ipv6"),
        }
    }
}

/// An address and a port as ipvsadm writes them: `192.0.2.1:80`, `[2001:db8::1]:80`.
pub struct SocketAddr(pub IpAddr, pub u16);

impl std::fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// An address family, as the JSON contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::Ipv4, Family::Ipv6];
    pub fn of(ipv6: bool) -> Family {
        if ipv6 { Family::Ipv6 } else { Family::Ipv4 }
    }
    pub fn of_addr(a: IpAddr) -> Family {
        Family::of(a.is_ipv6())
    }
    /// `IPv4`, `IPv6`: as messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }
}

/// An address as it stands before `:PORT` (ipvsadm's arguments, an HTTP Host header): IPv6 in
/// brackets.
pub fn bracketed(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A persistent service's granularity: a netmask for IPv4 (`-M 255.255.255.0`), a prefix length
/// for IPv6 (`-M 64`). In JSON a string or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u8),
}

impl Netmask {
    /// Every address on its own: what ipvsadm sends when no `-M` is given.
    pub fn host(ipv6: bool) -> Netmask {
        if ipv6 { Netmask::V6(128) } else { Netmask::V4(Ipv4Addr::BROADCAST) }
    }

    /// The netmask as netlink carries it.
    pub fn raw(self) -> [u8; 4] {
        match self {
            Netmask::V4(m) => m.octets(),
            // The kernel reads an IPv6 service's netmask as a prefix length (ip_vs_ctl.c).
            Netmask::V6(plen) => (plen as u32).to_ne_bytes(),
        }
    }

    pub fn from_raw(raw: [u8; 4], ipv6: bool) -> Netmask {
        if ipv6 { Netmask::V6(u32::from_ne_bytes(raw).min(128) as u8) } else { Netmask::V4(Ipv4Addr::from(raw)) }
    }
}

impl std::fmt::Display for Netmask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{m}"),
            Netmask::V6(plen) => write!(f, "{plen}"),
        }
    }
}

/// What can be changed on a service (IPVS_CMD_SET_SERVICE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub scheduler: String,
    /// User-settable flags only (`SVC_F_USER_MASK`).
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout: u32,
    pub netmask: Netmask,
}

impl ServiceConfig {
    /// An IPv4 service's configuration; `for_family` gives one for an IPv6 service.
    pub fn persistent(scheduler: &str, persistence: u32, netmask: Option<Netmask>) -> ServiceConfig {
        ServiceConfig {
            scheduler: scheduler.to_string(),
            flags: if persistence > 0 { SVC_F_PERSISTENT } else { 0 },
            timeout: persistence,
            netmask: netmask.unwrap_or(Netmask::host(false)),
        }
    }

    /// With these flags set too (one-packet, the scheduler's flags).
    pub fn with_flags(mut self, flags: u32) -> ServiceConfig {
        self.flags |= flags & SVC_F_USER_MASK;
        self
    }

    /// This configuration for a service of `key`'s family: the default netmask follows it.
    pub fn for_family(mut self, key: &ServiceKey) -> ServiceConfig {
        if self.netmask == Netmask::host(!key.is_ipv6()) {
            self.netmask = Netmask::host(key.is_ipv6());
        }
        self
    }

    pub fn describe(&self) -> String {
        let mut s = self.scheduler.clone();
        // The scheduler's flags, as ipvsadm names them (`-b sh-fallback,sh-port`).
        let names: Vec<String> = [(SVC_F_SCHED1, "fallback"), (SVC_F_SCHED2, "port")]
            .into_iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(bit, name)| match self.scheduler.as_str() {
                "sh" | "mh" => format!("{}-{name}", self.scheduler),
                _ => format!("flag-{}", if bit == SVC_F_SCHED1 { 1 } else { 2 }),
            })
            .collect();
        if !names.is_empty() {
            s.push_str(&format!(" {}", names.join(",")));
        }
        if self.flags & SVC_F_PERSISTENT != 0 {
            s.push_str(&format!(" persistent {}s", self.timeout));
            if self.netmask != Netmask::host(false) && self.netmask != Netmask::host(true) {
                s.push_str(&format!(" netmask {}", self.netmask));
            }
        }
        if self.flags & SVC_F_ONEPACKET != 0 {
            s.push_str(" one-packet");
        }
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for DestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        SocketAddr(self.addr, self.port).fmt(f)
    }
}

/// What can be changed on a destination (IPVS_CMD_SET_DEST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestConfig {
    /// IP_VS_CONN_F_* forwarding method (`FWD_*`).
    pub fwd: u32,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// The tunnel's encapsulation as the kernel keeps it: (IPVS_DEST_ATTR_TUN_TYPE, _PORT,
    /// _FLAGS), all 0 for IP-in-IP and for the other methods. Journals written before lvsctl
    /// knew of it have none: 0s, what the kernel held then.
    #[serde(default, skip_serializing_if = "no_tunnel")]
    pub tun: (u8, u16, u16),
}

fn no_tunnel(t: &(u8, u16, u16)) -> bool {
    *t == (0, 0, 0)
}

impl DestConfig {
    /// A destination with no thresholds and no tunnel options.
    pub fn plain(fwd: u32, weight: u32) -> DestConfig {
        DestConfig { fwd, weight, u_threshold: 0, l_threshold: 0, tun: (0, 0, 0) }
    }

    /// The encapsulation, when the kernel's numbers name one lvsctl knows.
    pub fn encap(&self) -> Option<Encap> {
        let (t, port, flags) = self.tun;
        Some(Encap { tun_type: TunType::from_code(t)?, port, checksum: TunChecksum::from_flags(flags)? })
    }

    pub fn describe(&self) -> String {
        let mut s = fwd_name(self.fwd).to_string();
        if self.tun != (0, 0, 0) {
            match self.encap() {
                Some(e) => s.push_str(&format!(" {}", e.describe())),
                None => s.push_str(&format!(" tun {:?}", self.tun)),
            }
        }
        s.push_str(&format!(" weight {}", self.weight));
        if self.u_threshold > 0 {
            s.push_str(&format!(" u_threshold {}", self.u_threshold));
        }
        if self.l_threshold > 0 {
            s.push_str(&format!(" l_threshold {}", self.l_threshold));
        }
        s
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    /// The kernel's rate estimates (its two-second estimator, as `ipvsadm --rate` shows them):
    /// connections, packets in and out, bytes in and out, a second.
    #[serde(default)]
    pub rates: Rates,
}

/// IPVS's rate estimates, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub key: ServiceKey,
    pub config: ServiceConfig,
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestEntry {
    pub key: DestKey,
    pub config: DestConfig,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Stats,
}

/// A running IPVS connection sync daemon (`ipvsadm -L --daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyncDaemon {
    /// SYNC_MASTER or SYNC_BACKUP; `"master"` or `"backup"` in JSON.
    #[serde(with = "sync_state")]
    #[schemars(with = "SyncRole")]
    pub state: u32,
    pub interface: String,
    pub sync_id: u32,
}

/// A sync daemon's state as `ipvsadm -L --daemon` names it.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum SyncRole {
    Master,
    Backup,
}

mod sync_state {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(state: &u32, s: S) -> Result<S::Ok, S::Error> {
        match *state {
            super::SYNC_MASTER => s.serialize_str("master"),
            super::SYNC_BACKUP => s.serialize_str("backup"),
            n => s.serialize_u32(n),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum State {
            Name(String),
            Number(u32),
        }
        match State::deserialize(d)? {
            State::Number(n) => Ok(n),
            State::Name(s) if s == "master" => Ok(super::SYNC_MASTER),
            State::Name(s) if s == "backup" => Ok(super::SYNC_BACKUP),
            State::Name(s) => Err(D::Error::custom(format!("unknown sync daemon state {s:?}"))),
        }
    }
}

impl SyncDaemon {
    pub fn role(&self) -> &'static str {
        match self.state {
            SYNC_MASTER => "master",
            SYNC_BACKUP => "backup",
            _ => "unknown",
        }
    }
}
